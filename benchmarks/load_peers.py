"""Lightweight WebRTC load peers for the throughput and media benchmarks.

A load peer does ICE (aioice) and the DTLS-SRTP handshake (aiortc's ``RTCDtlsTransport``) like a
browser, then leaves aiortc: media is protected with the negotiated pylibsrtp session and sent with
one synchronous ``sendto`` on the nominated pair's socket, and received SRTP is unprotected in the
socket callback. No tracks, no jitter buffer, no codec at run time.

Every packet carries a 17-byte RTP padding trailer (RFC 3550 5.1: padding is encrypted payload
that forwarding leaves untouched): send time (``perf_counter``, CLOCK_MONOTONIC, shared by all
processes), stream id and packet index, then the padding count. The receiver derives one-way
latency and per-window loss from it. Payloads are real Opus and VP8 (encoded once at start-up by
aiortc's encoders) so that a decoding relay can decode them.

The media benchmarks (``media_elements.py``, ``composite.py``) take the peers without workers:
``negotiate`` an endpoint with a peer, ``in_batches`` to set many up, ``PlainStream`` to send as a
browser does (no trailer), ``loopback_only`` to gather as a server on ``lo`` does.

The per-packet work (building, protecting and sending each packet on schedule; reading,
unprotecting and counting what arrives) runs in C where ``benchmarks/_loadgen.c`` was built
(``CompiledSender``, ``generator="compiled"``), so that one generator core offers more than one
server core forwards; ``Sender`` and ``LoadPeer._datagram`` are the Python generator, with the same
counts and the same latency meaning (trailer send time to arrival, both ``perf_counter``).

A worker process (``worker_main``) owns a share of the calls of a run: it signals them to the
system under test, runs the sender schedule and counts what arrives; the parent drives it through
a ``multiprocessing`` pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import gc
import heapq
import json
import os
import random
import re
import socket
import struct
import time
import urllib.request
import uuid
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import aioice.ice
import numpy as np
import pylibsrtp
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)

from benchmarks.control_plane import PreconditionFailed, release_all
from emulator.media.fastpath import srtp_pointer
from emulator.media.legs.aiortc_adapter import (
    gatherer_connection,
    nominated_pairs,
    set_dtls_role,
    srtp_sessions,
)

try:
    from benchmarks import _loadgen
except ImportError as exc:  # not built: no compiler where it was installed
    _loadgen = None  # type: ignore[assignment]
    LOADGEN_IMPORT_ERROR = f"benchmarks._loadgen is not built ({exc}); run make build"
else:
    from pylibsrtp._binding import ffi, lib

    LOADGEN_IMPORT_ERROR = ""
    _loadgen.set_srtp_functions(
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
    )

GENERATORS = ("compiled", "python")
TRAILER = struct.Struct("!dII")
TRAILER_SIZE = TRAILER.size + 1
RTP_HEADER = struct.Struct("!BBHII")
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
OPUS_PT = 111
VP8_PT = 96
T = TypeVar("T")


# -- media ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Pre-encoded frames, each a list of RTP payloads, looped by the senders."""

    kind: str
    frames: list[list[bytes]]
    interval: float
    clock_step: int


def opus_clip(seconds: float = 1.0) -> Clip:
    """20 ms Opus frames of a tone with noise, encoded by aiortc's Opus encoder."""
    rng = np.random.default_rng(1)

    def samples(index: int) -> np.ndarray[Any, Any]:
        t = (np.arange(960) + index * 960) / 48000
        return 8000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 2000, 960)

    return encoded_opus([samples(index) for index in range(int(seconds * 50))])


def encoded_opus(frames: list[np.ndarray[Any, Any]]) -> Clip:
    """A clip of 20 ms mono frames (960 samples at 48 kHz, int16 range), encoded in stereo Opus
    by aiortc's encoder."""
    import av
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    encoder = get_encoder(RTCRtpCodecParameters("audio/opus", 48000, channels=2))
    encoded: list[list[bytes]] = []
    for index, mono in enumerate(frames):
        samples = np.repeat(mono.astype(np.int16), 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        encoded.append(list(payloads))
    return Clip("audio", encoded, 0.02, 960)


def vp8_clip(seconds: float = 1.0, width: int = 640, height: int = 480) -> Clip:
    """30 fps VP8 of a moving gradient at about 1 Mbit/s, packetised by aiortc's encoder."""
    import av
    from aiortc.codecs import get_encoder, vpx
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    # Browsers keep whole RTP packets near 1200 bytes; aiortc packetises up to 1300 payload bytes,
    # which a server repacketising at KMS's 1200 (as this one does) would split, cutting off the
    # timing trailer. 1100 bytes of payload leaves room for the trailer and the headers.
    vpx.PACKET_MAX = 1100
    encoder = get_encoder(RTCRtpCodecParameters("video/VP8", 90000))
    encoder.target_bitrate = 1_000_000  # type: ignore[attr-defined]
    frames: list[list[bytes]] = []
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    for index in range(int(seconds * 30)):
        plane = ((x + y + 4 * index) % 256).astype(np.uint8)
        image = np.stack([plane, np.roll(plane, 40, axis=1), 255 - plane], axis=2)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index == 0)
        frames.append(list(payloads))
    return Clip("video", frames, 1 / 30, 3000)


