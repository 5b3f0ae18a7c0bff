"""Property tests of what the media plane reads from the network and from SDP (issue 18).

RTP header parsing and rewriting, RTCP compounds through the session's one RTCP door, SDES
``a=crypto`` lines and keys, libsrtp unprotect, and both SDP answer planners (WebRTC and plain
RTP) on mutated real offers. Hostile input may be refused only with the documented result: None
(``parse_rtp``, ``remote_key``, ``unprotect``), ``MediaObjectIllegalParamError`` (the SDES
parameter), ``KurentoError`` (SDP); never another exception, since these run in receive loops
and request handlers. Round trips: a rewritten packet reads back with the new header and the
same payload; our own ``a=crypto`` line gives back our key.
"""

from __future__ import annotations

import base64
import contextlib
import struct
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from emulator.media.rtp.packet import FIXED_HEADER, ExtensionMap, parse_rtp, rewrite_rtp
from emulator.media.sdp import plain as plain_sdp
from emulator.media.sdp.negotiation import LineTransport, LocalPolicy, plan_answer
from emulator.media.sdp.negotiation import write_description as write_webrtc
from emulator.media.sdp.sdes import (
    SUITES,
    SdesConfig,
    SrtpPair,
    choose_crypto,
    remote_key,
    sdes_from_param,
)
from emulator.media.session.rtp import RtpSession
from protocol.errors import KurentoError, MediaObjectIllegalParamError
from protocol.sdp import Crypto, IceCandidateLine, SessionDescription

CORPUS = Path(__file__).parents[1] / "protocol" / "sdp_corpus"
OFFERS = {path.name: path.read_text().split("\r\n") for path in sorted(CORPUS.glob("*.sdp"))}
for _name, _lines in OFFERS.items():
    if len(_lines) == 1:
        OFFERS[_name] = _lines[0].split("\n")


@st.composite
def rtp_datagrams(draw: st.DrawFn) -> bytes:
    """RTP-shaped datagrams: version 2 mostly, any CSRC count and extension length, often lying
    about how long they are (truncated, extension words past the end, padding bigger than the
    payload)."""
    version = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))
    padding, extension = draw(st.booleans()), draw(st.booleans())
    csrc_count = draw(st.integers(0, 15))
    first = version << 6 | padding << 5 | extension << 4 | csrc_count
    second = draw(st.integers(0, 255))
    sequence, timestamp, ssrc = draw(
        st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
    )
    head = struct.pack("!BBHII", first, second, sequence, timestamp, ssrc)
    body = draw(st.binary(max_size=4 * csrc_count))
    if extension:
        profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x1001, 0x0000, 0xFFFF]))
        words = draw(st.integers(0, 8) | st.integers(0, 0xFFFF))
        body += struct.pack("!HH", profile, words) + draw(st.binary(max_size=4 * min(words, 8)))
    body += draw(st.binary(max_size=64))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return head + body


extension_maps = st.dictionaries(st.integers(0, 255), st.integers(1, 14), max_size=6).map(
    ExtensionMap
)


@given(rtp_datagrams() | st.binary(max_size=80))
def test_fuzz_parse_rtp_bounds(data: bytes) -> None:
    """A parsed header never points past the datagram, and its payload views stay inside it."""
    view = parse_rtp(data)
    if view is None:
        return
    assert FIXED_HEADER <= view.header_end <= len(data)
    assert data.endswith(view.payload)
    assert len(view.media_payload) <= len(view.payload)


@given(
    rtp_datagrams(),
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**40),
    st.integers(0, 2**32 - 1),
    extension_maps,
)
def test_fuzz_rewrite_rtp_round_trip(
    data: bytes, pt: int, seq: int, ts: int, ssrc: int, extensions: ExtensionMap
) -> None:
    """Rewriting any parsable packet gives a packet that parses back with the new header and the
    same payload, whatever its extensions hold."""
    view = parse_rtp(data)
    if view is None:
        return
    out = rewrite_rtp(
        view, payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, extensions=extensions
    )
    again = parse_rtp(out)
    assert again is not None
    assert (again.payload_type, again.sequence, again.timestamp, again.ssrc, again.marker) == (
        pt,
        seq,
        ts & 0xFFFFFFFF,
        ssrc,
        view.marker,
    )
    assert again.payload == view.payload


