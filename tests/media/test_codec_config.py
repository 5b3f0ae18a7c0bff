"""SdpEndpoint.conf.json's codec lists and m-line counts shape what endpoints negotiate."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from emulator.app import running_emulator
from emulator.transport.client import KurentoClient
from protocol.sdp import SessionDescription
from tests.conftest import make_settings
from tests.media.peers import client_peer


@contextlib.asynccontextmanager
async def _client(**settings: Any) -> AsyncIterator[KurentoClient]:
    options = make_settings(network_interfaces="lo", **settings)
    async with (
        running_emulator(options) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        yield client


def _codecs(sdp: str) -> dict[str, list[str]]:
    parsed = SessionDescription.parse(sdp)
    return {
        m.kind: list(dict.fromkeys(c.name for c in m.codecs if c.name != "telephone-event"))
        for m in parsed.media
        if not m.rejected
    }


async def test_answer_keeps_only_the_configured_codecs() -> None:
    """audioCodecs PCMU, videoCodecs H264: a browser offering Opus, PCMU, VP8, H264 gets those."""
    async with _client(audio_codecs=["PCMU/8000"], video_codecs=["H264/90000"]) as client:
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        async with client_peer() as peer:
            answer = await endpoint.invoke("processOffer", offer=await peer.offer())
    assert _codecs(answer) == {"audio": ["PCMU"], "video": ["H264"]}


async def test_audio_only_configuration_rejects_video() -> None:
    """numVideoMedias 0 (the audio-only variant): the video line is refused, none is offered."""
    async with _client(num_video_medias=0) as client:
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        async with client_peer() as peer:
            answer = await endpoint.invoke("processOffer", offer=await peer.offer())
        offer = await (await pipeline.create("WebRtcEndpoint")).invoke("generateOffer")
    video = [m for m in SessionDescription.parse(answer).media if m.kind == "video"]
    assert video and video[0].rejected
    assert [m.kind for m in SessionDescription.parse(offer).media] == ["audio"]


async def test_offers_list_the_configured_codecs_in_order() -> None:
    """generateOffer (WebRTC and plain RTP) follows the configured order; encoderBitrate too."""
    codecs = ["PCMA/8000", "opus/48000/2"]
    async with _client(audio_codecs=codecs, encoder_bitrate=450000) as client:
        pipeline = await client.create("MediaPipeline")
        webrtc = await pipeline.create("WebRtcEndpoint")
        rtp = await pipeline.create("RtpEndpoint")
        offers = [await e.invoke("generateOffer") for e in (webrtc, rtp)]
        bitrate = await webrtc.invoke("getEncoderBitrate")
    for offer in offers:
        assert _codecs(offer)["audio"] == ["PCMA", "opus"]
    assert bitrate == 450000
