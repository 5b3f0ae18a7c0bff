"""H264 towards a peer that negotiated packetization-mode 0 (single NAL unit packets, RFC 6184
6.2): a mode 1 sender's STAP-A and FU-A packets are taken apart and put back together, NAL units
larger than the sink's mtu go as FU-A fragments (as KMS sends them) with a log line, and what
arrives decodes."""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct

import av
import pytest
from aiortc import RTCRtpSender

from emulator.media.rtp.packet import RtpView, parse_rtp
from emulator.media.rtp.single_nal import SingleNalUnits
from emulator.transport.client import KurentoClient
from tests.media.peers import client_peer, negotiate
from tests.media.rtp_peers import udp_peer


def _packet(payload: bytes, sequence: int, marker: bool = False) -> RtpView:
    head = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, sequence, 9000, 0x1234)
    view = parse_rtp(head + payload)
    assert view is not None
    return view


def _payloads(views: list[RtpView]) -> list[bytes]:
    return [v.media_payload for v in views]


IDR = bytes([0x65]) + bytes(range(200))
SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xD9])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])


def test_stap_a_becomes_one_packet_per_nal_unit() -> None:
    """STAP-A (SPS, PPS): two packets, each one NAL unit, the marker only on the last."""
    stap = bytes([0x78]) + b"".join(struct.pack("!H", len(n)) + n for n in (SPS, PPS))
    packets = SingleNalUnits("sink", 1200).take(_packet(stap, 10, marker=True))
    assert _payloads(packets) == [SPS, PPS]
    assert [p.marker for p in packets] == [False, True]


def test_fu_a_fragments_become_the_nal_unit() -> None:
    """Three FU-A fragments: nothing until the end bit, then the NAL unit with its header."""
    units = SingleNalUnits("sink", 1200)
    indicator, body = (IDR[0] & 0xE0) | 28, IDR[1:]
    parts = [body[:70], body[70:140], body[140:]]
    flags = [0x80, 0x00, 0x40]
    out = [
        units.take(_packet(bytes([indicator, f | 5]) + p, 20 + i, marker=i == 2))
        for i, (f, p) in enumerate(zip(flags, parts, strict=True))
    ]
    assert out[0] == [] and out[1] == []
    assert _payloads(out[2]) == [IDR] and out[2][0].marker


def test_fu_a_with_a_lost_fragment_is_dropped() -> None:
    """A missing middle fragment: the NAL unit cannot be rebuilt and nothing is sent."""
    units = SingleNalUnits("sink", 1200)
    indicator = (IDR[0] & 0xE0) | 28
    assert units.take(_packet(bytes([indicator, 0x85]) + IDR[1:50], 30)) == []
    assert units.take(_packet(bytes([indicator, 0x45]) + IDR[100:], 32)) == []


def test_nal_unit_larger_than_the_mtu_goes_as_fu_a_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Mode 0 has no form for a NAL unit over the mtu: it goes as FU-A fragments, each within
    the mtu, that rebuild it (KMS's payloader does the same), the marker on the last one only,
    and the log says what to negotiate instead; smaller ones pass untouched."""
    units = SingleNalUnits("sink", 100)
    with caplog.at_level(logging.WARNING, logger="emulator.media.rtp.single_nal"):
        fragments = units.take(_packet(IDR, 40, marker=True))
        assert _payloads(units.take(_packet(PPS, 41))) == [PPS]
    assert len(fragments) == 3 and all(len(f.media_payload) <= 100 for f in fragments)
    assert [f.media_payload[0] for f in fragments] == [(IDR[0] & 0xE0) | 28] * 3
    assert [f.media_payload[1] for f in fragments] == [0x85, 0x05, 0x45]
    assert [f.marker for f in fragments] == [False, False, True]
    assert bytes([IDR[0]]) + b"".join(f.media_payload[2:] for f in fragments) == IDR
    rebuilt = SingleNalUnits("again", 1200)  # what a receiver gathers, once sent numbered
    sent = [_packet(f.media_payload, 50 + i, f.marker) for i, f in enumerate(fragments)]
    assert _payloads([v for packet in sent for v in rebuilt.take(packet)]) == [IDR]
    (record,) = caplog.records
    assert "201 bytes" in record.getMessage() and "packetization-mode=1" in record.getMessage()


def _mode_0_offer(port: int) -> str:
    """An old SIP video phone: H264 without fmtp (packetization-mode 0), receive only."""
    return "\r\n".join(
        [
            "v=0",
            "o=- 7 1 IN IP4 127.0.0.1",
            "s=-",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=video {port} RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "a=recvonly",
            "",
        ]
    )


async def test_mode_1_sender_reaches_a_mode_0_peer_as_single_nal_units(
    media_client: KurentoClient,
) -> None:
    """An aiortc H264 sender (mode 1: STAP-A for SPS/PPS, FU-A when large) into an RtpEndpoint
    whose peer offered H264 without fmtp: every packet the peer gets is one NAL unit (types
    1-23), or, for a NAL unit over the mtu, an FU-A fragment (as KMS sends it); numbered
    without gaps, the NAL units decode to pictures."""
    pipeline = await media_client.create("MediaPipeline")
    source = await pipeline.create("WebRtcEndpoint")
    sink = await pipeline.create("RtpEndpoint")
    async with udp_peer() as phone, client_peer(audio=False, video=True) as peer:
        (transceiver,) = peer.pc.getTransceivers()
        h264 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType == "video/H264" and "packetization-mode=1" in str(c.parameters)
        ] or [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        transceiver.setCodecPreferences(h264)
        await sink.invoke("processOffer", offer=_mode_0_offer(phone.port))
        await source.connect(sink, "VIDEO")
        await negotiate(source, peer)
        decoder = av.CodecContext.create("h264", "r")
        rebuilt = SingleNalUnits("phone", 65536)  # FU-A fragments gathered as the phone would
        sequences: list[int] = []
        pictures = 0
        async with asyncio.timeout(30):
            while pictures < 5:
                view = await phone.next_rtp(timeout=20)
                sequences.append(view.sequence)
                for nal in rebuilt.take(view):
                    assert 1 <= nal.media_payload[0] & 0x1F <= 23
                    for packet in decoder.parse(b"\x00\x00\x00\x01" + nal.media_payload):
                        pictures += len(decoder.decode(packet))
    gaps = [b - a for a, b in itertools.pairwise(sequences) if (b - a) & 0xFFFF != 1]
    assert not gaps, sequences
