"""Media fixtures: a server whose media sockets live in a known range, on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from emulator.app import App, running_emulator
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings
from tests.media.peers import loopback_peers

MEDIA_PORTS = (42000, 42999)


@pytest.fixture(autouse=True)
def _loopback_peers() -> Iterator[None]:
    with loopback_peers():
        yield


@pytest.fixture
async def media_server() -> AsyncIterator[App]:
    """A server gathering on loopback, media ports 42000-42999."""
    settings = make_settings(
        min_port=MEDIA_PORTS[0], max_port=MEDIA_PORTS[1], network_interfaces="lo"
    )
    async with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def media_client(media_server: App) -> AsyncIterator[KurentoClient]:
    """The project's client on ``media_server``."""
    async with await KurentoClient.connect(media_server.urls["ws"], reconnect=False) as client:
        yield client


TURN_PORT = 34780
TURN_RELAY_PORTS = (44000, 44099)
TURN_USER = ("kurento", "secret")


@pytest.fixture
async def turn_server() -> AsyncIterator[tuple[str, int]]:
    """Debian's coturn on loopback (STUN and TURN, long-term credentials kurento:secret)."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (make media-deps installs it)")
    process = await asyncio.create_subprocess_exec(
        binary,
        "-n",
        "--listening-ip=127.0.0.1",
        f"--listening-port={TURN_PORT}",
        "--relay-ip=127.0.0.1",
        f"--min-port={TURN_RELAY_PORTS[0]}",
        f"--max-port={TURN_RELAY_PORTS[1]}",
        "--lt-cred-mech",
        f"--user={':'.join(TURN_USER)}",
        "--realm=lab",
        "--no-tls",
        "--no-dtls",
        "--allow-loopback-peers",
        "--no-cli",
        "--log-file=stdout",
        "--simple-log",
        "--pidfile=/tmp/kurento-emulator-turn.pid",
        "--userdb=/tmp/kurento-emulator-turndb",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            while b"Total General servers" not in await process.stdout.readline():
                pass
        drain = asyncio.create_task(_drain(process.stdout))
        yield ("127.0.0.1", TURN_PORT)
        drain.cancel()
    finally:
        process.terminate()
        await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
