"""Transcoding for sinks that did not negotiate the source's codec: PyAV, off the event loop.

One ``Transcoder`` per (received stream, source codec, target codec): every sink that needs the
same output subscribes to the same transcoder, so a stream is decoded and encoded once however
many sinks take it (fan-out); each sink then rewrites SSRC, sequence numbers and timestamps of
the output exactly as it does for forwarded packets.

API (independent of WebRTC; ``RtpEndpoint`` uses it the same way)::

    transcoders = Transcoders()                       # one per server (``MediaServices``)
    transcoder = transcoders.for_pair(source_codec, target_codec, "audio", origin=stream)
    transcoder.subscribe(on_packet, on_keyframe_needed)  # callbacks run on the event loop
    transcoder.feed(view, source_key)                 # an RtpView of the source codec; never blocks
    transcoder.feed_event(view, source_key, clock)    # RFC 4733 telephone-event: not decoded
    transcoder.request_keyframe()                     # video: the next encoded frame is a keyframe
    transcoder.set_bitrate(on_packet, bps)            # video: a sink's REMB; the lowest applies
    transcoder.unsubscribe(on_packet)                 # the last one closes it (its thread ends)
    transcoders.live                                  # transcoders running now

``on_packet`` receives a ``TranscodedPacket``: ``view`` is a complete RTP packet (the
transcoder's own SSRC and sequence numbers, the target codec's payload type, timestamps in the
target clock, marker), ``codec`` is the target codec (or ``telephone-event`` at the target clock),
``source`` an ``InboundStream`` that identifies the transcoder's output and counts it (pass it to
``OutboundStream.next_numbers`` as the source) and ``arrival`` when its input was fed.
``on_keyframe_needed`` is called (at most once a second) when the decoder needs a keyframe from
the source. ``SinkTranscoding`` is the small seam a sink's media owns (``WebRtcMedia`` has one):
``feed(kind, view, codec, origin, sink_codecs)`` when the sink lacks the codec (and for
telephone-events while transcoding), ``stop(kind)`` when the link goes, ``transcoder(kind)`` for
PLI/FIR, ``bitrate(kind, bps)`` for REMB. It picks the target (the sink's first codec PyAV
encodes), subscribes, switches when the source changes and tells its ``TranscodingListener``;
the element then calls ``MediaElement.transcoding_changed``, which raises
``MediaTranscodingStateChanged`` on the element feeding the sink, and
``MediaElement.on_source_removed`` is where a sink stops its transcoding.

Each transcoder runs one worker thread fed through a bounded queue that drops the oldest packet
on overload (``Transcoder.dropped`` counts them); results come back with
``loop.call_soon_threadsafe``. Audio is resampled (``av.AudioResampler``) and re-packetised in
20 ms frames; RTP timestamps follow the source's timeline, converted to the target clock (G.722
samples at 16 kHz with an 8 kHz RTP clock, RFC 3551 4.5.2). Video is depayloaded, decoded and
re-encoded with aiortc's VP8 (RFC 7741) and H264 (RFC 6184) codecs and packetisers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import av
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.audio.codeccontext import AudioCodecContext

from emulator.media.codecs.served import is_dtmf
from emulator.media.flow import FrameSink
from emulator.media.rtp.packet import FIXED_HEADER, RtpView
from emulator.media.rtp.streams import InboundStream
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

FRAME_MS = 20
"""Audio output packets carry 20 ms (RFC 3551 4.5 default packetisation)."""
AUDIO_QUEUE = 50
"""Pending audio packets per transcoder (1 s of 20 ms packets) before the oldest is dropped."""
VIDEO_QUEUE = 600
"""Pending video packets per transcoder before the oldest is dropped."""
KEYFRAME_INTERVAL = 1.0
DECODE_ERROR_EVERY = 100
"""After the first, one decode failure in this many is reported (``Error`` events)."""
"""Seconds between two upstream keyframe requests of one transcoder."""
OPUS_BITRATE = 32000

_HEADER = struct.Struct("!BBHII")
_DTMF = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How PyAV handles one audio codec: codec names, sampling rate and layout."""

    decoder: str
    encoder: str
    sample_rate: int
    """Actual sampling rate (G.722: 16000 with an 8000 RTP clock)."""
    layout: str


