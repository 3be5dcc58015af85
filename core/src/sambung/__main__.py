"""`python -m sambung` is the `sambung` command."""

from .cli import main

raise SystemExit(main())
