"""sambung connector for Pawoon."""
