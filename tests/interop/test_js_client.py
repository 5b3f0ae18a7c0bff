"""Interop with the official npm client kurento-client 7.3.0, run by Node."""

from __future__ import annotations

from emulator.transport.server import EmulatorServer, running_emulator
from tests.conftest import make_settings
from tests.interop.node_client import NodeScenario


async def test_js_client_basic_flow(server: EmulatorServer) -> None:
    """Connect (strict module check), getInfo, pipeline, elements, events, tags, release."""
    async with NodeScenario.run(server.urls["ws"], "basic") as node:
        await node.step("connected")
        info = await node.step("info")
        assert set(info["modules"]) >= {"core", "elements", "filters"}
        assert info["version"] == "7.3.0"
        created = await node.step("created")
        event = await node.step("element-connected")
        assert (event["source"], event["sink"]) == (created["source"], created["sink"])
        assert event["mediaType"] == "VIDEO" and event["timestampMillis"].isdigit()
        tags = await node.step("tags")
        assert tags["value"] == "7"
        assert [(t["key"], t["value"]) for t in tags["tags"]] == [("room", "7")]
        sinks = await node.step("sink-connections")
        assert sinks["sinks"] == [{"sink": created["sink"], "type": "VIDEO"}]
        missing = await node.step("missing-tag")
        assert missing["error"]["code"] == 40110
        pipelines = await node.step("pipelines")
        assert created["pipeline"] in pipelines["ids"]
        await node.step("released")
        after = await node.step("after-release")
        assert after["error"]["code"] == 40101
        assert await node.finish() == 0


async def test_js_client_reconnects_after_server_restart() -> None:
    """After a restart the client reconnects, learns its session is gone, and rebuilds."""
    async with running_emulator(make_settings()) as first:
        port = first.port("ws")
        async with NodeScenario.run(first.urls["ws"], "reconnect") as node:
            ready = await node.step("ready")
            await first.stop()
            async with running_emulator(make_settings(port=port)) as second:
                await node.command("restarted")
                reconnected = await node.step("reconnected")
                assert reconnected["sameSession"] is False
                old = await node.step("old-pipeline")
                assert old["error"]["code"] == 40101
                rebuilt = await node.step("rebuilt")
                assert rebuilt["pipeline"] != ready["pipeline"]
                assert rebuilt["pipeline"] in [p.id for p in second.media_set.pipelines()]
                assert await node.finish() == 0


async def test_js_client_keeps_session_across_socket_drop(server: EmulatorServer) -> None:
    """A dropped socket reconnects with connect(sessionId) and keeps the session's objects."""
    async with NodeScenario.run(server.urls["ws"], "reconnect") as node:
        ready = await node.step("ready")
        for link in list(server.links):
            await link.websocket.close(1001, "test drops the socket")
        await node.command("dropped")
        reconnected = await node.step("reconnected")
        assert reconnected["sameSession"] is True
        old = await node.step("old-pipeline")
        assert old["error"] is None
        assert ready["pipeline"] in [p.id for p in server.media_set.pipelines()]
        await node.finish()
