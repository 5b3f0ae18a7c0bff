"""Media fixtures: a server whose media sockets live in a known range, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from emulator.transport.client import KurentoClient
from emulator.transport.server import EmulatorServer, running_emulator
from tests.conftest import make_settings
from tests.media.peers import loopback_peers

MEDIA_PORTS = (42000, 42999)


@pytest.fixture(autouse=True)
def _loopback_peers() -> Iterator[None]:
    with loopback_peers():
        yield


@pytest.fixture
async def media_server() -> AsyncIterator[EmulatorServer]:
    """A server gathering on loopback, media ports 42000-42999."""
    settings = make_settings(
        min_port=MEDIA_PORTS[0], max_port=MEDIA_PORTS[1], network_interfaces="lo"
    )
    async with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def media_client(media_server: EmulatorServer) -> AsyncIterator[KurentoClient]:
    """The project's client on ``media_server``."""
    async with await KurentoClient.connect(media_server.urls["ws"], reconnect=False) as client:
        yield client
