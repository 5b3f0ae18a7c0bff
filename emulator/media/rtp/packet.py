"""RTP on the hot path: header fields read with one ``struct`` call, rewritten into a new buffer.

Everything per packet is here and kept small; what can be computed once per route (payload type
map, header-extension id map) is computed by the caller once and passed in.
RFC 3550 section 5.1 (header), RFC 8285 (header extensions).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from aiortc.rtp import pack_header_extensions, unpack_header_extensions

_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
FIXED_HEADER = 12


@dataclass(slots=True)
class RtpView:
    """The fields of one RTP packet, and where its payload starts."""

    data: bytes
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    header_end: int
    """Offset of the payload (after CSRCs and header extensions)."""
    ext_start: int
    """Offset of the extension header, or -1 without extensions."""

    @property
    def payload(self) -> bytes:
        """The payload, padding included (what forwarding copies as it is)."""
        return self.data[self.header_end :]

    @property
    def media_payload(self) -> bytes:
        """The payload without RTP padding (RFC 3550 5.1: the last byte counts the padding):
        what a depacketiser, a decoder or a muxer takes. Empty for a padding-only packet (a
        sender's bandwidth probe)."""
        data = self.data
        if data[0] & 0x20 and len(data) > self.header_end:
            return data[self.header_end : max(len(data) - data[-1], self.header_end)]
        return data[self.header_end :]


def parse_rtp(data: bytes) -> RtpView | None:
    """Read an RTP header; None when the datagram is not valid RTP version 2."""
    if len(data) < FIXED_HEADER:
        return None
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != 2:
        return None
    end = FIXED_HEADER + 4 * (first & 0x0F)
    ext_start = -1
    if first & 0x10:
        if len(data) < end + 4:
            return None
        ext_start = end
        _, words = _EXT_HEADER.unpack_from(data, end)
        end += 4 + 4 * words
    if len(data) < end:
        return None
    return RtpView(
        data, second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, end, ext_start
    )


@dataclass(frozen=True, slots=True)
class ExtensionMap:
    """Source extension id -> sink extension id, for one route; unmapped ids are dropped."""

    ids: dict[int, int]
    identity: bool = field(init=False)
    """Whether packets keep their extensions untouched (computed once, read per packet)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", all(k == v for k, v in self.ids.items()))


def rewrite_rtp(
    view: RtpView,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    extensions: ExtensionMap,
) -> bytes:
    """A copy of the packet with new PT, sequence, timestamp, SSRC and mapped extensions."""
    data = view.data
    marker = 0x80 if view.marker else 0
    if view.ext_start < 0 or (extensions.identity and _all_mapped(view, extensions)):
        head = _FIXED.pack(data[0], marker | payload_type, sequence, timestamp & 0xFFFFFFFF, ssrc)
        return head + data[FIXED_HEADER:]
    return _rewrite_with_extensions(view, payload_type, sequence, timestamp, ssrc, extensions)


def _all_mapped(view: RtpView, extensions: ExtensionMap) -> bool:
    data, ids = view.data, extensions.ids
    profile, _ = _EXT_HEADER.unpack_from(data, view.ext_start)
    if profile != 0xBEDE:
        return all(x_id in ids for x_id, _ in _extensions_of(view))
    # One-byte headers (RFC 8285 4.2), read in place: no list of (id, bytes) per packet.
    position, end = view.ext_start + 4, view.header_end
    while position < end:
        byte = data[position]
        if byte == 0:
            position += 1  # padding
            continue
        x_id = byte >> 4
        if x_id == 15:
            break
        if x_id not in ids:
            return False
        position += (byte & 0x0F) + 2
    return True


def _extensions_of(view: RtpView) -> list[tuple[int, bytes]]:
    profile, _ = _EXT_HEADER.unpack_from(view.data, view.ext_start)
    try:
        return unpack_header_extensions(profile, view.data[view.ext_start + 4 : view.header_end])
    except ValueError:
        return []


def _rewrite_with_extensions(
    view: RtpView, payload_type: int, sequence: int, timestamp: int, ssrc: int, ext: ExtensionMap
) -> bytes:
    data = view.data
    kept = [(ext.ids[x_id], value) for x_id, value in _extensions_of(view) if x_id in ext.ids]
    profile, block = pack_header_extensions(kept)
    csrcs = data[FIXED_HEADER : view.ext_start]
    first = data[0] & 0xEF
    marker = 0x80 if view.marker else 0
    if kept:
        first |= 0x10
        extension = _EXT_HEADER.pack(profile, len(block) // 4) + block
    else:
        extension = b""
    head = _FIXED.pack(first, marker | payload_type, sequence, timestamp & 0xFFFFFFFF, ssrc)
    return head + csrcs + extension + data[view.header_end :]


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: RTCP packet types 192-223 share the port with RTP."""
    return len(data) > 1 and 192 <= data[1] <= 223


def sequence_delta(newer: int, older: int) -> int:
    """``newer - older`` in 16-bit sequence space, in -32768..32767."""
    return ((newer - older + 0x8000) & 0xFFFF) - 0x8000
