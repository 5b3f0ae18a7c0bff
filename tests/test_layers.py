"""The layering rule: protocol/ is pure, and only emulator/media/ imports the media libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_LIBRARIES = {"asyncio", "websockets", "aiortc", "aioice", "av", "socket", "ssl", "pylibsrtp"}
MEDIA_LIBRARIES = {"aiortc", "aioice", "av", "pylibsrtp"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "protocol").rglob("*.py")), ids=str)
def test_protocol_module_imports_no_io(path: Path) -> None:
    """protocol/ imports neither the event loop, sockets nor media libraries."""
    assert _imports(path) & IO_LIBRARIES == set()


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "emulator").rglob("*.py")) if "media" not in p.parts],
    ids=str,
)
def test_only_media_package_imports_media_libraries(path: Path) -> None:
    """Outside emulator/media/, nothing imports aiortc, aioice, av or pylibsrtp."""
    assert _imports(path) & MEDIA_LIBRARIES == set()
