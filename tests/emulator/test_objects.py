"""The object model: pipelines, elements, connections, tags, events, release, ServerManager."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.objects import CLASSES
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import ConnectError, MediaObjectTagKeyNotFound
from protocol.modules import default_registry
from protocol.types import snake_case


async def _pipeline_with(
    client: KurentoClient, *types: str
) -> tuple[RemoteObject, list[RemoteObject]]:
    pipeline = await client.create("MediaPipeline")
    return pipeline, [await pipeline.create(t) for t in types]


async def test_connect_without_media_type_links_audio_video_data(client: KurentoClient) -> None:
    """connect(sink) raises ElementConnected for AUDIO, VIDEO and DATA on the source."""
    _, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    events = await a.subscribe("ElementConnected")
    await a.connect(b)
    received = [await events.get() for _ in range(3)]
    assert [e["mediaType"] for e in received] == ["AUDIO", "VIDEO", "DATA"]
    first = received[0]
    assert first["source"] == a.id and first["sink"] == b.id
    assert first["sourceMediaDescription"] == first["sinkMediaDescription"] == "default"
    assert first["type"] == "ElementConnected" and first["tags"] == []
    assert isinstance(first["timestampMillis"], str) and first["timestampMillis"].isdigit()


async def test_sink_connections_report_element_connection_data(client: KurentoClient) -> None:
    """getSinkConnections/getSourceConnections list ElementConnectionData, filterable by type."""
    _, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    await a.connect(b, "VIDEO")
    sinks = await a.invoke("getSinkConnections")
    assert sinks == [
        {
            "__module__": "kurento",
            "__type__": "ElementConnectionData",
            "sink": b.id,
            "sinkDescription": "default",
            "source": a.id,
            "sourceDescription": "default",
            "type": "VIDEO",
        }
    ]
    assert await b.invoke("getSourceConnections", mediaType="AUDIO") == []
    assert len(await b.invoke("getSourceConnections", mediaType="VIDEO")) == 1


async def test_new_source_replaces_old_on_sink_pad(client: KurentoClient) -> None:
    """Connecting a second source to a sink disconnects the first (ElementDisconnected on it)."""
    _, (a, b, sink) = await _pipeline_with(client, "PassThrough", "PassThrough", "PassThrough")
    dropped = await a.subscribe("ElementDisconnected")
    await a.connect(sink, "AUDIO")
    await b.connect(sink, "AUDIO")
    event = await dropped.get()
    assert (event["sink"], event["mediaType"]) == (sink.id, "AUDIO")
    sources = await sink.invoke("getSourceConnections")
    assert [s["source"] for s in sources] == [b.id]


async def test_disconnect_missing_link_is_not_an_error(client: KurentoClient) -> None:
    """disconnect of a link that does not exist succeeds."""
    _, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    assert await a.invoke("disconnect", sink=b) is None


async def test_connect_across_pipelines_is_40004(client: KurentoClient) -> None:
    """Elements of different pipelines cannot be connected."""
    _, (a,) = await _pipeline_with(client, "PassThrough")
    _, (b,) = await _pipeline_with(client, "PassThrough")
    with pytest.raises(ConnectError, match="Media elements do not share pipeline"):
        await a.connect(b)


async def test_tags_and_send_tags_in_events(client: KurentoClient) -> None:
    """Tags are kept, listed as Tag values, and sent in events once sendTagsInEvents is set."""
    _, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    await a.invoke("addTag", key="room", value="42")
    assert await a.invoke("getTag", key="room") == "42"
    assert await a.invoke("getTags") == [
        {"__module__": "kurento", "__type__": "Tag", "key": "room", "value": "42"}
    ]
    with pytest.raises(MediaObjectTagKeyNotFound):
        await a.invoke("getTag", key="missing")
    await a.invoke("setSendTagsInEvents", sendTagsInEvents=True)
    events = await a.subscribe("ElementConnected")
    await a.connect(b, "AUDIO")
    assert (await events.get())["tags"] == [
        {"__module__": "kurento", "__type__": "Tag", "key": "room", "value": "42"}
    ]
    await a.invoke("removeTag", key="room")
    assert await a.invoke("getTags") == []


async def test_object_properties_of_media_object(client: KurentoClient) -> None:
    """name defaults to the id; parent, pipeline, children and creationTime are reported."""
    pipeline, (a,) = await _pipeline_with(client, "PassThrough")
    assert await a.invoke("getName") == a.id
    await a.invoke("setName", name="hello")
    assert await a.invoke("getName") == "hello"
    assert await a.invoke("getMediaPipeline") == pipeline.id
    assert await a.invoke("getParent") == pipeline.id
    assert await pipeline.invoke("getParent") is None
    assert await pipeline.invoke("getMediaPipeline") == pipeline.id
    assert await pipeline.invoke("getChildren") == [a.id]
    assert isinstance(await a.invoke("getCreationTime"), int)
    assert await a.invoke("getId") == a.id


async def test_element_property_defaults(client: KurentoClient) -> None:
    """KMS's defaults for MediaElement and BaseRtpEndpoint properties."""
    _, (webrtc,) = await _pipeline_with(client, "WebRtcEndpoint")
    assert await webrtc.invoke("getEncoderBitrate") == 300000
    assert await webrtc.invoke("getMinVideoSendBandwidth") == 100
    assert await webrtc.invoke("getMaxVideoSendBandwidth") == 500
    assert await webrtc.invoke("getMtu") == 1200
    assert await webrtc.invoke("getStunServerPort") == 3478
    assert await webrtc.invoke("getIceTcp") is True
    assert await webrtc.invoke("getMediaState") == "DISCONNECTED"
    await webrtc.invoke("setMaxVideoSendBandwidth", maxVideoSendBandwidth=2000)
    assert await webrtc.invoke("getMaxVideoSendBandwidth") == 2000