# -- the peer -------------------------------------------------------------------------------------


@dataclass
class Counters:
    """What one worker counted inside the measurement window."""

    window: tuple[float, float] = (0.0, 0.0)
    sent: int = 0
    """Packets sent in the window, times the number of receivers each is meant for."""
    received: int = 0
    """Tagged packets received whose send time is in the window."""
    arrivals: int = 0
    """Any RTP packet arriving in the window (the only count for a re-encoding relay)."""
    srtp_errors: int = 0
    send_errors: int = 0
    late: int = 0
    """Frames sent more than one interval after their due time (the generator fell behind)."""
    latencies: array[float] = field(default_factory=lambda: array("d"))


class LoadPeer:
    """ICE and DTLS-SRTP from aiortc, then a synchronous SRTP data path."""

    def __init__(self, certificate: RTCCertificate, counters: Counters, controlling: bool) -> None:
        self.certificate = certificate
        self.counters = counters
        self.gatherer = RTCIceGatherer(iceServers=[])
        gatherer_connection(self.gatherer).ice_controlling = controlling
        self.ice = RTCIceTransport(self.gatherer)
        self.dtls = RTCDtlsTransport(self.ice, [certificate])
        self.tx: pylibsrtp.Session | None = None
        self.rx: pylibsrtp.Session | None = None
        self.transport: Any = None
        self.sock: Any = None
        self._skip = 0
        self.send_errors = 0
        self.remote: tuple[str, int] = ("", 0)
        self.original_datagram: Any = None
        """The ICE protocol's own ``datagram_received`` (STUN, DTLS, RTCP go there)."""

    async def gather(self) -> None:
        """Host candidates on loopback."""
        await self.gatherer.gather()

    @property
    def ufrag(self) -> str:
        """Local ICE username fragment."""
        return str(gatherer_connection(self.gatherer).local_username)

    @property
    def pwd(self) -> str:
        """Local ICE password."""
        return str(gatherer_connection(self.gatherer).local_password)

    @property
    def fingerprint(self) -> tuple[str, str]:
        """The sha-256 fingerprint of the certificate."""
        for f in self.certificate.getFingerprints():
            if f.algorithm == "sha-256":
                return f.algorithm, f.value
        raise RuntimeError("no sha-256 fingerprint")

    @property
    def candidates(self) -> list[tuple[str, int]]:
        """Local (address, port) pairs."""
        return [(c.ip, c.port) for c in self.gatherer.getLocalCandidates()]

    async def connect(
        self,
        ufrag: str,
        pwd: str,
        candidates: list[tuple[str, int]],
        fingerprint: tuple[str, str],
        dtls_role: str,
    ) -> None:
        """ICE checks, DTLS handshake, then the socket callback takes RTP."""
        for order, (host, port) in enumerate(candidates):
            await self.ice.addRemoteCandidate(
                RTCIceCandidate(
                    component=1,
                    foundation=str(order + 1),
                    ip=host,
                    port=port,
                    priority=2130706431 - order,
                    protocol="udp",
                    type="host",
                )
            )
        await self.ice.addRemoteCandidate(None)
        await self.ice.start(RTCIceParameters(usernameFragment=ufrag, password=pwd))
        if self.ice.state != "completed":
            raise RuntimeError("ICE failed")
        set_dtls_role(self.dtls, dtls_role)
        await self.dtls.start(
            RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint(*fingerprint)], role="auto")
        )
        if self.dtls.state != "connected":
            raise RuntimeError("DTLS failed")
        pair = nominated_pairs(gatherer_connection(self.gatherer))[1]
        self.transport, self.remote = pair.protocol.transport, pair.remote_addr
        if hasattr(self.transport, "max_size"):
            self.transport.max_size = 4096
        # The socket itself: sendto without asyncio's checks, and drained on each callback.
        self.sock = self.transport._sock
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.tx, self.rx = srtp_sessions(self.dtls)
        protocol = pair.protocol
        original = protocol.datagram_received
        self.original_datagram = original
        protocol.datagram_received = (  # type: ignore[method-assign]
            lambda data, addr: self._drain(data, addr, original)
        )

    def _drain(self, data: Any, addr: Any, original: Any) -> None:
        self._datagram(data, addr, original)
        if self._skip:
            self._skip -= 1
            return
        for index in range(32):
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                if index == 0:
                    self._skip = 8
                return
            self._datagram(data, addr, original)

    def _datagram(self, data: Any, addr: Any, original: Any) -> None:
        if 127 < data[0] < 192 and not 192 <= data[1] <= 223:
            counters = self.counters
            now = time.perf_counter()
            try:
                plain = self.rx.unprotect(data)  # type: ignore[union-attr]
            except pylibsrtp.Error:
                counters.srtp_errors += 1
                return
            start, end = counters.window
            if start <= now <= end:
                counters.arrivals += 1
            if plain[0] & 0x20 and plain[-1] == TRAILER_SIZE:
                sent, _, _ = TRAILER.unpack_from(plain, len(plain) - TRAILER_SIZE)
                if start <= sent <= end:
                    counters.received += 1
                    counters.latencies.append(now - sent)
            return
        original(data, addr)

    def send(self, packet: bytes) -> None:
        """Protect and send one RTP packet (lost, and counted, if the socket refuses it)."""
        try:
            self.sock.sendto(self.tx.protect(packet), self.remote)  # type: ignore[union-attr]
        except OSError:
            self.counters.send_errors += 1

    async def close(self) -> None:
        """Stop DTLS and ICE."""
        with contextlib.suppress(Exception):
            await self.dtls.stop()
        with contextlib.suppress(Exception):
            await self.ice.stop()


