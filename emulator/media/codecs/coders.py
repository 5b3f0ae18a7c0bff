"""The decoders and encoders every PyAV user of the media plane shares, on worker threads.

The transcoders (``transcoding.py``), the mixing hubs (``mixing.py``) and the filters
(``video_filter.py``) all decode RTP into frames and encode frames into RTP payloads the same
way; this module is that one way, so that a fix in depayloading, timestamp mapping or encoder
settings reaches all of them:

- ``MediaInput``: one received RTP packet as a worker thread takes it (``MediaInput.of``).
- ``AudioCoder`` / ``VideoCoder``: decode a stream's packets (video: depayload and reassemble
  frames first, noting when a keyframe is needed) and hand each decoded frame to their
  ``sink``, a ``FrameSink`` (``flow.py``); by default that is their own encoding, which makes
  them a transcoder's worker, and a user replaces it to take the frames (a mixer's input, a
  filter's stage, a gain in between).
- ``AudioEncoding`` / ``VideoEncoding``: ``FrameSink``s that encode what they are given into
  ``CodedOutput``s (audio re-packetised in 20 ms frames), collected until ``take()``.
- ``Timeline``: source RTP timestamps, unwrapped and mapped onto the target clock.
- ``can_transcode``, ``codec_identity``, ``encodable_codec``: which codecs these classes cover,
  when two codecs are one encoder output, and which output a list of negotiated codecs gets.
- ``EncoderBitrates``: the bitrate an element's video encoders aim at, within its bounds.
- ``WorkQueue``: what the event loop hands a worker thread, bounded (the oldest goes first);
  ``call_from_thread``: how a worker thread hands its results back to the event loop.

Apart from ``WorkQueue``, nothing here is thread-safe: each instance belongs to one worker
thread.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import av
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.audio.codeccontext import AudioCodecContext

from emulator.media.codecs.packetize import OPUS, VP8
from emulator.media.codecs.served import is_dtmf
from emulator.media.flow import FrameSink, MediaPacket
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

FRAME_MS = 20
"""Audio output packets carry 20 ms (RFC 3551 4.5 default packetisation)."""
OPUS_BITRATE = 32000

_DTMF = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class EncoderBitrates:
    """KMD MediaElement's ``encoderBitrate``, ``minEncoderBitrate`` and ``maxEncoderBitrate``
    (bps; MediaElement.conf.ini's defaults): what a video encoder of that element aims at
    before any receiver estimate, and the bounds a receiver's REMB is held within (0: none
    above). aiortc's encoders clamp the result to their own range once more (VP8: 250 kbps to
    1.5 Mbps)."""

    target: int = 300_000
    low: int = 0
    high: int = 0

    def choose(self, estimate: int | None) -> int:
        """The bitrate to encode at, given the receivers' lowest estimate (None: unknown)."""
        bitrate = self.target if estimate is None else estimate
        if self.high > 0:
            bitrate = min(bitrate, self.high)
        return max(bitrate, self.low)


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


def can_transcode(kind: str, codec: Codec) -> bool:
    """Whether the transcoders decode and encode this codec."""
    name = codec.name.lower()
    return name in AUDIO_FORMATS if kind == "audio" else name in VIDEO_CODECS


def codec_identity(codec: Codec) -> tuple[Any, ...]:
    """What makes two codecs one encoder output: name, clock and channels, and for H264 the
    fmtp too (profiles and packetisation modes differ there)."""
    return (*codec.key, codec.fmtp or "") if codec.name.lower() == "h264" else codec.key


def encodable_codec(kind: str, offered: list[Codec]) -> Codec:
    """The first of the codecs a receiver negotiated that the encodings encode; Opus or VP8 when
    it names none (``[]``: a recorder, a receiver not negotiated yet: every WebRTC peer takes
    those)."""
    found = next((c for c in offered if not is_dtmf(c) and can_transcode(kind, c)), None)
    if found is not None:
        return found
    return OPUS if kind == "audio" else VP8


def call_from_thread(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any
) -> None:
    """Run ``callback(*args)`` on the event loop, from a worker thread."""
    # A closed loop has nobody left to deliver to.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


T = TypeVar("T")


