"""A raw WebSocket peer for tests that need to see exact frames."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

_ID_BASES = itertools.count(1000, 100_000)


class RawPeer:
    """Sends text frames and reads replies and events as JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        # Distinct ids per peer: KMS replays a cached reply for a repeated (session, id).
        self._next_id = next(_ID_BASES)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, **kwargs: Any) -> AsyncIterator[RawPeer]:
        """Connect to ``url`` and close at the end."""
        async with connect(url, compression=None, ping_interval=None, **kwargs) as ws:
            yield cls(ws)

    async def send_text(self, text: str) -> None:
        """Send one frame as is."""
        await self.ws.send(text)

    async def send(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> int:
        """Send a request with a fresh id; returns the id."""
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._next_id}
        if params is not None:
            message["params"] = params
        message.update(extra)
        await self.ws.send(json.dumps(message))
        return self._next_id

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame, whatever it is."""
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(text, str)
        decoded = json.loads(text)
        assert isinstance(decoded, dict)
        return decoded

    async def reply(self, request_id: Any = None, timeout: float = 5.0) -> dict[str, Any]:
        """The next reply (events met on the way are kept in ``events``)."""
        while True:
            message = await self.recv(timeout)
            if message.get("method") == "onEvent":
                self.events.append(message)
                continue
            if request_id is None or message.get("id") == request_id:
                return message

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its reply."""
        return await self.reply(await self.send(method, params))

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and return its ``result`` (failing the test on an error)."""
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def event(self, event_type: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next ``onEvent`` of a type (from those already read, else from the socket)."""
        for kept in self.events:
            if kept["params"]["value"]["type"] == event_type:
                self.events.remove(kept)
                return kept
        while True:
            message = await self.recv(timeout)
            if message.get("method") == "onEvent":
                if message["params"]["value"]["type"] == event_type:
                    return message
                self.events.append(message)