AUDIO_FORMATS = {
    "opus": AudioFormat("opus", "libopus", 48000, "stereo"),
    "pcmu": AudioFormat("pcm_mulaw", "pcm_mulaw", 8000, "mono"),
    "pcma": AudioFormat("pcm_alaw", "pcm_alaw", 8000, "mono"),
    "g722": AudioFormat("g722", "g722", 16000, "mono"),
}
VIDEO_CODECS = ("vp8", "h264")


class TranscodingUnsupported(ValueError):
    """No transcoder exists for that pair of codecs."""


def can_transcode(kind: str, codec: Codec) -> bool:
    """Whether the transcoders decode and encode this codec."""
    name = codec.name.lower()
    return name in AUDIO_FORMATS if kind == "audio" else name in VIDEO_CODECS


def describe(codec: Codec) -> str:
    """``opus/48000/2``: the rtpmap form of a codec, for logs."""
    text = f"{codec.name}/{codec.clock_rate}"
    return f"{text}/{codec.channels}" if codec.channels and codec.channels > 1 else text


@dataclass(frozen=True, slots=True)
class TranscodedPacket:
    """One RTP packet a transcoder produced, for every subscriber to rewrite and send."""

    view: RtpView
    codec: Codec
    source: InboundStream
    arrival: float
    """``time.monotonic()`` when the source packet that produced it was fed (latency stats)."""

    @property
    def payload(self) -> bytes:
        """The encoded payload."""
        return self.view.payload

    @property
    def timestamp(self) -> int:
        """RTP timestamp in the target clock."""
        return self.view.timestamp

    @property
    def marker(self) -> bool:
        """RTP marker (first packet after a gap for audio, last of a frame for video)."""
        return self.view.marker


PacketCallback = Callable[[TranscodedPacket], None]
KeyframeCallback = Callable[[], None]
DecodeErrorCallback = Callable[[str, int], None]
"""What the decoder said, and how many packets or frames it refused so far."""


@dataclass(slots=True)
class _Input:
    payload: bytes
    sequence: int
    timestamp: int
    marker: bool
    arrival: float
    event_clock: int = 0
    """Clock rate of a telephone-event packet; 0 for media."""


_Output = tuple[bytes, int, bool, bool]
"""payload, timestamp (target clock), marker, is telephone-event."""