class CountingPeer(LoadPeer):
    """A load peer of the media benchmarks that only counts what it receives, as a browser
    would get it (no trailer, no decoding): packets per payload type, ``got`` once each kind
    arrived, and within ``measure``'s window the audio packets and the video frames (marker
    bits). Subclasses look closer through ``arrived`` and ``frame_arrived``."""

    def __init__(self, certificate: RTCCertificate) -> None:
        super().__init__(certificate, Counters(), controlling=True)
        self.payload_types: dict[int, int] = {}
        self.window = (0.0, 0.0)
        self.audio_packets = 0
        self.video_frames = 0
        self.got = {"audio": asyncio.Event(), "video": asyncio.Event()}

    def _datagram(self, data: Any, addr: Any, original: Any) -> None:
        if not (127 < data[0] < 192 and not 192 <= data[1] <= 223):
            original(data, addr)
            return
        now = time.perf_counter()
        try:
            plain = self.rx.unprotect(data)  # type: ignore[union-attr]
        except Exception:
            self.counters.srtp_errors += 1
            return
        payload_type = plain[1] & 0x7F
        self.payload_types[payload_type] = self.payload_types.get(payload_type, 0) + 1
        kind = "audio" if payload_type == OPUS_PT else "video" if payload_type == VP8_PT else ""
        if kind:
            self.got[kind].set()
        self.arrived(kind, plain, now)
        start, end = self.window
        if not start <= now <= end:
            return
        if kind == "audio":
            self.audio_packets += 1
        elif kind == "video" and plain[1] & 0x80:
            self.video_frames += 1
            self.frame_arrived(plain, now)

    def arrived(self, kind: str, plain: bytes, now: float) -> None:
        """Any RTP packet, window or not (``kind`` is empty for another payload type)."""

    def frame_arrived(self, plain: bytes, now: float) -> None:
        """The last packet of a video frame, within the window."""

    def measure(self, start: float, end: float) -> None:
        """Count from ``start`` to ``end`` (perf_counter)."""
        self.window = (start, end)
        self.audio_packets = self.video_frames = 0


