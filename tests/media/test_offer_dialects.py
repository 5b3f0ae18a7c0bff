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


async def test_webrtc_endpoint_answers_firefox(media_client: KurentoClient) -> None:
    """Firefox's offer (Opus first, VP8/VP9 and H264 in both packetization modes, RTX, BUNDLE,
    rtcp-mux): both m-lines accepted in one bundle, the offerer's codec order kept (VP8 first),
    RTX left out, DTMF at 8000 taken, and the answer in the active or passive DTLS role."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    offer = (CORPUS / "firefox_offer.sdp").read_text()
    answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=offer))
    audio, video = answer.media
    assert audio.port != 0 and video.port != 0
    assert answer.bundle_groups == [["0", "1"]]
    assert audio.codecs[0].name == "opus"
    assert "telephone-event" in [c.name for c in audio.codecs]
    names = [c.name for c in video.codecs]
    assert names[0] == "VP8" and "rtx" not in names
    assert {c.payload_type for c in video.codecs if c.name == "H264"} == {126, 97}
    assert audio.rtcp_mux and video.rtcp_mux
    assert audio.setup in ("active", "passive")


async def test_rtp_endpoint_answers_a_sip_phone(media_client: KurentoClient) -> None:
    """A SIP phone's offer (Opus, Speex, G.711, G.729, three telephone-events; VP8 and H264 with
    a Main profile-level-id and no packetization-mode): the answer keeps what the server takes,
    in the phone's order, with the telephone-event at the first codec's clock."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("RtpEndpoint")
    offer = (CORPUS / "sip_phone_offer.sdp").read_text()
    answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=offer))
    audio, video = answer.media
    audio_names = [c.name for c in audio.codecs]
    assert audio_names[:3] == ["opus", "PCMU", "PCMA"]
    assert "speex" not in audio_names and "G729" not in audio_names
    assert [c.clock_rate for c in audio.codecs if c.name == "telephone-event"] == [48000]
    assert [c.name for c in video.codecs] == ["VP8", "H264"]
