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
    transcoder.set_bounds(EncoderBitrates(target, low, high))  # video: the source's encoderBitrate
    transcoder.unsubscribe(on_packet)                 # the last one closes it (its thread ends)
    transcoders.live                                  # transcoders running now

``on_packet`` receives a ``TranscodedPacket``: ``view`` is a complete RTP packet (the
transcoder's own SSRC and sequence numbers, the target codec's payload type, timestamps in the
target clock, marker), ``codec`` is the target codec (or ``telephone-event`` at the target clock),
``source`` an ``InboundStream`` that identifies the transcoder's output and counts it (pass it to
``OutboundStream.next_numbers`` as the source) and ``arrival`` when its input was fed.
``on_keyframe_needed`` is called (at most once a second) when the decoder needs a keyframe from
the source. ``SinkTranscoding`` is the small seam a sink's media owns (``WebRtcMedia`` has one):
``feed(kind, view, codec, origin, targets)`` when the sink lacks the codec (and for
telephone-events while transcoding), ``stop(kind)`` when the link goes, ``transcoder(kind)`` for
PLI/FIR, ``bitrate(kind, bps)`` for REMB. It picks the target (the sink's first codec PyAV
encodes), subscribes, switches when the source changes and tells its ``TranscodingListener``;
the element then calls ``MediaElement.transcoding_changed``, which raises
``MediaTranscodingStateChanged`` on the element feeding the sink, and
``MediaElement.on_source_removed`` is where a sink stops its transcoding.

The decoding and encoding are ``coders.py``'s (``AudioCoder``, ``VideoCoder``), which the mixing
hubs and the filters use as well. Each transcoder runs one worker thread fed through a bounded
queue that drops the oldest packet on overload (``Transcoder.dropped`` counts them); results come
back with ``loop.call_soon_threadsafe``. Audio is resampled (``av.AudioResampler``) and
re-packetised in 20 ms frames; RTP timestamps follow the source's timeline, converted to the
target clock (G.722 samples at 16 kHz with an 8 kHz RTP clock, RFC 3551 4.5.2). Video is
depayloaded, decoded and re-encoded with aiortc's VP8 (RFC 7741) and H264 (RFC 6184) codecs and
packetisers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.media.codecs.coders import (
    AUDIO_FORMATS,
    VIDEO_CODECS,
    AudioCoder,
    CodedOutput,
    EncoderBitrates,
    MediaInput,
    VideoCoder,
    WorkQueue,
    call_from_thread,
    can_transcode,
    codec_identity,
)
from emulator.media.codecs.served import is_dtmf
from emulator.media.rtp.packet import FIXED_HEADER, RtpView
from emulator.media.rtp.streams import InboundStream
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

AUDIO_QUEUE = 50
"""Pending audio packets per transcoder (1 s of 20 ms packets) before the oldest is dropped."""
VIDEO_QUEUE = 600
"""Pending video packets per transcoder before the oldest is dropped."""
KEYFRAME_INTERVAL = 1.0
"""Seconds between two upstream keyframe requests of one transcoder."""
DECODE_ERROR_EVERY = 100
"""After the first, one decode failure in this many is reported (``Error`` events)."""

_HEADER = struct.Struct("!BBHII")


