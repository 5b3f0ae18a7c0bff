"""A tiny HTTP/1.1 client for the admin listener (one request per connection, as it serves)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from emulator.app import App, running_emulator
from emulator.observability.admin import AdminListener
from emulator.settings import Settings
from emulator.transport.client import KurentoClient


@contextlib.asynccontextmanager
async def server_with_admin(
    settings: Settings,
) -> AsyncIterator[tuple[App, AdminListener, KurentoClient]]:
    """A server with its admin listener (``settings.admin_port`` set) and a connected client."""
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_emulator(settings))
        admin = server.admin
        assert admin is not None, "set admin_port"
        client = await KurentoClient.connect(server.urls["ws"], reconnect=False)
        await stack.enter_async_context(client)
        yield server, admin, client


async def http(
    base: str, path: str, method: str = "GET", body: Any = None, timeout: float = 5.0
) -> tuple[int, str]:
    """Status and body text of one request to ``http://host:port``."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    payload = b"" if body is None else json.dumps(body).encode()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(payload)}\r\n"
                f"\r\n".encode()
                + payload
            )
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
    head, _, text = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition (labels given must all match)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric_name, _, label_text = series.partition("{")
        if metric_name != name:
            continue
        found = dict(
            item.split("=", 1) for item in label_text.rstrip("}").split(",") if "=" in item
        )
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name}{labels} in the exposition")
