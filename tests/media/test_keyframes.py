"""Keyframe delivery to late sinks (issue 12): every video sink decodes, however the connect races.

aiortc's VP8 encoder makes a keyframe only at its start and on PLI/FIR, as many real senders do
between their periodic keyframes: a sink that joins mid-GOP decodes nothing until the server gets
a keyframe out of the source for it. The viewers here never ask for one themselves (as SIP video
phones and recorders that send no PLI): only the server's requests can start their video. The
races are made deterministic: the sink is connected after the source's first keyframe went by,
before the sink's transport exists, or with the source ignoring the first keyframe requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
from aiortc import RTCRtpSender
from aiortc.codecs import depayload, get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from emulator.transport.client import KurentoClient, RemoteObject
from tests.media.peers import (
    ClientPeer,
    negotiate,
    negotiate_connected,
    trickle,
    watch_keyframe_requests,
)
from tests.media.rtp_peers import UdpPeer, peer_sdp, udp_peer

AIORTC_BITRATE_KBPS = 500
"""aiortc's VP8 encoder starts at 500 kbps (``aiortc.codecs.vpx.DEFAULT_BITRATE``)."""


def _video(peer: ClientPeer) -> int:
    return peer.frames.get("video", 0)


@dataclass
class FlowingSource:
    """A WebRtcEndpoint whose peer already sends video into it, and a watcher that decodes that
    video from the start (and asks for no keyframe): the tests' clock for "the source's frames
    went by", woken by each decoded frame."""

    endpoint: RemoteObject
    sender: ClientPeer
    watcher: ClientPeer

    async def frames_go_by(self, count: int) -> None:
        """Until the watcher has decoded ``count`` more of the source's frames."""
        target = _video(self.watcher) + count
        await self.watcher.wait_for(lambda p: _video(p) >= target, timeout=15)


@contextlib.asynccontextmanager
async def _flowing_source(pipeline: RemoteObject) -> AsyncIterator[FlowingSource]:
    """A source past its encoder's start (its first keyframes have gone by), watched.

    Its REMB is pinned to aiortc's default encoder bitrate: aiortc re-creates its encoder (and
    so makes a keyframe) when a REMB moves the bitrate by more than 10%, which would hand late
    sinks a keyframe by chance (that chance is why the bug showed in some calls only).
    """
    source = await pipeline.create("WebRtcEndpoint")
    for bound in ("setMinVideoRecvBandwidth", "setMaxVideoRecvBandwidth"):
        await source.invoke(bound, **{bound[3].lower() + bound[4:]: AIORTC_BITRATE_KBPS})
    watching = await pipeline.create("WebRtcEndpoint")
    await source.connect(watching)
    flowing = FlowingSource(source, ClientPeer(), ClientPeer(asks_keyframes=False))
    try:
        await negotiate_connected(watching, flowing.watcher)
        await negotiate(source, flowing.sender)
        await flowing.frames_go_by(30)
        yield flowing
    finally:
        await flowing.sender.close()
        await flowing.watcher.close()


async def _pli_count(source: RemoteObject) -> int:
    stats = await source.invoke("getStats", mediaType="VIDEO")
    return sum(s.get("pliCount", 0) for s in stats.values() if s["type"] == "inboundrtp")


async def test_sink_connected_before_its_transport_gets_a_keyframe(
    media_client: KurentoClient,
) -> None:
    """Connected while its transport is not up: the keyframe the source makes for it at once
    goes by before it can be sent, so the server asks again once the sink can receive."""
    pipeline = await media_client.create("MediaPipeline")
    async with _flowing_source(pipeline) as flowing:
        source = flowing.endpoint
        requests = watch_keyframe_requests(flowing.sender)
        sink = await pipeline.create("WebRtcEndpoint")
        viewer = ClientPeer(asks_keyframes=False)
        try:
            candidates = await sink.subscribe("IceCandidateFound")
            done = await sink.subscribe("IceGatheringDone")
            answer = await sink.invoke("processOffer", offer=await viewer.offer())
            await source.connect(sink)
            await requests.wait_for(1)
            await flowing.frames_go_by(30)  # the keyframe went by: nobody could take it
            await sink.invoke("gatherCandidates")
            await viewer.accept_answer(answer)
            await trickle(viewer, candidates, done)
            await viewer.wait_for(lambda p: _video(p) > 0, timeout=10)
        finally:
            await viewer.close()


async def test_lost_keyframe_requests_are_repeated(media_client: KurentoClient) -> None:
    """The source ignores the first keyframe requests (a PLI lost on the way): the server asks
    again, throttled, until the sink has its keyframe, and counts each request."""
    pipeline = await media_client.create("MediaPipeline")
    async with _flowing_source(pipeline) as flowing:
        source, sender = flowing.endpoint, flowing.sender
        sink = await pipeline.create("WebRtcEndpoint")
        viewer = ClientPeer(asks_keyframes=False)
        try:
            await negotiate_connected(sink, viewer)
            before = await _pli_count(source)
            requests = watch_keyframe_requests(sender, ignore=2)
            await source.connect(sink)
            await viewer.wait_for(lambda p: _video(p) > 0, timeout=10)
            assert requests.ignored == 2
            assert await _pli_count(source) >= before + 3
        finally:
            await viewer.close()


