"""Offers in the dialects KMS's users send, answered as KMS 7.3.0 answers them (issue 15).

The old Android-style offer: one video m-line, ``RTP/AVP``, H264 without fmtp (packetization
mode 0) beside MP4V-ES and H263-1998, ``recvonly``, no ICE. KMS answers an RtpEndpoint with H264
alone, ``sendonly``; a WebRtcEndpoint cannot take a plain RTP profile and answers the m-line with
port 0 instead of failing the offer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from emulator.transport.client import KurentoClient
from protocol.sdp import SessionDescription
from tests.media.peers import client_peer, trickle

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


def _without(offer: str, prefix: str) -> str:
    return "\r\n".join(line for line in offer.split("\r\n") if not line.startswith(prefix))


async def test_offer_without_fingerprint_is_answered_and_carries_media(
    media_client: KurentoClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An offer with no a=fingerprint (gateways that leave it out): answered, as KMS answers it,
    with a warning naming what to add; the peer's DTLS certificate is accepted unverified (as
    GStreamer's DTLS elements under KMS accept any) and the call carries audio and video."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    async with client_peer() as peer:
        offer = _without(await peer.offer(), "a=fingerprint")
        with caplog.at_level(logging.WARNING, logger="emulator.media.legs.peer"):
            answer = await endpoint.invoke("processOffer", offer=offer)
        assert "a=fingerprint:" in answer
        assert any("has no a=fingerprint" in r.getMessage() for r in caplog.records)
        await endpoint.invoke("gatherCandidates")
        await peer.accept_answer(answer)
        await trickle(peer, found, done)
        await peer.wait_for(lambda p: p.frames.get("audio", 0) > 3 and p.frames.get("video", 0) > 3)


async def test_offer_without_ice_credentials_is_answered_with_a_warning(
    media_client: KurentoClient, caplog: pytest.LogCaptureFixture
) -> None:
    """An offer with no a=ice-ufrag/a=ice-pwd: KMS's SDP agent answers it (then its ICE cannot
    check the peer); here too: both m-lines answered with the server's own credentials, and a
    warning says what to add."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    async with client_peer() as peer:
        offer = _without(_without(await peer.offer(), "a=ice-ufrag"), "a=ice-pwd")
        with caplog.at_level(logging.WARNING, logger="emulator.media.legs.peer"):
            answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=offer))
    assert [m.port != 0 for m in answer.media] == [True, True]
    assert all(m.ice_ufrag and m.ice_pwd for m in answer.media)
    warnings = [r.getMessage() for r in caplog.records if "a=ice-ufrag/a=ice-pwd" in r.getMessage()]
    assert warnings and "add a=ice-ufrag/a=ice-pwd" in warnings[0]


TRANSPORT = (
    "c=",
    "a=candidate:",
    "a=end-of-candidates",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:",
    "a=fingerprint:",
    "a=setup:",
    "a=mid:",
    "a=ssrc:",
    "a=ssrc-group:",
    "a=msid:",
    "a=rtcp:",
)
"""What an offer's m-line takes from the real peer: its transport, identity and streams."""


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    first = next(i for i, line in enumerate(lines) if line.startswith("m="))
    media: list[list[str]] = []
    for line in lines[first:]:
        if line.startswith("m="):
            media.append([])
        media[-1].append(line)
    return lines[:first], media


def in_dialect(peer_offer: str, fixture: str) -> str:
    """A real aiortc offer rewritten in a stack's dialect: the fixture's session lines, m-line
    formats, codecs, feedback, extensions and attributes, with the peer's transport (ICE
    credentials and candidates, fingerprint, setup, mids, SSRCs), so that the call can flow."""
    peer_session, peer_media = _sections(peer_offer)
    dialect_session, dialect_media = _sections(fixture)
    session = [
        line
        for line in dialect_session
        if not line.startswith(("a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:"))
    ]
    session += [line for line in peer_session if line.startswith("a=fingerprint:")]
    out = list(session)
    for mine, theirs in zip(peer_media, dialect_media, strict=True):
        kind, port = mine[0].split()[0], mine[0].split()[1]
        formats = theirs[0].split()[2:]
        assert kind == theirs[0].split()[0]
        out.append(" ".join([kind, port, *formats]))
        out += [line for line in theirs[1:] if not line.startswith(TRANSPORT)]
        out += [line for line in mine[1:] if line.startswith(TRANSPORT)]
    return "\r\n".join(out) + "\r\n"


@pytest.mark.parametrize(
    ("fixture", "first_video"),
    [("safari17_offer.sdp", "H264"), ("android_sdk_offer.sdp", "VP8")],
)
async def test_webrtc_endpoint_answers_and_carries_a_mobile_offer(
    media_client: KurentoClient, fixture: str, first_video: str
) -> None:
    """Safari 17 (H264 Constrained High then Constrained Baseline first, H265, extmap-allow-mixed)
    and a libwebrtc Android SDK (VP8, VP9, H264 42e01f and 640c1f, AV1, ARDAMS msids) offers,
    carrying a real aiortc peer's transport: both m-lines answered in one bundle, the offerer's
    codec order kept, what the server cannot take (H265, AV1, RTX, RED, ULPFEC, CN) left out,
    and the peer's audio and video loop back through the endpoint and decode."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    async with client_peer() as peer:
        offer = in_dialect(await peer.offer(), (CORPUS / fixture).read_text())
        text = await endpoint.invoke("processOffer", offer=offer)
        await endpoint.invoke("gatherCandidates")
        await peer.accept_answer(text)
        await trickle(peer, found, done)
        await peer.wait_for(lambda p: p.frames.get("audio", 0) > 3 and p.frames.get("video", 0) > 3)
    answer = SessionDescription.parse(text)
    audio, video = answer.media
    assert audio.port != 0 and video.port != 0 and answer.bundle_groups == [["0", "1"]]
    video_names = [c.name for c in video.codecs]
    assert video_names[0] == first_video
    left_out = {"H265", "AV1", "rtx", "red", "ulpfec", "CN"}
    assert not left_out & {*video_names, *(c.name for c in audio.codecs)}
    assert audio.codecs[0].name == "opus"
