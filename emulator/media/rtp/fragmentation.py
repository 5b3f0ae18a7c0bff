"""Video packets too large for the sink's leg, split into several (RFC 6184 FU-A, RFC 7741).

A plain RTP peer packs video up to its own MTU (ffmpeg: 1472-byte datagrams). Forwarded as they
are to a WebRTC peer they would not fit SRTP's buffer (libsrtp takes 1356 bytes with its trailer)
nor a browser's expectation of about 1200. KMS never forwards RTP packets, it depayloads and
payloads again at MTU 1200 (``rtph264pay``/``rtpvp8pay``); the emulator forwards encoded packets,
so only those over the sink's ``mtu`` (KMD BaseRtpEndpoint: "the maximum size that will be used by
RTP payloads", ``MAX_PAYLOAD`` by default) are cut here: the frame's bytes are unchanged, the RTP
marker moves to the last piece, and the sink's stream numbers the pieces consecutively.
"""

from __future__ import annotations

import logging
import struct

from emulator.media.rtp.keyframes import vp8_descriptor_size
from emulator.media.rtp.packet import RtpView

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 1200
"""Largest RTP payload sent on a leg by default, as KMS's payloaders (``mtu=1200``)."""
MIN_PAYLOAD = 64
"""The smallest ``mtu`` a leg splits for (a VP8 descriptor and FU-A headers must still fit)."""

_H264_FU_A = 28
_H264_STAP_A = 24


def sized_for_leg(
    view: RtpView, codec: str, sink: str, max_payload: int = MAX_PAYLOAD
) -> list[RtpView]:
    """The packet itself when its payload fits ``max_payload``, else its pieces; none (the
    packet is dropped, with a log line) when it cannot be split."""
    if len(view.data) - view.header_end <= max_payload:
        return [view]
    pieces = split_video(view, codec, max_payload)
    if pieces is None:
        logger.warning(
            "! %s dropped a %s packet of %d bytes: too large for the leg, cannot be split",
            sink,
            codec,
            len(view.data),
        )
        return []
    return pieces


def split_video(view: RtpView, codec: str, max_payload: int = MAX_PAYLOAD) -> list[RtpView] | None:
    """The packet cut into pieces of at most ``max_payload`` payload bytes, or None when the
    codec (or its payload structure) cannot be split: the caller drops the packet.

    Args:
        view: an oversized packet.
        codec: the codec name of its payload type (``H264``, ``VP8``).
        max_payload: the sink's ``mtu`` (at least ``MIN_PAYLOAD``).
    """
    payload = view.media_payload
    name = codec.upper()
    size = max(max_payload, MIN_PAYLOAD)
    if name == "H264":
        pieces = _split_h264(payload, size)
    elif name == "VP8":
        pieces = _split_vp8(payload, size)
    else:
        return None
    if not pieces:
        return None
    head = bytearray(view.data[: view.header_end])
    head[0] &= 0xDF  # padding was removed
    views: list[RtpView] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        head[1] = (head[1] & 0x7F) | (0x80 if last and view.marker else 0)
        data = bytes(head) + piece
        views.append(
            RtpView(
                data,
                view.payload_type,
                view.marker and last,
                view.sequence,
                view.timestamp,
                view.ssrc,
                view.header_end,
                view.ext_start,
            )
        )
    return views


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _split_h264(payload: bytes, size: int) -> list[bytes] | None:
    """RFC 6184: a single NAL unit becomes FU-As, a FU-A smaller FU-As (start bit on the first,
    end bit on the last, as the original had them), a STAP-A its NAL units."""
    if not payload:
        return None
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return _fu_a(payload[0], payload[1:], size, start=True, end=True)
    if nal_type == _H264_FU_A and len(payload) > 2:
        header = payload[1]
        return _fu_a(
            (payload[0] & 0xE0) | (header & 0x1F),
            payload[2:],
            size,
            start=bool(header & 0x80),
            end=bool(header & 0x40),
        )
    if nal_type == _H264_STAP_A:
        pieces: list[bytes] = []
        offset = 1
        while offset + 2 <= len(payload):
            (nal_size,) = struct.unpack_from("!H", payload, offset)
            nal = payload[offset + 2 : offset + 2 + nal_size]
            offset += 2 + nal_size
            if len(nal) != nal_size or not nal:
                return None
            if len(nal) <= size:  # the leg's limit, not the NAL unit's size
                pieces.append(nal)
            else:
                pieces += _fu_a(nal[0], nal[1:], size, start=True, end=True)
        return pieces
    return None


def _fu_a(nal_header: int, body: bytes, size: int, start: bool, end: bool) -> list[bytes]:
    indicator = (nal_header & 0xE0) | _H264_FU_A
    chunks = _chunks(body, size - 2)
    pieces = []
    for index, chunk in enumerate(chunks):
        flags = (0x80 if start and index == 0 else 0) | (
            0x40 if end and index == len(chunks) - 1 else 0
        )
        pieces.append(bytes([indicator, flags | (nal_header & 0x1F)]) + chunk)
    return pieces


def _split_vp8(payload: bytes, size: int) -> list[bytes] | None:
    """RFC 7741 4.2: every piece repeats the payload descriptor; only the first keeps S."""
    descriptor_size = vp8_descriptor_size(payload)
    if descriptor_size is None or descriptor_size >= len(payload):
        return None
    descriptor, body = payload[:descriptor_size], payload[descriptor_size:]
    rest = bytes([descriptor[0] & 0xEF]) + descriptor[1:]
    chunks = _chunks(body, size - descriptor_size)
    return [(descriptor if i == 0 else rest) + chunk for i, chunk in enumerate(chunks)]