class _Timeline:
    """Source RTP timestamps, unwrapped, mapped onto the target clock from a random base."""

    def __init__(self, source_clock: int, target_clock: int) -> None:
        self.source_clock = source_clock
        self.target_clock = target_clock
        self.last_raw: int | None = None
        self.unwrapped = 0
        self.target_base = random.getrandbits(32)

    def unwrap(self, timestamp: int) -> int:
        """The timestamp as a monotonic count from the first one seen."""
        if self.last_raw is not None:
            delta = ((timestamp - self.last_raw + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self.unwrapped += delta
        self.last_raw = timestamp
        return self.unwrapped

    def to_target(self, unwrapped: int) -> int:
        """An unwrapped source timestamp in the target clock (not wrapped)."""
        return self.target_base + unwrapped * self.target_clock // self.source_clock


class _AudioEncoding:
    """The audio ``FrameSink`` of a transcoder: resample, re-packetise in 20 ms frames, encode
    (worker-thread side). What it encodes is collected for ``take()``."""

    def __init__(self, source: Codec, target: Codec, timeline: _Timeline) -> None:
        self.source_clock = source.clock_rate
        self.target_clock = target.clock_rate
        fmt = self.target_format = AUDIO_FORMATS[target.name.lower()]
        self.encoder = cast(AudioCodecContext, av.CodecContext.create(fmt.encoder, "w"))
        self.encoder.sample_rate = fmt.sample_rate
        self.encoder.layout = fmt.layout
        self.encoder.format = "s16"
        self.encoder.time_base = fractions.Fraction(1, fmt.sample_rate)
        if fmt.encoder == "libopus":
            self.encoder.bit_rate = OPUS_BITRATE
        self.frame_samples = fmt.sample_rate * FRAME_MS // 1000
        self.timeline = timeline
        self.resampler: Any = None
        self.expected: int | None = None
        """Unwrapped source timestamp the next frame has when nothing is missing."""
        self.out_timestamp = 0
        self.out_samples = 0
        self.fresh = True
        self.produced: list[_Output] = []

    def frame(self, frame: Any, position: int) -> None:
        """A decoded ``av.AudioFrame`` at ``position`` (unwrapped source timestamp)."""
        if self.resampler is None or position != self.expected:
            # A gap or a new timeline: restart the 20 ms framing at this frame's time.
            self.resampler = av.AudioResampler(
                format="s16",
                layout=self.target_format.layout,
                rate=self.target_format.sample_rate,
                frame_size=self.frame_samples,
            )
            self.out_timestamp = max(self.timeline.to_target(position), self.out_timestamp)
            self.fresh = True
        self.expected = position + frame.samples * self.source_clock // frame.sample_rate
        frame.pts = None
        for chunk in self.resampler.resample(frame):
            chunk.pts = self.out_samples
            self.out_samples += chunk.samples
            for packet in self.encoder.encode(chunk):
                self.produced.append(
                    (bytes(packet), self.out_timestamp & 0xFFFFFFFF, self.fresh, False)
                )
                self.fresh = False
                self.out_timestamp += (
                    self.frame_samples * self.target_clock // self.target_format.sample_rate
                )

    def take(self) -> list[_Output]:
        """What was encoded since the last call."""
        produced, self.produced = self.produced, []
        return produced


class _AudioCoder:
    """Decode the source's packets and hand each frame to the ``FrameSink`` (the encoding);
    telephone-events are retimed, never decoded (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec) -> None:
        fmt = AUDIO_FORMATS[source.name.lower()]
        self.source_clock = source.clock_rate
        self.target_clock = target.clock_rate
        self.decoder = cast(AudioCodecContext, av.CodecContext.create(fmt.decoder, "r"))
        self.decoder.sample_rate = fmt.sample_rate
        self.decoder.layout = fmt.layout
        self.timeline = _Timeline(source.clock_rate, target.clock_rate)
        self.encoding = _AudioEncoding(source, target, self.timeline)
        self.sink: FrameSink = self.encoding
        self.decode_error = ""
        """Set by the worker when the decoder refused a packet (what FFmpeg said)."""

    def process(self, item: _Input) -> list[_Output]:
        """One source packet in, zero or more target packets out."""
        position = self.timeline.unwrap(item.timestamp)
        if item.event_clock:
            return [self._event(item, position)]
        if not item.payload:
            return []  # padding only: nothing to decode
        try:
            frames = self.decoder.decode(av.Packet(item.payload))
        except av.error.FFmpegError as exc:
            logger.debug("audio decode failed: %s", exc)
            self.decode_error = str(exc)
            return []
        for frame in frames:
            self.sink.frame(frame, position)
            position += frame.samples * self.source_clock // frame.sample_rate
        return self.encoding.take()

    def _event(self, item: _Input, position: int) -> _Output:
        # RFC 4733 2.3: event, E/R/volume, duration in the event's clock; only the duration and
        # the timestamp change clock, the event itself is never decoded.
        payload = item.payload
        if len(payload) >= _DTMF.size:
            event, flags, duration = _DTMF.unpack_from(payload)
            duration = min(duration * self.target_clock // item.event_clock, 0xFFFF)
            payload = _DTMF.pack(event, flags, duration) + payload[_DTMF.size :]
        timestamp = self.timeline.to_target(position) & 0xFFFFFFFF
        return (payload, timestamp, item.marker, True)


class _VideoEncoding:
    """The video ``FrameSink`` of a transcoder: encode (a keyframe when asked) and packetise
    with aiortc's encoders (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec, timeline: _Timeline) -> None:
        self.encoder = get_encoder(_rtc_codec(target))
        self.timeline = timeline
        self.force_keyframe = False
        self.produced: list[_Output] = []

    def frame(self, frame: Any, position: int) -> None:
        """A decoded ``av.VideoFrame`` at ``position`` (unwrapped source timestamp)."""
        # PyAV rebases pts in place to the encoder's time base (aiortc's: 1/30 s), which
        # rounds: the RTP timestamp is taken from the source's, not from the encoder.
        frame.pts = position
        frame.time_base = fractions.Fraction(1, self.timeline.source_clock)
        payloads, _ = self.encoder.encode(frame, self.force_keyframe)
        self.force_keyframe = False
        out_timestamp = self.timeline.to_target(position) & 0xFFFFFFFF
        for index, payload in enumerate(payloads):
            self.produced.append((payload, out_timestamp, index == len(payloads) - 1, False))

    def take(self) -> list[_Output]:
        """What was encoded since the last call."""
        produced, self.produced = self.produced, []
        return produced


class _VideoCoder:
    """Depayload, reassemble frames and decode them, handing each to the ``FrameSink`` (the
    encoding); notes when the source must send a keyframe (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec) -> None:
        self.source = _rtc_codec(source)
        self.decoder = get_decoder(self.source)
        self.timeline = _Timeline(source.clock_rate, target.clock_rate)
        self.encoding = _VideoEncoding(source, target, self.timeline)
        self.sink: FrameSink = self.encoding
        self.frame_timestamp: int | None = None
        self.parts: list[bytes] = []
        self.broken = False
        self.next_sequence: int | None = None
        self.keyframe_needed = False
        """Set by the worker when the source must send a keyframe."""
        self.decode_error = ""
        """Set by the worker when the decoder refused a whole frame (what FFmpeg said)."""

    def process(self, item: _Input) -> list[_Output]:
        """One source RTP packet in; a whole encoded frame's packets out at its last packet."""
        if not item.payload:  # padding only (a bandwidth probe): it only takes a number
            if self.next_sequence == item.sequence:
                self.next_sequence = (item.sequence + 1) & 0xFFFF
            return []
        position = self.timeline.unwrap(item.timestamp)
        if self.frame_timestamp is not None and position != self.frame_timestamp:
            self._finish()  # the previous frame lost its marker packet
        if self.next_sequence is not None and item.sequence != self.next_sequence:
            self.broken = True
        self.next_sequence = (item.sequence + 1) & 0xFFFF
        self.frame_timestamp = position
        try:
            self.parts.append(depayload(self.source, item.payload))
        except ValueError:
            self.broken = True
        if item.marker:
            self._finish()
        return self.encoding.take()

    def _finish(self) -> None:
        data, timestamp, broken = b"".join(self.parts), self.frame_timestamp, self.broken
        self.parts, self.frame_timestamp, self.broken = [], None, False
        if broken or timestamp is None or not data:
            self.keyframe_needed = True
            return
        try:
            frames = self.decoder.decode(JitterFrame(data, timestamp))
        except av.error.FFmpegError as exc:
            self.decode_error = str(exc)
            frames = []
        if not frames:
            self.keyframe_needed = True
        for frame in frames:
            self.sink.frame(frame, timestamp)


def _rtc_codec(codec: Codec) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=f"video/{codec.name}",
        clockRate=codec.clock_rate,
        payloadType=codec.payload_type,
        parameters=dict(codec.parameters()),
    )


class Transcoder:
    """Decodes one received stream and encodes it in another codec, for every subscriber."""

    def __init__(
        self,
        source: Codec,
        target: Codec,
        kind: str,
        loop: asyncio.AbstractEventLoop,
        on_closed: Callable[[Transcoder], None],
    ) -> None:
        if not (can_transcode(kind, source) and can_transcode(kind, target)):
            raise TranscodingUnsupported(
                f"cannot transcode {kind} {describe(source)} -> {describe(target)}: "
                f"PyAV transcoding covers {', '.join([*AUDIO_FORMATS, *VIDEO_CODECS])}"
            )
        self.source = source
        self.target = target
        self.kind = kind
        self.name = f"{kind}:{describe(source)}->{describe(target)}"
        self.event_codec = Codec(101, "telephone-event", target.clock_rate, None, "0-16")
        self.coder: _AudioCoder | _VideoCoder = (
            _AudioCoder(source, target) if kind == "audio" else _VideoCoder(source, target)
        )
        self.ssrc = random.getrandbits(32)
        self.stream = InboundStream(self.ssrc, target.clock_rate, kind)
        self.fed = 0
        self.dropped = 0
        self.produced = 0
        self._loop = loop
        self._on_closed = on_closed
        self._subscribers: dict[PacketCallback, KeyframeCallback | None] = {}
        self._error_watchers: dict[PacketCallback, DecodeErrorCallback] = {}
        self.decode_errors = 0
        """Packets (audio) or frames (video) the decoder refused."""
        self._bitrates: dict[PacketCallback, int] = {}
        self._queue: collections.deque[_Input] = collections.deque()
        self._limit = AUDIO_QUEUE if kind == "audio" else VIDEO_QUEUE
        self._wake = threading.Condition()
        self._closing = False
        self._last_fed: tuple[object, int] | None = None
        self._last_keyframe_request = 0.0
        self._sequence = random.getrandbits(16)
        self.closed = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"transcoder {self.name}")
        self._thread.daemon = True
        self._thread.start()

    # -- event loop side -------------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """How many sinks take this output."""
        return len(self._subscribers)

    def subscribe(
        self,
        on_packet: PacketCallback,
        on_keyframe: KeyframeCallback | None = None,
        on_decode_error: DecodeErrorCallback | None = None,
    ) -> None:
        """Receive every output packet; ``on_keyframe`` asks the source for a keyframe;
        ``on_decode_error`` hears (the first subscriber's only: they share one source) that the
        decoder refused what the source sent, with FFmpeg's words and the count so far."""
        self._subscribers[on_packet] = on_keyframe
        if on_decode_error is not None:
            self._error_watchers[on_packet] = on_decode_error
        if self.kind == "video":
            self.request_keyframe()

    def unsubscribe(self, on_packet: PacketCallback) -> None:
        """Stop receiving; the last subscriber leaving closes the transcoder."""
        self._subscribers.pop(on_packet, None)
        self._error_watchers.pop(on_packet, None)
        if self._bitrates.pop(on_packet, None) is not None:
            self._apply_bitrate()
        if not self._subscribers:
            self.close()

    def set_bitrate(self, on_packet: PacketCallback, bitrate: int) -> None:
        """A subscriber's receive estimate (REMB, bps): video is encoded for the lowest one."""
        if on_packet in self._subscribers and bitrate > 0:
            self._bitrates[on_packet] = bitrate
            self._apply_bitrate()

    @property
    def target_bitrate(self) -> int | None:
        """The video encoder's target bitrate (bps), None for audio."""
        if isinstance(self.coder, _VideoCoder):
            return int(self.coder.encoding.encoder.target_bitrate)  # type: ignore[attr-defined]
        return None

    def _apply_bitrate(self) -> None:
        # aiortc's encoders clamp it and re-create their codec on the next frame when it moves
        # by more than 10%; the worker reads it there.
        if isinstance(self.coder, _VideoCoder) and self._bitrates:
            encoder = self.coder.encoding.encoder
            encoder.target_bitrate = min(self._bitrates.values())  # type: ignore[attr-defined]

    def feed(self, view: RtpView, source_key: object) -> None:
        """Queue a packet of the source codec (a packet already fed by another sink is skipped).

        Args:
            view: the received RTP packet.
            source_key: identifies the received stream; a new key restarts the decoder's framing.
        """
        self._put(view, source_key, 0)

    def feed_event(self, view: RtpView, source_key: object, clock_rate: int) -> None:
        """Queue an RFC 4733 telephone-event packet: retimed into the target clock, not decoded."""
        self._put(view, source_key, clock_rate)

    def _put(self, view: RtpView, source_key: object, event_clock: int) -> None:
        if self._closing:
            return
        fed = (source_key, view.sequence)
        if fed == self._last_fed:
            return  # the same packet through another sink of the same source: fan-out
        self._last_fed = fed
        self.fed += 1
        item = _Input(
            view.media_payload,
            view.sequence,
            view.timestamp,
            view.marker,
            time.monotonic(),
            event_clock,
        )
        with self._wake:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._wake.notify()

    def request_keyframe(self) -> None:
        """The next encoded video frame is a keyframe (a sink asked with PLI or FIR)."""
        if isinstance(self.coder, _VideoCoder):
            self.coder.encoding.force_keyframe = True

    def close(self) -> None:
        """Stop the worker thread (it ends after the packet in hand) and leave the registry."""
        if self._closing:
            return
        self._closing = True
        self._subscribers.clear()
        with self._wake:
            self._queue.clear()
            self._wake.notify()
        self._on_closed(self)

    async def wait_closed(self) -> None:
        """Until the worker thread has ended."""
        await self.closed.wait()

    def _deliver(self, packets: list[TranscodedPacket], keyframe_needed: bool) -> None:
        if self._closing:
            return
        now = time.monotonic()
        for packet in packets:
            self.stream.received(packet.view, now)
            self.produced += 1
            for callback in list(self._subscribers):
                callback(packet)
        if keyframe_needed and now - self._last_keyframe_request > KEYFRAME_INTERVAL:
            self._last_keyframe_request = now
            asker = next((cb for cb in self._subscribers.values() if cb is not None), None)
            if asker is not None:
                asker()

    def _decode_failed(self, reason: str) -> None:
        # GStreamer's decoders post a warning per refused frame, each an Error event in KMS:
        # reported at the first, then every DECODE_ERROR_EVERY-th, so that a broken source does
        # not flood the application.
        self.decode_errors += 1
        count = self.decode_errors
        if count != 1 and count % DECODE_ERROR_EVERY:
            return
        watcher = next(iter(self._error_watchers.values()), None)
        if watcher is not None and not self._closing:
            watcher(reason, count)

    def _thread_ended(self) -> None:
        self.closed.set()

    # -- worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._queue and not self._closing:
                        self._wake.wait()
                    if self._closing:
                        return
                    item = self._queue.popleft()
                try:
                    outputs = self.coder.process(item)
                except Exception:
                    logger.exception("! transcoder %s failed on a packet", self.name)
                    continue
                keyframe_needed = False
                if isinstance(self.coder, _VideoCoder):
                    keyframe_needed, self.coder.keyframe_needed = self.coder.keyframe_needed, False
                if self.coder.decode_error:
                    self._post(self._decode_failed, self.coder.decode_error)
                    self.coder.decode_error = ""
                if outputs or keyframe_needed:
                    packets = [self._packet(o, item.arrival) for o in outputs]
                    self._post(self._deliver, packets, keyframe_needed)
        finally:
            self._post(self._thread_ended)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop has nobody left to deliver to.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _packet(self, output: _Output, arrival: float) -> TranscodedPacket:
        payload, timestamp, marker, event = output
        codec = self.event_codec if event else self.target
        self._sequence = (self._sequence + 1) & 0xFFFF
        second = (0x80 if marker else 0) | codec.payload_type
        data = _HEADER.pack(0x80, second, self._sequence, timestamp, self.ssrc) + payload
        view = RtpView(
            data, codec.payload_type, marker, self._sequence, timestamp, self.ssrc, FIXED_HEADER, -1
        )
        return TranscodedPacket(view, codec, self.stream, arrival)


