"""The media behind the filters: decode, process each frame, encode, off the event loop.

A ``VideoFilterStage`` takes a filter's incoming video as pipeline packets (VP8 or H264), and
on one worker thread per filter depayloads and decodes it (``codecs/coders.py``'s
``VideoCoder``, the transcoders' decoding), hands each frame to a ``FrameProcessor`` as a BGR
``numpy`` image (OpenCV's layout), and encodes what it returns once per output codec, the codecs
the sinks take as they are (``MediaElement.codecs_taken``; VP8 when none is known:
``coders.encodable_codec``), so that no sink has to transcode again. The encoded frames become
``MediaPacket``s with ``codecs/packetize.py``'s ``RtpStamper`` (one outgoing stream per output
codec, as the player's), back on the event loop.

A sink's keyframe request (PLI/FIR) reaches the encoders (``request_keyframe``); when the decoder
lacks a keyframe, the stage tells its owner (at most once a second), which asks its source.

``AudioGainStage`` is the one audio processing the filters need (GStreamer's ``volume``): a
``Transcoder`` from the source codec to itself whose decoded frames are scaled on the way to
its encoder. Audio the filters do not touch is forwarded by the element without decoding.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np
from aiortc.codecs import get_encoder

from emulator.media.codecs.coders import (
    AudioCoder,
    MediaInput,
    VideoCoder,
    WorkQueue,
    call_from_thread,
    can_transcode,
    codec_identity,
    rtc_codec,
)
from emulator.media.codecs.packetize import VP8, RtpPayload, RtpStamper, video_payloads
from emulator.media.codecs.served import is_dtmf
from emulator.media.codecs.transcoding import VIDEO_QUEUE, TranscodedPacket, Transcoder
from emulator.media.flow import MediaPacket
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
KEYFRAME_INTERVAL = 1.0
"""Seconds between two keyframe requests towards the source."""
SOURCE_GAP = 1 / 30
"""Seconds between the last frame of a source and the first of the next one."""

Image = np.ndarray[Any, np.dtype[np.uint8]]
"""A BGR image, height x width x 3, as OpenCV takes it."""


class FrameProcessor(Protocol):
    """The per-frame work of a filter, called on the stage's worker thread."""

    def process(self, image: Image, seconds: float) -> Image | None:
        """The image to send for ``image`` (at ``seconds`` of the stream); None drops it."""


class FilterOwner(Protocol):
    """What the stage tells its element, on the event loop."""

    def filtered_frame(self, codec: Codec, packets: list[MediaPacket]) -> None:
        """One processed frame encoded in ``codec``, for the sinks that take that codec."""

    def filter_keyframe_needed(self) -> None:
        """The decoder needs a keyframe from the source."""


@dataclass
class _Output:
    """One encoded output stream (worker side: encoder; loop side: stamper)."""

    codec: Codec
    encoder: Any
    stamper: RtpStamper


class VideoFilterStage:
    """Decodes a filter's video, processes each frame and encodes it per output codec."""

    def __init__(
        self, processor: FrameProcessor, owner: FilterOwner, name: str, encodes: bool = True
    ) -> None:
        self.processor = processor
        self.encodes = encodes
        """False: frames are only looked at (a scanner); the element forwards the video."""
        self.owner = owner
        self.name = name
        self.frames = 0
        self._loop = asyncio.get_running_loop()
        self._queue: WorkQueue[tuple[MediaInput, object, Codec]] = WorkQueue(VIDEO_QUEUE)
        self._targets: list[Codec] = [VP8]
        self._outputs: dict[tuple[Any, ...], _Output] = {}
        self._force_keyframe = False
        self._bitrate: int | None = None
        self._last_keyframe_request = 0.0
        self._decoding: tuple[object, tuple[Any, ...], VideoCoder] | None = None
        self._offset = 0.0
        self._last_seconds = 0.0
        self._failed_once = False
        self._arrival = 0.0
        """When the packet that completed the frame in hand entered the server."""
        self.closed = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"filter {name}", daemon=True)
        self._thread.start()

    # -- event loop side -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Packets dropped on overload (the oldest pending one when the queue was full)."""
        return self._queue.dropped

    def feed(self, packet: MediaPacket) -> None:
        """Queue one packet of the incoming video (the oldest is dropped on overload)."""
        if can_transcode("video", packet.codec):
            self._queue.put((MediaInput.of(packet), packet.source, packet.codec))

    def set_targets(self, codecs: list[Codec]) -> None:
        """Encode into these codecs from the next frame on (one output stream each)."""
        self._targets = codecs or [VP8]

    def request_keyframe(self) -> None:
        """The next frame of every output is a keyframe (a sink asked with PLI or FIR)."""
        self._force_keyframe = True

    def set_bitrate(self, bitrate: int | None) -> None:
        """The video bitrate (bps) the receivers take (their REMB), None when unknown (the
        encoders' default then); aiortc's encoders clamp it and follow it from the next frame."""
        self._bitrate = bitrate

    def close(self) -> None:
        """Stop the worker thread (it ends after the frame in hand)."""
        self._queue.close()

    async def wait_closed(self) -> None:
        """Until the worker thread has ended."""
        await self.closed.wait()
        await asyncio.to_thread(self._thread.join)

    def _deliver(self, batches: list[tuple[RtpStamper, list[RtpPayload]]], arrival: float) -> None:
        if self._queue.closed:
            return
        for stamper, payloads in batches:
            self.owner.filtered_frame(stamper.codec, stamper.packets(payloads, arrival))

    def _keyframe_needed(self) -> None:
        now = time.monotonic()
        if not self._queue.closed and now - self._last_keyframe_request > KEYFRAME_INTERVAL:
            self._last_keyframe_request = now
            self.owner.filter_keyframe_needed()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        call_from_thread(self._loop, callback, *args)

    # -- worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (taken := self._queue.take()) is not None:
                item, source, codec = taken
                decoding = self._decoding_for(source, codec)
                self._arrival = item.arrival
                decoding.process(item)
                if decoding.keyframe_needed:
                    decoding.keyframe_needed = False
                    self._post(self._keyframe_needed)
        finally:
            self._post(self.closed.set)

    def _decoding_for(self, source: object, codec: Codec) -> VideoCoder:
        """The decoder of this source and codec; a new one when either changes, its frames
        placed right after the last one sent so that the outputs' timestamps go on."""
        identity = codec_identity(codec)
        if self._decoding is not None and self._decoding[:2] == (source, identity):
            return self._decoding[2]
        decoding = VideoCoder(codec, VP8)  # the transcoders' decoding; its frames come here
        decoding.sink = self
        if self._decoding is not None:
            self._offset = self._last_seconds + SOURCE_GAP
        self._decoding = (source, identity, decoding)
        return decoding

    def frame(self, frame: Any, position: int) -> None:
        """A decoded frame (the decoder's ``FrameSink``): process, encode, post the packets."""
        seconds = self._offset + position / VIDEO_CLOCK
        self._last_seconds = seconds
        try:
            image = self.processor.process(frame.to_ndarray(format="bgr24"), seconds)
        except Exception:  # a filter bug must not end the stage; said once, frames dropped
            if not self._failed_once:
                self._failed_once = True
                logger.exception("! filter %s failed on a frame", self.name)
            return
        if image is None or not self.encodes:
            return
        self.frames += 1
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        out.pts = round(seconds * VIDEO_CLOCK)
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        keyframe, self._force_keyframe = self._force_keyframe, False
        batches = [
            (output.stamper, video_payloads(output.encoder.encode(out, keyframe)[0], seconds))
            for output in self._current_outputs()
        ]
        self._post(self._deliver, batches, self._arrival)

    def _current_outputs(self) -> list[_Output]:
        wanted = {codec_identity(codec): codec for codec in self._targets}
        for identity in [i for i in self._outputs if i not in wanted]:
            del self._outputs[identity]
        for identity, codec in wanted.items():
            if identity not in self._outputs:  # a new encoder starts with a keyframe
                encoder = get_encoder(rtc_codec(codec))
                self._outputs[identity] = _Output(codec, encoder, RtpStamper("video", codec))
        if self._bitrate is not None:
            for output in self._outputs.values():
                output.encoder.target_bitrate = self._bitrate
        return list(self._outputs.values())


