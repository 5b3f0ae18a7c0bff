"""Demuxed frames -> RTP: what the PlayerEndpoint and the HttpPostEndpoint share.

Both demux a container with PyAV and send the codecs the pipeline carries as they were encoded:

- ``StreamPacketizer``: one demuxed stream of a forwarded codec -> RTP payloads per frame. VP8
  (RFC 7741) and H264 (RFC 6184: STAP-A, FU-A) go through aiortc's packetisers; H264 in avcC
  (MP4, Matroska: length-prefixed NAL units, SPS/PPS in the extradata) becomes Annex B first,
  with SPS/PPS before each keyframe (``h264_mp4toannexb``); Opus is one frame per RTP packet
  (RFC 7587), so packet durations follow the file.
- ``RtpStamper``: payloads -> ``MediaPacket``s of one outgoing stream (its own SSRC, sequence
  numbers from a random start, timestamps from the media time in the codec's clock from a random
  base, or as an encoder set them, and the ``InboundStream`` that identifies the stream to the
  sinks and counts it); the mixing hubs' and the filters' outputs are such streams too.

Markers: the last packet of a video frame (RFC 7741 4.1, RFC 6184 5.1); the first audio packet
of a talkspurt, i.e. after a start or a seek (RFC 3551 4.1).
"""

from __future__ import annotations

import fractions
import random
import struct
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from emulator.media.flow import MediaPacket
from emulator.media.rtp.packet import FIXED_HEADER, RtpView
from emulator.media.rtp.streams import InboundStream
from protocol.sdp import Codec

OPUS = Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
VP8 = Codec(96, "VP8", 90000)
H264 = Codec(
    102,
    "H264",
    90000,
    None,
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
)
FORWARDED = {"vp8": VP8, "h264": H264, "opus": OPUS}
"""Codecs sent as they were encoded, by PyAV codec name (the served codecs of ``served.py``)."""

RtpPayload = tuple[bytes, float, bool]
"""An RTP payload, its media time in seconds, and its marker bit."""

_HEADER = struct.Struct("!BBHII")


def video_payloads(parts: list[bytes], seconds: float) -> list[RtpPayload]:
    """A video frame's packets: the marker on its last one."""
    last = len(parts) - 1
    return [(part, seconds, index == last) for index, part in enumerate(parts)]


@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """One encoded frame of a stream, as RTP payloads."""

    payloads: list[RtpPayload]
    seconds: float
    """The frame's presentation time in seconds, in the stream's own timeline."""
    keyframe: bool


class StreamPacketizer:
    """One demuxed stream of a forwarded codec (``FORWARDED``) -> RTP payloads, frame by frame.

    Args:
        stream: the PyAV stream its packets come from.
        codec: the RTP codec (``FORWARDED[stream.codec_context.name]``).
    """

    def __init__(self, stream: Any, codec: Codec) -> None:
        self.codec = codec
        self.kind = "audio" if codec.name == "opus" else "video"
        self.time_base = stream.time_base or fractions.Fraction(1, 1000)
        self.fresh = True
        self._packetiser: Any = None
        if codec.name == "VP8":
            self._packetiser = Vp8Encoder()  # used for its pack() only: nothing is encoded
        elif codec.name == "H264":
            self._packetiser = H264Encoder()
        self._annexb: Any = None
        extradata = bytes(stream.codec_context.extradata or b"")
        if codec.name == "H264" and extradata[:1] == b"\x01":
            # avcC (ISO 14496-15): RFC 6184 wants NAL units in the stream, SPS/PPS among them.
            self._annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", stream)

    def seconds(self, pts: int | None) -> float:
        """A timestamp of this stream in seconds."""
        return float((pts or 0) * self.time_base)

    def restart(self) -> None:
        """After a seek or a restart: the next audio packet starts a talkspurt."""
        self.fresh = True

    def frames(self, packet: Any) -> list[PacketizedFrame]:
        """The frames of one demuxed packet, packetised (the flush packets give none)."""
        packets = self._annexb.filter(packet) if self._annexb is not None else [packet]
        out: list[PacketizedFrame] = []
        for item in packets:
            pts = item.pts if item.pts is not None else packet.pts
            if pts is None or item.size == 0:
                continue
            at = self.seconds(pts)
            if self._packetiser is not None:
                parts, _ = self._packetiser.pack(item)
                payloads = video_payloads(parts, at)
            else:
                marker, self.fresh = self.fresh, False
                payloads = [(bytes(item), at, marker)]
            out.append(PacketizedFrame(payloads, at, bool(item.is_keyframe)))
        return out

    def payloads(self, packet: Any) -> list[RtpPayload]:
        """Every RTP payload of one demuxed packet."""
        return [payload for frame in self.frames(packet) for payload in frame.payloads]


def forwarded(stream: Any) -> StreamPacketizer | None:
    """A packetiser for a stream whose codec is forwarded; None for any other stream."""
    if stream.type not in ("audio", "video"):
        return None
    codec = FORWARDED.get(stream.codec_context.name)
    return StreamPacketizer(stream, codec) if codec is not None else None


@dataclass
class RtpStamper:
    """RTP packets of one outgoing stream: own SSRC, continuous sequence numbers, timestamps
    from the media time; the payload type is the codec's (each sink rewrites SSRC, numbers and
    payload type for itself)."""

    kind: str
    codec: Codec
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sequence: int = field(default_factory=lambda: random.getrandbits(16))
    base: int = field(default_factory=lambda: random.getrandbits(32))
    source: InboundStream = field(init=False)
    """Identifies this stream to the sinks (a new upload is a new source) and counts it."""

    def __post_init__(self) -> None:
        self.source = InboundStream(self.ssrc, self.codec.clock_rate, self.kind)

    def packets(self, payloads: list[RtpPayload], arrival: float) -> list[MediaPacket]:
        """The payloads as pipeline packets, entering the server at ``arrival``."""
        clock = self.codec.clock_rate
        return [
            self.packet(payload, (self.base + round(seconds * clock)) & 0xFFFFFFFF, marker, arrival)
            for payload, seconds, marker in payloads
        ]

    def packet(self, payload: bytes, timestamp: int, marker: bool, arrival: float) -> MediaPacket:
        """One payload whose RTP timestamp its encoder set (a mixer's clock), as a pipeline
        packet."""
        self.sequence = (self.sequence + 1) & 0xFFFF
        payload_type = self.codec.payload_type
        second = (0x80 if marker else 0) | payload_type
        data = _HEADER.pack(0x80, second, self.sequence, timestamp, self.ssrc) + payload
        view = RtpView(
            data, payload_type, marker, self.sequence, timestamp, self.ssrc, FIXED_HEADER, -1
        )
        self.source.received(view, arrival)
        return MediaPacket(self.kind, view, self.codec, self.source, {}, arrival)
