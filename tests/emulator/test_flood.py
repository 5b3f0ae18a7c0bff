"""Floods and slow clients (issue 18): one connection that floods the server with requests,
clients that open TCP connections and never finish their handshake (slowloris), and a client that
sends requests but never reads the replies, do not starve other sessions; the flooder gets every
answer, once; the client that does not read is closed once ``max_unsent_bytes`` are queued."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest
from websockets.frames import Frame, Opcode

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


UNREAD_LIMIT = 256 * 1024
UNREAD_REQUESTS = 10_000
"""Requests of 4 KB each (40 MB): more than the server's unsent bound, its kernel buffers and
the client's together, so a server that stops reading makes the client's writes stall."""


async def _client_that_never_reads(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP WebSocket client with small socket buffers, past its handshake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: the window
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET /kurento HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_client_that_never_reads_is_closed_and_does_not_starve_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that pipelines 10,000 pings (4 KB replies) and reads nothing: once
    ``max_unsent_bytes`` of replies wait for it the server stops reading it and closes it (1008,
    then a reset since it reads not even that), so its writes fail instead of the server queueing
    40 MB; meanwhile another session's pings are answered within 2 s each."""
    caplog.set_level(logging.WARNING, logger="emulator.transport.server")
    settings = make_settings(max_unsent_bytes=UNREAD_LIMIT)
    async with (
        running_emulator(settings) as server,
        RawPeer.open(server.urls["ws"]) as neighbour,
    ):
        _, writer = await _client_that_never_reads(server.port("ws"))
        pad = "x" * 4000

        async def flood() -> bool:
            """Whether the server cut the connection before every request was written."""
            try:
                for n in range(UNREAD_REQUESTS):
                    text = json.dumps({"jsonrpc": "2.0", "method": "ping", "id": f"{pad}{n}"})
                    writer.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))
                    await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                return True
            return False

        flooding = asyncio.create_task(flood())
        took = await _latencies(neighbour, 50)
        async with asyncio.timeout(120):
            cut = await flooding
        writer.close()
        assert cut, "the server read every request of a client that reads no reply"
        assert max(took) < 2.0, f"slowest neighbour ping {max(took):.3f} s"
        assert any("max_unsent_bytes" in r.getMessage() for r in caplog.records)
        assert (await neighbour.result("ping"))["value"] == "pong"