Gain = Callable[[], float]
"""The current linear gain (read per frame, so that a change applies at once)."""


class _ScaledAudio:
    """The ``FrameSink`` between an audio transcoder's decoder and its encoder: scales."""

    def __init__(self, encoding: Any, gain: Gain) -> None:
        self.encoding = encoding
        self.gain = gain

    def frame(self, frame: Any, position: int) -> None:
        factor = self.gain()
        if factor != 1.0:
            frame = scaled(frame, factor)
        self.encoding.frame(frame, position)


def scaled(frame: Any, factor: float) -> Any:
    """An ``av.AudioFrame`` with its samples multiplied by ``factor``, clipped."""
    samples = frame.to_ndarray()
    if samples.dtype == np.int16:
        values = np.clip(samples.astype(np.float32) * factor, -32768, 32767).astype(np.int16)
    else:
        values = np.clip(samples * factor, -1.0, 1.0).astype(samples.dtype)
    out = av.AudioFrame.from_ndarray(values, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


class AudioGainStage:
    """Scales a filter's audio: decoded and re-encoded in the codec it arrives in."""

    def __init__(self, gain: Gain, deliver: Callable[[MediaPacket], None], name: str) -> None:
        self.gain = gain
        self.deliver = deliver
        self.name = name
        self._route: tuple[object, tuple[Any, ...], Transcoder] | None = None

    def feed(self, packet: MediaPacket) -> None:
        """One incoming audio packet (telephone-events are retimed, never decoded)."""
        if is_dtmf(packet.codec):
            if self._route is not None and self._route[0] is packet.source:
                self._route[2].feed_event(packet.view, packet.source, packet.codec.clock_rate)
            return
        if not can_transcode("audio", packet.codec):
            return
        transcoder = self._transcoder_for(packet.source, packet.codec)
        transcoder.feed(packet.view, packet.source)

    def _transcoder_for(self, source: object, codec: Codec) -> Transcoder:
        if self._route is not None and self._route[:2] == (source, codec.key):
            return self._route[2]
        self.close()
        transcoder = Transcoder(codec, codec, "audio", asyncio.get_running_loop(), _ignore)
        coder = transcoder.coder
        assert isinstance(coder, AudioCoder)
        coder.sink = _ScaledAudio(coder.encoding, self.gain)
        transcoder.subscribe(self._transcoded)
        self._route = (source, codec.key, transcoder)
        logger.info("= filter %s scales audio %s", self.name, codec.name)
        return transcoder

    def _transcoded(self, packet: TranscodedPacket) -> None:
        self.deliver(MediaPacket("audio", packet.view, packet.codec, packet.source, {},
                                 packet.arrival))  # fmt: skip

    def close(self) -> None:
        """Stop the transcoder's thread."""
        route, self._route = self._route, None
        if route is not None:
            route[2].close()


def _ignore(_: Transcoder) -> None:
    """Not in the server's registry of transcoders: nothing to remove it from."""
