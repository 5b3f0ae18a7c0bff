"""The compiled parts of the project: the media forwarding loop (emulator/media/fastpath/) and
the throughput benchmark's load generator (benchmarks/_loadgen.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler (or
Python's headers) the build goes on without it and the server uses the pure-Python path, which
it says at start (emulator/media/fastpath/__init__.py); the benchmark then uses its Python
generator and says why (benchmarks/load_peers.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "emulator.media.fastpath._forward",
            ["emulator/media/fastpath/_forward.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        ),
        Extension(
            "benchmarks._loadgen",
            ["benchmarks/_loadgen.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-missing-field-initializers",
                "-Wno-unused-parameter",
            ],
            optional=True,
        ),
    ]
)
