"""Plain RTP test peers: UDP sockets on ephemeral loopback ports, SDP writing, packet building."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import AudioFrame

from emulator.media.rtp import RtpView, is_rtcp, parse_rtp
from tests.media.peers import ClientPeer

Address = tuple[str, int]


class UdpPeer(asyncio.DatagramProtocol):
    """A UDP socket on 127.0.0.1 (port picked by the OS) that queues what it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.rtp: asyncio.Queue[tuple[RtpView, Address]] = asyncio.Queue()
        self.rtcp: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.raw: list[tuple[bytes, Address]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.raw.append((data, addr))
        if is_rtcp(data):
            self.rtcp.put_nowait((data, addr))
            return
        view = parse_rtp(data)
        if view is not None:
            self.rtp.put_nowait((view, addr))

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, to: Address) -> None:
        """Send one datagram."""
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def next_rtp(self, timeout: float = 5.0) -> RtpView:
        """The next RTP packet received."""
        view, _ = await asyncio.wait_for(self.rtp.get(), timeout)
        return view


@contextlib.asynccontextmanager
async def udp_peer() -> AsyncIterator[UdpPeer]:
    """A UdpPeer, closed at the end."""
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    peer.transport = transport  # connection_made runs on the next loop iteration
    try:
        yield peer
    finally:
        transport.close()


@dataclass
class RtpSender:
    """Builds consecutive RTP packets of one SSRC."""

    payload_type: int
    ssrc: int = 0x1234ABCD
    sequence: int = 1000
    timestamp: int = 160000
    step: int = 160
    sent: list[bytes] = field(default_factory=list)

    def packet(self, payload: bytes = b"\xff" * 160, marker: bool = False, pt: int = -1) -> bytes:
        """The next packet (timestamp advanced by ``step``)."""
        pt = self.payload_type if pt < 0 else pt
        head = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, self.sequence, self.timestamp, self.ssrc
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.step) & 0xFFFFFFFF
        data = head + payload
        self.sent.append(data)
        return data


def dtmf_payload(event: int, end: bool, volume: int = 10, duration: int = 800) -> bytes:
    """An RFC 4733 telephone-event payload."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def peer_sdp(
    port: int,
    *,
    audio: str = "0 PCMU/8000",
    dtmf: str | None = "101 telephone-event/8000",
    proto: str = "RTP/AVP",
    direction: str = "sendrecv",
    rtcp_port: int | None = None,
    mux: bool = True,
    crypto: str | None = None,
    address: str = "127.0.0.1",
    version: int = 1,
    video: str | None = None,
    video_port: int = 0,
) -> str:
    """A PBX-style offer or answer: one audio line (and optionally video)."""
    codecs = [c.strip() for c in audio.split(",")]
    if dtmf:
        codecs.append(dtmf)
    pts = [c.split()[0] for c in codecs]
    lines = [
        "v=0",
        f"o=pbx 4242 {version} IN IP4 {address}",
        "s=call",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} {proto} {' '.join(pts)}",
    ]
    for codec in codecs:
        lines.append(f"a=rtpmap:{codec}")
        if "telephone-event" in codec:
            lines.append(f"a=fmtp:{codec.split()[0]} 0-16")
    if rtcp_port is not None:
        lines.append(f"a=rtcp:{rtcp_port}")
    if mux:
        lines.append("a=rtcp-mux")
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    lines.append(f"a={direction}")
    if video:
        pt = video.split()[0]
        lines += [
            f"m=video {video_port} {proto} {pt}",
            f"a=rtpmap:{video}",
            f"a=fmtp:{pt} packetization-mode=1;profile-level-id=42e01f",
            f"a={direction}",
        ]
    return "\r\n".join(lines) + "\r\n"


class ToneTrack(AudioStreamTrack):
    """aiortc's paced 8 kHz audio, filled with a sine tone."""

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self.sample = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        count = frame.samples
        t = (np.arange(count) + self.sample) / 8000
        self.sample += count
        tone = (np.sin(2 * np.pi * self.frequency * t) * 8000).astype("<i2")
        frame.planes[0].update(tone.tobytes())
        frame.time_base = fractions.Fraction(1, 8000)
        return frame


class PcmuPeer(ClientPeer):
    """A browser-like peer that offers PCMU only, sends a tone and keeps what it hears."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.heard: list[np.ndarray[Any, Any]] = []
        transceiver = self.pc.addTransceiver(ToneTrack(880), direction="sendrecv")
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "audio/PCMU"])

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.heard.append(frame.to_ndarray().reshape(-1))
                self.frames["audio"] = self.frames.get("audio", 0) + 1
                self._arrived.set()

    def heard_seconds(self) -> Callable[[ClientPeer], bool]:
        """A wait_for predicate: 1.5 s of audio heard."""
        return lambda _: sum(len(x) for x in self.heard) >= 12000


def dominant_frequency(samples: np.ndarray[Any, Any], rate: int) -> float:
    """The strongest frequency of a signal (Hann window, real FFT)."""
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(signal))
