"""DTMF across the bridge: a PBX's RFC 4733 events reach a WebRTC peer with its payload type."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCRtpSender, RTCSessionDescription

from emulator.media.rtp.packet import RtpView
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.media.peers import ClientPeer, negotiate, trickle
from tests.media.rtp_peers import (
    DtmfInjector,
    PcmuPeer,
    RtpSender,
    TonePeer,
    dominant_frequency,
    dtmf_payload,
    peer_sdp,
    spy_received,
    udp_peer,
)


def with_dtmf(sdp: str) -> str:
    """A browser-style offer: telephone-event/48000 (110) before /8000 (126) after the audio
    codecs aiortc offers (it has no telephone-event of its own)."""
    out: list[str] = []
    section = ""
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section = line.split()[0]
            if section == "m=audio":
                line += " 110 126"
        elif section == "m=audio" and line.startswith("a=rtpmap:"):
            out += [
                "a=rtpmap:110 telephone-event/48000",
                "a=rtpmap:126 telephone-event/8000",
                "a=fmtp:126 0-16",
            ]
            section = "m=audio done"
        out.append(line)
    return "\r\n".join(out)


async def test_dtmf_from_pbx_reaches_webrtc_peer_remapped(media_client: KurentoClient) -> None:
    """telephone-event 101 from the PBX arrives at the WebRTC peer as 126, payload unchanged,
    in the same stream (SSRC, sequence) as the PCMU audio it interrupts."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await rtp.connect(webrtc, "AUDIO")
    peer = PcmuPeer(audio=False, video=False)
    seen: list[RtpView] = []
    try:
        connected = await webrtc.subscribe("ConnectionStateChanged")
        candidates = await webrtc.subscribe("IceCandidateFound")
        done = await webrtc.subscribe("IceGatheringDone")
        offer = with_dtmf(await peer.offer())
        answer = await webrtc.invoke("processOffer", offer=offer)
        dtmf = SessionDescription.parse(answer).media[0].codecs[-1]
        assert (dtmf.name, dtmf.payload_type, dtmf.clock_rate) == ("telephone-event", 126, 8000)
        await webrtc.invoke("gatherCandidates")
        await peer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        seen = spy_received(peer)
        await trickle(peer, candidates, done)
        flowing = await webrtc.subscribe("MediaFlowOutStateChanged")
        assert (await connected.get(timeout=15))["newState"] == "CONNECTED"
        async with udp_peer() as pbx:
            answer_rtp = await rtp.invoke("processOffer", offer=peer_sdp(pbx.port))
            target = ("127.0.0.1", SessionDescription.parse(answer_rtp).media[0].port)
            sender = RtpSender(0)
            pbx.send(sender.packet(), target)
            await flowing.get(timeout=15)
            digit = dtmf_payload(7, end=True)
            pbx.send(sender.packet(digit, marker=True, pt=101), target)
            await peer.wait_for(lambda _: any(v.payload_type == 126 for v in seen))
        event = next(v for v in seen if v.payload_type == 126)
        audio = [v for v in seen if v.payload_type == 0]
        assert event.payload == digit and event.marker
        assert audio and audio[-1].ssrc == event.ssrc
        assert event.sequence == (audio[-1].sequence + 1) & 0xFFFF
    finally:
        await peer.close()


async def test_webrtc_pcmu_transcoded_to_pbx_pcma(media_client: KurentoClient) -> None:
    """A PBX that takes PCMA only gets the WebRTC peer's PCMU transcoded (payload type 8, the
    880 Hz tone), and the WebRtcEndpoint feeding it reports TRANSCODING."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await webrtc.connect(rtp, "AUDIO")
    transcoding = await webrtc.subscribe("MediaTranscodingStateChanged")
    peer = PcmuPeer(audio=False, video=False)
    try:
        async with udp_peer() as pbx:
            await rtp.invoke("processOffer", offer=peer_sdp(pbx.port, audio="8 PCMA/8000"))
            await negotiate(webrtc, peer)
            assert (await transcoding.get(timeout=15))["state"] == "TRANSCODING"
            decoder = av.CodecContext.create("pcm_alaw", "r")
            decoder.sample_rate, decoder.layout = 8000, "mono"
            samples: list[np.ndarray[Any, Any]] = []
            while sum(len(s) for s in samples) < 8000:
                view = await pbx.next_rtp(timeout=10)
                assert view.payload_type == 8
                for frame in decoder.decode(av.Packet(view.payload)):
                    samples.append(frame.to_ndarray().reshape(-1))
        assert abs(dominant_frequency(np.concatenate(samples)[-8000:], 8000) - 880) < 10
        assert await webrtc.invoke("isMediaTranscoding", mediaType="AUDIO") is True
    finally:
        await peer.close()


async def test_pbx_reinvite_to_another_codec_retargets_the_transcoder(
    media_client: KurentoClient,
) -> None:
    """A re-INVITE that swaps PCMA for G722 while the leg is transcoded: the PBX gets G722
    (payload type 9) from then on, not silence."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await webrtc.connect(rtp, "AUDIO")
    peer = PcmuPeer(audio=False, video=False)
    try:
        async with udp_peer() as pbx:
            await rtp.invoke("processOffer", offer=peer_sdp(pbx.port, audio="8 PCMA/8000"))
            await negotiate(webrtc, peer)
            assert (await pbx.next_rtp(timeout=10)).payload_type == 8
            reinvite = peer_sdp(pbx.port, audio="9 G722/8000", version=2)
            await rtp.invoke("processOffer", offer=reinvite)
            while (view := await pbx.next_rtp(timeout=10)).payload_type != 9:
                assert view.payload_type == 8  # PCMA still in flight
            assert await webrtc.invoke("isMediaTranscoding", mediaType="AUDIO") is True
    finally:
        await peer.close()