class Transcoders:
    """Every running transcoder, found by (origin, source codec, target codec)."""

    def __init__(self) -> None:
        self._running: dict[tuple[int, tuple[Any, ...], tuple[Any, ...], str], Transcoder] = {}
        self._origins: dict[int, object] = {}
        self.created = 0

    @property
    def live(self) -> int:
        """Transcoders running now."""
        return len(self._running)

    def running(self) -> list[Transcoder]:
        """The running transcoders."""
        return list(self._running.values())

    def for_pair(
        self, source: Codec, target: Codec, kind: str, origin: object = None
    ) -> Transcoder:
        """The transcoder of ``origin``'s stream from ``source`` to ``target``, created if needed.

        Args:
            source: the codec the packets arrive in.
            target: the codec to produce (its payload type is the output's; sinks remap it).
            kind: ``audio`` or ``video``.
            origin: the received stream: one decoder per stream (the same object for every sink
                of that stream).

        Raises:
            TranscodingUnsupported: PyAV transcoding does not cover one of the codecs.
        """
        key = (id(origin), _identity(source), _identity(target), kind)
        found = self._running.get(key)
        if found is not None:
            return found
        transcoder = Transcoder(
            source, target, kind, asyncio.get_running_loop(), lambda t: self._closed(key, t)
        )
        self._running[key] = transcoder
        self._origins[id(origin)] = origin  # keep the id stable while the transcoder lives
        self.created += 1
        logger.info("= transcoder %s started (%d running)", transcoder.name, self.live)
        return transcoder

    def _closed(
        self, key: tuple[int, tuple[Any, ...], tuple[Any, ...], str], t: Transcoder
    ) -> None:
        if self._running.get(key) is t:
            del self._running[key]
            if not any(k[0] == key[0] for k in self._running):
                self._origins.pop(key[0], None)
            logger.info(
                "x transcoder %s stopped: %d packets in, %d out, %d dropped on overload",
                t.name,
                t.fed,
                t.produced,
                t.dropped,
            )

    def close(self) -> None:
        """Stop every transcoder (server shutdown)."""
        for transcoder in list(self._running.values()):
            transcoder.close()


