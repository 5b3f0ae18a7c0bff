"""The benchmarks connect to the server's own listener, not to a media worker's."""

from __future__ import annotations

import re

from benchmarks.control_plane import launch_emulator, server_url


def test_only_the_servers_own_line_is_ready() -> None:
    server = (
        "2026-12-07 INFO emulator.transport.server: listening on ws://127.0.0.1:4242/kurento (ws)"
    )
    relayed = "[worker 0] " + server.replace("4242", "5151")
    control = (
        "INFO emulator.workers: media worker 0: pid 77, ws://127.0.0.1:5151/kurento, ports 1-2"
    )
    assert server_url(server) == "ws://127.0.0.1:4242/kurento"
    assert server_url(relayed) is None
    assert server_url(control) is None


async def test_launched_server_with_workers_gives_its_own_url() -> None:
    """With two media workers the URL returned is the control plane's listener: none of the
    workers' URLs (which the control plane logs before it listens)."""
    log: list[str] = []
    process, url = await launch_emulator(["--media-workers", "2"], timeout=60, log=log)
    process.terminate()
    await process.wait()
    workers = re.findall(r"media worker \d+: pid \d+, (ws://\S+/kurento)", "".join(log))
    assert len(workers) == 2
    assert url not in workers
