"""SIGKILL of a server while calls run (issue 18): two ``python -m emulator`` processes behind the
client pool, calls with real aiortc peers; one server is killed, the pool's new calls go to the
other within the failover time while its call goes on, and the killed server, restarted on the
same ports, comes up clean and takes calls again."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.control_plane import launch_emulator
from emulator.transport.pool import PlacedCall, ServerPool
from tests.conftest import restart_port
from tests.media.peers import ClientPeer, negotiate
from tests.observability.admin_http import http, metric
from tests.ports import PortBlock, free_port_range

FAST = {
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "connect_timeout": 1.0,
    "call_timeout": 5.0,
    "retry_max": 0.5,
}
FAILOVER_BOUND = 2.0
"""Seconds from the kill to the pool marking the server down (the kernel closes the socket of a
killed process at once: the pool hears it without waiting for a ping)."""


@dataclass(eq=False)
class ServerProcess:
    """A ``python -m emulator`` on ports reserved for the test (so it restarts on the same)."""

    port: int
    admin_port: int
    media: PortBlock
    process: asyncio.subprocess.Process | None = None
    drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Its ws:// URL."""
        return f"ws://127.0.0.1:{self.port}/kurento"

    @property
    def admin(self) -> str:
        """Its admin listener's base URL."""
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self) -> None:
        """Start the process on the reserved ports; its log is read (and dropped)."""
        args = ["--port", str(self.port), "--admin-port", str(self.admin_port)]
        args += ["--min-port", str(self.media.low), "--max-port", str(self.media.high)]
        self.process, _ = await launch_emulator([*args, "--network-interfaces", "lo"])
        assert self.process.stdout is not None
        self.drain = asyncio.create_task(_drain(self.process.stdout))

    async def kill(self) -> None:
        """SIGKILL: no shutdown, the kernel closes its sockets."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        if self.drain is not None:
            await self.drain

    async def stop(self) -> None:
        """SIGTERM, when it still runs."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        if self.drain is not None:
            await self.drain


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read the server's log so that a full pipe never blocks it."""
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[list[ServerProcess]]:
    """Two servers, each with its own ws://, admin and media ports; stopped at the end."""
    servers = [ServerProcess(restart_port(), restart_port(), free_port_range(40)) for _ in range(2)]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            await server.stop()


def _bound_ports(block: PortBlock) -> list[int]:
    """Local UDP and TCP ports inside ``block`` that some socket on this host holds."""
    held = []
    for table in ("udp", "udp6", "tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            port = int(line.split()[1].rsplit(":", 1)[1], 16)
            if port in block:
                held.append(port)
    return held


@contextlib.asynccontextmanager
async def closing_peers() -> AsyncIterator[list[ClientPeer]]:
    """A list for the test's peers; each is closed at the end."""
    peers: list[ClientPeer] = []
    try:
        yield peers
    finally:
        for peer in peers:
            await peer.close()


def _both(peer: ClientPeer) -> bool:
    return peer.frames.get("audio", 0) > 3 and peer.frames.get("video", 0) > 3


async def _call_with_media(pool: ServerPool, peers: list[ClientPeer]) -> PlacedCall:
    """A call placed by the pool: a WebRtcEndpoint looped back to its aiortc peer, which
    decodes its own audio and video."""
    call = await pool.place_call()
    endpoint = await call.pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    peer = ClientPeer()
    peers.append(peer)
    await negotiate(endpoint, peer)
    await peer.wait_for(_both)
    return call


@pytest.mark.timeout(180)
async def test_sigkill_of_a_server_fails_calls_over_and_it_comes_back_clean() -> None:
    """Calls with media on two servers; SIGKILL of one: the pool marks it down within
    FAILOVER_BOUND, the other server's call keeps its media, new calls land there and carry
    media. Restarted on the same ports, the server holds no port of its media range, answers
    /readyz 200 with no pipeline or session, and the pool places calls on it again."""
    async with (
        two_servers() as (doomed, survivor),
        ServerPool([{"url": doomed.url}, {"url": survivor.url}], **FAST) as pool,
        closing_peers() as peers,
    ):
        calls = [await _call_with_media(pool, peers) for _ in range(2)]
        assert sorted(c.server.url for c in calls) == sorted([doomed.url, survivor.url])
        assert _bound_ports(doomed.media), "the call should hold ports in its range"
        kept_peer = peers[[c.server.url for c in calls].index(survivor.url)]

        killed_at = time.monotonic()
        await doomed.kill()
        await pool.wait_until(doomed.url, up=False, timeout=FAILOVER_BOUND)
        failover = time.monotonic() - killed_at
        after_kill = dict(kept_peer.frames)
        await kept_peer.wait_for(
            lambda p: all(p.frames.get(k, 0) > n + 10 for k, n in after_kill.items())
        )
        during = [await _call_with_media(pool, peers) for _ in range(2)]
        assert [c.server.url for c in during] == [survivor.url] * 2

        assert _bound_ports(doomed.media) == []  # the kernel freed them with the process
        await doomed.start()
        status, _ = await http(doomed.admin, "/readyz")
        assert status == 200
        _, metrics = await http(doomed.admin, "/metrics")
        assert metric(metrics, "kurento_pipelines") == 0
        assert metric(metrics, "kurento_sessions") == 0
        assert metric(metrics, "kurento_media_ports", state="in_use") == 0
        assert _bound_ports(doomed.media) == []

        await pool.wait_until(doomed.url, up=True, timeout=10)
        back = [await _call_with_media(pool, peers) for _ in range(2)]
        assert sorted(c.server.url for c in back) == sorted([doomed.url, survivor.url])
    assert failover < FAILOVER_BOUND, f"failover took {failover:.2f} s"
