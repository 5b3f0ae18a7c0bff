"""The media of an HttpPostEndpoint: an uploaded WebM/MP4 body, demuxed as it streams in, paced by
its timestamps and sent into the pipeline as RTP.

Two parts, each usable alone:

- ``Demuxer``: PyAV over any readable file-like object (no seeking: a body that streams in). It
  yields ``DemuxedFrame``s: the stream kind, the RTP ``Codec``, the frame's RTP payloads, its RTP
  timestamp and its time in seconds. Packetising (VP8 per RFC 7741, H.264 per RFC 6184 with the
  MP4/Matroska length prefixes turned into Annex B, Opus per RFC 7587: one frame per packet) and
  the RTP packets themselves (``RtpStamper``) are ``emulator/media/codecs/packetize.py``, shared
  with the PlayerEndpoint. Streams of other codecs are skipped (logged once).
- ``BodyPipe`` and ``HttpPostMedia``: the upload seam. The HTTP listener writes the body into the
  pipe (``UploadSink``: ``write``, ``finish``, ``abort``); a worker thread reads it through the
  ``Demuxer``, waits for each frame's time and hands its packets to the event loop. The pipe is
  bounded, so a fast client is held back to the pace of the media, as KMS's appsrc holds it.

The HTTP side (``emulator/transport/http_endpoint.py``) knows only the ``UploadTarget``,
``UploadSink`` and ``HttpEndpoints`` protocols declared here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import av

from emulator.media.codecs.packetize import RtpPayload, RtpStamper, StreamPacketizer, forwarded
from emulator.media.flow import MediaPacket
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

PIPE_LIMIT = 512 * 1024
"""Body bytes buffered ahead of the demuxer before the upload waits (about 1-2 s of media)."""
READ_SIZE = 64 * 1024


class DemuxError(Exception):
    """The body is not a media container the demuxer reads, or it broke off inside."""

    def __init__(self, message: str, opened: bool) -> None:
        super().__init__(message)
        self.opened = opened
        """False: the container could not even be opened (not media, or an unknown format)."""


@dataclass(frozen=True, slots=True)
class DemuxedFrame:
    """One encoded frame of a container stream, packetised for RTP."""

    kind: str
    """``audio`` or ``video``."""
    codec: Codec
    payloads: list[RtpPayload]
    """Each with its marker bit, and its time in the stream's own timeline."""
    timestamp: int
    """In the codec's RTP clock, from the stream's start."""
    seconds: float
    """When the frame is due, from the container's start (decode order: dts where known)."""
    keyframe: bool


class Demuxer:
    """Reads a WebM or MP4 container from a file-like object and yields its frames packetised.

    Args:
        source: anything with ``read(size) -> bytes``; it is never asked to seek, so an MP4 must
            carry its ``moov`` box first (``-movflags +faststart``) or be fragmented.

    Raises:
        DemuxError: at construction, when the bytes are not a container PyAV can open or hold no
            stream of a codec that is sent as it is (VP8, H.264, Opus).
    """

    def __init__(self, source: Any) -> None:
        try:
            self.container = av.open(_Unseekable(source), mode="r")
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise DemuxError(f"not a media container: {exc}", opened=False) from exc
        self.format = str(self.container.format.name)
        self._streams: dict[int, StreamPacketizer] = {}
        for stream in self.container.streams:
            packetizer = forwarded(stream)
            if packetizer is None:
                name = stream.codec_context.name if stream.type in ("audio", "video") else None
                logger.warning(
                    "! %s stream %d (%s) is skipped: not VP8, H.264 or Opus",
                    self.format,
                    stream.index,
                    name or stream.type,
                )
                continue
            self._streams[stream.index] = packetizer
        if not self._streams:
            self.container.close()
            raise DemuxError(
                f"the {self.format} container has no VP8, H.264 or Opus stream", opened=False
            )

    @property
    def kinds(self) -> list[str]:
        """The kinds of the streams that are sent (``audio``, ``video``)."""
        return sorted({packetizer.kind for packetizer in self._streams.values()})

    def frames(self) -> Iterator[DemuxedFrame]:
        """Every frame in container order, until the end of the body.

        Raises:
            DemuxError: the container broke off (truncated or corrupt body).
        """
        start: float | None = None
        first: dict[int, float] = {}
        try:
            for packet in self.container.demux():
                packetizer = self._streams.get(packet.stream.index)
                if packetizer is None or packet.size == 0 or packet.time_base is None:
                    continue
                position = packet.dts if packet.dts is not None else packet.pts
                if position is None:
                    continue
                seconds = packetizer.seconds(position)
                if start is None:
                    start = seconds
                for frame in packetizer.frames(packet):
                    # RTP timestamps of each stream count from its first frame
                    zero = first.setdefault(packet.stream.index, frame.seconds)
                    rate = packetizer.codec.clock_rate
                    yield DemuxedFrame(
                        packetizer.kind,
                        packetizer.codec,
                        frame.payloads,
                        round((frame.seconds - zero) * rate) & 0xFFFFFFFF,
                        max(seconds - start, 0.0),
                        frame.keyframe,
                    )
        except av.FFmpegError as exc:
            raise DemuxError(f"the {self.format} body is damaged: {exc}", opened=True) from exc

    def close(self) -> None:
        """Close the container."""
        self.container.close()