class TranscodingUnsupported(ValueError):
    """No transcoder exists for that pair of codecs."""


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
        self.coder: AudioCoder | VideoCoder = (
            AudioCoder(source, target) if kind == "audio" else VideoCoder(source, target)
        )
        self.ssrc = random.getrandbits(32)
        self.stream = InboundStream(self.ssrc, target.clock_rate, kind)
        self.fed = 0
        self.produced = 0
        self._loop = loop
        self._on_closed = on_closed
        self._subscribers: dict[PacketCallback, KeyframeCallback | None] = {}
        self._error_watchers: dict[PacketCallback, DecodeErrorCallback] = {}
        self.decode_errors = 0
        """Packets (audio) or frames (video) the decoder refused."""
        self._bitrates: dict[PacketCallback, int] = {}
        self.bounds = EncoderBitrates()
        """The encoderBitrate bounds of the element whose output this is (``set_bounds``)."""
        self._queue: WorkQueue[MediaInput] = WorkQueue(
            AUDIO_QUEUE if kind == "audio" else VIDEO_QUEUE
        )
        self._last_fed: tuple[object, int] | None = None
        self._last_keyframe_request = 0.0
        self._sequence = random.getrandbits(16)
        self.closed = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"transcoder {self.name}")
        self._thread.daemon = True
        self._apply_bitrate()
        self._thread.start()

    # -- event loop side -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Packets dropped on overload (the oldest pending one when the queue was full)."""
        return self._queue.dropped

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

    def set_bounds(self, bounds: EncoderBitrates) -> None:
        """Video: aim at ``bounds.target`` until a subscriber's REMB comes, and hold REMBs
        within the bounds (the source element's encoderBitrate, min/maxEncoderBitrate)."""
        self.bounds = bounds
        self._apply_bitrate()

    def set_bitrate(self, on_packet: PacketCallback, bitrate: int) -> None:
        """A subscriber's receive estimate (REMB, bps): video is encoded for the lowest one."""
        if on_packet in self._subscribers and bitrate > 0:
            self._bitrates[on_packet] = bitrate
            self._apply_bitrate()

    @property
    def target_bitrate(self) -> int | None:
        """The video encoder's target bitrate (bps), None for audio."""
        if isinstance(self.coder, VideoCoder):
            return self.coder.encoding.bitrate
        return None

    def _apply_bitrate(self) -> None:
        if isinstance(self.coder, VideoCoder):
            estimate = min(self._bitrates.values()) if self._bitrates else None
            self.coder.encoding.bitrate = self.bounds.choose(estimate)

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
        if self._queue.closed:
            return
        fed = (source_key, view.sequence)
        if fed == self._last_fed:
            return  # the same packet through another sink of the same source: fan-out
        self._last_fed = fed
        self.fed += 1
        item = MediaInput(
            view.media_payload,
            view.sequence,
            view.timestamp,
            view.marker,
            time.monotonic(),
            event_clock,
        )
        self._queue.put(item)

    def request_keyframe(self) -> None:
        """The next encoded video frame is a keyframe (a sink asked with PLI or FIR)."""
        if isinstance(self.coder, VideoCoder):
            self.coder.encoding.force_keyframe = True

    def close(self) -> None:
        """Stop the worker thread (it ends after the packet in hand) and leave the registry."""
        if self._queue.closed:
            return
        self._queue.close()
        self._subscribers.clear()
        self._on_closed(self)

    async def wait_closed(self) -> None:
        """Until the worker thread has ended."""
        await self.closed.wait()

    def _deliver(self, packets: list[TranscodedPacket], keyframe_needed: bool) -> None:
        if self._queue.closed:
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
        if watcher is not None and not self._queue.closed:
            watcher(reason, count)

    def _thread_ended(self) -> None:
        self.closed.set()

    # -- worker thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (item := self._queue.take()) is not None:
                try:
                    outputs = self.coder.process(item)
                except Exception:
                    logger.exception("! transcoder %s failed on a packet", self.name)
                    continue
                keyframe_needed = False
                if isinstance(self.coder, VideoCoder):
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
        call_from_thread(self._loop, callback, *args)

    def _packet(self, output: CodedOutput, arrival: float) -> TranscodedPacket:
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
        key = (id(origin), codec_identity(source), codec_identity(target), kind)
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

    def encoder_bitrates(self, kind: str) -> EncoderBitrates:
        """The encoderBitrate bounds of the element whose output is transcoded for this sink
        (in KMS, that element's agnosticbin encodes)."""


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
            or not any(
                codec_identity(t) == codec_identity(route.transcoder.target) for t in targets
            )
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
        transcoder.set_bounds(self.listener.encoder_bitrates(kind))
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

    def bounds_changed(self) -> None:
        """The source element's encoderBitrate bounds changed: the video transcoder follows."""
        route = self.routes.get("video")
        if route is not None:
            route.transcoder.set_bounds(self.listener.encoder_bitrates("video"))

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
