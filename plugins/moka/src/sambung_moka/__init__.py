"""sambung connector for Moka."""
