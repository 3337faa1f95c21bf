"""Declares the optional C extension; all other metadata is in pyproject.toml.

``rxchat._speedups`` builds chunk models from ``orjson.loads`` output faster than pydantic
(rxchat/_fastbuild.py). It is optional: without a C compiler the install still succeeds and
rxchat uses pydantic for everything, with the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rxchat._speedups",
            sources=["rxchat/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
