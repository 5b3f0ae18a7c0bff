"""Short versions of the soak and the load (issue 18), each against a server in its own process.

The soak: 20 cycles of a full call (WebRTC peer, PBX leg, player into recorder), with and without
media workers; after the warm-up nothing the server holds may grow (ports, fds, threads, tasks,
objects) and RSS by under 5 %. ``make soak`` runs the long version (benchmarks/soak.py). The
load: 50 sessions of mixed requests; ``benchmarks/load.py`` runs 500."""

from __future__ import annotations

import shutil

import pytest

import benchmarks.soak
from benchmarks.load import load
from benchmarks.soak import soak
from emulator.transport.client import KurentoClient
from tests.ports import free_port_range


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("cycles", "warmup", "workers"), [(20, 8, 1), (10, 4, 2)], ids=["in-process", "workers"]
)
async def test_soak_short_holds_nothing_after_warm_up(
    cycles: int, warmup: int, workers: int
) -> None:
    """Every cycle carries media and releases it; the server ends as it was after warm-up."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg makes the player's clip (make rtp-deps installs it)")
    block = free_port_range(100)
    report = await soak(cycles, warmup, media_workers=workers, ports=(block.low, block.high))
    assert report.problems() == []
    last = report.samples[-1]
    assert (last.udp_ports, last.media_ports_in_use, last.objects) == (0, 0, 0)


@pytest.mark.timeout(120)
async def test_load_short_drops_nothing_and_answers_once() -> None:
    """50 concurrent sessions of mixed requests for 3 s (benchmarks/load.py, whose full run is
    500 sessions): every request answered exactly once, none with an error."""
    block = free_port_range(100)
    figures = await load(50, 3, media_workers=1, ports=(block.low, block.high))
    assert figures["requests_answered"] == figures["requests_sent"] > 50
    assert (figures["dropped"], figures["answered_twice_or_unknown"]) == (0, 0)
    assert figures["errors_by_code"] == {} and figures["failed_session_count"] == 0


@pytest.mark.timeout(120)
async def test_soak_reports_a_failed_cycle_and_releases_what_it_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cycle that fails is a finding in the report, and what it created is released, so
    that the cycles after it are measured on a clean server."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg makes the player's clip (make rtp-deps installs it)")

    async def failing(client: KurentoClient, *args: object) -> None:
        pipeline = await client.create("MediaPipeline")
        await pipeline.create("PassThrough")
        raise TimeoutError("no media (on purpose)")

    monkeypatch.setattr(benchmarks.soak, "cycle", failing)
    block = free_port_range(100)
    report = await soak(3, 1, media_workers=1, ports=(block.low, block.high))
    assert report.failures == [f"cycle {i}: TimeoutError: no media (on purpose)" for i in (1, 2, 3)]
    assert [s.objects for s in report.samples] == [0, 0, 0]
    assert set(report.failure_logs) == {"1", "2", "3"}  # the server's log at each failure
    assert any("PassThrough" in line for line in report.failure_logs["1"])
