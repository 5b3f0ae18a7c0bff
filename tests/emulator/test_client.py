"""The project's Python client: typed errors, event streams, reconnection with session resume."""

from __future__ import annotations

import asyncio

import pytest

from emulator.app import App, running_emulator
from emulator.transport.client import KurentoClient
from protocol.errors import MediaObjectNotFound, MediaObjectTypeNotFound, RpcError
from tests.conftest import make_settings, restart_port


async def test_client_raises_typed_errors(client: KurentoClient) -> None:
    """Error replies raise the matching exception class, with KMS's message."""
    with pytest.raises(MediaObjectNotFound, match="Object 'nope' not found"):
        await client.call("describe", {"object": "nope"})
    with pytest.raises(RpcError) as info:
        await client.create("Nope")
    assert info.value.code == 40108
    assert not isinstance(info.value, MediaObjectTypeNotFound)


async def test_client_event_stream_iterates(client: KurentoClient) -> None:
    """An event stream is an async iterator of event data."""
    pipeline = await client.create("MediaPipeline")
    a = await pipeline.create("PassThrough")
    b = await pipeline.create("PassThrough")
    stream = await a.subscribe("ElementConnected")
    await a.connect(b)
    seen = []
    async for event in stream:
        seen.append(event["mediaType"])
        if len(seen) == 3:
            break
    assert seen == ["AUDIO", "VIDEO", "DATA"]
    await stream.close()


async def test_client_resumes_session_after_socket_drop(server: App) -> None:
    """After a dropped socket the client reconnects and keeps its session and events."""
    async with await KurentoClient.connect(server.urls["ws"]) as client:
        pipeline = await client.create("MediaPipeline")
        a = await pipeline.create("PassThrough")
        b = await pipeline.create("PassThrough")
        events = await a.subscribe("ElementConnected")
        session = client.session_id
        for link in list(server.listener.links):
            await link.websocket.close(1001, "test drops the socket")
        resumed = await asyncio.wait_for(client.reconnections.get(), 10)
        assert resumed.same_session and resumed.session_id == session
        assert resumed.server_id == server.server_id
        await a.connect(b, "AUDIO")
        assert (await events.get())["mediaType"] == "AUDIO"


async def test_client_learns_session_lost_after_restart() -> None:
    """After a server restart the client gets a new session (40007 on resume)."""
    async with running_emulator(make_settings(port=restart_port())) as first:
        port = first.port("ws")
        async with await KurentoClient.connect(first.urls["ws"]) as client:
            pipeline = await client.create("MediaPipeline")
            old_session = client.session_id
            await first.stop()
            async with running_emulator(make_settings(port=port)) as second:
                resumed = await asyncio.wait_for(client.reconnections.get(), 10)
                assert not resumed.same_session
                assert resumed.session_id != old_session
                assert resumed.server_id == second.server_id
                with pytest.raises(MediaObjectNotFound):
                    await pipeline.invoke("getName")


async def test_client_close_keeps_the_callers_cancellation(server: App) -> None:
    """A task cancelled while close() waits for the reader ends cancelled: ServerPool.close()
    cancels its watch tasks and waits for them, and hung when one was closing a client."""
    client = await KurentoClient.connect(server.urls["ws"], reconnect=False)
    ws, reader = client._ws, client._reader
    assert ws is not None and reader is not None
    await ws.close()
    await reader
    unclosed = ws.close()
    with pytest.raises(StopIteration):  # closing a closed socket does not wait: close() goes
        unclosed.send(None)  # straight on to the reader
    gate = asyncio.get_running_loop().create_future()
    closing = asyncio.create_task(client.close())

    async def draining() -> None:
        # runs after close() has started waiting for it (tasks start in creation order)
        closing.cancel()
        await gate

    client._reader = asyncio.create_task(draining())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(closing), timeout=5)
    assert closing.cancelled()
    gate.set_result(None)
    await client._reader
