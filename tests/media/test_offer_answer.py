"""The offer/answer state both SdpEndpoint kinds share, with KMS's error codes."""

from __future__ import annotations

import pytest

from emulator.media.sdp.offer_answer import OfferAnswer
from protocol.errors import RpcError


def _code(call: object) -> int:
    assert callable(call)
    with pytest.raises(RpcError) as caught:
        call()
    return caught.value.code


def test_webrtc_negotiates_once() -> None:
    """processOffer then any new offer: 40208; processAnswer without an offer: 40209."""
    state = OfferAnswer(renegotiates=False)
    assert (_code(state.local), _code(state.remote)) == (40202, 40203)  # nothing negotiated
    state.check_new_offer()
    state.offer_answered("remote", "local")
    assert _code(state.check_new_offer) == 40208
    assert _code(state.check_answer) == 40209
    assert (state.local(), state.remote()) == ("local", "remote")


def test_offer_then_answer_then_a_second_answer() -> None:
    """generateOffer, processAnswer, then a second answer: 40210; an offer meanwhile: 40208."""
    state = OfferAnswer(renegotiates=True)
    state.offer_made("offer")
    assert _code(state.check_new_offer) == 40208
    state.check_answer()
    state.answer_taken("answer")
    assert _code(state.check_answer) == 40210
    state.check_new_offer()  # an RtpEndpoint takes the PBX's re-offer