async def first_media(
    peers: Sequence[CountingPeer], kinds: tuple[str, ...], timeout: float
) -> None:
    """Wait (up to ``timeout`` in all) until every peer has had media of each of ``kinds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            for peer in peers:
                for kind in kinds:
                    await peer.got[kind].wait()


@dataclass
class Stream:
    """One RTP stream a peer sends, looping a clip, with the trailer filled at send time."""

    peer: LoadPeer
    clip: Clip
    stream_id: int
    payload_type: int
    extension_id: int
    receivers: int
    ssrc: int = field(default_factory=lambda: random.getrandbits(32) or 1)
    sequence: int = field(default_factory=lambda: random.getrandbits(16))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    frame: int = 0
    index: int = 0

    def send_frame(self, now: float, counters: Counters) -> None:
        """Every packet of the next frame of the clip."""
        payloads = self.clip.frames[self.frame % len(self.clip.frames)]
        self.frame += 1
        self.timestamp = (self.timestamp + self.clip.clock_step) & 0xFFFFFFFF
        last = len(payloads) - 1
        if self.extension_id:
            first = 0x80 | 0x20 | 0x10
            if self.clip.kind == "audio":
                element = bytes([(self.extension_id << 4), 0x20, 0, 0])
            else:
                abs_time = int(now * (1 << 18)) & 0xFFFFFF
                element = bytes([(self.extension_id << 4) | 2]) + abs_time.to_bytes(3, "big")
            extension = b"\xbe\xde\x00\x01" + element
        else:
            first, extension = 0x80 | 0x20, b""
        start, end = counters.window
        in_window = start <= now <= end
        for number, payload in enumerate(payloads):
            self.sequence = (self.sequence + 1) & 0xFFFF
            marker = 0x80 if number == last else 0
            header = RTP_HEADER.pack(
                first, marker | self.payload_type, self.sequence, self.timestamp, self.ssrc
            )
            trailer = TRAILER.pack(now, self.stream_id, self.index) + bytes([TRAILER_SIZE])
            self.index += 1
            self.peer.send(header + extension + payload + trailer)
            if in_window:
                counters.sent += self.receivers


class PlainStream(Stream):
    """A looped clip sent as a browser does: no RTP padding, no timing trailer."""

    first_sent: float = 0.0

    def send_frame(self, now: float, counters: Counters) -> None:
        """Every packet of the next frame of the clip."""
        if not self.first_sent:
            self.first_sent = time.time()
        payloads = self.clip.frames[self.frame % len(self.clip.frames)]
        self.frame += 1
        self.timestamp = (self.timestamp + self.clip.clock_step) & 0xFFFFFFFF
        last = len(payloads) - 1
        for number, payload in enumerate(payloads):
            self.sequence = (self.sequence + 1) & 0xFFFF
            marker = 0x80 if number == last else 0
            header = RTP_HEADER.pack(
                0x80, marker | self.payload_type, self.sequence, self.timestamp, self.ssrc
            )
            self.peer.send(header + payload)


class Sender:
    """The schedule of every stream of a worker: one heap, frames sent when due."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.heap: list[tuple[float, int, Stream]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._order = 0

    def add(self, stream: Stream) -> None:
        """Start a stream at a random phase."""
        due = time.perf_counter() + random.random() * stream.clip.interval
        self._order += 1
        heapq.heappush(self.heap, (due, self._order, stream))
        self.wake.set()
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    def clear(self) -> None:
        """Stop every stream."""
        self.heap.clear()

    def stop(self) -> None:
        """Stop every stream and end the schedule."""
        self.clear()
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        heap, counters = self.heap, self.counters
        while True:
            now = time.perf_counter()
            while heap and heap[0][0] <= now + 0.0005:
                due, order, stream = heapq.heappop(heap)
                if now - due > stream.clip.interval:
                    counters.late += 1
                try:
                    stream.send_frame(now, counters)
                except Exception:  # a closed peer: its stream stops, the others go on
                    counters.send_errors += 1
                    continue
                heapq.heappush(heap, (due + stream.clip.interval, order, stream))
            self.wake.clear()
            if heap:
                delay = heap[0][0] - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
            else:
                await self.wake.wait()


class CompiledSender:
    """``Sender`` and ``LoadPeer``'s receive path in C (``benchmarks/_loadgen.c``): one call per
    tick sends every due frame (sendmmsg) and drains every readable peer socket (recvmmsg); STUN
    and DTLS come back to the peer's ICE protocol as before, RTCP is only counted. The window's
    counts are the generator's (``measure``, ``results``), not ``Counters``'."""

    def __init__(self) -> None:
        if _loadgen is None:
            raise PreconditionFailed(LOADGEN_IMPORT_ERROR)
        self.generator = _loadgen.Generator()
        self.clips: dict[int, int] = {}
        self.peers: dict[int, LoadPeer] = {}
        self.task: asyncio.Task[None] | None = None
        self.ticked = asyncio.Event()
        """Set after each tick (what waits on the generator's counts wakes on it)."""
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.generator.fileno(), self._tick)

    def adopt(self, peer: LoadPeer) -> None:
        """Read this connected peer's socket in C from now on."""
        fd = peer.sock.fileno()
        if fd in self.peers:
            return
        peer.transport.pause_reading()
        self.generator.add_socket(fd, srtp_pointer(peer.rx))
        self.peers[fd] = peer

    def add(self, stream: Stream) -> None:
        """Start a stream at a random phase, as ``Sender.add``."""
        peer = stream.peer
        self.adopt(peer)
        clip = self.clips.get(id(stream.clip))
        if clip is None:
            clip = self.clips[id(stream.clip)] = self.generator.add_clip(stream.clip.frames)
        self.generator.add_stream(
            peer.sock.fileno(),
            peer.remote[:2],
            srtp_pointer(peer.tx),
            clip,
            int(stream.clip.kind == "audio"),
            stream.ssrc,
            stream.payload_type,
            stream.extension_id,
            stream.sequence,
            stream.timestamp,
            stream.clip.clock_step,
            stream.clip.interval,
            time.perf_counter() + random.random() * stream.clip.interval,
            stream.stream_id,
            stream.receivers,
        )
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    def _tick(self) -> float:
        handed_back, next_due = self.generator.tick()
        for fd, data, address in handed_back:
            peer = self.peers.get(fd)
            if peer is not None:
                peer.original_datagram(data, address)
        self.ticked.set()
        return float(next_due)

    async def _run(self) -> None:
        while True:
            next_due = self._tick()
            await asyncio.sleep(max(0.0, next_due - time.perf_counter()))

    def clear(self) -> None:
        """Stop every stream; the peers' sockets go back to asyncio."""
        self.generator.clear()
        for peer in self.peers.values():
            with contextlib.suppress(Exception):
                peer.transport.resume_reading()
        self.peers.clear()

    def stop(self) -> None:
        """Stop every stream and end the schedule."""
        self.clear()
        if self.task is not None:
            self.task.cancel()
        self.loop.remove_reader(self.generator.fileno())

    def measure(self, start: float, end: float) -> None:
        """Count from ``start`` to ``end`` (perf_counter), counters reset."""
        self.generator.measure(start, end)

    def results(self) -> dict[str, Any]:
        """The window's counts, as ``_measure`` reports them."""
        figures = dict(self.generator.results())
        figures["latencies"] = np.frombuffer(figures["latencies"], dtype=np.float64).copy()
        return figures

    def loss(self, peer: LoadPeer) -> tuple[int, int]:
        """(received, expected) trailer packets on this peer's socket since it was adopted."""
        received, expected = self.generator.socket_stats(peer.sock.fileno())
        return int(received), int(expected)


