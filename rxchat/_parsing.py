"""Former name of :mod:`rxchat._structured`.

``rxchat._parsing`` is that same module object: code that still imports the old name sees (and
patches) the real module.
"""

import sys

from . import _structured
from ._structured import *  # noqa: F403  (the names, for type checkers)

sys.modules[__name__] = _structured
