"""The many-server lab, small: 4 servers in their own network namespaces driven through the pool;
one dies mid-run and comes back. Skipped where namespaces cannot be created (not root)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from benchmarks.lab20 import NamespaceLab, NamespacesUnavailable, run_lab


@pytest.mark.timeout(180)
async def test_calls_spread_fail_over_and_return_across_namespaces(tmp_path: Path) -> None:
    if shutil.which("ip") is None:
        pytest.skip("the namespace lab needs iproute2's ip command")
    lab = NamespaceLab(4, tmp_path)
    try:
        await asyncio.to_thread(lab.create)
    except NamespacesUnavailable as exc:
        pytest.skip(str(exc))
    try:
        report = await run_lab(lab, kill=1, lose=0, calls=12, concurrency=4, hold=0.1)
    finally:
        await lab.stop_all()
        await asyncio.to_thread(lab.destroy)
        assert lab.leftovers() == [], "namespaces left behind"

    assert report["spread_all_up"]["min"] == report["spread_all_up"]["max"] == 3
    dying = report["spread_servers_dying_survivors"]
    assert dying["max"] - dying["min"] <= 2, dying
    assert report["calls_on_dead_servers_after_failover"] == []
    assert report["failover_p99_s"] < 2.0, report["failover_s"]
    assert report["failed_calls"] == 0
    (dead,) = report["killed"]
    assert report["restarted_calls_after_rejoin"][dead] == 3
    assert report["spread_restarted"]["min"] == report["spread_restarted"]["max"] == 3