def make_sender(generator: str, counters: Counters) -> Sender | CompiledSender:
    """The generator asked for (``GENERATORS``)."""
    if generator == "compiled":
        return CompiledSender()
    if generator == "python":
        return Sender(counters)
    raise ValueError(f"unknown generator {generator!r}, not one of {GENERATORS}")


# -- SDP ------------------------------------------------------------------------------------------


def offer_sdp(peer: LoadPeer, video: bool, streams: dict[str, int], extensions: bool) -> str:
    """A browser-like BUNDLE offer with the peer's candidates (no trickle)."""
    algorithm, value = peer.fingerprint
    kinds = ["audio", "video"] if video else ["audio"]
    session = random.getrandbits(62)
    lines = [
        "v=0",
        f"o=- {session} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(len(kinds))),
        "a=msid-semantic: WMS load",
    ]
    host, port = peer.candidates[0]
    for mid, kind in enumerate(kinds):
        pt = OPUS_PT if kind == "audio" else VP8_PT
        lines += [
            f"m={kind} {port} UDP/TLS/RTP/SAVPF {pt}",
            f"c=IN IP4 {host}",
            "a=rtcp:9 IN IP4 0.0.0.0",
        ]
        for order, (c_host, c_port) in enumerate(peer.candidates):
            lines.append(
                f"a=candidate:{order + 1} 1 udp {2130706431 - order} {c_host} {c_port} typ host"
            )
        lines += [
            "a=end-of-candidates",
            f"a=ice-ufrag:{peer.ufrag}",
            f"a=ice-pwd:{peer.pwd}",
            f"a=fingerprint:{algorithm} {value}",
            "a=setup:actpass",
            f"a=mid:{mid}",
        ]
        if extensions:
            uri = AUDIO_LEVEL if kind == "audio" else ABS_SEND_TIME
            lines.append(f"a=extmap:{1 if kind == 'audio' else 3} {uri}")
        lines += ["a=sendrecv", f"a=msid:load {kind}", "a=rtcp-mux"]
        if kind == "audio":
            lines += [f"a=rtpmap:{pt} opus/48000/2", f"a=fmtp:{pt} minptime=10;useinbandfec=1"]
        else:
            lines += [f"a=rtpmap:{pt} VP8/90000"]
            lines += [f"a=rtcp-fb:{pt} {fb}" for fb in ("nack", "nack pli", "ccm fir", "goog-remb")]
        lines.append(f"a=ssrc:{streams[kind]} cname:load")
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Answer:
    """What a load peer needs from an answer."""

    ufrag: str
    pwd: str
    fingerprint: tuple[str, str]
    setup: str
    candidates: list[tuple[str, int]]
    payload_types: dict[str, int]
    extension_ids: dict[str, int]


def parse_answer(sdp: str) -> Answer:
    """The first m-section's ICE/DTLS parameters, every UDP candidate, each kind's first PT."""
    values: dict[str, str] = {}
    candidates: list[tuple[str, int]] = []
    payload_types: dict[str, int] = {}
    extension_ids: dict[str, int] = {}
    kind = ""
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            kind = line[2:].split()[0]
            formats = line.split()[3:]
            if formats and formats[0].isdigit() and line.split()[1] != "0":
                payload_types[kind] = int(formats[0])
        elif line.startswith("a=candidate:"):
            parts = line.split()
            if parts[2].lower() == "udp" and ":" not in parts[4]:
                candidates.append((parts[4], int(parts[5])))
        elif line.startswith("a=extmap:"):
            ext_id, uri = line[9:].split()[:2]
            extension_ids[f"{kind} {uri}"] = int(ext_id.split("/")[0])
        elif line.startswith("a="):
            key, _, value = line[2:].partition(":")
            values.setdefault(key, value)
    algorithm, _, value = values["fingerprint"].partition(" ")
    return Answer(
        values["ice-ufrag"],
        values["ice-pwd"],
        (algorithm.lower(), value),
        values.get("setup", "active"),
        list(dict.fromkeys(candidates)),
        payload_types,
        extension_ids,
    )


