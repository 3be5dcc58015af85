"""The `sambung` command line."""