async def test_switched_source_starts_with_a_keyframe(media_client: KurentoClient) -> None:
    """A sink switched to a source that is already running mid-GOP gets that source's
    keyframe even when the first request is lost."""
    pipeline = await media_client.create("MediaPipeline")
    async with (
        _flowing_source(pipeline) as first_source,
        _flowing_source(pipeline) as second_source,
    ):
        first, second = first_source.endpoint, second_source.endpoint
        second_peer = second_source.sender
        sink = await pipeline.create("WebRtcEndpoint")
        viewer = ClientPeer(asks_keyframes=False)
        try:
            await negotiate_connected(sink, viewer)
            await first.connect(sink)
            await viewer.wait_for(lambda p: _video(p) > 5, timeout=10)
            watch_keyframe_requests(second_peer, ignore=1)
            switched_at = _video(viewer)
            await second.connect(sink)
            stats = await sink.invoke("getStats", mediaType="VIDEO")
            ssrc = next(s["ssrc"] for s in stats.values() if s["type"] == "outboundrtp")
            await viewer.wait_for(lambda p: _video(p) > switched_at + 5, timeout=10)
            stats = await sink.invoke("getStats", mediaType="VIDEO")
            assert ssrc == next(s["ssrc"] for s in stats.values() if s["type"] == "outboundrtp")
        finally:
            await viewer.close()


async def _two_way_call(client: KurentoClient) -> list[ClientPeer]:
    """Two peers through two WebRtcEndpoints of one pipeline, connected both ways as soon as
    they exist, so that connects race each side's start."""
    pipeline = await client.create("MediaPipeline")
    left = await pipeline.create("WebRtcEndpoint")
    right = await pipeline.create("WebRtcEndpoint")
    peers = [ClientPeer(asks_keyframes=False), ClientPeer(asks_keyframes=False)]
    await negotiate(left, peers[0])
    await left.connect(right)
    await negotiate(right, peers[1])
    await right.connect(left)
    return peers


async def test_every_direction_of_concurrent_calls_decodes_video(
    media_client: KurentoClient,
) -> None:
    """Ten concurrent audio+video calls (the case the bug was seen in): every peer decodes the
    other's video, with the connects racing the sources' starts."""
    calls = await asyncio.gather(*(_two_way_call(media_client) for _ in range(10)))
    peers = [peer for call in calls for peer in call]
    try:
        await asyncio.gather(
            *(
                peer.wait_for(lambda p: _video(p) > 0 and p.frames.get("audio", 0) > 0)
                for peer in peers
            )
        )
    finally:
        await asyncio.gather(*(peer.close() for peer in peers))


async def _decodes_vp8(phone: UdpPeer, payload_type: int) -> None:
    """Until the VP8 arriving at the phone decodes into a picture (frames before the first
    keyframe fail to decode, as on a real phone)."""
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=payload_type)
    decoder = get_decoder(codec)
    parts: list[bytes] = []
    async with asyncio.timeout(10):
        while True:
            view = await phone.next_rtp(timeout=10)
            parts.append(depayload(codec, view.payload))
            if not view.marker:
                continue
            frame, parts = JitterFrame(b"".join(parts), view.timestamp), []
            with contextlib.suppress(av.FFmpegError):
                if decoder.decode(frame):
                    return


async def test_video_phone_joining_a_running_source_decodes(media_client: KurentoClient) -> None:
    """The PBX leg: an RtpEndpoint answered by a video phone (which sends no PLI) while the
    WebRTC source is already running and ignores the first requests: the phone decodes."""
    pipeline = await media_client.create("MediaPipeline")
    async with _flowing_source(pipeline) as flowing:
        source, sender = flowing.endpoint, flowing.sender
        requests = watch_keyframe_requests(sender, ignore=2)
        rtp = await pipeline.create("RtpEndpoint")
        await source.connect(rtp, "VIDEO")
        async with udp_peer() as audio, udp_peer() as phone:
            offer = peer_sdp(audio.port, dtmf=None, video="97 VP8/90000", video_port=phone.port)
            await rtp.invoke("processOffer", offer=offer)
            await _decodes_vp8(phone, 97)
        assert requests.ignored == 2


async def test_transcoded_late_sink_starts_with_a_keyframe(media_client: KurentoClient) -> None:
    """A viewer that takes only H264 joins a running VP8 source: the transcoder starts for it,
    gets the source's keyframe and encodes one for the viewer, which decodes."""
    pipeline = await media_client.create("MediaPipeline")
    async with _flowing_source(pipeline) as flowing:
        source, sender = flowing.endpoint, flowing.sender
        requests = watch_keyframe_requests(sender, ignore=1)
        sink = await pipeline.create("WebRtcEndpoint")
        viewer = ClientPeer(asks_keyframes=False)
        video = next(t for t in viewer.pc.getTransceivers() if t.kind == "video")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "H264"]
        )
        try:
            await negotiate_connected(sink, viewer)
            await source.connect(sink)
            await viewer.wait_for(lambda p: _video(p) > 0, timeout=15)
            assert await sink.invoke("isMediaTranscoding", mediaType="VIDEO") is False
            assert await source.invoke("isMediaTranscoding", mediaType="VIDEO") is True
            assert requests.ignored == 1
        finally:
            await viewer.close()