class _Unseekable:
    """Hides everything but ``read``: PyAV then streams and never seeks (a body has no end yet)."""

    def __init__(self, source: Any) -> None:
        self._read = source.read

    def read(self, size: int) -> bytes:
        data: bytes = self._read(size)
        return data


# -- the upload seam -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadResult:
    """How the HTTP request is answered once its body is in (or refused)."""

    status: int
    reason: str


class UploadRefused(Exception):
    """The endpoint does not take this request now: the listener answers ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UploadSink(Protocol):
    """Where the listener writes one POST's media body."""

    async def write(self, data: bytes) -> bool:
        """Take the next bytes (waits while the media is behind); False: stop sending, the
        media failed (``finish`` says why)."""

    async def finish(self) -> UploadResult:
        """The body is complete: the answer to the request."""

    def abort(self, reason: str) -> None:
        """The connection broke off: play what came, then end."""


class UploadTarget(Protocol):
    """What the listener serves at a registered URL (an HttpPostEndpoint)."""

    def open_upload(self) -> UploadSink:
        """A POST begins.

        Raises:
            UploadRefused: the endpoint takes no upload now.
        """


class HttpEndpoints(Protocol):
    """The server's HTTP endpoint listener, as objects see it."""

    def register(self, target: UploadTarget) -> str:
        """A new URL served by ``target`` (the listener opens at its first registration).

        Raises:
            OSError: the listener could not bind its address and port.
        """

    def unregister(self, url: str) -> None:
        """Stop serving the URL (requests get 404 from now on)."""


