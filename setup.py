"""Declares the optional C extension; all other metadata is in pyproject.toml.

``rxchat._speedups`` reads chat-completion chunks from their JSON text straight into the pydantic
models, faster than pydantic's own validation (rxchat/_c_builder.py), and hands back to pydantic
what it cannot build exactly as pydantic would. It is optional: without a C compiler the install
still succeeds and rxchat uses pydantic for everything, with the same results.
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
