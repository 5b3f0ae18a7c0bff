"""Oversized video packets from a plain RTP peer, split for the sink's leg."""

from __future__ import annotations

import struct

from emulator.media.rtp.fragmentation import MAX_PAYLOAD, sized_for_leg, split_video
from emulator.media.rtp.packet import RtpView, parse_rtp
from emulator.media.rtp.streams import OutboundStream


def packet(payload: bytes, marker: bool = True, sequence: int = 10) -> RtpView:
    head = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, sequence, 9000, 0xABC)
    view = parse_rtp(head + payload)
    assert view is not None
    return view


def reassemble_fu_a(pieces: list[RtpView]) -> bytes:
    payloads = [p.payload for p in pieces]
    assert all(p[0] & 0x1F == 28 for p in payloads)
    nal_header = (payloads[0][0] & 0xE0) | (payloads[0][1] & 0x1F)
    return bytes([nal_header]) + b"".join(p[2:] for p in payloads)


def test_small_packets_pass_untouched() -> None:
    view = packet(b"\x65" + b"x" * 1000)
    assert sized_for_leg(view, "H264", "sink") == [view]


def test_h264_single_nal_becomes_fu_a_with_marker_on_the_last() -> None:
    nal = b"\x65" + bytes(range(256)) * 12
    pieces = split_video(packet(nal), "H264")
    assert pieces is not None and len(pieces) == 3
    assert all(len(p.payload) <= MAX_PAYLOAD for p in pieces)
    assert [p.payload[1] & 0xC0 for p in pieces] == [0x80, 0x00, 0x40]
    assert [p.marker for p in pieces] == [False, False, True]
    assert [bool(p.data[1] & 0x80) for p in pieces] == [False, False, True]
    assert reassemble_fu_a(pieces) == nal


def test_h264_fu_a_middle_fragment_keeps_neither_start_nor_end() -> None:
    body = b"y" * 1450
    pieces = split_video(packet(bytes([0x7C, 0x05]) + body, marker=False), "H264")
    assert pieces is not None and len(pieces) == 2
    assert [p.payload[1] for p in pieces] == [0x05, 0x05]
    assert b"".join(p.payload[2:] for p in pieces) == body


def test_vp8_pieces_repeat_the_descriptor_with_start_bit_on_the_first() -> None:
    descriptor = bytes([0x90, 0x80, 0x81, 0x23])  # X, S, PID 0; I with a 15-bit picture id
    frame = bytes(range(200)) * 8
    pieces = split_video(packet(descriptor + frame), "VP8")
    assert pieces is not None and len(pieces) == 2
    assert pieces[0].payload[:4] == descriptor
    assert pieces[1].payload[:4] == bytes([0x80, 0x80, 0x81, 0x23])
    assert b"".join(p.payload[4:] for p in pieces) == frame


def test_unsplittable_packets_are_dropped() -> None:
    assert sized_for_leg(packet(b"\x00" * 1500), "PCMU", "sink") == []


def test_pieces_take_consecutive_sequence_numbers_and_later_packets_follow() -> None:
    stream = OutboundStream(ssrc=1, clock_rate=90000, kind="video", sequence=500)
    source = object()
    pieces = split_video(packet(b"\x65" + b"z" * 2500, sequence=10), "H264")
    assert pieces is not None
    numbers = []
    for index, piece in enumerate(pieces):
        if index:
            stream.split_packet()
        numbers.append(stream.next_numbers(source, piece, 0.0)[0])
    following = stream.next_numbers(source, packet(b"\x41", sequence=11), 0.0)[0]
    assert [*numbers, following] == [501, 502, 503, 504]


def test_the_sinks_mtu_bounds_every_piece() -> None:
    """A smaller ``mtu`` gives more, smaller pieces of the same NAL unit."""
    nal = b"\x65" + bytes(range(256)) * 8
    pieces = split_video(packet(nal), "H264", max_payload=300)
    assert pieces is not None and len(pieces) == 7
    assert all(len(p.payload) <= 300 for p in pieces)
    assert reassemble_fu_a(pieces) == nal
