"""Former name of :mod:`rxchat._chunk_decoder`.

``rxchat._decode`` is that same module object: code that still imports the old name sees (and
patches) the real module.
"""

import sys

from . import _chunk_decoder
from ._chunk_decoder import *  # noqa: F403  (the names, for type checkers)

sys.modules[__name__] = _chunk_decoder
