"""Floods and slow clients (issue 18): one connection that floods the server with requests, and
clients that open TCP connections and never finish their handshake (slowloris), do not starve
other sessions; the flooder gets every answer, once."""

from __future__ import annotations

import asyncio
import json
import time

from emulator.app import running_emulator
from tests.conftest import make_settings
from tests.wire import RawPeer

FLOOD = 5000


async def _latencies(peer: RawPeer, count: int) -> list[float]:
    """Seconds each of ``count`` sequential pings took."""
    took = []
    for _ in range(count):
        started = time.monotonic()
        assert (await peer.result("ping"))["value"] == "pong"
        took.append(time.monotonic() - started)
    return took


async def test_websocket_flood_does_not_starve_other_sessions() -> None:
    """While one connection pushes 5,000 requests as fast as it can, another session's pings
    are answered within 2 s each (generous for a shared 2-core machine: they take milliseconds);
    afterwards the flooder reads exactly one answer per request, ids in order."""
    async with (
        running_emulator(make_settings()) as server,
        RawPeer.open(server.urls["ws"]) as flooder,
        RawPeer.open(server.urls["ws"]) as neighbour,
    ):
        frames = [json.dumps({"jsonrpc": "2.0", "method": "ping", "id": n}) for n in range(FLOOD)]

        async def flood() -> None:
            for frame in frames:
                await flooder.ws.send(frame)

        flooding = asyncio.create_task(flood())
        took = await _latencies(neighbour, 50)
        await flooding
        assert max(took) < 2.0, f"slowest neighbour ping {max(took):.3f} s"
        ids = [(await flooder.reply(timeout=30))["id"] for _ in range(FLOOD)]
        assert ids == list(range(FLOOD))
        assert (await flooder.result("ping"))["value"] == "pong"


async def test_slowloris_handshakes_do_not_starve_others_and_are_closed() -> None:
    """200 TCP connections that send half a WebSocket handshake and stall: a real client still
    connects and is answered at once, and the server closes the stalled ones itself (the
    handshake timeout of the websockets library, 10 s)."""
    async with running_emulator(make_settings()) as server:
        port = server.port("ws")
        stalled = []
        for _ in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /kurento HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            stalled.append((reader, writer))
        async with RawPeer.open(server.urls["ws"]) as client:
            took = await _latencies(client, 20)
            assert max(took) < 2.0
        async with asyncio.timeout(30):
            for reader, writer in stalled:
                await reader.read()  # EOF: the server gave up on the handshake
                writer.close()
