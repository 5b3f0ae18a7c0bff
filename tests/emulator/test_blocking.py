"""The blocking-call pool: its threads exist from the start and their number never moves."""

from __future__ import annotations

import asyncio
import threading

from emulator.app import running_emulator
from emulator.blocking import started_pool
from tests.conftest import make_settings


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kurento-blocking")]


def test_a_started_pool_has_all_its_threads_at_once() -> None:
    before = len(_pool_threads())
    pool = started_pool(3)
    try:
        assert len(_pool_threads()) == before + 3
    finally:
        pool.shutdown()


async def test_overlapping_blocking_calls_start_no_thread() -> None:
    """A server's loop runs its blocking calls on the pool (servers on one loop share it): many
    calls at once, each waiting for the others, add no thread."""
    settings = make_settings(blocking_threads=4)
    before = len(_pool_threads())
    async with running_emulator(settings), running_emulator(settings):
        assert len(_pool_threads()) == before + 4  # started by the first server, shared
        count = threading.active_count()
        gate = threading.Barrier(4)
        await asyncio.gather(*(asyncio.to_thread(gate.wait) for _ in range(4)))
        await asyncio.gather(*(asyncio.to_thread(sum, range(10)) for _ in range(50)))
        assert threading.active_count() == count
