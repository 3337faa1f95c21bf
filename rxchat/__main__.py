"""``python -m rxchat``: the ``rxchat`` command line."""

import sys

from ._cli import main

sys.exit(main())
