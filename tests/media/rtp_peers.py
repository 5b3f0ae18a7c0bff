"""Plain RTP test peers: UDP sockets on ephemeral loopback ports, SDP writing, packet building."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import AudioFrame

from emulator.media.rtp.packet import RtpView, is_rtcp, parse_rtp
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
        # No isinstance check: Python 3.11's selector datagram transport does not subclass
        # asyncio.DatagramTransport (the assert logged an error in every test).
        self.transport = cast(asyncio.DatagramTransport, transport)

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


@dataclass
class TonePeer(ClientPeer):
    """A browser-like peer that offers one audio codec (``mime``, aiortc's names), sends a tone
    and keeps what it hears, mono, at the decoder's rate."""

    mime: str = "audio/PCMU"
    frequency: float = 880.0
    heard: list[np.ndarray[Any, Any]] = field(default_factory=list)
    heard_rate: int = 8000

    def __post_init__(self) -> None:
        super().__post_init__()
        transceiver = self.pc.addTransceiver(ToneTrack(self.frequency), direction="sendrecv")
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == self.mime])

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                channels = len(frame.layout.channels)
                # aiortc's decoders give packed s16: keep the first channel of interleaved stereo.
                self.heard.append(frame.to_ndarray().reshape(-1)[::channels])
                self.heard_rate = frame.sample_rate
                self.frames["audio"] = self.frames.get("audio", 0) + 1
                self._arrived.set()

    def heard_seconds(self, seconds: float = 1.5) -> Callable[[ClientPeer], bool]:
        """A wait_for predicate: that much audio heard."""
        return lambda _: sum(len(x) for x in self.heard) >= seconds * self.heard_rate

    def last_heard(self, seconds: float = 1.0) -> np.ndarray[Any, Any]:
        """The last ``seconds`` of what was heard."""
        return np.concatenate(self.heard)[-int(seconds * self.heard_rate) :]


class PcmuPeer(TonePeer):
    """A TonePeer offering PCMU only (880 Hz)."""


def spy_received(peer: ClientPeer) -> list[RtpView]:
    """Every clear RTP packet the peer's first transceiver receives from now on (a wrapper
    around aiortc's private ``RTCDtlsTransport._handle_rtp_data``)."""
    seen: list[RtpView] = []
    dtls = peer.pc.getTransceivers()[0].receiver.transport
    original = dtls._handle_rtp_data

    async def spy(data: bytes, arrival_time_ms: int) -> None:
        view = parse_rtp(data)
        if view is not None:
            seen.append(view)
            peer._arrived.set()
        await original(data, arrival_time_ms)

    dtls._handle_rtp_data = spy
    return seen


class DtmfInjector:
    """Sends RFC 4733 telephone-event packets in an aiortc sender's RTP stream.

    aiortc cannot send DTMF. This seam wraps its private ``RTCDtlsTransport._send_rtp`` (clear
    packets in, SRTP out): every RTP packet of the sender's SSRC is renumbered on one sequence,
    so that injected events and aiortc's audio share the stream as a browser's would, and events
    take the timestamp of the last audio packet (RFC 4733 2.5.1.2: the event's start).
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        self.transport = sender.transport
        self.ssrc = sender._ssrc
        self.sequence = 1
        self.timestamp: int | None = None
        self.audio_sent = asyncio.Event()
        self._original = self.transport._send_rtp
        self.transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data):
            view = parse_rtp(data)
            if view is not None and view.ssrc == self.ssrc:
                self.timestamp = view.timestamp
                data = self._renumbered(data)
                self.audio_sent.set()
        await self._original(data)

    def _renumbered(self, data: bytes) -> bytes:
        sequence = self.sequence
        self.sequence = (sequence + 1) & 0xFFFF
        return data[:2] + struct.pack("!H", sequence) + data[4:]

    async def send_event(
        self, event: int, payload_type: int, step: int, packets: int = 5, volume: int = 10
    ) -> list[int]:
        """One key press: ``packets`` updates ``step`` apart (duration grows by ``step`` each,
        in the event's clock), the last sent three times with the end bit (RFC 4733 2.5.1.4).
        Returns the durations sent."""
        await asyncio.wait_for(self.audio_sent.wait(), 10)
        assert self.timestamp is not None
        durations = [step * (n + 1) for n in range(packets)]
        sends = [(d, False) for d in durations[:-1]] + [(durations[-1], True)] * 3
        for index, (duration, end) in enumerate(sends):
            head = struct.pack(
                "!BBHII",
                0x80,
                (0x80 if index == 0 else 0) | payload_type,
                0,
                self.timestamp,
                self.ssrc,
            )
            data = self._renumbered(head + dtmf_payload(event, end, volume, duration))
            await self._original(data)
        return durations


def dominant_frequency(samples: np.ndarray[Any, Any], rate: int) -> float:
    """The strongest frequency of a signal (Hann window, real FFT)."""
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(signal))
