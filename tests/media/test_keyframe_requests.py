"""The server's keyframe requests as a video phone sees them: FIR where the phone negotiated
only ``ccm fir``, repeated until a keyframe went through, counted in getStats and logged."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket

from emulator.transport.client import KurentoClient
from protocol.sdp import SessionDescription
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import RtpSender, UdpPeer, peer_sdp, udp_peer

VP8_DELTA = bytes([0x10, 0x01]) + b"\x00" * 40
"""A VP8 payload: start of partition 0 with the P bit set (an interframe)."""


def _fir_only_offer(audio_port: int, video_port: int) -> str:
    """A video phone's offer: VP8 with ``ccm fir`` as its only feedback, RTCP on the RTP port.
    Feedback needs the AVPF profile (RFC 4585): KMS answers no ``a=rtcp-fb`` on ``RTP/AVP``."""
    sdp = peer_sdp(audio_port, dtmf=None, video="97 VP8/90000", video_port=video_port)
    rtpmap = "a=rtpmap:97 VP8/90000\r\n"
    sdp = sdp.replace(f"m=video {video_port} RTP/AVP ", f"m=video {video_port} RTP/AVPF ")
    return sdp.replace(rtpmap, rtpmap + "a=rtcp-fb:97 ccm fir\r\na=rtcp-mux\r\n")


def _video_target(answer: str) -> tuple[str, int]:
    description = SessionDescription.parse(answer)
    media = description.media[1]
    return (media.connection or description.connection or "").split()[-1], media.port


async def _send_interframes(phone: UdpPeer, sender: RtpSender, target: tuple[str, int]) -> None:
    """A phone's camera that never makes a keyframe unless asked (it is not asked here)."""
    while True:
        phone.send(sender.packet(VP8_DELTA, marker=True), target)
        await asyncio.sleep(1 / 30)  # the camera's frame rate, not a synchronisation


async def _keyframe_requests(phone: UdpPeer, count: int) -> list[RtcpPsfbPacket]:
    """The next ``count`` PLI/FIR the phone receives (reports and REMB skipped)."""
    found: list[RtcpPsfbPacket] = []
    async with asyncio.timeout(15):
        while len(found) < count:
            data, _ = await phone.rtcp.get()
            found += [
                p
                for p in RtcpPacket.parse(data)
                if isinstance(p, RtcpPsfbPacket) and p.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI)
            ]
    return found[:count]


async def test_phone_source_gets_fir_until_a_keyframe(
    media_client: KurentoClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A WebRTC viewer watches a video phone that sends only interframes: the server sends the
    phone FIR (it negotiated no PLI) with a new sequence number each time, about twice a second,
    counts them in firCount and logs the sink that still has no keyframe after a second."""
    caplog.set_level(logging.INFO, logger="emulator.media.session.rtp")
    pipeline = await media_client.create("MediaPipeline")
    rtp = await pipeline.create("RtpEndpoint")
    sink = await pipeline.create("WebRtcEndpoint")
    viewer = ClientPeer(asks_keyframes=False)
    try:
        await negotiate_connected(sink, viewer)
        await rtp.connect(sink, "VIDEO")
        async with udp_peer() as audio, udp_peer() as phone:
            answer = await rtp.invoke("processOffer", offer=_fir_only_offer(audio.port, phone.port))
            sender = RtpSender(97, step=3000)
            camera = asyncio.create_task(_send_interframes(phone, sender, _video_target(answer)))
            try:
                requests = await _keyframe_requests(phone, 5)
            finally:
                camera.cancel()
    finally:
        await viewer.close()
    assert {p.fmt for p in requests} == {RTCP_PSFB_FIR}
    targets = [struct.unpack("!IB", p.fci[:5]) for p in requests]
    assert {ssrc for ssrc, _ in targets} == {sender.ssrc}
    sequences = [sequence for _, sequence in targets]
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    stats = await rtp.invoke("getStats", mediaType="VIDEO")
    (inbound,) = [s for s in stats.values() if s["type"] == "inboundrtp"]
    assert inbound["firCount"] >= 5 and inbound["pliCount"] == 0
    assert "without a keyframe" in caplog.text
