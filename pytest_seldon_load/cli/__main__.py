"""``python -m pytest_seldon_load.cli``."""

from . import main

raise SystemExit(main())
