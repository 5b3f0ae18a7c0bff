"""H264 for a sink that negotiated packetization-mode 0 (RFC 6184 6.2: single NAL unit packets
only): aggregation packets (STAP-A) are taken apart and fragmented NAL units (FU-A) put back
together, so that every packet carries one whole NAL unit.

A NAL unit larger than the sink's ``mtu`` has no mode 0 form (mode 0 forbids FU-A): it is sent as
FU-A fragments anyway, as KMS's payloader sends every large NAL unit whatever the peer negotiated
(most mode 0 peers take them; a NAL unit dropped instead would leave the peer without keyframes),
with a log line that says so and what the peer should negotiate instead. Old SIP video phones and
Android clients that only take mode 0 are why the rest exists: KMS sends them STAP-A too.
"""

from __future__ import annotations

import logging
import struct

from emulator.media.rtp.packet import RtpView

logger = logging.getLogger(__name__)

_STAP_A = 24
_FU_A = 28


class SingleNalUnits:
    """Turns one source's mode 1 H264 packets into single NAL unit packets (stateful: FU-A
    fragments are gathered until their end bit)."""

    def __init__(self, sink: str, max_payload: int) -> None:
        self.sink = sink
        self.max_payload = max_payload
        self._fragments: list[bytes] = []
        self._header = 0
        self._next_sequence: int | None = None
        self._warned = 0

    def take(self, view: RtpView) -> list[RtpView]:
        """The single NAL unit packets this packet completes (none while a FU-A is gathered,
        for a NAL unit too large for the sink, or for a fragment whose predecessor was lost)."""
        payload = view.media_payload
        if not payload:
            return []
        nal_type = payload[0] & 0x1F
        if nal_type == _STAP_A:
            nals = _stap_a_units(payload)
        elif nal_type == _FU_A:
            nals = self._gather(view, payload)
        elif 1 <= nal_type <= 23:
            nals = [payload]
        else:
            nals = []  # MTAP, FU-B, STAP-B: modes 1 and 2 only, never sent by mode 1 senders
        payloads = [part for nal in nals for part in self._sized(nal)]
        return _packets(view, payloads)

    def _gather(self, view: RtpView, payload: bytes) -> list[bytes]:
        if len(payload) < 3:
            return []
        indicator, header = payload[0], payload[1]
        if header & 0x80:  # start: a new NAL unit
            self._header = (indicator & 0xE0) | (header & 0x1F)
            self._fragments = [payload[2:]]
        elif self._fragments and self._next_sequence == view.sequence:
            self._fragments.append(payload[2:])
        else:
            self._fragments = []  # a lost fragment: the NAL unit cannot be rebuilt
            return []
        self._next_sequence = (view.sequence + 1) & 0xFFFF
        if not header & 0x40:
            return []
        nal = bytes([self._header]) + b"".join(self._fragments)
        self._fragments = []
        return [nal]

    def _sized(self, nal: bytes) -> list[bytes]:
        """The NAL unit as one payload, or as FU-A fragments when it is over the mtu."""
        if len(nal) <= self.max_payload:
            return [nal]
        self._warned += 1
        if self._warned in (1, 10, 100) or self._warned % 1000 == 0:
            logger.warning(
                "! %s sent an H264 NAL unit of %d bytes as FU-A fragments (%d so far), as KMS "
                "does: it is larger than the mtu %d and its peer negotiated packetization-mode "
                "0, which has no other form for it (negotiate packetization-mode=1, or raise "
                "the endpoint's mtu)",
                self.sink,
                len(nal),
                self._warned,
                self.max_payload,
            )
        return _fu_a(nal, self.max_payload)


def _fu_a(nal: bytes, max_payload: int) -> list[bytes]:
    """RFC 6184 5.8: the NAL unit's body in pieces of at most ``max_payload - 2`` bytes, each
    behind an FU indicator (the NAL header's F and NRI, type 28) and an FU header (start, end,
    the NAL type)."""
    indicator = (nal[0] & 0xE0) | _FU_A
    nal_type = nal[0] & 0x1F
    body, size = nal[1:], max_payload - 2
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    last = len(pieces) - 1
    return [
        bytes([indicator, (0x80 if i == 0 else 0) | (0x40 if i == last else 0) | nal_type]) + piece
        for i, piece in enumerate(pieces)
    ]


def _stap_a_units(payload: bytes) -> list[bytes]:
    """RFC 6184 5.7.1: 16-bit size, NAL unit, repeated; a truncated one ends the list."""
    nals: list[bytes] = []
    offset = 1
    while offset + 2 <= len(payload):
        (size,) = struct.unpack_from("!H", payload, offset)
        nal = payload[offset + 2 : offset + 2 + size]
        if len(nal) != size or not size:
            break
        nals.append(nal)
        offset += 2 + size
    return nals


def _packets(view: RtpView, nals: list[bytes]) -> list[RtpView]:
    """One packet per NAL unit with the source packet's header; the marker on the last one
    only when the source packet had it."""
    head = bytearray(view.data[: view.header_end])
    head[0] &= 0xDF  # no padding
    packets = []
    for index, nal in enumerate(nals):
        marker = view.marker and index == len(nals) - 1
        head[1] = (head[1] & 0x7F) | (0x80 if marker else 0)
        packets.append(
            RtpView(
                bytes(head) + nal,
                view.payload_type,
                marker,
                view.sequence,
                view.timestamp,
                view.ssrc,
                view.header_end,
                view.ext_start,
            )
        )
    return packets