class WorkQueue(Generic[T]):
    """What the event loop hands one worker thread, bounded: on overload the oldest item goes
    (``dropped`` counts them), so that a codec that cannot keep up loses old media instead of
    falling further behind."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self.closed = False
        self._items: collections.deque[T] = collections.deque()
        self._wake = threading.Condition()

    def put(self, item: T) -> None:
        """Queue ``item`` for the worker (nothing once closed)."""
        with self._wake:
            if self.closed:
                return
            if len(self._items) >= self.limit:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._wake.notify()

    def take(self) -> T | None:
        """The next item, waiting for one; None once the queue is closed (worker thread)."""
        with self._wake:
            while not self._items and not self.closed:
                self._wake.wait()
            return None if self.closed else self._items.popleft()

    def close(self) -> None:
        """Tell the worker to end after the item in hand; what is pending is dropped."""
        with self._wake:
            self.closed = True
            self._items.clear()
            self._wake.notify()


@dataclass(slots=True)
class MediaInput:
    """One received RTP packet as a worker thread takes it: its media payload and header."""

    payload: bytes
    sequence: int
    timestamp: int
    marker: bool
    arrival: float
    event_clock: int = 0
    """Clock rate of a telephone-event packet; 0 for media."""

    @classmethod
    def of(cls, packet: MediaPacket) -> MediaInput:
        """A pipeline packet of media (not a telephone-event), for a decoder."""
        view = packet.view
        return cls(view.media_payload, view.sequence, view.timestamp, view.marker, packet.arrival)


CodedOutput = tuple[bytes, int, bool, bool]
"""payload, timestamp (target clock), marker, is telephone-event."""


class Timeline:
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


class AudioEncoding:
    """The audio ``FrameSink`` of a transcoder: resample, re-packetise in 20 ms frames, encode
    (worker-thread side). What it encodes is collected for ``take()``."""

    def __init__(self, source: Codec, target: Codec, timeline: Timeline) -> None:
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
        self.produced: list[CodedOutput] = []

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

    def take(self) -> list[CodedOutput]:
        """What was encoded since the last call."""
        produced, self.produced = self.produced, []
        return produced


class AudioCoder:
    """Decode the source's packets and hand each frame to the ``FrameSink`` (the encoding);
    telephone-events are retimed, never decoded (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec) -> None:
        fmt = AUDIO_FORMATS[source.name.lower()]
        self.source_clock = source.clock_rate
        self.target_clock = target.clock_rate
        self.decoder = cast(AudioCodecContext, av.CodecContext.create(fmt.decoder, "r"))
        self.decoder.sample_rate = fmt.sample_rate
        self.decoder.layout = fmt.layout
        self.timeline = Timeline(source.clock_rate, target.clock_rate)
        self.encoding = AudioEncoding(source, target, self.timeline)
        self.sink: FrameSink = self.encoding
        self.decode_error = ""
        """Set by the worker when the decoder refused a packet (what FFmpeg said)."""

    def process(self, item: MediaInput) -> list[CodedOutput]:
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

    def _event(self, item: MediaInput, position: int) -> CodedOutput:
        # RFC 4733 2.3: event, E/R/volume, duration in the event's clock; only the duration and
        # the timestamp change clock, the event itself is never decoded.
        payload = item.payload
        if len(payload) >= _DTMF.size:
            event, flags, duration = _DTMF.unpack_from(payload)
            duration = min(duration * self.target_clock // item.event_clock, 0xFFFF)
            payload = _DTMF.pack(event, flags, duration) + payload[_DTMF.size :]
        timestamp = self.timeline.to_target(position) & 0xFFFFFFFF
        return (payload, timestamp, item.marker, True)


class VideoEncoding:
    """The video ``FrameSink`` of a transcoder: encode (a keyframe when asked) and packetise
    with aiortc's encoders (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec, timeline: Timeline) -> None:
        self.encoder = get_encoder(rtc_codec(target))
        self.timeline = timeline
        self.force_keyframe = False
        self.produced: list[CodedOutput] = []

    @property
    def bitrate(self) -> int:
        """The encoder's target bitrate (bps)."""
        return int(self.encoder.target_bitrate)  # type: ignore[attr-defined]

    @bitrate.setter
    def bitrate(self, bps: int) -> None:
        # aiortc's VP8 and H264 encoders clamp it to their range and re-create their codec on
        # the next frame when it moves by more than 10 %: set from any thread, read there.
        self.encoder.target_bitrate = bps  # type: ignore[attr-defined]

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

    def take(self) -> list[CodedOutput]:
        """What was encoded since the last call."""
        produced, self.produced = self.produced, []
        return produced


class VideoCoder:
    """Depayload, reassemble frames and decode them, handing each to the ``FrameSink`` (the
    encoding); notes when the source must send a keyframe (worker-thread side)."""

    def __init__(self, source: Codec, target: Codec) -> None:
        self.source = rtc_codec(source)
        self.decoder = get_decoder(self.source)
        self.timeline = Timeline(source.clock_rate, target.clock_rate)
        self.encoding = VideoEncoding(source, target, self.timeline)
        self.sink: FrameSink = self.encoding
        self.frame_timestamp: int | None = None
        self.parts: list[bytes] = []
        self.broken = False
        self.next_sequence: int | None = None
        self.keyframe_needed = False
        """Set by the worker when the source must send a keyframe."""
        self.decode_error = ""
        """Set by the worker when the decoder refused a whole frame (what FFmpeg said)."""

    def process(self, item: MediaInput) -> list[CodedOutput]:
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


def rtc_codec(codec: Codec) -> RTCRtpCodecParameters:
    """The codec as aiortc's encoders, decoders and packetisers take it."""
    return RTCRtpCodecParameters(
        mimeType=f"video/{codec.name}",
        clockRate=codec.clock_rate,
        payloadType=codec.payload_type,
        parameters=dict(codec.parameters()),
    )
