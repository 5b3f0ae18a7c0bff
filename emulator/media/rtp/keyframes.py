"""Whether an RTP packet starts a video keyframe, read from its payload without decoding.

A sink that joins a running stream (a new connection, a switched source, a transcoder's first
output) cannot decode until a keyframe reaches it; the sink keeps asking its source until one has
been sent to it (``session.rtp.KeyframeWait``). This module answers "was that the keyframe?" per
packet, from the payload formats: VP8 (RFC 7741 4.2 and 4.3, RFC 6386 9.1), VP9 (RFC 9628 4.2)
and H264 (RFC 6184 5.6 to 5.8: an IDR slice or a sequence parameter set, which senders put first).
Codecs it cannot read (H265, AV1) count every packet as a keyframe: waiting for one that is never
recognised would be worse than a grey start.
"""

from __future__ import annotations

from collections.abc import Callable

H264_IDR = 5
H264_SPS = 7
H264_STAP_A = 24
H264_FU_A = 28


def vp8_descriptor_size(payload: bytes) -> int | None:
    """Bytes of the RFC 7741 4.2 payload descriptor that starts ``payload``; None when it is
    truncated."""
    if not payload:
        return None
    size = 1
    if payload[0] & 0x80:  # X: extended control bits
        if len(payload) < 2:
            return None
        extended = payload[1]
        size = 2
        if extended & 0x80:  # I: PictureID, 7 or 15 bits
            if len(payload) <= size:
                return None
            size += 2 if payload[size] & 0x80 else 1
        if extended & 0x40:  # L: TL0PICIDX
            size += 1
        if extended & 0x30:  # T or K: TID/Y/KEYIDX
            size += 1
    return size


def vp8_keyframe(payload: bytes) -> bool:
    """The first packet of a VP8 keyframe: start of partition 0 with the P bit clear."""
    size = vp8_descriptor_size(payload)
    if size is None or not payload[0] & 0x10 or payload[0] & 0x07:
        return False  # S: start of a partition; PID 0: the first partition
    return len(payload) > size and not payload[size] & 0x01  # P: inverse key frame flag


def vp9_keyframe(payload: bytes) -> bool:
    """The start of a VP9 picture that is not inter-predicted, on its base spatial layer."""
    if not payload:
        return False
    first = payload[0]
    if first & 0x40 or not first & 0x08:  # P: inter-picture predicted; B: start of a frame
        return False
    if not first & 0x20:  # L: no layer indices, a single layer
        return True
    offset = 1
    if first & 0x80:  # I: PictureID, 7 or 15 bits
        if len(payload) <= offset:
            return False
        offset += 2 if payload[offset] & 0x80 else 1
    return len(payload) > offset and (payload[offset] >> 1) & 0x07 == 0  # SID 0


def h264_keyframe(payload: bytes) -> bool:
    """A packet carrying an IDR slice or an SPS (whole, aggregated or the first fragment)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (H264_IDR, H264_SPS):
        return True
    if nal_type == H264_STAP_A:
        return _stap_a_has_keyframe(payload)
    if nal_type == H264_FU_A:
        return len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F == H264_IDR
    return False


def _stap_a_has_keyframe(payload: bytes) -> bool:
    offset = 1
    while offset + 2 < len(payload):
        size = int.from_bytes(payload[offset : offset + 2], "big")
        if payload[offset + 2] & 0x1F in (H264_IDR, H264_SPS):
            return True
        offset += 2 + size
    return False


def _always(_: bytes) -> bool:
    return True


_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "vp8": vp8_keyframe,
    "vp9": vp9_keyframe,
    "h264": h264_keyframe,
}


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    """The keyframe test for a video codec's RTP payloads (every packet counts for unknown ones)."""
    return _DETECTORS.get(codec_name.lower(), _always)
