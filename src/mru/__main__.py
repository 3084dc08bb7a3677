"""``python -m mru`` is the ``mru`` command."""

import sys

from mru.cli import main

sys.exit(main())