class _Owner:
    """The Kurento-side callbacks of an RTP session, recording nothing: the fuzz checks only that
    hostile RTCP does not raise out of the receive door."""

    def emit(self, event: str, **fields: Any) -> None:
        """Ignore the event."""

    def forward(self, media_type: str, packet: Any) -> None:
        """Ignore the packet."""

    def mark_flow(self, direction: str, media_type: str, flowing: bool) -> None:
        """Ignore the flow."""

    def keyframe_wanted(self, media_type: str) -> None:
        """Ignore the request."""

    def video_sink_ready(self) -> None:
        """Ignore it."""

    def set_state(self, name: str, value: str) -> None:
        """Ignore the state."""

    def data_received(self, label: str, message: str | bytes) -> None:
        """Ignore the message."""

    def transcoding_changed(
        self, media_type: str, active: bool, bin_name: str, reason: str
    ) -> None:
        """Ignore it."""

    def video_receive_target(self) -> int | None:
        """No REMB."""
        return None


class _Session(RtpSession):
    """An RTP session with no transport: RTCP comes in, nothing can go out."""

    def report_lines(self) -> list[Any]:
        return []

    def media_line(self, index: int) -> Any:
        return None

    def is_closed(self) -> bool:
        return False

    def leg_for(self, line: Any) -> Any:
        return None


RTCP_TYPES = [200, 201, 202, 203, 204, 205, 206, 207, 192, 195, 223]


