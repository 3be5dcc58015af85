"""PostgreSQL migrations, numbered like the SQLite ones: one number is one change in both."""
