"""KMS's HTTP and WebSocket behaviour: healthcheck 500, 426, Invalid path, wss, ordering."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from emulator.app import App, running_emulator
from emulator.transport.tls import fingerprint, self_signed_pem
from tests.conftest import make_settings
from tests.wire import RawPeer


async def _http(port: int, request: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    return status.decode()


async def test_docker_healthcheck_request_gets_500(server: App) -> None:
    """The KMS image's healthchecker.sh request (upgrade without key) is answered 500."""
    port = server.port("ws")
    status = await _http(
        port,
        b"GET /kurento HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nOrigin: 127.0.0.1\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 500")


async def test_plain_get_gets_426(server: App) -> None:
    """A plain GET on /kurento is answered 426 Upgrade Required."""
    status = await _http(server.port("ws"), b"GET /kurento HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status.startswith("HTTP/1.1 426")


async def test_wrong_path_closed_with_1002(server: App) -> None:
    """A wrong path completes the handshake, then closes with 1002 Invalid path."""
    url = server.urls["ws"].replace("/kurento", "/other")
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1002, "Invalid path")


async def test_query_string_ignored_for_path(server: App) -> None:
    """The official client's ?access_token= does not change the path."""
    async with RawPeer.open(server.urls["ws"] + "?access_token=abc") as raw:
        assert (await raw.result("ping"))["value"] == "pong"


async def test_wss_with_generated_certificate(caplog: pytest.LogCaptureFixture) -> None:
    """Without a PEM, wss uses a generated certificate whose SHA-256 fingerprint is logged."""
    caplog.set_level(logging.INFO)
    async with running_emulator(make_settings(port=None, secure_port=0)) as server:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        async with RawPeer.open(server.urls["wss"], ssl=context) as raw:
            assert (await raw.result("ping"))["value"] == "pong"
        assert server.listener.tls is not None
        assert server.listener.tls.fingerprint in caplog.text


async def test_wss_with_given_pem(tmp_path: Path) -> None:
    """A PEM holding certificate and key (as KMS's defaultCertificate.pem) is served."""
    pem = self_signed_pem(["localhost"])
    path = tmp_path / "cert+key.pem"
    path.write_bytes(pem)
    settings = make_settings(port=None, secure_port=0, certificate=path)
    async with running_emulator(settings) as server:
        context = ssl.create_default_context(cadata=pem.decode().split("-----BEGIN PRIVATE")[0])
        context.check_hostname = False
        async with RawPeer.open(server.urls["wss"], ssl=context) as raw:
            assert (await raw.result("ping"))["value"] == "pong"
        assert server.listener.tls is not None and server.listener.tls.fingerprint == fingerprint(
            pem
        )


async def test_pipelined_requests_answered_in_order(raw: RawPeer) -> None:
    """Requests sent back to back on one connection are answered in the order sent."""
    pipeline = (await raw.result("create", {"type": "MediaPipeline"}))["value"]
    slow = {
        "object": "manager_ServerManager",
        "operation": "getUsedCpu",
        "operationParams": {"interval": 200},
    }
    ids = [
        await raw.send("invoke", slow),
        await raw.send("describe", {"object": pipeline}),
        await raw.send("ping"),
    ]
    replies = [await raw.recv() for _ in ids]
    assert [r["id"] for r in replies] == ids


async def test_slow_request_does_not_delay_other_connections(server: App) -> None:
    """A slow request on one connection leaves another connection's replies immediate."""
    url = server.urls["ws"]
    async with RawPeer.open(url) as slow, RawPeer.open(url) as fast:
        slow_id = await slow.send(
            "invoke",
            {
                "object": "manager_ServerManager",
                "operation": "getUsedCpu",
                "operationParams": {"interval": 3000},
            },
        )
        assert (await fast.result("ping"))["value"] == "pong"
        with pytest.raises(TimeoutError):
            await slow.recv(timeout=0.01)
        assert (await slow.reply(slow_id, timeout=10))["result"]["value"] >= 0