async def exchange_offer(endpoint: Any, offer: str) -> tuple[str, list[tuple[str, int]]]:
    """processOffer and gatherCandidates on a WebRtcEndpoint: its answer and the candidates it
    trickled until IceGatheringDone."""
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    answer = await endpoint.invoke("processOffer", offer=offer)
    await endpoint.invoke("gatherCandidates")
    await done.get(timeout=30)
    trickled = []
    while not found.queue.empty():
        event = found.queue.get_nowait()
        candidate = candidate_of(event["candidate"]["candidate"])
        if candidate:
            trickled.append(candidate)
    return str(answer), trickled


def candidate_of(line: str) -> tuple[str, int] | None:
    """(address, port) of a UDP IPv4 ``candidate:`` line."""
    found = re.match(r"(?:a=)?candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ", line)
    if found is None or found.group(1).lower() != "udp" or ":" in found.group(2):
        return None
    return found.group(2), int(found.group(3))


# -- systems under test ---------------------------------------------------------------------------


SETUP_BATCH = 4
"""Peers negotiated at once by ``in_batches``."""


async def negotiate(endpoint: Any, peer: LoadPeer, ssrcs: dict[str, int]) -> None:
    """Offer VP8/Opus from the peer to ``endpoint`` (a WebRtcEndpoint's ``RemoteObject``), take
    the answer and the trickled candidates, connect.

    Raises:
        PreconditionFailed: the answer did not take Opus 111 and VP8 96.
    """
    offer = offer_sdp(peer, True, ssrcs, extensions=False)
    answer_text, trickled = await exchange_offer(endpoint, offer)
    answer = parse_answer(answer_text)
    if answer.payload_types != {"audio": OPUS_PT, "video": VP8_PT}:
        raise PreconditionFailed(f"answer gave {answer.payload_types}, not Opus 111 and VP8 96")
    candidates = list(dict.fromkeys(answer.candidates + trickled))
    role = "server" if answer.setup == "active" else "client"
    await peer.connect(answer.ufrag, answer.pwd, candidates, answer.fingerprint, role)