@pytest.mark.parametrize(
    ("mime", "clock", "transcoded"),
    [("audio/opus", 48000, True), ("audio/PCMU", 8000, False)],
    ids=["opus-transcoded-to-pcmu", "pcmu-forwarded"],
)
async def test_dtmf_from_webrtc_reaches_pbx_retimed(
    media_client: KurentoClient, mime: str, clock: int, transcoded: bool
) -> None:
    """RFC 4733 events sent by a WebRTC peer in its audio stream (telephone-event at the audio
    codec's clock, as browsers do) reach a PCMU PBX with the PBX's payload type (101), the same
    event code and end bit, and durations in the PBX's 8 kHz clock: divided by 6 when Opus is
    transcoded to PCMU, unchanged when PCMU is forwarded."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await webrtc.connect(rtp, "AUDIO")
    peer = TonePeer(audio=False, video=False, mime=mime)
    try:
        async with udp_peer() as pbx:
            await rtp.invoke("processOffer", offer=peer_sdp(pbx.port))
            candidates = await webrtc.subscribe("IceCandidateFound")
            done = await webrtc.subscribe("IceGatheringDone")
            answer = await webrtc.invoke("processOffer", offer=with_dtmf(await peer.offer()))
            event_codec = next(
                c
                for c in SessionDescription.parse(answer).media[0].codecs
                if c.name == "telephone-event"
            )
            assert event_codec.clock_rate == clock
            await webrtc.invoke("gatherCandidates")
            injector = DtmfInjector(peer.pc.getTransceivers()[0].sender)
            await peer.accept_answer(answer)
            await trickle(peer, candidates, done)
            audio = await pbx.next_rtp(timeout=15)
            assert audio.payload_type == 0
            step = clock // 50
            sent = await injector.send_event(9, event_codec.payload_type, step)
            events: list[RtpView] = []
            async with asyncio.timeout(10):
                while not any(e.payload[1] & 0x80 for e in events):
                    view = await pbx.next_rtp()
                    if view.payload_type != 0:
                        events.append(view)
        assert {e.payload_type for e in events} == {101}
        assert {e.payload[0] for e in events} == {9}
        assert events[0].marker and len({e.timestamp for e in events}) == 1
        durations = [int.from_bytes(e.payload[2:4], "big") for e in events]
        assert durations[-1] == sent[-1] * 8000 // clock
        assert durations == sorted(durations) and durations[0] == step * 8000 // clock
        assert events[-1].payload[1] & 0x3F == 10  # volume
        transcoding = await webrtc.invoke("isMediaTranscoding", mediaType="AUDIO")
        assert transcoding is transcoded
    finally:
        await peer.close()


async def _vp8_at_video_phone(
    client: KurentoClient, packets: int, mtu: int | None = None
) -> tuple[list[RtpView], RemoteObject, SessionDescription]:
    """aiortc's VP8 sent through a WebRtcEndpoint to an RtpEndpoint answered by a video phone
    that negotiated VP8 as 97 (with the RtpEndpoint's ``mtu`` set first when given): the first
    ``packets`` RTP packets the phone receives, the WebRtcEndpoint and the RtpEndpoint's answer."""
    pipeline = await client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    if mtu is not None:
        await rtp.invoke("setMtu", mtu=mtu)
    await webrtc.connect(rtp, "VIDEO")
    peer = ClientPeer(audio=False, video=True)
    (transceiver,) = peer.pc.getTransceivers()
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    )
    try:
        async with udp_peer() as audio, udp_peer() as phone:
            offer = peer_sdp(audio.port, dtmf=None, video="97 VP8/90000", video_port=phone.port)
            answer = SessionDescription.parse(await rtp.invoke("processOffer", offer=offer))
            await negotiate(webrtc, peer)
            views = [await phone.next_rtp(timeout=15) for _ in range(packets)]
    finally:
        await peer.close()
    return views, webrtc, answer


async def test_webrtc_vp8_reaches_video_phone(media_client: KurentoClient) -> None:
    """aiortc's VP8 reaches a video phone that negotiated VP8 as 97: forwarded (no
    transcoding) with the phone's payload type, one SSRC, no WebRTC header extensions."""
    views, webrtc, answer = await _vp8_at_video_phone(media_client, 30)
    assert [c.name for c in answer.media[1].codecs] == ["VP8"]
    assert {v.payload_type for v in views} == {97}
    assert all(v.ext_start < 0 for v in views)
    assert len({v.ssrc for v in views}) == 1
    assert sum(v.marker for v in views) >= 1
    assert await webrtc.invoke("isMediaTranscoding", mediaType="VIDEO") is False


async def test_the_endpoints_mtu_sizes_the_video_it_sends(media_client: KurentoClient) -> None:
    """``mtu`` (KMD BaseRtpEndpoint, set before negotiation) is the largest payload the endpoint
    sends: aiortc's VP8 reaches a video phone cut to 200-byte payloads, frames spread over
    several packets (marker on the last of each)."""
    views, _, _ = await _vp8_at_video_phone(media_client, 60, mtu=200)
    assert max(len(v.payload) for v in views) <= 200
    assert any(not v.marker for v in views)  # at least one frame was cut into pieces
