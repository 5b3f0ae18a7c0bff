"""Giving freed memory back to the operating system after objects are released (issue 18).

A released pipeline frees its Python objects, but glibc's allocator keeps most of the freed
heap pages for later allocations: RSS, what operators watch, then grows over thousands of
calls although the Python heap does not (README, "What it survives"). ``malloc_trim(0)`` hands
those pages back. ``MemoryTrimmer`` calls it after releases, at most once per interval, in a
worker thread (it walks the whole heap: a few milliseconds that the event loop should not
wait for). Where the C library is not glibc there is no ``malloc_trim``: the trimmer does
nothing and says so once, at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
from collections.abc import Callable

logger = logging.getLogger(__name__)

Trim = Callable[[int], int]
"""``malloc_trim(pad)``: 1 when memory was given back, 0 when there was none to give."""


def glibc_malloc_trim() -> Trim | None:
    """glibc's ``malloc_trim``, or None where this process's C library has none."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Trim = trim
    return function


class MemoryTrimmer:
    """Trims the heap after objects were released: once per ``interval`` seconds at most, and
    only when something was released since the last trim. ``interval`` 0 turns it off."""

    def __init__(self, interval: float, trim: Trim | None) -> None:
        self.interval = interval
        self._trim = trim if interval > 0 else None
        self.trims = 0
        """Trims done (``kurento_memory_trims_total``)."""
        self._released = False
        self._last = -math.inf
        self._task: asyncio.Task[None] | None = None
        if interval > 0 and trim is None:
            logger.debug("no malloc_trim in this C library (not glibc): freed memory stays")

    @classmethod
    def from_interval(cls, interval: float) -> MemoryTrimmer:
        """A trimmer with glibc's ``malloc_trim``, where there is one."""
        return cls(interval, glibc_malloc_trim() if interval > 0 else None)

    def released(self) -> None:
        """Objects were released: trim soon (now, unless the last trim is under an interval
        old). Call from the event loop."""
        if self._trim is None:
            return
        self._released = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._trim_while_released(), name="memory-trim"
            )

    async def stop(self) -> None:
        """Stop a trim that is waiting for its turn (one running in its thread finishes)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _trim_while_released(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._released and self._trim is not None:
                await asyncio.sleep(max(0.0, self._last + self.interval - loop.time()))
                self._released = False  # releases from here on need the next trim
                gave_back = await asyncio.to_thread(self._trim, 0)
                self._last = loop.time()
                self.trims += 1
                logger.debug("memory trimmed (malloc_trim gave memory back: %s)", bool(gave_back))
        finally:
            if self._task is asyncio.current_task():
                self._task = None