@st.composite
def rtcp_compounds(draw: st.DrawFn) -> bytes:
    """RTCP compounds whose length fields often lie (too long, too short, zero), with REMB,
    PLI, FIR and NACK bodies of any size."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        count = draw(st.integers(0, 31))
        packet_type = draw(st.sampled_from(RTCP_TYPES))
        remb = st.binary(max_size=16).map(lambda fci: bytes(8) + b"REMB" + fci)
        body = draw(st.binary(max_size=48) | remb)
        length = draw(st.just(len(body) // 4) | st.integers(0, 0xFFFF))
        out += struct.pack("!BBH", 0x80 | count, packet_type, length) + body
    return out


@given(rtcp_compounds() | st.binary(max_size=64))
def test_fuzz_rtcp_door_never_raises(data: bytes) -> None:
    """Any RTCP compound (lying lengths, short feedback bodies) is taken or ignored."""
    session = _Session(_Owner(), "fuzz", None)
    session.rtcp_received(data)


def _param_values() -> st.SearchStrategy[Any]:
    return st.none() | st.text(max_size=50) | st.integers() | st.booleans() | st.binary(max_size=8)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "crypto": st.sampled_from([*SUITES, "", "AES_FAKE"]) | _param_values(),
            "key": _param_values(),
            "keyBase64": _param_values()
            | st.binary(min_size=30, max_size=30).map(lambda b: base64.b64encode(b).decode()),
        },
    )
)
def test_fuzz_sdes_parameter_raises_only_illegal_param(param: dict[str, Any]) -> None:
    """The KMD SDES parameter is a config, None, or a 40107 naming what is wrong."""
    with contextlib.suppress(MediaObjectIllegalParamError):
        config = sdes_from_param(param)
        if config is not None:
            assert len(config.key) == config.suite.key_length


@given(st.sampled_from([s for s in SUITES.values() if s.profile is not None]), st.data())
def test_fuzz_sdes_crypto_line_round_trip(suite: Any, data: st.DataObject) -> None:
    """Our a=crypto line, written into an SDP and parsed back, gives back our key."""
    key = data.draw(st.binary(min_size=suite.key_length, max_size=suite.key_length))
    tag = data.draw(st.integers(1, 999999999))
    line = SdesConfig(suite, key).crypto_line(tag)
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 5000 RTP/SAVP 0\r\na=crypto:{line.to_value()}\r\n"
    )
    (parsed,) = SessionDescription.parse(sdp).media[0].cryptos
    assert parsed == line
    assert choose_crypto([parsed], suite) == (line, key)


@given(st.text(max_size=120))
def test_fuzz_crypto_attribute_never_raises(value: str) -> None:
    """Any a=crypto value is a crypto line or skipped; its key is usable or None."""
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        f"m=audio 5000 RTP/SAVP 0\r\na=crypto:{value.replace(chr(13), '').replace(chr(10), '')}\r\n"
    )
    try:
        media = SessionDescription.parse(sdp).media[0]
    except KurentoError:
        return
    for crypto in media.cryptos:
        for suite in SUITES.values():
            key = remote_key(crypto, suite)
            assert key is None or len(key) == suite.key_length


@given(st.binary(max_size=300) | st.binary(min_size=1400, max_size=3000), st.booleans())
def test_fuzz_srtp_unprotect_garbage_is_dropped(data: bytes, rtcp: bool) -> None:
    """Forged, truncated or oversized SRTP/SRTCP is dropped (None, counted), never raised
    (pylibsrtp raises ValueError, not its Error, past 1500 bytes)."""
    suite = SUITES["AES_128_CM_HMAC_SHA1_80"]
    pair = SrtpPair(SdesConfig(suite, bytes(30)), bytes(range(30)))
    assert pair.unprotect(data, rtcp) is None
    assert pair.failures == 1


@given(st.text(max_size=120))
def test_fuzz_ice_candidate_parse_or_value_error(value: str) -> None:
    """A candidate parses (and writes back to a line that parses equal) or raises ValueError."""
    try:
        candidate = IceCandidateLine.parse(value)
    except ValueError:
        return
    assert IceCandidateLine.parse(candidate.to_sdp()) == candidate


def _mutated_offer(data: st.DataObject) -> str:
    name = data.draw(st.sampled_from(sorted(OFFERS)))
    lines = list(OFFERS[name])
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        kind = data.draw(st.sampled_from(["replace", "insert", "delete", "duplicate"]))
        text = data.draw(
            st.text(max_size=60)
            | st.sampled_from(lines).map(lambda line: line[: len(line) // 2])
            | st.sampled_from(
                [
                    "m=audio 0 RTP/AVP 0",
                    "m=video 9 UDP/TLS/RTP/SAVPF 96",
                    "a=rtcp:99999",
                    "a=rtcp:0 IN IP4",
                    "c=IN IP4",
                    "a=group:BUNDLE 7 7 7",
                    "a=rtpmap:96 VP8/0",
                    "a=fmtp:96",
                    "a=extmap:300 urn:x",
                    "a=ssrc:notanumber cname:x",
                    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
                    "a=mid:",
                    "a=sctp-port:70000",
                ]
            )
        )
        if kind == "replace":
            lines[index] = text
        elif kind == "insert":
            lines.insert(index, text)
        elif kind == "delete" and len(lines) > 1:
            del lines[index]
        else:
            lines.insert(index, lines[index])
    return "\r\n".join(lines)


@given(st.data())
def test_fuzz_webrtc_answer_plan_raises_only_kurento_errors(data: st.DataObject) -> None:
    """A mutated real offer is planned and answered by the WebRTC planner, or refused with a
    KurentoError (SdpParseError, 40201)."""
    text = _mutated_offer(data)
    try:
        offer = SessionDescription.parse(text)
        lines = plan_answer(offer, LocalPolicy(use_data_channels=True))
    except KurentoError:
        return
    transports = {
        line.transport: LineTransport("u", "p" * 22, ("sha-256", "00:11"), "active")
        for line in lines
    }
    answer = write_webrtc(
        lines, transports, session_version=1, session_id=1, cname="c", stream_id="s"
    ).to_string()
    SessionDescription.parse(answer)


@given(st.data(), st.booleans())
def test_fuzz_plain_answer_plan_raises_only_kurento_errors(data: st.DataObject, srtp: bool) -> None:
    """A mutated real offer is planned and answered by the plain-RTP planner (with and without
    SDES), or refused with a KurentoError; the answer it writes parses."""
    text = _mutated_offer(data)
    sdes = SdesConfig(SUITES["AES_128_CM_HMAC_SHA1_80"], bytes(30)) if srtp else None
    try:
        offer = SessionDescription.parse(text)
        lines = plain_sdp.plan_answer(offer, LocalPolicy(), sdes)
    except KurentoError:
        return
    ports = {line.media.index: plain_sdp.LocalPorts(40000, 40001) for line in lines}
    answer = plain_sdp.write_description(
        lines, ports, address="127.0.0.1", session_id=1, session_version=1, cname="c"
    )
    SessionDescription.parse(answer)
    for line in lines:
        if line.remote.rtp is not None:
            assert 0 <= line.remote.rtp[1] <= 65535


@given(st.data())
def test_fuzz_plain_apply_answer_raises_only_kurento_errors(data: st.DataObject) -> None:
    """A mutated answer applied to our own plain offer narrows it or raises a KurentoError."""
    lines = plain_sdp.plan_local_offer(LocalPolicy(), True, True, None)
    text = _mutated_offer(data)
    with contextlib.suppress(KurentoError):
        plain_sdp.apply_answer(lines, SessionDescription.parse(text), None)


def test_fuzz_offers_corpus_is_loaded() -> None:
    """The mutation corpus is the real offers of tests/protocol/sdp_corpus."""
    assert {"chrome_offer.sdp", "asterisk_offer.sdp", "freeswitch_srtp_hold.sdp"} <= set(OFFERS)
    assert all(len(lines) > 4 for lines in OFFERS.values())
    assert isinstance(Crypto(1, "x", "inline:y").key_base64, str)
