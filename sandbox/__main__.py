"""`python -m sandbox` is the same as the `vipps-sandbox` command."""

from sandbox.cli import main

raise SystemExit(main())
