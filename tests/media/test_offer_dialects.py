"""Offers in the dialects KMS's users send, answered as KMS 7.3.0 answers them (issue 15).

The old Android-style offer: one video m-line, ``RTP/AVP``, H264 without fmtp (packetization
mode 0) beside MP4V-ES and H263-1998, ``recvonly``, no ICE. KMS answers an RtpEndpoint with H264
alone, ``sendonly``; a WebRtcEndpoint cannot take a plain RTP profile and answers the m-line with
port 0 instead of failing the offer.
"""

from __future__ import annotations

from pathlib import Path

from emulator.transport.client import KurentoClient
from protocol.sdp import SessionDescription

CORPUS = Path(__file__).resolve().parents[1] / "protocol" / "sdp_corpus"
ANDROID = (CORPUS / "android_h264_offer.sdp").read_text()


async def test_rtp_endpoint_takes_h264_mode_0_and_leaves_out_what_it_cannot(
    media_client: KurentoClient,
) -> None:
    """H264 without fmtp is packetization-mode 0 and accepted; the other codecs are left out."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("RtpEndpoint")
    answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=ANDROID))
    (video,) = answer.media
    assert video.port != 0 and video.proto == "RTP/AVP"
    assert [(c.payload_type, c.name) for c in video.codecs] == [(96, "H264")]
    assert video.direction == "sendonly"


async def test_webrtc_endpoint_answers_a_plain_rtp_offer_with_port_0(
    media_client: KurentoClient,
) -> None:
    """No m-line a WebRtcEndpoint can take: the answer refuses it (port 0), no error."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=ANDROID))
    assert [m.port for m in answer.media] == [0]
    assert answer.media[0].kind == "video"
