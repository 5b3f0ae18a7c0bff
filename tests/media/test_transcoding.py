"""Transcoding: PyAV transcoders off the event loop, and real peers that did not negotiate the
source's codec (Opus to PCMU, VP8 to H264), checked by decoding what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.codecs import H264Encoder, Vp8Encoder, h264_depayload, vp8_depayload
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from emulator.app import App
from emulator.media.codecs.coders import EncoderBitrates
from emulator.media.codecs.transcoding import (
    SinkTranscoding,
    TranscodedPacket,
    Transcoder,
    Transcoders,
)
from emulator.media.rtp.packet import RtpView, parse_rtp
from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from protocol.sdp import Codec, SessionDescription
from tests.media.peers import ClientPeer, negotiate
from tests.media.rtp_peers import RtpSender, peer_sdp, udp_peer
from tests.ports import free_port_range

TONE = 440.0
OPUS = Codec(111, "opus", 48000, 2)
PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
G722 = Codec(9, "G722", 8000)
# name -> (PyAV codec, sampling rate, layout, RTP clock)
FORMATS = {
    "opus": ("libopus", 48000, "stereo", 48000),
    "PCMU": ("pcm_mulaw", 8000, "mono", 8000),
    "PCMA": ("pcm_alaw", 8000, "mono", 8000),
    "G722": ("g722", 16000, "mono", 8000),
}


# -- signals --------------------------------------------------------------------------------------


def _tone(rate: int, seconds: float, start: int = 0) -> np.ndarray:
    t = (start + np.arange(int(rate * seconds))) / rate
    return (np.sin(2 * np.pi * TONE * t) * 10000).astype(np.int16)


def _dominant(samples: np.ndarray, rate: int) -> float:
    samples = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def _encode(name: str, seconds: float) -> list[bytes]:
    """A tone as 20 ms packets of ``name``, encoded by PyAV directly (not by the code tested)."""
    codec_name, rate, layout, _ = FORMATS[name]
    encoder: Any = av.CodecContext.create(codec_name, "w")
    encoder.sample_rate, encoder.layout, encoder.format = rate, layout, "s16"
    encoder.time_base = fractions.Fraction(1, rate)
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate, frame_size=rate // 50)
    frame = av.AudioFrame.from_ndarray(
        _tone(rate, seconds).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    packets: list[bytes] = []
    for pts, chunk in enumerate(resampler.resample(frame)):
        chunk.pts = pts * (rate // 50)
        packets += [bytes(p) for p in encoder.encode(chunk)]
    return packets


def _decode(name: str, payloads: list[bytes]) -> np.ndarray:
    codec_name, rate, layout, _ = FORMATS[name]
    decoder: Any = av.CodecContext.create("opus" if name == "opus" else codec_name, "r")
    decoder.sample_rate, decoder.layout = rate, layout
    mono = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks = [
        out.to_ndarray().reshape(-1)
        for payload in payloads
        for frame in decoder.decode(av.Packet(payload))
        for out in mono.resample(frame)
    ]
    return np.concatenate(chunks)


def _rtp(
    payload_type: int, sequence: int, timestamp: int, payload: bytes, padding: int = 0
) -> RtpView:
    first = 0xA0 if padding else 0x80  # RFC 3550 5.1: P bit, the last byte counts the padding
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    data = struct.pack("!BBHII", first, payload_type, sequence, timestamp, 1234) + payload + pad
    view = parse_rtp(data)
    assert view is not None
    return view


@dataclass(eq=False)
class _Collector:
    """Subscribes to a transcoder and wakes the test when enough packets arrived."""

    packets: list[TranscodedPacket] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, packet: TranscodedPacket) -> None:
        self.packets.append(packet)
        self.arrived.set()

    async def until(self, predicate: Callable[[list[TranscodedPacket]], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate(self.packets):
                self.arrived.clear()
                await self.arrived.wait()


async def _transcode(
    source: Codec, target: Codec, seconds: float = 1.0, padding: int = 0
) -> list[TranscodedPacket]:
    """Feed a tone in ``source`` (each packet with ``padding`` bytes of RTP padding) through a
    transcoder; the packets it produced."""
    transcoders = Transcoders()
    transcoder = transcoders.for_pair(source, target, "audio", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    step = FORMATS[source.name][3] // 50
    packets = _encode(source.name, seconds)
    for number, payload in enumerate(packets):
        view = _rtp(source.payload_type, number, 5000 + number * step, payload, padding)
        transcoder.feed(view, "a")
    # the output lags by the resampler's and encoder's delay: most packets are enough
    await collector.until(lambda out: len(out) >= len(packets) - 3)
    transcoder.unsubscribe(collector)
    await transcoder.wait_closed()
    assert transcoders.live == 0
    return collector.packets


def _check_audio(packets: list[TranscodedPacket], target: Codec, payload_size: int) -> None:
    assert {p.view.payload_type for p in packets} == {target.payload_type}
    steps = {b.timestamp - a.timestamp for a, b in itertools.pairwise(packets)}
    assert steps == {160 if target.clock_rate == 8000 else 960}
    if payload_size:
        assert {len(p.payload) for p in packets} == {payload_size}
    heard = _decode(target.name, [p.payload for p in packets])
    assert abs(_dominant(heard[len(heard) // 4 :], FORMATS[target.name][1]) - TONE) < 10


# -- the transcoder on its own -------------------------------------------------------------------


async def test_transcoder_opus_to_pcma_keeps_the_tone() -> None:
    """Opus 48 kHz stereo becomes 20 ms PCMA packets at 8 kHz that still carry the tone."""
    _check_audio(await _transcode(OPUS, PCMA), PCMA, 160)


async def test_transcoder_pcma_to_g722_keeps_the_tone() -> None:
    """PCMA becomes G.722 (16 kHz samples, 8 kHz RTP clock): 160-byte packets, 160 ticks apart."""
    _check_audio(await _transcode(PCMA, G722), G722, 160)


async def test_transcoder_g722_to_opus_keeps_the_tone() -> None:
    """G.722 back to Opus (960 ticks per 20 ms) keeps the tone."""
    _check_audio(await _transcode(G722, OPUS), OPUS, 0)


async def test_transcoder_pcmu_to_pcma_keeps_the_tone() -> None:
    """Between the two G.711 laws."""
    _check_audio(await _transcode(PCMU, PCMA), PCMA, 160)


async def test_transcoder_decodes_padded_packets_without_their_padding() -> None:
    """RTP padding (a sender's, or SRTP's alignment) is not audio: PCMU packets with 48 bytes of
    padding become clean 20 ms PCMA packets that carry the tone."""
    packets = await _transcode(PCMU, PCMA, padding=48)
    _check_audio(packets, PCMA, 160)
    # Padding decoded as audio would make every packet longer than its 20 ms of RTP time, and
    # the encoder would restart its framing (a new marker) at each one.
    assert sum(p.marker for p in packets) == 1


def test_media_payload_leaves_the_padding_out() -> None:
    """``payload`` is what forwarding copies; ``media_payload`` what a decoder takes."""
    view = _rtp(0, 1, 160, b"\x01\x02\x03", padding=4)
    assert view.payload == b"\x01\x02\x03\x00\x00\x00\x04"
    assert view.media_payload == b"\x01\x02\x03"
    assert _rtp(0, 2, 320, b"", padding=8).media_payload == b""  # a bandwidth probe


async def test_transcoder_retimes_telephone_events_without_decoding() -> None:
    """RFC 4733 events pass through on the audio's timeline, duration in the target clock."""
    transcoders = Transcoders()
    transcoder = transcoders.for_pair(OPUS, PCMU, "audio", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    packets = _encode("opus", 0.2)
    for number, payload in enumerate(packets):
        transcoder.feed(_rtp(111, number, number * 960, payload), "a")
    event = struct.pack("!BBH", 5, 0x80 | 10, 960)  # digit 5, end, 20 ms at 48 kHz
    transcoder.feed_event(_rtp(110, len(packets), 4800, event), "a", 48000)
    await collector.until(lambda out: any(p.codec.name == "telephone-event" for p in out))
    audio = [p for p in collector.packets if p.codec.name == "PCMU"]
    (dtmf,) = [p for p in collector.packets if p.codec.name == "telephone-event"]
    assert dtmf.codec.clock_rate == 8000
    assert dtmf.payload == struct.pack("!BBH", 5, 0x80 | 10, 160)
    assert (dtmf.timestamp - audio[0].timestamp) & 0xFFFFFFFF == 800  # 100 ms at 8 kHz
    transcoder.close()
    await transcoder.wait_closed()


async def test_transcoders_shared_per_stream_and_pair() -> None:
    """Sinks of one stream share a transcoder that decodes each packet once; the last
    subscriber leaving ends its thread."""
    transcoders = Transcoders()
    stream, other = object(), object()
    first = transcoders.for_pair(OPUS, PCMU, "audio", origin=stream)
    assert transcoders.for_pair(OPUS, Codec(0, "PCMU", 8000), "audio", origin=stream) is first
    second = transcoders.for_pair(OPUS, PCMU, "audio", origin=other)
    assert second is not first and transcoders.live == 2
    sinks = [_Collector(), _Collector()]
    for sink in sinks:
        first.subscribe(sink)
    for number, payload in enumerate(_encode("opus", 0.1)):
        view = _rtp(111, number, number * 960, payload)
        first.feed(view, stream)
        first.feed(view, stream)  # the same packet reaching the second sink
    assert first.fed == 5
    await sinks[1].until(lambda out: len(out) > 2)
    assert [p.view for p in sinks[0].packets] == [p.view for p in sinks[1].packets]
    first.unsubscribe(sinks[0])
    assert transcoders.live == 2
    first.unsubscribe(sinks[1])
    second.close()
    await asyncio.gather(first.wait_closed(), second.wait_closed())
    assert transcoders.live == 0


async def test_transcoder_drops_the_oldest_packets_on_overload() -> None:
    """A worker that falls behind keeps the newest second of audio and counts what it drops."""
    transcoder = Transcoders().for_pair(PCMU, PCMA, "audio", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    payload = bytes(160)
    with transcoder._queue._wake:  # the worker cannot take packets meanwhile: it is "busy"
        for number in range(60):
            transcoder.feed(_rtp(0, number, number * 160, payload), "a")
    assert (transcoder.fed, transcoder.dropped) == (60, 10)
    await collector.until(lambda out: len(out) >= 48)
    assert transcoder.produced < 51
    transcoder.close()
    await transcoder.wait_closed()


async def test_video_transcoder_h264_to_vp8_frames_decode() -> None:
    """H264 (RFC 6184) in, VP8 (RFC 7741) out: the frames decode at their size."""
    transcoders = Transcoders()
    source = Codec(102, "H264", 90000, None, "packetization-mode=1")
    transcoder = transcoders.for_pair(source, Codec(96, "VP8", 90000), "video", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    encoder, sequence = H264Encoder(), 0
    for frame in _moving_frames(0, 10):
        timestamp = frame.pts  # aiortc rebases it while encoding
        payloads, _ = encoder.encode(frame)
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == len(payloads) - 1 else 0
            transcoder.feed(_rtp(102 | marker, sequence, timestamp, payload), "a")
            sequence += 1
    await collector.until(lambda out: sum(p.marker for p in out) >= 10)
    assert {p.view.payload_type for p in collector.packets} == {96}
    decoder: Any = av.CodecContext.create("libvpx", "r")
    frames: dict[int, bytes] = {}
    for packet in collector.packets:
        frames[packet.timestamp] = frames.get(packet.timestamp, b"") + vp8_depayload(packet.payload)
    decoded = [f for data in frames.values() for f in decoder.decode(av.Packet(data))]
    assert len(decoded) == 10 and {(f.width, f.height) for f in decoded} == {(320, 240)}
    transcoder.close()
    await transcoder.wait_closed()


async def test_event_loop_keeps_running_while_transcoding() -> None:
    """A burst of VGA video is decoded and encoded in the worker thread (hundreds of ms of
    work): feeding returns at once and a 5 ms timer keeps firing until the last frame is out."""
    transcoders = Transcoders()
    target = Codec(102, "H264", 90000, None, "packetization-mode=1")
    transcoder = transcoders.for_pair(Codec(96, "VP8", 90000), target, "video", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    encoder, views = Vp8Encoder(), []
    for frame in _moving_frames(0, 45, size=(640, 480)):
        timestamp = frame.pts  # aiortc rebases it while encoding
        payloads, _ = encoder.encode(frame)
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == len(payloads) - 1 else 0
            views.append(_rtp(96 | marker, len(views), timestamp, payload))
    ticks: list[float] = []

    async def timer() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)  # the probe of the loop's turning, not a synchronisation

    task = asyncio.create_task(timer())
    await asyncio.sleep(0)
    for view in views:
        transcoder.feed(view, "a")
    fed = time.monotonic()
    assert not collector.packets, "feed() must hand the work to the worker, not do it"
    await collector.until(lambda out: sum(p.marker for p in out) >= 45)
    finished = time.monotonic()
    task.cancel()
    during = [t for t in ticks if fed <= t <= finished]
    gaps = [b - a for a, b in itertools.pairwise([fed, *during, finished])]
    # Behaviour, not speed: the loop kept turning all along (no gap near the whole work's length).
    assert len(during) >= 5 and max(gaps) < (finished - fed) / 2, (finished - fed, gaps)
    assert transcoder.dropped == 0
    transcoder.close()
    await transcoder.wait_closed()


@dataclass
class _Sink:
    """A TranscodingListener that records what a SinkTranscoding tells it."""

    packets: list[TranscodedPacket] = field(default_factory=list)
    states: list[tuple[str, bool, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def transcoded(self, kind: str, packet: TranscodedPacket) -> None:
        self.packets.append(packet)
        self.arrived.set()

    def transcoding_changed(self, kind: str, active: bool, bin_name: str, reason: str) -> None:
        self.states.append((kind, active, reason))

    def keyframe_needed(self, kind: str) -> None:
        """Not expected for audio."""

    def encoder_bitrates(self, kind: str) -> EncoderBitrates:
        return EncoderBitrates()

    def transcoding_refused(self, kind: str, reason: str) -> None:
        self.states.append((kind, False, reason))

    def decode_failed(self, kind: str, reason: str) -> None:
        self.states.append((kind, False, reason))


async def test_sink_transcoding_routes_audio_and_events_through_one_transcoder() -> None:
    """The sink's seam picks its first codec PyAV encodes, reports the start with the reason,
    sends telephone-events through the same transcoder (not before audio), and stops."""
    transcoders, sink = Transcoders(), _Sink()
    seam = SinkTranscoding(transcoders, sink, "sink-1")
    stream = object()
    event = _rtp(110, 0, 0, struct.pack("!BBH", 1, 0x80, 480))
    seam.feed("audio", event, Codec(110, "telephone-event", 48000), stream, [PCMU])
    assert transcoders.live == 0 and not seam.active("audio")  # no audio yet: dropped
    targets = [Codec(98, "AMR", 8000), PCMU]
    for number, payload in enumerate(_encode("opus", 0.2)):
        seam.feed("audio", _rtp(111, number + 1, number * 960, payload), OPUS, stream, targets)
    seam.feed("audio", event, Codec(110, "telephone-event", 48000), stream, targets)
    assert sink.states == [("audio", True, "sink did not negotiate opus")]
    async with asyncio.timeout(10):
        while not any(p.codec.name == "telephone-event" for p in sink.packets):
            sink.arrived.clear()
            await sink.arrived.wait()
    assert {p.codec.name for p in sink.packets} == {"PCMU", "telephone-event"}
    (transcoder,) = transcoders.running()
    assert (transcoder.source.name, transcoder.target.name) == ("opus", "PCMU")
    seam.stop()
    assert sink.states[-1] == ("audio", False, "")
    await transcoder.wait_closed()
    assert transcoders.live == 0


def _moving_frames(
    first: int, count: int, size: tuple[int, int] = (320, 240)
) -> list[av.VideoFrame]:
    """Frames of a slowly moving gradient, timed at 30 fps on the 90 kHz clock."""
    frames = []
    width, height = size
    for number in range(first, first + count):
        row = (np.arange(width) + 2 * number) % 256
        image = np.repeat(np.tile(row, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = number * 3000, fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def _h264_nal_types(payload: bytes) -> set[int]:
    """NAL unit types in an RFC 6184 payload (single NAL, STAP-A, FU-A)."""
    kind = payload[0] & 0x1F
    if kind == 28:  # FU-A: the fragmented unit's type is in the FU header
        return {payload[1] & 0x1F}
    if kind == 24:  # STAP-A: 16-bit sizes, each followed by a NAL unit
        types, offset = set(), 1
        while offset + 2 < len(payload):
            (size,) = struct.unpack_from("!H", payload, offset)
            types.add(payload[offset + 2] & 0x1F)
            offset += 2 + size
        return types
    return {kind}


async def test_video_transcoder_vp8_to_h264_makes_a_keyframe_on_request() -> None:
    """VP8 in, RFC 6184 H264 out; a sink's keyframe request makes the next frame an IDR."""
    transcoders = Transcoders()
    target = Codec(102, "H264", 90000, None, "packetization-mode=1;profile-level-id=42e01f")
    transcoder = transcoders.for_pair(Codec(96, "VP8", 90000), target, "video", origin="test")
    collector = _Collector()
    transcoder.subscribe(collector)
    encoder, sequence = Vp8Encoder(), 0

    def since_first(packet: TranscodedPacket) -> int:
        return (packet.timestamp - collector.packets[0].timestamp) & 0xFFFFFFFF

    async def send(first: int) -> None:
        nonlocal sequence
        for frame in _moving_frames(first, 10):
            timestamp = frame.pts  # aiortc rebases it while encoding
            payloads, _ = encoder.encode(frame)
            for index, payload in enumerate(payloads):
                marker = 0x80 if index == len(payloads) - 1 else 0
                transcoder.feed(_rtp(96 | marker, sequence, timestamp, payload), "a")
                sequence += 1
        last = (first + 9) * 3000
        await collector.until(lambda out: any(since_first(p) == last and p.marker for p in out))

    def keyframes() -> set[int]:
        return {since_first(p) for p in collector.packets if 5 in _h264_nal_types(p.payload)}

    await send(0)
    assert keyframes() == {0}  # the first frame only: libx264 makes no other keyframe by itself
    assert {p.view.payload_type for p in collector.packets} == {102}
    decoder: Any = av.CodecContext.create("h264", "r")
    access_units: dict[int, bytes] = {}
    for packet in collector.packets:
        unit = access_units.get(packet.timestamp, b"") + h264_depayload(packet.payload)
        access_units[packet.timestamp] = unit
    decoded = [f for unit in access_units.values() for f in decoder.decode(av.Packet(unit))]
    assert decoded and (decoded[-1].width, decoded[-1].height) == (320, 240)
    transcoder.request_keyframe()
    await send(10)
    assert keyframes() == {0, 10 * 3000}
    assert transcoder.target_bitrate == 500_000  # KMS's 300 kbps, clamped to aiortc's H264 floor
    transcoder.set_bounds(EncoderBitrates(target=700_000))
    assert transcoder.target_bitrate == 700_000
    other = _Collector()
    transcoder.subscribe(other)  # sinks' REMB: the encoder follows the lowest
    transcoder.set_bitrate(collector, 1_200_000)
    transcoder.set_bitrate(other, 800_000)
    assert transcoder.target_bitrate == 800_000
    transcoder.unsubscribe(other)
    assert transcoder.target_bitrate == 1_200_000
    transcoder.close()
    await transcoder.wait_closed()


# -- real peers through the server ---------------------------------------------------------------


class ToneTrack(AudioStreamTrack):
    """aiortc's audio track paced as usual, carrying a 440 Hz tone instead of silence."""

    async def recv(self) -> Any:
        frame = await super().recv()
        samples = _tone(frame.sample_rate, frame.samples / frame.sample_rate, frame.pts)
        frame.planes[0].update(samples.tobytes())
        return frame


@dataclass
class ListeningPeer(ClientPeer):
    """A ClientPeer that keeps what it hears and the payload types that reach it."""

    only: list[str] = field(default_factory=list)
    heard: list[np.ndarray] = field(default_factory=list)
    payload_types: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            wanted = [
                c
                for c in RTCRtpSender.getCapabilities(kind).codecs
                if c.mimeType.split("/")[1] in self.only or c.mimeType.endswith("rtx")
            ]
            if self.only and any(not c.mimeType.endswith("rtx") for c in wanted):
                transceiver.setCodecPreferences(wanted)
            self._spy(kind, transceiver.receiver)

    def _spy(self, kind: str, receiver: Any) -> None:
        handle = receiver._handle_rtp_packet
        seen = self.payload_types.setdefault(kind, set())

        async def spied(packet: RtpPacket, arrival_time_ms: int) -> None:
            seen.add(packet.payload_type)
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = spied

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.heard.append(frame.to_ndarray().reshape(-1))
                self.frames[track.kind] = self.frames.get(track.kind, 0) + 1
                self._arrived.set()


@contextlib.asynccontextmanager
async def _endpoints(
    pipeline: RemoteObject, *peers: ClientPeer
) -> AsyncIterator[list[RemoteObject]]:
    endpoints = []
    try:
        for peer in peers:
            endpoint = await pipeline.create("WebRtcEndpoint")
            endpoints.append(endpoint)
            await negotiate(endpoint, peer)
        yield endpoints
    finally:
        for peer in peers:
            await peer.close()


def _tone_peer() -> ClientPeer:
    peer = ClientPeer(audio=False, video=False)
    peer.pc.addTrack(ToneTrack())
    return peer


async def _states(events: EventStream, count: int) -> list[tuple[str, str]]:
    return [(e["state"], e["mediaType"]) for e in [await events.get() for _ in range(count)]]


async def test_opus_source_reaches_pcmu_peer_as_the_tone(
    media_client: KurentoClient, media_server: App
) -> None:
    """A PCMU-only peer receives payload type 0 carrying the Opus sender's 440 Hz tone; the
    source element reports MediaTranscodingStateChanged and isMediaTranscoding."""
    pipeline = await media_client.create("MediaPipeline")
    listener = ListeningPeer(audio=True, video=False, only=["PCMU"])
    async with _endpoints(pipeline, _tone_peer(), listener) as (source, sink):
        events = await source.subscribe("MediaTranscodingStateChanged")
        await source.connect(sink, "AUDIO")
        event = await events.get()
        assert (event["state"], event["mediaType"]) == ("TRANSCODING", "AUDIO")
        assert await source.invoke("isMediaTranscoding", mediaType="AUDIO") is True
        assert await source.invoke("isMediaTranscoding", mediaType="VIDEO") is False
        await listener.wait_for(lambda p: p.frames.get("audio", 0) > 60)
        assert listener.payload_types["audio"] == {0}
        heard = np.concatenate(listener.heard[-40:])  # the last 0.8 s at 8 kHz
        assert abs(_dominant(heard, 8000) - TONE) < 10
        assert media_server.media_services.transcoders.live == 1
        await source.invoke("disconnect", sink=sink, mediaType="AUDIO")
        assert await _states(events, 1) == [("NOT_TRANSCODING", "AUDIO")]
        assert await source.invoke("isMediaTranscoding", mediaType="AUDIO") is False
        assert media_server.media_services.transcoders.live == 0


async def test_two_pcmu_sinks_share_one_transcoder(
    media_client: KurentoClient, media_server: App
) -> None:
    """Two PCMU sinks of one Opus source use one transcoder; it stops with the last sink."""
    transcoders = media_server.media_services.transcoders
    pipeline = await media_client.create("MediaPipeline")
    sinks = [ListeningPeer(audio=True, video=False, only=["PCMU"]) for _ in range(2)]
    async with _endpoints(pipeline, _tone_peer(), *sinks) as (source, first, second):
        events = await source.subscribe("MediaTranscodingStateChanged")
        created = transcoders.created
        await source.connect(first, "AUDIO")
        await source.connect(second, "AUDIO")
        for peer in sinks:
            await peer.wait_for(lambda p: p.frames.get("audio", 0) > 20)
            assert peer.payload_types["audio"] == {0}
        assert transcoders.live == 1 and transcoders.created == created + 1
        (running,) = transcoders.running()
        assert isinstance(running, Transcoder) and running.subscribers == 2
        await first.release()
        assert transcoders.live == 1 and running.subscribers == 1
        await source.invoke("disconnect", sink=second, mediaType="AUDIO")
        assert await _states(events, 2) == [("TRANSCODING", "AUDIO"), ("NOT_TRANSCODING", "AUDIO")]
        await running.wait_closed()
        assert transcoders.live == 0


async def test_vp8_source_reaches_h264_peer(media_client: KurentoClient, media_server: App) -> None:
    """A VP8 sender's video reaches an H264-only peer as H264 frames that decode."""
    pipeline = await media_client.create("MediaPipeline")
    viewer = ListeningPeer(audio=False, video=True, only=["H264"])
    async with _endpoints(pipeline, ClientPeer(audio=False, video=True), viewer) as (src, sink):
        events = await src.subscribe("MediaTranscodingStateChanged")
        await src.connect(sink, "VIDEO")
        assert await _states(events, 1) == [("TRANSCODING", "VIDEO")]
        await viewer.wait_for(lambda p: p.frames.get("video", 0) > 10, timeout=30)
        (running,) = media_server.media_services.transcoders.running()
        assert (running.source.name, running.target.name) == ("VP8", "H264")
        h264 = {
            c.payload_type
            for c in _negotiated(viewer)
            if c.name == "H264" and c.payload_type in viewer.payload_types["video"]
        }
        assert h264 and viewer.payload_types["video"] <= h264 | _rtx(viewer)


async def test_source_encoder_bitrates_hold_the_transcoded_video(
    media_client: KurentoClient, media_server: App
) -> None:
    """The element feeding a transcoding sink sets what its video is encoded at (KMS: that
    element's agnosticbin): min/maxEncoderBitrate hold the encoder whatever the viewer's REMB
    says, and a change during the call applies at once."""
    pipeline = await media_client.create("MediaPipeline")
    viewer = ListeningPeer(audio=False, video=True, only=["H264"])
    async with _endpoints(pipeline, ClientPeer(audio=False, video=True), viewer) as (src, sink):
        await src.invoke("setMinEncoderBitrate", minEncoderBitrate=900_000)
        await src.invoke("setMaxEncoderBitrate", maxEncoderBitrate=900_000)
        await src.connect(sink, "VIDEO")
        await viewer.wait_for(lambda p: p.frames.get("video", 0) > 10, timeout=30)
        (running,) = media_server.media_services.transcoders.running()
        assert running.target_bitrate == 900_000
        await src.invoke("setMinEncoderBitrate", minEncoderBitrate=600_000)
        await src.invoke("setMaxEncoderBitrate", maxEncoderBitrate=600_000)
        assert running.target_bitrate == 600_000
        assert await src.invoke("getMaxEncoderBitrate") == 600_000


def test_encoder_bitrates_choose_within_bounds() -> None:
    """KMS's defaults: 300 kbps before any estimate; an estimate is held within min and max
    (0: no ceiling)."""
    assert EncoderBitrates().choose(None) == 300_000
    assert EncoderBitrates().choose(2_000_000) == 2_000_000
    bounded = EncoderBitrates(target=500_000, low=400_000, high=800_000)
    assert [bounded.choose(e) for e in (None, 100_000, 600_000, 5_000_000)] == [
        500_000,
        400_000,
        600_000,
        800_000,
    ]


def _negotiated(peer: ClientPeer) -> list[Codec]:
    sdp = peer.pc.remoteDescription.sdp
    codecs = []
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:"):
            number, _, rest = line[len("a=rtpmap:") :].partition(" ")
            name, clock = rest.split("/")[:2]
            codecs.append(Codec(int(number), name, int(clock)))
    return codecs


def _rtx(peer: ClientPeer) -> set[int]:
    return {c.payload_type for c in _negotiated(peer) if c.name == "rtx"}


VP9_ONLY_PHONE = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=video {port} RTP/AVP 98",
        "a=rtpmap:98 VP9/90000",
        "a=sendrecv",
        "",
    ]
)


async def test_untranscodable_source_raises_kms_error_on_the_source(
    media_client: KurentoClient,
) -> None:
    """A VP8 sender connected to a sink that negotiated VP9 alone (which the server forwards but
    cannot encode): the source element raises KMS's Error, as its agnosticbin's "Formats are not
    compatible" warning does in KMS (UNEXPECTED_ELEMENT_ERROR, GstCoreError NEGOTIATION 7),
    once, saying which codecs met."""
    pipeline = await media_client.create("MediaPipeline")
    source = await pipeline.create("WebRtcEndpoint")
    sink = await pipeline.create("RtpEndpoint")
    port = free_port_range(2).low
    await sink.invoke("processOffer", offer=VP9_ONLY_PHONE.format(port=port))
    errors = await source.subscribe("Error")
    await source.connect(sink, "VIDEO")
    async with contextlib.AsyncExitStack() as stack:
        peer = ClientPeer(audio=False, video=True)
        stack.push_async_callback(peer.close)
        await negotiate(source, peer)
        error = await errors.get(timeout=20)
    assert error["type"] == "UNEXPECTED_ELEMENT_ERROR" and error["errorCode"] == 7
    description = error["description"]
    assert description.startswith("Error code 7: Formats are not compatible")
    assert "VP8" in description and "VP9" in description
    assert errors.queue.empty()


async def test_undecodable_source_raises_stream_error_decode_on_the_source(
    media_client: KurentoClient,
) -> None:
    """A plain RTP peer sends Opus packets no decoder takes to an RtpEndpoint whose audio a
    PCMU-only peer receives (transcoded): the source element raises KMS's Error
    STREAM_ERROR_DECODE (code 7, "Could not decode stream."), as GStreamer's decoder warning
    does in KMS, once at the first refused packet."""
    pipeline = await media_client.create("MediaPipeline")
    source = await pipeline.create("RtpEndpoint")
    sink = await pipeline.create("RtpEndpoint")
    async with udp_peer() as sender, udp_peer() as listener:
        answer = await source.invoke(
            "processOffer", offer=peer_sdp(sender.port, audio="111 opus/48000/2", dtmf=None)
        )
        server_port = SessionDescription.parse(answer).media[0].port
        await sink.invoke("processOffer", offer=peer_sdp(listener.port, dtmf=None))
        errors = await source.subscribe("Error")
        await source.connect(sink, "AUDIO")
        rtp = RtpSender(111, step=960)
        for _ in range(20):
            sender.send(rtp.packet(b"\xff" * 40), ("127.0.0.1", server_port))
        error = await errors.get(timeout=15)
    assert error["type"] == "STREAM_ERROR_DECODE" and error["errorCode"] == 7
    assert error["description"].startswith("Error code 7: Could not decode stream.")
    assert "opus" in error["description"].lower()
