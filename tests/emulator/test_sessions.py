"""Session rules: binding and event delivery, rebinding, replay cache, garbage collection."""

from __future__ import annotations

import asyncio

from emulator.app import App, running_emulator
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings
from tests.wire import RawPeer


async def test_events_follow_the_session_to_a_new_connection(server: App) -> None:
    """connect with the session on a second socket moves event delivery there."""
    url = server.urls["ws"]
    async with RawPeer.open(url) as first, RawPeer.open(url) as second:
        created = await first.result("create", {"type": "MediaPipeline"})
        pipeline, session = created["value"], created["sessionId"]
        elements = []
        for _ in range(2):
            params = {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
            elements.append((await first.result("create", params))["value"])
        await first.result("subscribe", {"object": elements[0], "type": "ElementConnected"})
        await second.result("connect", {"sessionId": session})
        await second.result(
            "invoke",
            {
                "object": elements[0],
                "operation": "connect",
                "operationParams": {"sink": elements[1], "mediaType": "AUDIO"},
            },
        )
        event = await second.event("ElementConnected")
        assert event["params"]["value"]["object"] == elements[0]
        assert first.events == []


async def test_repeated_request_id_gets_cached_reply(raw: RawPeer) -> None:
    """A request repeated with the same session and id is not executed twice."""
    created = await raw.result("create", {"type": "MediaPipeline"})
    session = created["sessionId"]
    params = {"type": "MediaPipeline", "sessionId": session}
    await raw.send("create", params, id=77)
    first = await raw.reply(77)
    await raw.send("create", params, id=77)
    second = await raw.reply(77)
    assert first == second
    pipelines = await raw.result(
        "invoke", {"object": "manager_ServerManager", "operation": "getPipelines"}
    )
    assert len(pipelines["value"]) == 2


async def test_request_cache_can_be_disabled() -> None:
    """With disable_request_cache a repeated id is executed again."""
    async with (
        running_emulator(make_settings(disable_request_cache=True)) as server,
        RawPeer.open(server.urls["ws"]) as raw,
    ):
        session = (await raw.result("create", {"type": "MediaPipeline"}))["sessionId"]
        params = {"type": "MediaPipeline", "sessionId": session}
        await raw.send("create", params, id=5)
        first = await raw.reply(5)
        await raw.send("create", params, id=5)
        second = await raw.reply(5)
        assert first["result"]["value"] != second["result"]["value"]


async def test_session_objects_collected_after_disconnect() -> None:
    """Objects of a session without a connection are released after the collector periods."""
    async with (
        running_emulator(make_settings(gc_period=0.2)) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as watcher,
    ):
        manager = await watcher.server_manager()
        destroyed = await manager.subscribe("ObjectDestroyed")
        async with RawPeer.open(server.urls["ws"]) as owner:
            pipeline = (await owner.result("create", {"type": "MediaPipeline"}))["value"]
        event = await destroyed.get(timeout=5)
        assert event["objectId"] == pipeline


async def test_session_with_open_connection_survives_collection() -> None:
    """Objects of a session bound to an open connection are not collected."""
    async with (
        running_emulator(make_settings(gc_period=0.1)) as server,
        RawPeer.open(server.urls["ws"]) as owner,
    ):
        pipeline = (await owner.result("create", {"type": "MediaPipeline"}))["value"]
        await asyncio.wait_for(server.session_collector.wait_for_passes(3), timeout=5)
        assert "result" in await owner.call("describe", {"object": pipeline})


async def test_server_id_changes_at_each_start() -> None:
    """Each server process start has a new serverId; old sessions answer 40007."""
    async with (
        running_emulator(make_settings()) as first,
        RawPeer.open(first.urls["ws"]) as raw,
    ):
        session = (await raw.result("create", {"type": "MediaPipeline"}))["sessionId"]
        first_id = (await raw.result("connect", {"sessionId": session}))["serverId"]
    async with (
        running_emulator(make_settings()) as second,
        RawPeer.open(second.urls["ws"]) as raw,
    ):
        reply = await raw.call("connect", {"sessionId": session})
        assert reply["error"]["code"] == 40007
        assert (await raw.result("connect"))["serverId"] not in (first_id, None)
