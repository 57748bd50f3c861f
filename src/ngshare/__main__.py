"""Allow `python -m ngshare`."""

from ngshare.cli import main

raise SystemExit(main())
