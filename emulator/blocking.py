"""The threads blocking calls run on: one fixed pool per event loop, all started at once.

The server hands a few calls to threads so that the event loop never waits for them: probing a
player's file, loading a filter's image, joining a media thread that is ending, giving memory back
to the OS (``asyncio.to_thread``, ``loop.run_in_executor(None, ...)``). asyncio's default executor
starts its threads one at a time, when a call finds none idle, and keeps every thread it started:
over a long run the thread count steps up whenever calls happened to overlap, which looks like a
leak to anyone watching it (the soak does). This pool is the loop's default executor instead, with
all of its threads started before the server serves, so the count is the same from the first call
to the last. asyncio shuts it down with the loop, as it does its own.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor, wait

_INSTALLED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = (
    weakref.WeakKeyDictionary()
)
"""The pool of each loop that has one (servers sharing a loop, as tests run them, share it)."""


def use_blocking_pool(loop: asyncio.AbstractEventLoop, size: int) -> ThreadPoolExecutor:
    """Make a pool of ``size`` running threads the loop's default executor (once per loop)."""
    pool = _INSTALLED.get(loop)
    if pool is None:
        pool = started_pool(size)
        loop.set_default_executor(pool)
        _INSTALLED[loop] = pool
    return pool


def started_pool(size: int) -> ThreadPoolExecutor:
    """A thread pool whose ``size`` threads all exist already: each of ``size`` first tasks
    waits for the others, so no task finds an idle thread and each submission starts one."""
    pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="kurento-blocking")
    barrier = threading.Barrier(size)
    wait([pool.submit(barrier.wait) for _ in range(size)])
    return pool