def _identity(codec: Codec) -> tuple[Any, ...]:
    # H264 profiles and packetisation modes differ in fmtp; other codecs by name/clock/channels.
    return (*codec.key, codec.fmtp or "") if codec.name.lower() == "h264" else codec.key


class TranscodingListener(Protocol):
    """What a sink hears from its ``SinkTranscoding``."""

    def transcoded(self, kind: str, packet: TranscodedPacket) -> None:
        """A transcoded packet to rewrite and send."""

    def transcoding_changed(self, kind: str, active: bool, bin_name: str, reason: str) -> None:
        """Transcoding of that kind started (with why) or stopped for this sink."""

    def keyframe_needed(self, kind: str) -> None:
        """The transcoder needs a keyframe from the source."""

    def transcoding_refused(self, kind: str, reason: str) -> None:
        """No transcoder turns what the source sends into a codec this sink negotiated: its
        packets of that kind are dropped (once per source and codec)."""

    def decode_failed(self, kind: str, reason: str) -> None:
        """The transcoder feeding this sink could not decode what the source sent."""


@dataclass
class _Route:
    transcoder: Transcoder
    origin: object
    callback: PacketCallback


@dataclass
class SinkTranscoding:
    """The transcoders one sink takes its media from, at most one per kind."""

    transcoders: Transcoders
    listener: TranscodingListener
    sink_name: str
    routes: dict[str, _Route] = field(default_factory=dict)
    refused: set[tuple[Any, ...]] = field(default_factory=set)

    def active(self, kind: str) -> bool:
        """Whether this sink receives transcoded media of that kind."""
        return kind in self.routes

    def transcoder(self, kind: str) -> Transcoder | None:
        """The transcoder feeding this sink with that kind, if any."""
        route = self.routes.get(kind)
        return route.transcoder if route else None

    def feed(
        self, kind: str, view: RtpView, codec: Codec, origin: object, targets: list[Codec]
    ) -> None:
        """A packet the sink cannot send as it is: transcode it into the first usable target.

        Telephone-event packets go through the transcoder already carrying that stream (so that
        they stay on its timeline) and are dropped when there is none.
        """
        route = self.routes.get(kind)
        if is_dtmf(codec):
            if route is not None and route.origin is origin:
                route.transcoder.feed_event(view, origin, codec.clock_rate)
            return
        if (
            route is None
            or route.origin is not origin
            or route.transcoder.source.key != codec.key
            or not any(_identity(t) == _identity(route.transcoder.target) for t in targets)
        ):  # a new source, codec, or a sink that renegotiated away from our target
            route = self._open(kind, codec, origin, targets)
            if route is None:
                return
        route.transcoder.feed(view, origin)

    def _open(self, kind: str, codec: Codec, origin: object, targets: list[Codec]) -> _Route | None:
        target = next((t for t in targets if can_transcode(kind, t)), None)
        refusal = (id(origin), codec.key, kind)
        if target is None or not can_transcode(kind, codec):
            if refusal not in self.refused:
                self.refused.add(refusal)
                offered = ", ".join(describe(t) for t in targets) or "nothing"
                reason = (
                    f"cannot transcode {kind.upper()} {describe(codec)} for {self.sink_name} "
                    f"(it negotiated {offered}): packets dropped"
                )
                logger.warning("! %s", reason)
                self.listener.transcoding_refused(kind, reason)
            return None
        previous = self.routes.pop(kind, None)
        if previous is not None:
            previous.transcoder.unsubscribe(previous.callback)
        transcoder = self.transcoders.for_pair(codec, target, kind, origin)

        def deliver(packet: TranscodedPacket) -> None:
            self.listener.transcoded(kind, packet)

        def decode_failed(error: str, count: int) -> None:
            self.listener.decode_failed(
                kind, f"{describe(codec)} from the source ({count} so far): {error}"
            )

        transcoder.subscribe(deliver, lambda: self.listener.keyframe_needed(kind), decode_failed)
        route = _Route(transcoder, origin, deliver)
        self.routes[kind] = route
        reason = f"sink did not negotiate {codec.name}"
        logger.info(
            "= transcoding %s %s -> %s for %s: %s",
            kind.upper(),
            describe(codec),
            describe(target),
            self.sink_name,
            reason,
        )
        if previous is None:
            self.listener.transcoding_changed(kind, True, bin_name(kind), reason)
        return route

    def bitrate(self, kind: str, bitrate: int) -> None:
        """The sink's receive estimate (REMB) for the transcoded media of that kind."""
        route = self.routes.get(kind)
        if route is not None:
            route.transcoder.set_bitrate(route.callback, bitrate)

    def stop(self, kind: str | None = None) -> None:
        """Leave the transcoders of that kind (every kind when None)."""
        for name in [kind] if kind else list(self.routes):
            route = self.routes.pop(name, None)
            if route is None:
                continue
            route.transcoder.unsubscribe(route.callback)
            logger.info("= transcoding %s stopped for %s", name.upper(), self.sink_name)
            self.listener.transcoding_changed(name, False, bin_name(name), "")


def bin_name(kind: str) -> str:
    """The ``binName`` of MediaTranscodingStateChanged (KMS names the agnosticbin doing it)."""
    return f"transcoder_{kind}"
