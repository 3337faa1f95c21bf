"""Former name of :mod:`rxchat._c_builder`.

``rxchat._fastbuild`` is that same module object: code that still imports the old name sees (and
patches) the real module.
"""

import sys

from . import _c_builder
from ._c_builder import *  # noqa: F403  (the names, for type checkers)

sys.modules[__name__] = _c_builder
