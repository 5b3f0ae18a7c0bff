"""The Kurento modules the emulator serves: ``core``, ``elements`` and ``filters`` of KMS 7.3.0.

The definitions are Python source written for this project, not loaded from the KMD JSON files;
``tests/protocol/test_registry_vs_kmd.py`` checks them against the official ``*.kmd.json``.
"""

from __future__ import annotations

from functools import cache

from protocol.modules.core import CORE
from protocol.modules.elements import ELEMENTS
from protocol.modules.filters import FILTERS
from protocol.types import TypeRegistry

MODULES = (CORE, ELEMENTS, FILTERS)
"""Every module, in the order ``ServerInfo.modules`` lists them."""


@cache
def default_registry() -> TypeRegistry:
    """The registry of every module, built once (it is never modified)."""
    return TypeRegistry(MODULES)
