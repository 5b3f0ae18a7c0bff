"""Freed memory given back to the OS after releases (issue 18): the MemoryTrimmer runs glibc's
``malloc_trim`` after a release, in the server and in each media worker, and /metrics counts it
in ``kurento_memory_trims_total``."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from emulator.memory import MemoryTrimmer, glibc_heap_usage, glibc_malloc_trim
from tests.conftest import make_settings
from tests.observability.admin_http import http, metric, server_with_admin
from tests.ports import free_port_range

TIMEOUT = 30.0


async def _trims_reach(admin_url: str, count: int) -> float:
    """Scrape /metrics until ``kurento_memory_trims_total`` reaches ``count``; its value."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, text = await http(admin_url, "/metrics")
        trims = metric(text, "kurento_memory_trims_total")
        if trims >= count:
            return trims
        if time.monotonic() > deadline:
            raise TimeoutError(f"kurento_memory_trims_total stayed at {trims}, wanted {count}")
        await asyncio.sleep(0.05)  # polling a figure, with a deadline: not a synchronisation


needs_glibc = pytest.mark.skipif(glibc_malloc_trim() is None, reason="no glibc malloc_trim")


@needs_glibc
async def test_a_released_pipeline_is_followed_by_a_trim() -> None:
    """No trim before anything was released; releasing a pipeline with elements brings one."""
    ports = free_port_range(20)
    settings = make_settings(
        admin_port=0, admin_host="127.0.0.1", min_port=ports.low, max_port=ports.high
    )
    async with server_with_admin(settings) as (_, admin, client):
        pipeline = await client.create("MediaPipeline")
        await pipeline.create("WebRtcEndpoint")
        _, text = await http(admin.url, "/metrics")
        assert metric(text, "kurento_memory_trims_total") == 0
        await pipeline.release()
        assert await _trims_reach(admin.url, 1) >= 1


@needs_glibc
async def test_media_workers_trim_in_their_own_process() -> None:
    """With two media workers the release happens in a worker; the trim is the worker's own
    (the control process counts none) and shows in the server's /metrics."""
    settings = make_settings(
        admin_port=0, admin_host="127.0.0.1", media_workers=2, network_interfaces="lo"
    )
    async with server_with_admin(settings) as (server, admin, client):
        pipeline = await client.create("MediaPipeline")
        await pipeline.create("WebRtcEndpoint")
        await pipeline.release()
        assert await _trims_reach(admin.url, 1) >= 1
        assert server.memory.trims == 0


async def test_trimming_turned_off_never_trims() -> None:
    """``memory_trim_interval`` 0: releases are not followed by any trim."""
    calls: list[int] = []
    trimmer = MemoryTrimmer(0, lambda pad: calls.append(pad) or 0)
    trimmer.released()
    await trimmer.stop()
    assert (calls, trimmer.trims) == ([], 0)


async def test_releases_within_an_interval_share_one_trim() -> None:
    """A burst of releases is trimmed once; a release after that waits for the next interval
    (an hour here: it is still waiting when the trimmer stops, and never runs)."""
    loop = asyncio.get_running_loop()
    trimmed = asyncio.Event()
    calls: list[int] = []

    def trim(pad: int) -> int:  # runs in a worker thread
        calls.append(pad)
        loop.call_soon_threadsafe(trimmed.set)
        return 1

    trimmer = MemoryTrimmer(3600, trim)
    for _ in range(3):
        trimmer.released()
    await asyncio.wait_for(trimmed.wait(), TIMEOUT)
    trimmer.released()
    await trimmer.stop()
    assert calls == [0]


class _Held:
    """Stands for a released media object caught in a reference cycle."""

    def __init__(self) -> None:
        self.me = self


async def test_a_trim_first_frees_released_objects_in_reference_cycles() -> None:
    """Garbage in a cycle that has already grown old (CPython's oldest generation, collected
    only when a quarter more objects became long-lived) is freed before the trim runs, so the
    trim can give its memory back: the soak's heap kept growing without this."""
    loop = asyncio.get_running_loop()
    freed_before_trim: list[bool] = []
    trimmed = asyncio.Event()
    held = _Held()
    gc.collect()  # ``held`` survives it: now in the oldest generation
    alive = weakref.ref(held)
    del held
    assert alive() is not None  # no automatic collection reaches it

    def trim(pad: int) -> int:  # runs in a worker thread
        freed_before_trim.append(alive() is None)
        loop.call_soon_threadsafe(trimmed.set)
        return 1

    trimmer = MemoryTrimmer(3600, trim)
    trimmer.released()
    await asyncio.wait_for(trimmed.wait(), TIMEOUT)
    await trimmer.stop()
    assert freed_before_trim == [True]


@pytest.mark.skipif(glibc_heap_usage() is None, reason="no glibc mallinfo2")
async def test_metrics_show_the_glibc_heap() -> None:
    """``kurento_heap_bytes`` gives mallinfo2's figures (what the soak samples to tell memory
    in use from free memory glibc keeps)."""
    settings = make_settings(admin_port=0, admin_host="127.0.0.1")
    async with server_with_admin(settings) as (_, admin, _client):
        _, text = await http(admin.url, "/metrics")
        figures = {
            kind: metric(text, "kurento_heap_bytes", kind=kind)
            for kind in ("in_use", "free", "heap", "mmap")
        }
    assert figures["in_use"] > 1_000_000  # an interpreter with aiortc and PyAV loaded
    assert figures["heap"] >= figures["in_use"]


def test_glibc_malloc_trim_gives_back_what_is_free() -> None:
    """On glibc the function is found and answers 0 or 1 (whether it gave memory back)."""
    trim = glibc_malloc_trim()
    if trim is None:
        pytest.skip("no glibc malloc_trim")
    assert trim(0) in (0, 1)
