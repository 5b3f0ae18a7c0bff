"""The soak's short version (issue 18): 20 cycles of a full call (WebRTC peer, PBX leg, player
into recorder) against a server in its own process, with and without media workers; after the
warm-up nothing the server holds may grow (ports, fds, threads, tasks, objects) and RSS by under
5 %. ``make soak`` runs the long version (benchmarks/soak.py)."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.soak import soak
from tests.ports import free_port_range


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("cycles", "workers"), [(20, 1), (10, 2)], ids=["in-process", "workers"])
async def test_soak_short_holds_nothing_after_warm_up(cycles: int, workers: int) -> None:
    """Every cycle carries media and releases it; the server ends as it was after warm-up."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg makes the player's clip (make rtp-deps installs it)")
    block = free_port_range(100)
    report = await soak(cycles, warmup=4, media_workers=workers, ports=(block.low, block.high))
    assert report.problems() == []
    last = report.samples[-1]
    assert (last.udp_ports, last.media_ports_in_use, last.objects) == (0, 0, 0)
