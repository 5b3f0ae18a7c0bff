"""Shared fixtures: a server on ephemeral ports, the project's client, and a raw JSON-RPC peer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from emulator.app import App, running_emulator
from emulator.settings import Settings
from emulator.transport.client import KurentoClient
from tests.ports import allocator, free_port_range
from tests.wire import RawPeer

# Hypothesis's 200 ms deadline per example is wall-clock time, which tests running side by side
# on a busy machine do not get reliably; the fuzz tests check what a parser raises, not its speed.
# "side-by-side" (the default, `make test`) tries 100 examples per property; `make fuzz` or
# `pytest --hypothesis-profile=long` tries 10,000 (issue 18's long run), printing statistics.
hypothesis_settings.register_profile("side-by-side", deadline=None, max_examples=100)
hypothesis_settings.register_profile(
    "long",
    deadline=None,
    max_examples=10_000,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile("side-by-side")

MEDIA_BLOCK = 100
"""Media ports of a test server unless it asks for its own range: room for 25 endpoints that
gather on every interface, or 50 on loopback only."""


@pytest.fixture(autouse=True)
def _port_blocks() -> Iterator[None]:
    """The port blocks a test takes (tests/ports.py) are given back when it ends, after every
    other fixture of it has closed its servers."""
    with allocator().releasing():
        yield


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process servers: loopback, ephemeral ports, no wss and no admin listener
    unless asked, and a media range of its own from the allocator unless ``min_port``/``max_port``
    are given."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "secure_port": None,
        "admin_port": None,
        "http_endpoint_port": 0,
    }
    if "min_port" not in overrides and "max_port" not in overrides:
        block = free_port_range(MEDIA_BLOCK)
        values.update(min_port=block.low, max_port=block.high)
    values.update(overrides)
    return Settings(**values)


def restart_port() -> int:
    """A ws:// port for a server that a test stops and starts again on it: reserved for the test
    and outside the ephemeral range, so that no other socket takes it while the server is down
    (port 0 would hand out a port the OS may give the next connection anywhere)."""
    return free_port_range(1).low


@pytest.fixture
async def server() -> AsyncIterator[App]:
    """A running emulator on an ephemeral ws:// port."""
    async with running_emulator(make_settings()) as running:
        yield running


@pytest.fixture
async def client(server: App) -> AsyncIterator[KurentoClient]:
    """The project's client, connected to ``server``."""
    async with await KurentoClient.connect(server.urls["ws"], reconnect=False) as connected:
        yield connected


@pytest.fixture
async def raw(server: App) -> AsyncIterator[RawPeer]:
    """A raw JSON-RPC peer on ``server`` that sends text and reads frames."""
    async with RawPeer.open(server.urls["ws"]) as peer:
        yield peer


@contextlib.asynccontextmanager
async def server_and_client(
    settings: Settings,
) -> AsyncIterator[tuple[App, KurentoClient]]:
    """A server with these settings and the project's client connected to it."""
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(running_emulator(settings))
        client = await KurentoClient.connect(running.urls["ws"], reconnect=False)
        connected = await stack.enter_async_context(client)
        yield running, connected
