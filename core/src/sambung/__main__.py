"""`python -m sambung` is the `sambung` command."""

from .cli.main import main

raise SystemExit(main())
