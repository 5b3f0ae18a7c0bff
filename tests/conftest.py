"""Shared fixtures: a server on ephemeral ports, the project's client, and a raw JSON-RPC peer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator.app import App, running_emulator
from emulator.settings import Settings
from emulator.transport.client import KurentoClient
from tests.wire import RawPeer


def make_settings(**overrides: Any) -> Settings:
    """Settings for in-process servers: loopback, ephemeral ports, no wss and no admin listener
    unless asked."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "secure_port": None,
        "admin_port": None,
    }
    values.update(overrides)
    return Settings(**values)


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
