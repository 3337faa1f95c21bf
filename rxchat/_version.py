"""rxchat's version, written once: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``),
``rxchat.__version__``, the CLI's ``--version`` and the transport's ``User-Agent`` import it."""

__version__ = "0.1.0"
