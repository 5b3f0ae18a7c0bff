"""The compiled part of the project: the media forwarding loop (emulator/media/fastpath/).

Everything else is in pyproject.toml. The extension is optional: without a C compiler (or
Python's headers) the build goes on without it and the server uses the pure-Python path, which
it says at start (emulator/media/fastpath/__init__.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "emulator.media.fastpath._forward",
            ["emulator/media/fastpath/_forward.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)
