"""The compiled parts of the project: the media forwarding loop (emulator/media/fastpath/) and,
in a checkout, the throughput benchmark's load generator (benchmarks/_loadgen.c).

Everything else is in pyproject.toml. Both extensions are optional: without a C compiler (or
Python's headers) the build goes on without them; the server then uses the pure-Python path,
which it says at start (emulator/media/fastpath/__init__.py), and the benchmark its Python
generator, with the reason (benchmarks/load_peers.py). The Docker build copies no benchmarks/,
so only the forwarding loop is built there.
"""

from pathlib import Path

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
LOADGEN = Path(__file__).parent / "benchmarks" / "_loadgen.c"

extensions = [
    Extension(
        "emulator.media.fastpath._forward",
        ["emulator/media/fastpath/_forward.c"],
        extra_compile_args=FLAGS,
        optional=True,
    )
]
if LOADGEN.exists():
    extensions.append(
        Extension(
            "benchmarks._loadgen",
            ["benchmarks/_loadgen.c"],
            extra_compile_args=[*FLAGS, "-Wno-unused-parameter"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
