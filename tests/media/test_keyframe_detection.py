"""Keyframe detection on RTP payloads, checked against real encoders' packets (aiortc's VP8 and
H264 encoders and packetisers) and against the payload formats' corner cases."""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from hypothesis import given
from hypothesis import strategies as st

from emulator.media.rtp.keyframes import (
    h264_keyframe,
    keyframe_detector,
    vp8_keyframe,
    vp9_keyframe,
)


def _encoded(mime: str, frames: int, force_at: int) -> list[tuple[int, list[bytes]]]:
    """(frame index, RTP payloads) of ``frames`` moving frames; frame ``force_at`` is forced
    to be a keyframe, as a PLI does."""
    codec = RTCRtpCodecParameters(mimeType=mime, clockRate=90000, payloadType=96)
    encoder = get_encoder(codec)
    rng = np.random.default_rng(7)
    out = []
    for index in range(frames):
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == force_at)
        out.append((index, payloads))
    return out


@pytest.mark.parametrize(
    ("mime", "detect"), [("video/VP8", vp8_keyframe), ("video/H264", h264_keyframe)]
)
def test_real_encoder_keyframes_are_found_and_delta_frames_are_not(
    mime: str, detect: object
) -> None:
    """Only the first frame and the forced one start with a keyframe packet; no other packet
    of any frame reads as one."""
    assert callable(detect)
    frames = _encoded(mime, 8, force_at=5)
    starts = [index for index, payloads in frames if detect(payloads[0])]
    assert starts == [0, 5]
    for index, payloads in frames:
        if index not in (0, 5):
            assert not any(detect(p) for p in payloads)


def test_vp8_descriptor_variants() -> None:
    """RFC 7741 descriptors: without X, with a 7-bit and a 15-bit PictureID, with TL0PICIDX
    and TID; only the start of partition 0 with P clear is a keyframe."""
    key, delta = 0x00, 0x01  # first byte of the VP8 payload header: P (inverse key frame) bit
    assert vp8_keyframe(bytes([0x10, key]))
    assert not vp8_keyframe(bytes([0x10, delta]))
    assert vp8_keyframe(bytes([0x90, 0x80, 0x05, key]))  # X, I, 7-bit PictureID
    assert vp8_keyframe(bytes([0x90, 0x80, 0x81, 0x23, key]))  # 15-bit PictureID
    assert vp8_keyframe(bytes([0x90, 0xE0, 0x81, 0x23, 0x07, 0x40, key]))  # + L and T
    assert not vp8_keyframe(bytes([0x00, key]))  # not the start of a partition
    assert not vp8_keyframe(bytes([0x11, key]))  # start of partition 1
    assert not vp8_keyframe(b"")
    assert not vp8_keyframe(bytes([0x90, 0x80]))  # truncated


def test_vp9_descriptor_variants() -> None:
    """RFC 9628: B set and P clear starts a keyframe; on spatial layer 0 only."""
    assert vp9_keyframe(bytes([0x08]))  # B
    assert not vp9_keyframe(bytes([0x48]))  # B and P
    assert not vp9_keyframe(bytes([0x00]))  # not the start of a frame
    assert vp9_keyframe(bytes([0xA8, 0x81, 0x23, 0x00, 0x00]))  # I (15 bits), L, SID 0
    assert not vp9_keyframe(bytes([0xA8, 0x05, 0x02, 0x00]))  # SID 1
    assert not vp9_keyframe(b"")


def test_h264_packetisations() -> None:
    """RFC 6184: single NAL (IDR, SPS), STAP-A holding an SPS, FU-A starting an IDR."""
    assert h264_keyframe(bytes([0x65, 0x88]))  # IDR slice
    assert h264_keyframe(bytes([0x67, 0x42]))  # SPS
    assert not h264_keyframe(bytes([0x41, 0x9A]))  # non-IDR slice
    stap = bytes([0x78]) + struct.pack("!H", 2) + bytes([0x67, 0x42])
    assert h264_keyframe(stap + struct.pack("!H", 2) + bytes([0x68, 0xCE]))
    assert not h264_keyframe(bytes([0x78]) + struct.pack("!H", 2) + bytes([0x41, 0x9A]))
    assert h264_keyframe(bytes([0x7C, 0x85, 0x88]))  # FU-A, start, IDR
    assert not h264_keyframe(bytes([0x7C, 0x05, 0x88]))  # FU-A continuation
    assert not h264_keyframe(bytes([0x7C, 0x81, 0x88]))  # FU-A start of a non-IDR slice


def test_codecs_without_a_reader_count_every_packet() -> None:
    """H265 and AV1 cannot be read: a sink never waits for a keyframe it could not see."""
    assert keyframe_detector("H265")(b"\x00")
    assert keyframe_detector("VP8") is vp8_keyframe
    assert keyframe_detector("h264") is h264_keyframe


@given(st.binary(max_size=64))
def test_detectors_never_raise_on_garbage(payload: bytes) -> None:
    """Any payload (truncated, hostile) gets an answer, not an exception, on the hot path."""
    for detect in (vp8_keyframe, vp9_keyframe, h264_keyframe):
        assert detect(payload) in (True, False)
