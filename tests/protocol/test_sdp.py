"""The SDP model: exact round trips, accessors for WebRTC and PBX offers, line-numbered errors."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import SdpParseError
from protocol.sdp import IceCandidateLine, SessionDescription, effective, media_address

CORPUS = Path(__file__).parent / "sdp_corpus"
FILES = sorted(CORPUS.glob("*.sdp"))


def _load(name: str) -> SessionDescription:
    return SessionDescription.parse((CORPUS / name).read_text())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_sdp_round_trip_keeps_every_line(path: Path) -> None:
    """Parsing then writing reproduces the text, with CRLF line endings."""
    text = path.read_text()
    expected = "\r\n".join(text.replace("\r\n", "\n").strip("\n").split("\n")) + "\r\n"
    assert SessionDescription.parse(text).to_string() == expected


def test_sdp_chrome_offer_accessors() -> None:
    """BUNDLE, mids, codecs with fmtp and feedback, extensions, SSRCs, DTLS and SCTP."""
    offer = _load("chrome_offer.sdp")
    assert offer.bundle_groups == [["0", "1", "2"]]
    audio, video, data = offer.media
    assert [m.mid for m in offer.media] == ["0", "1", "2"]
    opus = audio.codecs[0]
    assert (opus.name, opus.clock_rate, opus.channels, opus.payload_type) == ("opus", 48000, 2, 111)
    assert opus.parameters() == {"minptime": "10", "useinbandfec": "1"}
    assert [c.name for c in audio.codecs][:4] == ["opus", "red", "G722", "PCMU"]
    vp8 = video.codecs[0]
    assert vp8.rtcp_fb == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert (4, None, "urn:ietf:params:rtp-hdrext:sdes:mid") in audio.extmaps
    assert audio.ssrcs == {3507473510: {"cname": "wQ8Zc5SggqCrJDb9", "msid": "1b7a 8a1f"}}
    assert video.ssrc_groups == [("FID", [2213218154, 3931290592])]
    assert audio.setup == "actpass" and audio.rtcp_mux and audio.ice_ufrag == "G8ab"
    assert audio.fingerprints[0][0] == "sha-256"
    assert data.proto == "UDP/DTLS/SCTP" and data.sctp_port == 5000
    assert data.max_message_size == 262144


def test_sdp_asterisk_offer_static_payloads_and_session_address() -> None:
    """Static payload types without rtpmap, telephone-event, session-level c= line."""
    offer = _load("asterisk_offer.sdp")
    audio = offer.media[0]
    assert [(c.name, c.payload_type) for c in audio.codecs] == [
        ("PCMU", 0),
        ("PCMA", 8),
        ("G722", 9),
        ("telephone-event", 101),
    ]
    assert audio.codecs[3].fmtp == "0-16"
    assert media_address(offer, audio) == "192.168.1.10"
    assert audio.port == 12346 and audio.direction == "sendrecv"


def test_sdp_srtp_hold_offer() -> None:
    """SDES crypto lines, separate RTCP port, sendonly (hold)."""
    audio = _load("freeswitch_srtp_hold.sdp").media[0]
    assert audio.proto == "RTP/SAVP" and audio.direction == "sendonly"
    first, second = audio.cryptos
    assert (first.tag, first.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert first.key_base64 == "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    assert second.suite == "AES_CM_128_HMAC_SHA1_32"
    assert audio.rtcp == (24579, "10.0.0.5")


def test_sdp_effective_falls_back_to_session_level() -> None:
    """Session-level ICE credentials apply to m-lines without their own."""
    text = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:sess\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
    )
    parsed = SessionDescription.parse(text)
    assert effective(parsed, parsed.media[0], "ice-ufrag") == "sess"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "Empty SDP"),
        ("   \r\n", "Empty SDP"),
        ("x=0\r\n", "line 1"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP\r\n", "line 5"),
        ("v=0\r\no=- 1\r\n", "line 2: o= needs 6 fields"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=audio x RTP/AVP 0\r\n", "line 4"),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "line 5: malformed rtpmap",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\na=candidate:1 2\r\n",
            "line 5: malformed candidate",
        ),
        ("v=0\r\nnonsense\r\n", "line 2"),
    ],
)
def test_sdp_errors_name_the_line(text: str, fragment: str) -> None:
    """Every error is a SdpParseError (40201) naming the line."""
    with pytest.raises(SdpParseError) as info:
        SessionDescription.parse(text)
    assert fragment in info.value.message
    assert info.value.code == 40201


@pytest.mark.parametrize(
    "candidate",
    [
        "candidate:842163049 1 udp 1677729535 203.0.113.5 50000 typ srflx raddr 10.0.0.2 "
        "rport 50000 generation 0 ufrag G8ab network-id 1",
        "candidate:1 1 UDP 2122252543 192.168.1.2 50000 typ host",
        "candidate:3 1 tcp 1518280447 10.0.0.2 9 typ host tcptype active generation 0",
        "candidate:4 1 udp 2122197247 fd00::2 41000 typ host",
        "candidate:5 1 udp 41819903 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 0",
    ],
)
def test_ice_candidate_line_round_trip(candidate: str) -> None:
    """Candidates parse and write back as browsers write them."""
    parsed = IceCandidateLine.parse(candidate)
    assert parsed.to_sdp() == candidate


def test_ice_candidate_line_rejects_garbage() -> None:
    """Malformed candidates raise ValueError with the reason."""
    for bad in [
        "candidate:nonsense",
        "candidate:1 1 udp x 1.2.3.4 5 typ host",
        "candidate:1 1 udp 1 1.2.3.4 70000 typ host",
    ]:
        with pytest.raises(ValueError):
            IceCandidateLine.parse(bad)


@given(st.text(max_size=300))
def test_sdp_fuzz_text_raises_only_parse_errors(text: str) -> None:
    """Arbitrary text parses or raises SdpParseError, nothing else."""
    with contextlib.suppress(SdpParseError):
        SessionDescription.parse(text)


CHROME_LINES = (CORPUS / "chrome_offer.sdp").read_text().split("\r\n")


@given(st.integers(0, len(CHROME_LINES) - 1), st.text(max_size=40))
def test_sdp_fuzz_mutated_lines_raise_only_parse_errors(index: int, replacement: str) -> None:
    """A corpus SDP with one line replaced parses or raises SdpParseError."""
    lines = list(CHROME_LINES)
    lines[index] = replacement
    try:
        parsed = SessionDescription.parse("\r\n".join(lines))
    except SdpParseError:
        return
    for media in parsed.media:
        assert isinstance(media.codecs, list)