async def in_batches(count: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """``make(index)`` for every index, ``SETUP_BATCH`` at a time."""
    made: list[T] = []
    for start in range(0, count, SETUP_BATCH):
        stop = min(count, start + SETUP_BATCH)
        made += await asyncio.gather(*(make(index) for index in range(start, stop)))
    return made


async def tear_down(
    pipelines: Sequence[Any], peers: Sequence[LoadPeer], sender: Sender | None = None
) -> None:
    """After a level: stop sending, release its pipelines (``RemoteObject``s), close its peers."""
    if sender is not None:
        sender.stop()
    await release_all(pipelines)
    for peer in peers:
        await peer.close()


def loopback_only() -> None:
    """The peers of this process gather loopback candidates only, as a server started with
    ``--network-interfaces lo`` does."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


@dataclass
class Call:
    """The peers (and server objects) of one call."""

    peers: list[LoadPeer]
    cleanup: Any = None


class Worker:
    """One load-generator process: its calls, its schedule, its counters."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.counters = Counters()
        self.sender = make_sender(config.get("generator", "python"), self.counters)
        self.certificate = RTCCertificate.generateCertificate()
        self.clips = {"audio": opus_clip(), "video": vp8_clip()}
        self.calls: list[Call] = []
        self.next_stream = config["worker"] << 20
        self.client: Any = None

    # media

    async def new_peer(self, controlling: bool = True) -> LoadPeer:
        """A gathered peer."""
        address = self.config.get("address", "127.0.0.1")
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]
        peer = LoadPeer(self.certificate, self.counters, controlling)
        await peer.gather()
        return peer

    def start_streams(
        self, peer: LoadPeer, ssrcs: dict[str, int], answer: Answer | None, receivers: int
    ) -> None:
        """Send audio (and video) from this peer to ``receivers`` receivers."""
        self.take(peer)
        for kind, ssrc in ssrcs.items():
            self.next_stream += 1
            uri = AUDIO_LEVEL if kind == "audio" else ABS_SEND_TIME
            default_pt = OPUS_PT if kind == "audio" else VP8_PT
            extension_id = 0
            if self.config["extensions"]:
                extension_id = (answer.extension_ids.get(f"{kind} {uri}", 0) if answer else 1) or 0
            stream = Stream(
                peer,
                self.clips[kind],
                self.next_stream,
                answer.payload_types.get(kind, default_pt) if answer else default_pt,
                extension_id,
                receivers,
                ssrc=ssrc,
            )
            self.sender.add(stream)

    def ssrcs(self) -> dict[str, int]:
        """Fresh SSRCs for the kinds of this run."""
        kinds = ["audio", "video"] if self.config["video"] else ["audio"]
        return {kind: random.getrandbits(32) or 1 for kind in kinds}

    async def offer_to(self, signal: Any, receivers: int, sending: bool = True) -> LoadPeer:
        """Offer to a server-side endpoint (``signal(offer) -> answer``), connect, start sending."""
        peer = await self.new_peer()
        ssrcs = self.ssrcs()
        answer_text, trickled = await signal(
            offer_sdp(peer, self.config["video"], ssrcs, self.config["extensions"])
        )
        answer = parse_answer(answer_text)
        candidates = list(dict.fromkeys(answer.candidates + trickled))
        role = "server" if answer.setup == "active" else "client"
        await peer.connect(answer.ufrag, answer.pwd, candidates, answer.fingerprint, role)
        self.take(peer)
        if sending:
            self.start_streams(peer, ssrcs, answer, receivers)
        return peer

    def take(self, peer: LoadPeer) -> None:
        """A connected peer's receive path goes to the compiled generator, if that is in use."""
        if isinstance(self.sender, CompiledSender):
            self.sender.adopt(peer)

    # systems

    async def add_calls(self, count: int) -> None:
        """Set up ``count`` more calls on the system under test."""
        system = self.config["system"]
        setup = {
            "emulator": self._emulator_call,
            "emulator-python": self._emulator_call,
            "udp-relay": self._relay_call,
            "c-relay": self._relay_call,
            "direct": self._relay_call,
            "aiortc-relay": self._aiortc_call,
            "janus": self._janus_call,
        }[system]
        parallel = 8
        for start in range(0, count, parallel):
            batch = min(parallel, count - start)
            self.calls += await asyncio.gather(*(setup() for _ in range(batch)))

    async def _emulator_call(self) -> Call:
        from emulator.transport.client import KurentoClient

        if self.client is None:
            self.client = await KurentoClient.connect(self.config["url"])
        pipeline = await self.client.create("MediaPipeline")
        sinks = self.config["sinks"] if self.config["topology"] == "one-to-many" else 1
        endpoints = [await pipeline.create("WebRtcEndpoint") for _ in range(sinks + 1)]
        source, others = endpoints[0], endpoints[1:]
        for sink in others:
            await source.connect(sink)
        if self.config["topology"] == "one-to-one":
            await others[0].connect(source)

        async def signal_to(endpoint: Any) -> Any:
            return functools.partial(exchange_offer, endpoint)

        one_to_one = self.config["topology"] == "one-to-one"
        peers = [await self.offer_to(await signal_to(source), receivers=sinks)]
        for sink in others:
            peers.append(await self.offer_to(await signal_to(sink), 1, sending=one_to_one))
        return Call(peers, pipeline.release)

    async def _relay_call(self) -> Call:
        """A pair of load peers talking DTLS-SRTP to each other, through the relay or directly."""
        a, b = await self.new_peer(True), await self.new_peer(False)
        if self.config["system"] in ("udp-relay", "c-relay"):
            reply = await _control(
                self.config["control"], {"a": a.candidates[0], "b": b.candidates[0]}
            )
            to_b_for_a, to_a_for_b = (
                [("127.0.0.1", reply["port_a"])],
                [("127.0.0.1", reply["port_b"])],
            )
        else:
            to_b_for_a, to_a_for_b = b.candidates, a.candidates
        await asyncio.gather(
            a.connect(b.ufrag, b.pwd, to_b_for_a, b.fingerprint, "server"),
            b.connect(a.ufrag, a.pwd, to_a_for_b, a.fingerprint, "client"),
        )
        for peer in (a, b):
            self.start_streams(peer, self.ssrcs(), None, 1)
        return Call([a, b])

    async def _aiortc_call(self) -> Call:
        """Two peers whose offers the naive relay answers in one request."""
        a, b = await self.new_peer(), await self.new_peer()
        ssrcs = [self.ssrcs(), self.ssrcs()]
        offers = [
            offer_sdp(p, self.config["video"], s, self.config["extensions"])
            for p, s in zip((a, b), ssrcs, strict=True)
        ]
        reply = await _control(self.config["control"], {"offers": offers})
        for peer, sdp, s in zip((a, b), reply["answers"], ssrcs, strict=True):
            answer = parse_answer(sdp)
            role = "server" if answer.setup == "active" else "client"
            await peer.connect(
                answer.ufrag, answer.pwd, answer.candidates, answer.fingerprint, role
            )
            self.start_streams(peer, s, answer, 1)
        return Call([a, b])

    async def _janus_call(self) -> Call:
        """Two EchoTest sessions: the same forwarded packets as one two-way call."""
        peers = [await self._janus_echo() for _ in range(2)]
        return Call(peers)

    async def _janus_echo(self) -> LoadPeer:
        base = self.config["url"]
        session = (await _http(base, {"janus": "create"}))["data"]["id"]
        handle = (
            await _http(f"{base}/{session}", {"janus": "attach", "plugin": "janus.plugin.echotest"})
        )["data"]["id"]

        async def signal(offer: str) -> tuple[str, list[tuple[str, int]]]:
            body = {"audio": True, "video": bool(self.config["video"])}
            message = {"janus": "message", "body": body, "jsep": {"type": "offer", "sdp": offer}}
            await _http(f"{base}/{session}/{handle}", message)
            while True:
                event = await _http_get(f"{base}/{session}?maxev=1")
                if isinstance(event, list):
                    event = event[0] if event else {}
                if "jsep" in event:
                    return str(event["jsep"]["sdp"]), []
                if event.get("janus") == "hangup":
                    raise RuntimeError(f"janus hung up: {event}")

        peer = await self.offer_to(signal, 1)
        keepalive = asyncio.ensure_future(_janus_keepalive(f"{base}/{session}"))
        peer.cleanup = keepalive  # type: ignore[attr-defined]
        return peer

    async def close_calls(self) -> None:
        """Hang up every call."""
        self.sender.clear()
        for call in self.calls:
            for peer in call.peers:
                task = getattr(peer, "cleanup", None)
                if task is not None:
                    task.cancel()
                await peer.close()
            if call.cleanup is not None:
                with contextlib.suppress(Exception):
                    await call.cleanup()
        self.calls.clear()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            self.client = None


