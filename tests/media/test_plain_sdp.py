"""Plain RTP offer/answer rules (no sockets): targets, hold, rtcp-mux, SDES choice, DTMF clock."""

from __future__ import annotations

import base64

import pytest

from emulator.media.sdp import plain as plain_sdp
from emulator.media.sdp.negotiation import LocalPolicy, plan_answer
from emulator.media.sdp.sdes import SUITES, SdesConfig, sdes_from_param
from protocol.errors import MediaObjectIllegalParamError
from protocol.sdp import SessionDescription
from tests.media.rtp_peers import peer_sdp


def _parse(text: str) -> SessionDescription:
    return SessionDescription.parse(text)


def test_plain_sdp_target_uses_rtcp_attribute_and_port_plus_one() -> None:
    """RTCP goes to a=rtcp (with its address), else to port + 1, else (mux) to the RTP port."""
    offer = _parse(peer_sdp(5000, mux=False, rtcp_port=6001))
    target = plain_sdp.remote_target(offer, offer.media[0])
    assert (target.rtp, target.rtcp, target.mux) == (
        ("127.0.0.1", 5000),
        ("127.0.0.1", 6001),
        False,
    )
    offer = _parse(peer_sdp(5000, mux=False))
    assert plain_sdp.remote_target(offer, offer.media[0]).rtcp == ("127.0.0.1", 5001)
    offer = _parse(peer_sdp(5000, mux=True))
    assert plain_sdp.remote_target(offer, offer.media[0]).rtcp == ("127.0.0.1", 5000)


def test_plain_sdp_old_style_hold_has_no_target() -> None:
    """RFC 2543 hold (c=0.0.0.0): nothing is sent."""
    offer = _parse(peer_sdp(5000, address="0.0.0.0"))
    lines = plain_sdp.plan_answer(offer, LocalPolicy(), None)
    assert lines[0].media.accepted and lines[0].remote.rtp is None


def test_plain_sdp_sdes_picks_the_line_of_our_suite() -> None:
    """The first a=crypto line of the endpoint's suite is answered with the same tag."""
    sdes = SdesConfig(SUITES["AES_128_CM_HMAC_SHA1_32"], bytes(30))
    key = base64.b64encode(bytes(range(30))).decode()
    offer = peer_sdp(5000, proto="RTP/SAVP", crypto=f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    offer = offer.replace(
        "a=sendrecv", f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^20|1:4\r\na=sendrecv"
    )
    (line,) = plain_sdp.plan_answer(_parse(offer), LocalPolicy(), sdes)
    assert line.local_crypto is not None and line.local_crypto.tag == 2
    assert line.remote_key == bytes(range(30))


def test_sdes_parameter_key_forms() -> None:
    """key (30 characters), keyBase64 (30 bytes) or generated; both at once is refused."""
    text = "a" * 30
    assert sdes_from_param({"crypto": "AES_128_CM_HMAC_SHA1_80", "key": text}).key == text.encode()  # type: ignore[union-attr]
    generated = sdes_from_param({"crypto": "AES_128_CM_HMAC_SHA1_80"})
    assert generated is not None and len(generated.key) == 30
    assert sdes_from_param({}) is None
    with pytest.raises(MediaObjectIllegalParamError, match="not both"):
        sdes_from_param({"crypto": "AES_128_CM_HMAC_SHA1_80", "key": text, "keyBase64": "AA=="})
    with pytest.raises(MediaObjectIllegalParamError, match="without a suite"):
        sdes_from_param({"key": text})


def test_negotiation_takes_telephone_event_at_the_audio_clock() -> None:
    """A browser's telephone-event/48000 comes first; with PCMU the /8000 one is answered."""
    offer = peer_sdp(5000, audio="0 PCMU/8000", dtmf="110 telephone-event/48000")
    offer = offer.replace("m=audio 5000 RTP/AVP 0 110", "m=audio 5000 UDP/TLS/RTP/SAVPF 0 110 126")
    offer = offer.replace("a=sendrecv", "a=rtpmap:126 telephone-event/8000\r\na=sendrecv")
    (line,) = plan_answer(_parse(offer), LocalPolicy())
    assert line.dtmf is not None and (line.dtmf.payload_type, line.dtmf.clock_rate) == (126, 8000)
