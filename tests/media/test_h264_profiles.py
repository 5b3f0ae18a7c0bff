"""H264 ``profile-level-id`` as KMS applies it: the SDP agent takes every offered H264 payload type
by name and answers with the offered fmtp; when media flows, a sink's payload type carries a
stream of its own profile or constrained-baseline, at its level or below unless
``level-asymmetry-allowed=1`` (GStreamer's rtph264pay), which steers which of a sink's H264
payload types a source's packets take. Offers from Chrome, Firefox, Safari and an Android SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.media.sdp.h264 import H264Profile, carries
from emulator.media.sdp.negotiation import LocalPolicy, MediaLine, plan_answer
from emulator.media.session.rtp import matching_payload_type
from protocol.sdp import Codec, SessionDescription

CORPUS = Path(__file__).resolve().parents[1] / "protocol" / "sdp_corpus"


def _h264(fmtp: str | None, payload_type: int = 100) -> Codec:
    return Codec(payload_type, "H264", 90000, None, fmtp)


@pytest.mark.parametrize(
    ("profile_level_id", "profile", "level"),
    [
        ("42e01f", "constrained-baseline", 31),  # Chrome, Firefox, Safari, Android
        ("42c01f", "constrained-baseline", 31),  # what x264's baseline (aiortc) writes in SPS
        ("42001f", "baseline", 31),  # Chrome, aiortc
        ("4d001f", "main", 31),  # Chrome
        ("4D0028", "main", 40),  # SIP phones, upper case
        ("640c1f", "constrained-high", 31),  # Safari, Android
        ("64001f", "high", 31),
        ("640832", "progressive-high", 50),
        ("42f00b", "constrained-baseline", 9),  # level 1b
        ("42000a", "baseline", 10),  # RFC 6184's default when absent
    ],
)
def test_h264_profile_level_id_read_as_gstreamer_names_it(
    profile_level_id: str, profile: str, level: int
) -> None:
    """profile_idc and constraint flags give GStreamer's profile names; level_idc the level."""
    assert H264Profile.parse(profile_level_id) == H264Profile(profile, level)


@pytest.mark.parametrize("bad", ["", "42e0", "zz001f", "42e01f00", "ff001f"])
def test_h264_profile_level_id_unreadable(bad: str) -> None:
    """Not six hex digits, or a profile_idc no profile has: nothing to go by (None)."""
    assert H264Profile.parse(bad) is None


@pytest.mark.parametrize(
    ("sink", "source", "expected"),
    [
        ("profile-level-id=42001f", "profile-level-id=42e01f", True),  # CB into baseline
        ("profile-level-id=42e01f", "profile-level-id=42c01f", True),  # both CB
        ("profile-level-id=4d001f", "profile-level-id=42e01f", True),  # CB into main
        ("profile-level-id=640c1f", "profile-level-id=42e01f", True),  # CB into c-high
        ("profile-level-id=42e01f", "profile-level-id=42001f", False),  # baseline into CB
        ("profile-level-id=42e01f", "profile-level-id=640c1f", False),  # high into CB
        ("profile-level-id=4d001f", "profile-level-id=64001f", False),  # high into main
        ("profile-level-id=42e00a", "profile-level-id=42e01f", False),  # level 3.1 into 1.0
        (
            "level-asymmetry-allowed=1;profile-level-id=42e00a",
            "profile-level-id=42e01f",
            True,
        ),
        # without profile-level-id, rtph264pay restricts nothing (the old Android offer)
        (None, "profile-level-id=640c1f", True),
        ("profile-level-id=42e01f", "packetization-mode=1", True),
    ],
)
def test_h264_sink_carries_what_rtph264pay_accepts(
    sink: str | None, source: str | None, expected: bool
) -> None:
    """Same profile or constrained-baseline; a higher level only with level asymmetry."""
    assert carries(_h264(sink), _h264(source)) is expected


def _video_line(fixture: str) -> MediaLine:
    offer = SessionDescription.parse((CORPUS / fixture).read_text())
    lines = plan_answer(offer, LocalPolicy())
    (video,) = [line for line in lines if line.kind == "video"]
    assert video.accepted
    return video


def _offered_h264(fixture: str) -> dict[int, str | None]:
    offer = SessionDescription.parse((CORPUS / fixture).read_text())
    video = next(m for m in offer.media if m.kind == "video")
    return {c.payload_type: c.fmtp for c in video.codecs if c.name == "H264"}


@pytest.mark.parametrize(
    "fixture",
    ["chrome_offer.sdp", "firefox_offer.sdp", "safari17_offer.sdp", "android_sdk_offer.sdp"],
)
def test_every_offered_h264_profile_is_answered_with_its_own_fmtp(fixture: str) -> None:
    """KMS's SDP agent matches H264 by name: every offered H264 payload type (any profile, mode
    0 or 1) is in the answer, with the offered profile-level-id and fmtp unchanged."""
    line = _video_line(fixture)
    answered = {c.payload_type: c.fmtp for c in line.codecs if c.name == "H264"}
    assert answered == _offered_h264(fixture)


@pytest.mark.parametrize(
    ("fixture", "source_fmtp", "expected"),
    [
        # Safari lists Constrained High (96) before Constrained Baseline (98): each its own
        ("safari17_offer.sdp", "packetization-mode=1;profile-level-id=640c1f", 96),
        ("safari17_offer.sdp", "packetization-mode=1;profile-level-id=42e01f", 98),
        # Baseline: no exact match; Constrained High cannot carry it, nor can CB: the first
        ("safari17_offer.sdp", "packetization-mode=1;profile-level-id=42001f", 96),
        # Main into Firefox, which offered CB alone: the first in its mode
        ("firefox_offer.sdp", "packetization-mode=1;profile-level-id=4d001f", 126),
        # the Android SDK lists Constrained Baseline (100) before Constrained High (102)
        ("android_sdk_offer.sdp", "packetization-mode=1;profile-level-id=640c1f", 102),
        ("android_sdk_offer.sdp", "packetization-mode=1;profile-level-id=42e01f", 100),
        # Main fits neither: the first in the source's mode
        ("android_sdk_offer.sdp", "packetization-mode=1;profile-level-id=4d001f", 100),
        # Firefox: 42e01f in mode 1 (126) and mode 0 (97): the mode decides first
        ("firefox_offer.sdp", "packetization-mode=0;profile-level-id=42e01f", 97),
        ("firefox_offer.sdp", "packetization-mode=1;profile-level-id=42001f", 126),
    ],
)
def test_source_takes_the_sink_payload_type_whose_profile_carries_it(
    fixture: str, source_fmtp: str, expected: int
) -> None:
    """Among a sink's H264 payload types, a source's packets take one in their packetization
    mode of their own profile, else one whose profile carries theirs, else the first in their
    mode."""
    line = _video_line(fixture)
    assert matching_payload_type(line, _h264(source_fmtp, 109)) == expected
