"""Giving freed memory back to the operating system after objects are released (issue 18).

A released pipeline frees its objects, but glibc's allocator keeps freed heap pages for later
allocations, so RSS (what operators watch) stays up after the calls are gone. ``malloc_trim(0)``
hands those pages back; memory still held by C libraries, or pinned by fragmentation, stays
(README, "What it survives", has the soak figures). ``MemoryTrimmer`` calls it after releases, at
most once per interval, in a worker thread: it walks the whole heap, which the event loop should
not wait for. Where the C library is not glibc there is no ``malloc_trim``: the trimmer does
nothing and says so once, at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def glibc_heap_usage() -> dict[str, int] | None:
    """glibc's ``mallinfo2()`` of this process, in bytes: ``in_use`` (allocated by malloc from
    the heaps, every arena), ``free`` (free in the heaps, kept by glibc), ``heap`` (the heaps'
    size: brk heap and the other threads' arenas), ``mmap`` (large blocks in their own
    mappings). None where the C library has no ``mallinfo2`` (not glibc, or glibc < 2.33)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.argtypes = []
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "in_use": info.uordblks,
        "free": info.fordblks,
        "heap": info.arena,
        "mmap": info.hblkhd,
    }


class MemoryTrimmer:
    """Trims the heap after objects were released: once per ``interval`` seconds at most, and
    only when something was released since the last trim. ``interval`` 0 turns it off.

    A trim waiting for its turn is a timer, and a running one an executor future, not asyncio
    tasks: the soak counts tasks to find leaks, and a trim must not look like one."""

    def __init__(self, interval: float, trim: Trim | None) -> None:
        self.interval = interval
        self._trim = trim if interval > 0 else None
        self.trims = 0
        """Trims done (``kurento_memory_trims_total``)."""
        self._released = False
        self._last = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[int] | None = None
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
        if self._timer is None and self._running is None:
            self._schedule(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Drop a trim waiting for its turn; let one running in its thread finish."""
        self._released = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None:
            with contextlib.suppress(Exception):
                await self._running

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = max(0.0, self._last + self.interval - loop.time())
        self._timer = loop.call_later(delay, self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._trim is None:
            return
        self._released = False  # releases from here on need the next trim
        # Released media objects sit in reference cycles (aiortc's transports and their event
        # handlers, PyAV containers): only a full collection frees their DTLS, SRTP and codec
        # state, and CPython runs one only when a quarter more objects became long-lived, so
        # without it the garbage of hundreds of calls stays in the heap. On the loop's thread:
        # finalizers may touch the loop.
        gc.collect()
        self._running = loop.run_in_executor(None, self._trim, 0)
        self._running.add_done_callback(lambda done: self._finished(loop, done))

    def _finished(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[int]) -> None:
        self._running = None
        self._last = loop.time()
        if done.cancelled() or done.exception() is not None:
            logger.warning("! malloc_trim failed: %r", done)
        else:
            self.trims += 1
            logger.debug("memory trimmed (malloc_trim gave memory back: %s)", bool(done.result()))
        if self._released:
            self._schedule(loop)
