"""Topologies KMS users build: one-to-one, fan-out, source switch, PassThrough, Dispatchers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from emulator.transport.client import KurentoClient, RemoteObject
from tests.media.peers import ClientPeer, negotiate


def _video_frames(peer: ClientPeer) -> int:
    return peer.frames.get("video", 0)


@contextlib.asynccontextmanager
async def _peers(
    pipeline: RemoteObject, count: int
) -> AsyncIterator[list[tuple[RemoteObject, ClientPeer]]]:
    pairs = []
    try:
        for _ in range(count):
            endpoint = await pipeline.create("WebRtcEndpoint")
            peer = ClientPeer()
            pairs.append((endpoint, peer))
            await negotiate(endpoint, peer)
        yield pairs
    finally:
        for _, peer in pairs:
            await peer.close()


async def _inbound_loss(peer: ClientPeer) -> list[Any]:
    report = await peer.pc.getStats()
    return [s.packetsLost for s in report.values() if s.type == "inbound-rtp"]


async def test_one_to_many_fan_out_to_five(media_client: KurentoClient) -> None:
    """One source, five sinks: every sink receives audio and video with its own stream."""
    pipeline = await media_client.create("MediaPipeline")
    async with _peers(pipeline, 6) as pairs:
        (source, _), sinks = pairs[0], pairs[1:]
        for sink, _ in sinks:
            await source.connect(sink)
        for _, peer in sinks:
            await peer.wait_for(lambda p: p.frames.get("audio", 0) > 3 and _video_frames(p) > 3)
        ssrcs = set()
        for sink, _ in sinks:
            stats = await sink.invoke("getStats", mediaType="VIDEO")
            out = [s for s in stats.values() if s["type"] == "outboundrtp"]
            assert out and out[0]["packetsSent"] > 0
            ssrcs.add(out[0]["ssrc"])
        assert len(ssrcs) == 5


async def test_source_switch_keeps_stream_continuous(media_client: KurentoClient) -> None:
    """Switching the sink's source (last connection wins) does not break its stream."""
    pipeline = await media_client.create("MediaPipeline")
    async with _peers(pipeline, 3) as pairs:
        (first, _), (second, _), (sink, viewer) = pairs
        await first.connect(sink)
        await viewer.wait_for(lambda p: _video_frames(p) > 10)
        switched_at = _video_frames(viewer)
        await second.connect(sink)
        sources = await sink.invoke("getSourceConnections", mediaType="VIDEO")
        assert [c["source"] for c in sources] == [second.id]
        await viewer.wait_for(lambda p: _video_frames(p) > switched_at + 15)
        assert all(lost == 0 for lost in await _inbound_loss(viewer))


async def test_passthrough_in_the_middle(media_client: KurentoClient) -> None:
    """source -> PassThrough -> sink carries media and marks the PassThrough's flow."""
    pipeline = await media_client.create("MediaPipeline")
    middle = await pipeline.create("PassThrough")
    flow = await middle.subscribe("MediaFlowInStateChanged")
    async with _peers(pipeline, 2) as pairs:
        (source, _), (sink, viewer) = pairs
        await source.connect(middle)
        await middle.connect(sink)
        await viewer.wait_for(lambda p: _video_frames(p) > 5 and p.frames.get("audio", 0) > 5)
        assert (await flow.get())["state"] == "FLOWING"
        assert await middle.invoke("isMediaFlowingIn", mediaType="VIDEO") is True


async def test_dispatcher_routes_port_to_port(media_client: KurentoClient) -> None:
    """Dispatcher.connect(source port, sink port) carries the source's media to the sink."""
    pipeline = await media_client.create("MediaPipeline")
    dispatcher = await pipeline.create("Dispatcher")
    port_in = await dispatcher.create("HubPort")
    port_out = await dispatcher.create("HubPort")
    async with _peers(pipeline, 2) as pairs:
        (source, _), (sink, viewer) = pairs
        await source.connect(port_in)
        await port_out.connect(sink)
        await dispatcher.invoke("connect", source=port_in, sink=port_out)
        await viewer.wait_for(lambda p: _video_frames(p) > 5)


async def test_dispatcher_one_to_many(media_client: KurentoClient) -> None:
    """DispatcherOneToMany sends its source port to every other port; removeSource stops it."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("DispatcherOneToMany")
    async with _peers(pipeline, 3) as pairs:
        ports = [await hub.create("HubPort") for _ in pairs]
        for (endpoint, _), port in zip(pairs, ports, strict=True):
            await endpoint.connect(port)
            await port.connect(endpoint)
        await hub.invoke("setSource", source=ports[0])
        for _, viewer in pairs[1:]:
            await viewer.wait_for(lambda p: _video_frames(p) > 5)
        assert _video_frames(pairs[0][1]) == 0
        await hub.invoke("removeSource")
        flow = await pairs[1][0].subscribe("MediaFlowOutStateChanged")
        assert (await flow.get(timeout=10))["state"] == "NOT_FLOWING"