async def _control(address: tuple[str, int], message: dict[str, Any]) -> Any:
    """One JSON-line request to a baseline relay's control port."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()
    reply = json.loads(await reader.readline())
    writer.close()
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


async def _http(url: str, message: dict[str, Any]) -> Any:
    message = {**message, "transaction": uuid.uuid4().hex}
    request = urllib.request.Request(
        url, json.dumps(message).encode(), {"Content-Type": "application/json"}
    )
    reply = await asyncio.to_thread(
        lambda: json.loads(urllib.request.urlopen(request, timeout=30).read())
    )
    if reply.get("janus") == "error":
        raise RuntimeError(f"janus: {reply}")
    return reply


async def _http_get(url: str) -> Any:
    return await asyncio.to_thread(
        lambda: json.loads(urllib.request.urlopen(url, timeout=40).read())
    )


async def _janus_keepalive(url: str) -> None:
    # Janus drops sessions after session_timeout (60 s) without a request.
    with contextlib.suppress(Exception):
        while True:
            await asyncio.sleep(25)
            await _http(url, {"janus": "keepalive"})


# -- the worker process ---------------------------------------------------------------------------


def worker_main(conn: Connection, config: dict[str, Any]) -> None:
    """Entry point of a load-generator process (multiprocessing, spawn)."""
    if config.get("cpus"):
        os.sched_setaffinity(0, config["cpus"])
    asyncio.run(_serve(conn, config))


async def _serve(conn: Connection, config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(config)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: inbox.put_nowait(conn.recv()))
    conn.send(("ready", None))
    while True:
        command, argument = await inbox.get()
        try:
            if command == "configure":
                worker.config.update(argument)
                reply: Any = None
            elif command == "add":
                await worker.add_calls(argument)
                # The peers' objects are long-lived: moved out of the collector's reach, a
                # full collection no longer stalls the schedule for tens of milliseconds.
                gc.collect()
                gc.freeze()
                reply = len(worker.calls)
            elif command == "measure":
                reply = await _measure(worker, *argument)
            elif command == "close":
                await worker.close_calls()
                reply = None
            elif command == "stop":
                await worker.close_calls()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", reply))


async def _measure(worker: Worker, start: float, end: float, grace: float) -> dict[str, Any]:
    """Count from ``start`` to ``end`` (perf_counter), then wait ``grace`` for stragglers."""
    sender = worker.sender
    if isinstance(sender, CompiledSender):
        sender.measure(start, end)
        cpu_before = time.process_time()
        await asyncio.sleep(max(0.0, end + grace - time.perf_counter()))
        return {**sender.results(), "cpu_seconds": time.process_time() - cpu_before}
    counters = worker.counters
    counters.window = (start, end)
    counters.sent = counters.received = counters.arrivals = counters.late = 0
    counters.srtp_errors = counters.send_errors = 0
    counters.latencies = array("d")
    cpu_before = time.process_time()
    await asyncio.sleep(max(0.0, end + grace - time.perf_counter()))
    cpu = time.process_time() - cpu_before
    return {
        "sent": counters.sent,
        "received": counters.received,
        "arrivals": counters.arrivals,
        "late_frames": counters.late,
        "srtp_errors": counters.srtp_errors,
        "send_errors": counters.send_errors,
        "cpu_seconds": cpu,
        "latencies": np.frombuffer(counters.latencies, dtype=np.float64).copy(),
    }
