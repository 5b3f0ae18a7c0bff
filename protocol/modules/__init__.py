"""The Kurento modules the emulator serves: ``core``, ``elements`` and ``filters`` (KMS 7.3.0)."""

from __future__ import annotations

from functools import cache

from protocol.modules.core import CORE
from protocol.modules.elements import ELEMENTS
from protocol.modules.filters import FILTERS
from protocol.types import TypeRegistry

MODULES = (CORE, ELEMENTS, FILTERS)


@cache
def default_registry() -> TypeRegistry:
    """The registry of every module (built once; it is immutable)."""
    return TypeRegistry(MODULES)
