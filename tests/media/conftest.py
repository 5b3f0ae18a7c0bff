"""Media fixtures: a server whose media sockets live in its own range, on loopback; coturn."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import pytest

from emulator.app import App, running_emulator
from emulator.transport.client import KurentoClient
from emulator.transport.tls import self_signed_pem
from tests.conftest import make_settings
from tests.media.peers import loopback_peers
from tests.ports import PortBlock, free_port_range


@pytest.fixture(autouse=True)
def _loopback_peers() -> Iterator[None]:
    with loopback_peers():
        yield


@pytest.fixture
async def media_server() -> AsyncIterator[App]:
    """A server gathering on loopback; its media range comes from the allocator (read it back
    from ``media_server.settings``)."""
    settings = make_settings(network_interfaces="lo")
    async with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def media_client(media_server: App) -> AsyncIterator[KurentoClient]:
    """The project's client on ``media_server``."""
    async with await KurentoClient.connect(media_server.urls["ws"], reconnect=False) as client:
        yield client


TURN_USER = ("kurento", "secret")


@pytest.fixture
def turn_relay_ports() -> PortBlock:
    """The ports coturn relays from (``turn_server``)."""
    return free_port_range(100)


@pytest.fixture
async def turn_server(
    turn_relay_ports: PortBlock, tmp_path: Path
) -> AsyncIterator[tuple[str, int]]:
    """Debian's coturn on loopback (STUN and TURN, long-term credentials kurento:secret)."""
    async with coturn(turn_relay_ports, tmp_path, "udp+tcp") as address:
        yield address


Listeners = Literal["udp+tcp", "tcp", "tls"]
"""What coturn accepts clients on: UDP and TCP (its default, without TLS), TCP only, TLS only.
It relays over UDP whatever the client leg is (RFC 5766)."""


@contextlib.asynccontextmanager
async def coturn(
    relay_ports: PortBlock, tmp_path: Path, listeners: Listeners, listening_ip: str = "127.0.0.1"
) -> AsyncIterator[tuple[str, int]]:
    """coturn on loopback (``listening_ip``: 127.0.0.1 or ::1) listening as ``listeners`` says,
    at the address it yields; for TLS with a certificate made by ``self_signed_pem``."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (make media-deps installs it)")
    # coturn also listens on the port above its listening port (RFC 5780's alternate port)
    listening = free_port_range(2)
    if listeners == "tls":
        pem = tmp_path / "turn.pem"
        pem.write_bytes(self_signed_pem(["127.0.0.1"]))
        options = [
            f"--tls-listening-port={listening.low}",
            f"--alt-tls-listening-port={listening.high}",
            f"--cert={pem}",
            f"--pkey={pem}",
            "--no-udp",
            "--no-tcp",
        ]
    else:
        options = [
            f"--listening-port={listening.low}",
            f"--alt-listening-port={listening.high}",
            "--no-tls",
            *(["--no-udp"] if listeners == "tcp" else []),
        ]
    process = await asyncio.create_subprocess_exec(
        binary,
        "-n",
        f"--listening-ip={listening_ip}",
        *options,
        "--relay-ip=127.0.0.1",
        f"--min-port={relay_ports.low}",
        f"--max-port={relay_ports.high}",
        "--lt-cred-mech",
        f"--user={':'.join(TURN_USER)}",
        "--realm=lab",
        "--no-dtls",
        "--allow-loopback-peers",
        "--no-cli",
        "--log-file=stdout",
        "--simple-log",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            while b"Total General servers" not in await process.stdout.readline():
                pass
        drain = asyncio.create_task(_drain(process.stdout))
        yield (listening_ip, listening.low)
        drain.cancel()
    finally:
        process.terminate()
        await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