async def test_release_pipeline_releases_subtree_with_events(client: KurentoClient) -> None:
    """Releasing a pipeline releases its elements; ObjectDestroyed fires for each."""
    manager = await client.server_manager()
    destroyed = await manager.subscribe("ObjectDestroyed")
    pipeline, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    await pipeline.release()
    ids = {(await destroyed.get())["objectId"] for _ in range(3)}
    assert ids == {pipeline.id, a.id, b.id}
    assert await manager.invoke("getPipelines") == []


async def test_object_created_event(client: KurentoClient) -> None:
    """ObjectCreated fires on the ServerManager with the new object."""
    manager = await client.server_manager()
    created = await manager.subscribe("ObjectCreated")
    pipeline = await client.create("MediaPipeline")
    event = await created.get()
    assert event["object"] == pipeline.id
    assert event["source"] == "manager_ServerManager"
    assert "type" not in event


async def test_gstreamer_dot_shows_elements_and_links(client: KurentoClient) -> None:
    """getGstreamerDot returns a DOT graph with the pipeline's elements and links."""
    pipeline, (a, b) = await _pipeline_with(client, "PassThrough", "PassThrough")
    await a.connect(b, "VIDEO")
    dot = await pipeline.invoke("getGstreamerDot")
    assert dot.startswith("digraph")
    assert a.id in dot and b.id in dot and "VIDEO" in dot


def test_every_method_of_a_creatable_class_is_implemented() -> None:
    """No KMD method of a class a client can create falls through to 40006: each has code
    behind it (the abstract SdpEndpoint and BaseRtpEndpoint leave theirs to their subclasses)."""
    registry = default_registry()
    missing = [
        f"{name}.{method.name}"
        for name, cls in CLASSES.items()
        if name not in ("SdpEndpoint", "BaseRtpEndpoint")
        for kmd_class in registry.lineage(name)
        for method in kmd_class.methods
        if not callable(getattr(cls, snake_case(method.name), None))
    ]
    assert missing == []


async def test_get_stats_has_element_entry(client: KurentoClient) -> None:
    """getStats includes the element itself with numeric timestampMillis."""
    _, (a,) = await _pipeline_with(client, "PassThrough")
    stats = await a.invoke("getStats")
    entry = stats[a.id]
    assert entry["__type__"] == "ElementStats" and entry["type"] == "element"
    assert isinstance(entry["timestampMillis"], int)


async def test_server_manager_info_lists_modules(client: KurentoClient) -> None:
    """getInfo lists core, elements and filters with their factories and transactions."""
    manager = await client.server_manager()
    info = await manager.invoke("getInfo")
    assert info["__type__"] == "ServerInfo" and info["type"] == "KMS"
    assert info["version"] == "7.3.0" and info["capabilities"] == ["transactions"]
    modules = {m["name"]: m for m in info["modules"]}
    assert set(modules) == {"core", "elements", "filters"}
    assert modules["core"]["factories"] == ["HubPort", "MediaPipeline", "PassThrough"]
    assert "WebRtcEndpoint" in modules["elements"]["factories"]


async def test_server_manager_resource_operations(client: KurentoClient) -> None:
    """CPU count, used CPU, used memory and sessions (with KMS's empty-string quirk)."""
    manager = await client.server_manager()
    assert await manager.invoke("getCpuCount") >= 1
    assert isinstance(await manager.invoke("getUsedCpu", interval=50), float)
    assert await manager.invoke("getUsedMemory") > 1000
    sessions = await manager.invoke("getSessions")
    half = len(sessions) // 2
    assert sessions[:half] == [""] * half and client.session_id in sessions[half:]
    assert await manager.invoke("getMetadata") == ""


async def test_server_manager_kmd_round_trips(client: KurentoClient) -> None:
    """getKmd returns a one-line KMD document; an unknown module is 40500."""
    manager = await client.server_manager()
    kmd: Any = json.loads(await manager.invoke("getKmd", moduleName="core"))
    assert kmd["name"] == "core"
    assert any(c["name"] == "MediaPipeline" for c in kmd["remoteClasses"])
    from protocol.errors import ServerManagerErrorKmdNotFound

    with pytest.raises(ServerManagerErrorKmdNotFound):
        await manager.invoke("getKmd", moduleName="nope")