class BodyPipe:
    """Bytes from the event loop to one reading thread, bounded by ``limit`` (backpressure)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = PIPE_LIMIT) -> None:
        self._loop = loop
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._broken = False
        self._cond = threading.Condition()
        self._space = asyncio.Event()
        self._space.set()

    async def write(self, data: bytes) -> bool:
        """Queue bytes, waiting while ``limit`` bytes are unread; False once the reader left."""
        while True:
            with self._cond:
                if self._broken:
                    return False
                if self._size < self._limit:
                    self._chunks.append(data)
                    self._size += len(data)
                    self._cond.notify_all()
                    return True
                self._space.clear()
            await self._space.wait()

    def close(self) -> None:
        """No more bytes: the reader gets EOF after what is queued."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def break_off(self) -> None:
        """The reader is gone (or must stop): writes fail, reads return EOF."""
        with self._cond:
            self._broken = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()
        self._loop.call_soon_threadsafe(self._space.set)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (blocks until some are there); b"" at EOF (reader thread)."""
        with self._cond:
            while not self._chunks and not self._eof and not self._broken:
                self._cond.wait()
            if self._broken or not self._chunks:
                return b""
            data = self._chunks.popleft()
            if 0 <= size < len(data):
                self._chunks.appendleft(data[size:])
                data = data[:size]
            was_full = self._size >= self._limit
            self._size -= len(data)
            wake = was_full and self._size < self._limit
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                self._loop.call_soon_threadsafe(self._space.set)
        return data


class MediaListener(Protocol):
    """What ``HttpPostMedia`` tells its element (on the event loop)."""

    def media_packets(self, kind: str, packets: list[MediaPacket]) -> None:
        """Packets of one frame, due now."""

    def media_ended(self) -> None:
        """The whole body has been played."""

    def media_failed(self, error: DemuxError) -> None:
        """The body is not media, or broke off."""


class HttpPostMedia:
    """One POST's media: the body pipe, the demuxing thread, pacing and packetisation.

    Implements ``UploadSink`` for the listener; reports to ``listener`` on the event loop.
    """

    def __init__(self, listener: MediaListener, name: str) -> None:
        self.listener = listener
        self.name = name
        self._loop = asyncio.get_running_loop()
        self.pipe = BodyPipe(self._loop)
        self._opened: asyncio.Future[DemuxError | None] = self._loop.create_future()
        self._done: asyncio.Future[DemuxError | None] = self._loop.create_future()
        self._stop = threading.Event()
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name=f"http-post {name}", daemon=True)
        self._thread.start()

    # -- UploadSink (event loop) ---------------------------------------------------------------

    async def write(self, data: bytes) -> bool:
        """Feed body bytes to the demuxer."""
        return await self.pipe.write(data)

    async def finish(self) -> UploadResult:
        """End of body: 200 once the container opened, 415 when it is not media."""
        self.pipe.close()
        error = await self._opened
        if error is None:
            return UploadResult(200, "OK")
        return UploadResult(415, str(error))

    def abort(self, reason: str) -> None:
        """The client went away: what was received plays out."""
        logger.info("= %s: upload broke off (%s)", self.name, reason)
        self.pipe.close()

    async def stop(self) -> None:
        """Stop playing now (the element is released); waits for the thread to end."""
        self._stop.set()
        self.pipe.break_off()
        await asyncio.shield(self._done)

    @property
    def running(self) -> bool:
        """Whether the body is still being played."""
        return not self._done.done()

    # -- the demuxing thread -------------------------------------------------------------------

    def _run(self) -> None:
        error: DemuxError | None = None
        try:
            demuxer = Demuxer(self.pipe)
        except DemuxError as exc:
            self._post(self._settle, self._opened, exc)
            self.pipe.break_off()
            self._post(self._end, exc)
            return
        self._post(self._settle, self._opened, None)
        stampers: dict[str, RtpStamper] = {}
        start = time.monotonic()
        try:
            for frame in demuxer.frames():
                if self._stop.wait(max(start + frame.seconds - time.monotonic(), 0.0)):
                    break
                stamper = stampers.get(frame.kind)
                if stamper is None:
                    stamper = stampers[frame.kind] = RtpStamper(frame.kind, frame.codec)
                self.frames += 1
                self._post(self._deliver, stamper, frame)
        except DemuxError as exc:
            error = exc
        finally:
            demuxer.close()
            self.pipe.break_off()  # a client still sending learns the media has ended
        self._post(self._end, error)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            self._loop.call_soon_threadsafe(callback, *args)

    # -- back on the event loop ----------------------------------------------------------------

    @staticmethod
    def _settle(future: asyncio.Future[DemuxError | None], value: DemuxError | None) -> None:
        if not future.done():
            future.set_result(value)

    def _deliver(self, stamper: RtpStamper, frame: DemuxedFrame) -> None:
        if not self._stop.is_set():
            packets = stamper.packets(frame.payloads, time.monotonic())
            self.listener.media_packets(frame.kind, packets)

    def _end(self, error: DemuxError | None) -> None:
        self._settle(self._opened, error)
        self._settle(self._done, error)
        if self._stop.is_set():
            return
        if error is None:
            self.listener.media_ended()
        else:
            self.listener.media_failed(error)
