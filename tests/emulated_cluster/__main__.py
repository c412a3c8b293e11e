"""``python -m tests.emulated_cluster``: serve an emulated cluster until Ctrl-C."""

import sys

from .api import main

sys.exit(main())
