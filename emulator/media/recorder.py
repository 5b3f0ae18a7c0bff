"""Recording: the media a RecorderEndpoint receives, muxed into a file by PyAV.

RTP packets are depacketised into encoded frames (VP8 RFC 7741, H264 RFC 6184 through aiortc's
depayloaders; audio packets are frames already) and muxed as they are when the codec fits the
profile's container (VP8/Opus into WebM, H264 into MP4, MKV or FLV); otherwise they are decoded
and encoded into the profile's codec (VP8 to H264, Opus to AAC...). The profiles follow KMS's
``kmsrecordingprofile.c`` (see ``PROFILES``).

Everything that touches codecs or the disk runs in one worker thread per recording, fed through a
bounded queue, so the event loop never waits on either: ``Recorder.feed`` only queues, and
``Recorder.finish`` awaits the thread's end, after which the file is complete (trailer written,
uploaded for http(s):// targets). What the worker has to say (first frame written, a keyframe
needed, an error) comes back with ``loop.call_soon_threadsafe`` to a ``RecorderListener``.

Timestamps: each track's first frame is placed at its arrival time since the recording's first
frame (so audio and video stay in step), later frames at their RTP distance from it. A new source
(a switch) or a resume after a pause starts a new segment at the arrival time minus the time spent
paused, so paused time is not in the file. ``gapsFix`` GENPTS also closes gaps inside a segment
(lost packets, a sender that stopped), placing the frame after a gap one frame after the last.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import fractions
import http.client
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import av
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import vp8_depayload
from av.container import OutputContainer

from emulator.media.codecs.coders import AUDIO_FORMATS
from emulator.media.flow import MediaPacket
from emulator.media.rtp.keyframes import keyframe_detector

logger = logging.getLogger(__name__)

MS = fractions.Fraction(1, 1000)
QUEUE_LIMIT = 2000
"""Pending packets (about 10 s of audio and video) before the oldest is dropped."""
HOLD_SECONDS = 2.0
"""How long the first frames wait for every track of the profile before the file is started
with the tracks that did arrive (a container's tracks are fixed when its header is written)."""
KEYFRAME_INTERVAL = 1.0
"""Seconds between two keyframe requests of one recording."""
GAP_MS = 250
"""GENPTS: a jump of more than this between two frames of a segment is a gap to close."""
VIDEO_BITRATE = 1_000_000
AUDIO_BITRATE = 64_000
UPLOAD_CHUNK = 64 * 1024
NEW_SEGMENT = "new segment"
"""Queued on resume: every track starts a new segment at the next packet."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A ``MediaProfileSpecType``: the container and the codec of each track it keeps."""

    name: str
    container: str
    """FFmpeg muxer name."""
    video: str | None
    """Codec of the video track (FFmpeg name), None when the profile keeps no video."""
    audio: str | None

    def codec(self, kind: str) -> str | None:
        """The file's codec for ``audio`` or ``video``; None when the profile drops that kind."""
        return self.video if kind == "video" else self.audio


PROFILES = {
    profile.name: profile
    for profile in (
        # kmsrecordingprofile.c: WEBM is VP8 + Opus in WebM.
        Profile("WEBM", "webm", "vp8", "opus"),
        Profile("WEBM_VIDEO_ONLY", "webm", "vp8", None),
        Profile("WEBM_AUDIO_ONLY", "webm", None, "opus"),
        # KMS 7 records MP4 as H264 + AAC.
        Profile("MP4", "mp4", "h264", "aac"),
        Profile("MP4_VIDEO_ONLY", "mp4", "h264", None),
        Profile("MP4_AUDIO_ONLY", "mp4", None, "aac"),
        # kmsrecordingprofile.c gives MKV H264 + AAC (mpegversion=4) caps; we write them into a
        # real Matroska container.
        Profile("MKV", "matroska", "h264", "aac"),
        Profile("MKV_VIDEO_ONLY", "matroska", "h264", None),
        Profile("MKV_AUDIO_ONLY", "matroska", None, "aac"),
        Profile("FLV", "flv", "h264", "aac"),
        # JPEG_VIDEO_ONLY: every picture encoded as a JPEG image (KMS's jpegenc + jifmux into
        # the file): the file is the images one after another, as FFmpeg's mjpeg muxer writes.
        Profile("JPEG_VIDEO_ONLY", "mjpeg", "mjpeg", None),
    )
}
KSR_REFUSAL = "Kurento Split Recorder not supported"
"""KMS 7 answers KURENTO_SPLIT_RECORDER with 40107 and this message unless its optional
``kmsrecorder`` GStreamer plugin is installed, which the open-source builds do not ship."""

ENCODERS = {
    "vp8": "libvpx",
    "h264": "libx264",
    "opus": "libopus",
    "aac": "aac",
    "mjpeg": "mjpeg",
}
"""FFmpeg encoder of each codec a profile writes (when the source has to be transcoded)."""
PIXEL_FORMATS = {"vp8": "yuv420p", "h264": "yuv420p", "mjpeg": "yuvj420p"}
"""What each video encoder is fed (JPEG is full-range YUV)."""
ENCODER_OPTIONS = {
    "h264": {"preset": "ultrafast", "tune": "zerolatency"},
    "vp8": {"deadline": "realtime", "cpu-used": "8"},
    "mjpeg": {"q:v": "4"},
}
"""Encoders tuned for real time (JPEG: a fixed quality, as jpegenc's default)."""
VIDEO_DECODERS = {"vp8": "vp8", "h264": "h264"}
DEPAYLOADERS: dict[str, Callable[[bytes], bytes]] = {"vp8": vp8_depayload, "h264": h264_depayload}
RECORDABLE = {"audio": frozenset(AUDIO_FORMATS), "video": frozenset(DEPAYLOADERS)}
"""Source codecs a recording takes (others are dropped, as they could not be muxed or decoded)."""


class RecorderListener(Protocol):
    """What a recording tells its element (on the event loop)."""

    def recording_started(self) -> None:
        """The first frame since ``record`` was written."""

    def keyframe_needed(self) -> None:
        """The video cannot go on without a keyframe from the source."""

    def recording_failed(self, error_type: str, description: str) -> None:
        """The recording stopped on an error (KMS ``Error`` type and what failed)."""


class RecordingError(Exception):
    """What stops a recording: KMS's ``Error`` type and a description."""

    def __init__(self, error_type: str, description: str) -> None:
        super().__init__(description)
        self.error_type = error_type
        self.description = description


def io_error(exc: BaseException, action: str, target: str) -> RecordingError:
    """The KMS error for a failed open or write (a full disk has its own type)."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return RecordingError("RESOURCE_ERROR_NO_SPACE_LEFT", f"No space left writing {target}")
    kind = "RESOURCE_ERROR_OPEN" if action == "open" else "RESOURCE_ERROR_WRITE"
    return RecordingError(kind, f"Could not {action} {target} for writing: {exc}")


# -- event loop side ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """One packet for the worker: ``clock`` is the recording's clock (paused time removed)."""

    kind: str
    payload: bytes
    timestamp: int
    sequence: int
    marker: bool
    codec_name: str
    clock_rate: int
    source: object
    clock: float


class Recorder:
    """One recording: packets in on the event loop, a complete file when ``finish`` returns.

    Args:
        profile: what the file holds.
        path: where the file is written (a temporary file for http(s):// targets).
        upload: an http(s):// URI to POST the finished file to, or None.
        gaps_fix: ``NONE``, ``GENPTS`` or ``FILL_IF_TRANSCODING``.
        listener: told of the first frame, keyframe needs and errors.
        max_bytes: the largest file (``recorder_max_bytes``; 0: no bound); past it the recording
            stops with ``RESOURCE_ERROR_NO_SPACE_LEFT``.
    """

    def __init__(
        self,
        profile: Profile,
        path: Path,
        upload: str | None,
        gaps_fix: str,
        listener: RecorderListener,
        max_bytes: int = 0,
    ) -> None:
        self.profile = profile
        self.listener = listener
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[_Item | str | None] = collections.deque()
        self._wake = threading.Condition()
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._failed = False
        self._done = asyncio.Event()
        self._writer = _Writer(profile, path, upload, gaps_fix != "NONE", self._post, max_bytes)
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}")
        self._thread.daemon = True
        self._thread.start()

    def feed(self, kind: str, packet: MediaPacket) -> None:
        """Queue a packet (never blocks; the oldest is dropped on overload)."""
        if self._paused_at is not None or self._failed or self.profile.codec(kind) is None:
            return
        if packet.codec.name.lower() not in RECORDABLE[kind]:
            return  # telephone-event, comfort noise: nothing a container track holds
        view = packet.view
        item = _Item(
            kind,
            view.media_payload,
            view.timestamp,
            view.sequence,
            view.marker,
            packet.codec.name.lower(),
            packet.codec.clock_rate,
            packet.source,
            time.monotonic() - self._paused_total,
        )
        with self._wake:
            if len(self._queue) >= QUEUE_LIMIT and isinstance(self._queue[0], _Item):
                self._queue.popleft()  # never a segment marker: that would merge two segments
                self.dropped += 1
            self._queue.append(item)
            self._wake.notify()

    def pause(self) -> None:
        """Stop taking packets; the time until ``resume`` is left out of the file."""
        if self._paused_at is None:
            self._paused_at = time.monotonic()

    def resume(self) -> None:
        """Take packets again; each track starts a new segment (video at a keyframe)."""
        if self._paused_at is not None:
            self._paused_total += time.monotonic() - self._paused_at
            self._paused_at = None
            # Through the queue: packets queued before the pause still belong to the old segment.
            with self._wake:
                self._queue.append(NEW_SEGMENT)
                self._wake.notify()

    async def finish(self) -> None:
        """End the recording: the file is complete (and uploaded) when this returns (at once
        after an error: the worker has ended)."""
        with self._wake:
            self._queue.append(None)
            self._wake.notify()
        await self._done.wait()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _failed_now(self, error: RecordingError) -> None:
        self._failed = True
        self.listener.recording_failed(error.error_type, error.description)

    # -- worker thread ------------------------------------------------------------------------

    def _items(self) -> Iterator[_Item]:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                item = self._queue.popleft()
            if item is None:
                return
            if isinstance(item, str):
                self._writer.new_segment = True
                continue
            yield item

    def _run(self) -> None:
        writer = self._writer
        try:
            writer.open(self.listener)
            for item in self._items():
                writer.write(item, self.listener)
            writer.close()
        except RecordingError as error:
            writer.abandon()
            self._post(self._failed_now, error)
        except Exception as exc:
            logger.exception("! recording to %s failed", writer.path)
            writer.abandon()
            self._post(self._failed_now, RecordingError("UNEXPECTED_ELEMENT_ERROR", str(exc)))
        finally:
            self._post(self._done.set)


# -- worker thread --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    """An encoded frame (a whole video picture, or one audio packet) and where it goes."""

    data: bytes
    keyframe: bool
    pts: int
    """Milliseconds from the start of the file."""
    codec_name: str
    clock: float


@dataclass
class _Track:
    """One kind of media of the file: frame assembly, timeline and its output stream."""

    kind: str
    gaps_fix: bool
    stream: Any = None
    remux: bool = True
    source: object = None
    codec_name: str = ""
    # frame assembly (video)
    parts: list[bytes] = field(default_factory=list)
    frame_timestamp: int | None = None
    frame_keyframe: bool = False
    next_sequence: int | None = None
    broken: bool = False
    waiting_keyframe: bool = True
    # timeline
    last_raw: int | None = None
    unwrapped: int = 0
    segment_rtp: int = 0
    segment_pts: int | None = None
    last_pts: int = -1
    last_delta: int = 20
    # transcoding
    decoder: Any = None
    resampler: Any = None
    samples: int = 0
    size: tuple[int, int] | None = None

    def new_segment(self) -> None:
        """The next frame starts a segment (source switch, resume): video at a keyframe."""
        self.segment_pts = None
        self.last_raw = None
        self.parts, self.frame_timestamp, self.next_sequence = [], None, None
        if self.kind == "video":
            self.waiting_keyframe = True

    def place(self, timestamp: int, clock_rate: int, clock: float, epoch: float) -> int:
        """The frame's pts (ms): RTP distance within a segment, arrival time across them."""
        if self.last_raw is not None:
            self.unwrapped += ((timestamp - self.last_raw + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        self.last_raw = timestamp
        if self.segment_pts is None:
            self.segment_pts = max(int((clock - epoch) * 1000), self.last_pts + 1)
            self.segment_rtp = self.unwrapped
        pts = self.segment_pts + (self.unwrapped - self.segment_rtp) * 1000 // clock_rate
        delta = pts - self.last_pts
        if self.gaps_fix and self.last_pts >= 0 and delta > GAP_MS:
            # GENPTS: the frame after a gap follows the last one, as KMS's timestamp fix does.
            pts = self.last_pts + self.last_delta
            self.segment_pts, self.segment_rtp = pts, self.unwrapped
        elif 0 < delta <= GAP_MS:
            self.last_delta = delta
        pts = max(pts, self.last_pts + 1)  # muxers refuse timestamps that go back
        self.last_pts = pts
        return pts

    def assemble(self, item: _Item) -> tuple[bytes, bool] | None:
        """Feed one RTP packet; a whole frame (data, keyframe) when it completes one."""
        if not item.payload:  # padding only (a bandwidth probe): it only takes a number
            if self.next_sequence == item.sequence:
                self.next_sequence = (item.sequence + 1) & 0xFFFF
            return None
        if item.kind == "audio":
            return item.payload, True
        depayload = DEPAYLOADERS.get(item.codec_name)
        if depayload is None:
            return None
        done: tuple[bytes, bool] | None = None
        if self.frame_timestamp is not None and item.timestamp != self.frame_timestamp:
            done = self._finish()  # the marker of the last frame was lost
        if self.frame_timestamp is None:
            self.frame_timestamp = item.timestamp
            self.frame_keyframe = keyframe_detector(item.codec_name)(item.payload)
        elif self.next_sequence is not None and item.sequence != self.next_sequence:
            self.broken = True
        self.next_sequence = (item.sequence + 1) & 0xFFFF
        try:
            self.parts.append(depayload(item.payload))
        except ValueError:
            self.broken = True
        if item.marker:
            done = self._finish()
        return done

    def _finish(self) -> tuple[bytes, bool] | None:
        data, keyframe, broken = b"".join(self.parts), self.frame_keyframe, self.broken
        self.parts, self.frame_timestamp, self.broken = [], None, False
        if broken or not data:
            self.waiting_keyframe = True
            return None
        if self.waiting_keyframe and not keyframe:
            return None
        self.waiting_keyframe = False
        return data, keyframe


class _Writer:
    """The worker's side of a recording: tracks, the container and the file."""

    def __init__(
        self,
        profile: Profile,
        path: Path,
        upload: str | None,
        gaps_fix: bool,
        post: Callable[..., None],
        max_bytes: int = 0,
    ) -> None:
        self.profile = profile
        self.path = path
        self.max_bytes = max_bytes
        """Setting ``recorder_max_bytes``: the file may grow to this (0: no bound)."""
        self.upload = upload
        self.post = post
        self.tracks = {kind: _Track(kind, gaps_fix) for kind in ("audio", "video")}
        self.file: BinaryIO | None = None
        self.container: OutputContainer | None = None
        self.pending: list[tuple[_Track, _Frame]] = []
        self.epoch: float | None = None
        self.started = False
        self.new_segment = False
        self.last_keyframe_request = 0.0
        self.late: set[str] = set()

    def open(self, listener: RecorderListener) -> None:
        """Create the file now, so that a bad path is reported at ``record``, as KMS does."""
        try:
            self.file = cast(BinaryIO, open(self.path, "wb", buffering=0))  # noqa: SIM115
        except OSError as exc:
            raise io_error(exc, "open", str(self.path)) from exc

    def write(self, item: _Item, listener: RecorderListener) -> None:
        """One packet: assemble, place and mux (or transcode) the frame it completes."""
        if self.new_segment:
            self.new_segment = False
            for track in self.tracks.values():
                track.new_segment()
        track = self.tracks[item.kind]
        if item.source is not track.source:
            if track.source is not None:
                track.new_segment()
            track.source, track.decoder = item.source, None
        assembled = track.assemble(item)
        if track.kind == "video" and track.waiting_keyframe:
            self.ask_keyframe(listener)
        if assembled is None:
            return
        if self.epoch is None:
            self.epoch = item.clock
        data, keyframe = assembled
        pts = track.place(item.timestamp, item.clock_rate, item.clock, self.epoch)
        frame = _Frame(data, keyframe, pts, item.codec_name, item.clock)
        if self.container is None:
            self.hold(track, frame, listener)
        else:
            self.mux(track, frame, listener)

    def ask_keyframe(self, listener: RecorderListener) -> None:
        """Ask the source for a keyframe, at most once a second."""
        now = time.monotonic()
        if now - self.last_keyframe_request >= KEYFRAME_INTERVAL:
            self.last_keyframe_request = now
            self.post(listener.keyframe_needed)

    # -- the container ------------------------------------------------------------------------

    def hold(self, track: _Track, frame: _Frame, listener: RecorderListener) -> None:
        """Keep the first frames until every track of the profile has one (or HOLD_SECONDS)."""
        self.pending.append((track, frame))
        kinds = {t.kind for t, _ in self.pending}
        wanted = {k for k in ("audio", "video") if self.profile.codec(k)}
        if kinds >= wanted or frame.clock - self.pending[0][1].clock > HOLD_SECONDS:
            self.start(listener)

    def start(self, listener: RecorderListener) -> None:
        """Write the header with the tracks that have frames, then the frames held."""
        assert self.file is not None
        try:
            self.container = av.open(self.file, "w", format=self.profile.container)
        except (OSError, av.error.FFmpegError) as exc:
            raise io_error(exc, "open", str(self.path)) from exc
        for kind in ("video", "audio"):
            first = next((f for t, f in self.pending if t.kind == kind), None)
            if first is not None:
                self.add_stream(self.tracks[kind], first)
        pending, self.pending = self.pending, []
        for track, frame in pending:
            self.mux(track, frame, listener)

    def add_stream(self, track: _Track, first: _Frame) -> None:
        """The track's output: muxed as received when the codec fits, else an encoder."""
        assert self.container is not None
        target = self.profile.codec(track.kind)
        assert target is not None
        track.codec_name = first.codec_name
        track.remux = first.codec_name == target
        if track.kind == "audio":
            if track.remux:
                track.stream = self.container.add_mux_stream(target, rate=48000)
            else:
                track.stream = self._audio_encoder(target)
            return
        width, height = _frame_size(first)
        track.size = (width, height)
        if track.remux:
            track.stream = self.container.add_mux_stream(target, width=width, height=height)
        else:
            track.stream = self._video_encoder(target, width, height)

    def _audio_encoder(self, target: str) -> Any:
        assert self.container is not None
        stream: Any = self.container.add_stream(ENCODERS[target], rate=48000)
        stream.codec_context.layout = "stereo"
        stream.codec_context.bit_rate = AUDIO_BITRATE
        stream.codec_context.time_base = fractions.Fraction(1, 48000)
        return stream

    def _video_encoder(self, target: str, width: int, height: int) -> Any:
        assert self.container is not None
        stream: Any = self.container.add_stream(ENCODERS[target], rate=30)
        context = stream.codec_context
        context.width, context.height, context.pix_fmt = width, height, PIXEL_FORMATS[target]
        context.time_base = MS
        context.bit_rate = VIDEO_BITRATE
        context.gop_size = 60
        context.options = ENCODER_OPTIONS[target]
        return stream

    def mux(self, track: _Track, frame: _Frame, listener: RecorderListener) -> None:
        """Write one frame into its track (dropped when the track is not in the file)."""
        if track.stream is None:
            if track.kind not in self.late:
                self.late.add(track.kind)
                logger.warning("! %s arrived after the file was started: left out", track.kind)
            return
        if track.remux and frame.codec_name == track.codec_name:
            packets = [_packet(frame, track.stream)]
        elif track.remux:
            return  # a source in another codec: a muxed track cannot change codec
        else:
            packets = self.transcode(track, frame)
        self._mux(packets)
        if not self.started:
            self.started = True
            self.post(listener.recording_started)

    def _mux(self, packets: list[Any]) -> None:
        assert self.container is not None
        try:
            for packet in packets:
                self.container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            raise io_error(exc, "write", str(self.path)) from exc
        if self.max_bytes and self.file is not None and self.file.tell() > self.max_bytes:
            raise RecordingError(
                "RESOURCE_ERROR_NO_SPACE_LEFT",
                f"{self.path} reached {self.max_bytes} bytes (setting recorder_max_bytes): "
                "recording stopped",
            )

    def transcode(self, track: _Track, frame: _Frame) -> list[Any]:
        """Decode the frame and encode it into the profile's codec."""
        if track.decoder is None:
            track.decoder = _decoder(track.kind, frame.codec_name)
            track.resampler = None
        if track.decoder is None:
            return []
        try:
            decoded = track.decoder.decode(av.Packet(frame.data))
        except av.error.FFmpegError as exc:
            logger.debug("recorder decode failed: %s", exc)
            return []
        packets: list[Any] = []
        for picture in decoded:
            if track.kind == "video":
                packets += _encode_video(track, picture, frame.pts)
            else:
                packets += _encode_audio(track, picture, frame.pts)
        return packets

    def close(self) -> None:
        """Flush encoders, write the trailer, close the file, upload it for http(s)://."""
        if self.container is None and self.pending:
            self.start(_NoListener())
        if self.container is not None:
            for track in self.tracks.values():
                if track.stream is not None and not track.remux:
                    self._mux(list(track.stream.encode(None)))
            try:
                self.container.close()
            except (OSError, av.error.FFmpegError) as exc:
                raise io_error(exc, "write", str(self.path)) from exc
            self.container = None
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.upload is not None:
            upload_file(self.path, self.upload)

    def abandon(self) -> None:
        """After an error: close what is open, quietly (the element reports the error)."""
        with contextlib.suppress(Exception):
            if self.container is not None:
                self.container.close()
        self.container = None
        with contextlib.suppress(Exception):
            if self.file is not None:
                self.file.close()
        self.file = None


class _NoListener:
    def recording_started(self) -> None:
        pass

    def keyframe_needed(self) -> None:
        pass

    def recording_failed(self, error_type: str, description: str) -> None:
        pass


def _packet(frame: _Frame, stream: Any) -> Any:
    packet = av.Packet(frame.data)
    packet.pts = packet.dts = frame.pts
    packet.time_base = MS
    packet.is_keyframe = frame.keyframe
    packet.stream = stream
    return packet


def _decoder(kind: str, codec_name: str) -> Any:
    if kind == "video":
        name = VIDEO_DECODERS.get(codec_name)
        return av.CodecContext.create(name, "r") if name else None
    fmt = AUDIO_FORMATS.get(codec_name)
    if fmt is None:
        return None
    decoder: Any = av.CodecContext.create(fmt.decoder, "r")
    decoder.sample_rate = fmt.sample_rate
    decoder.layout = fmt.layout
    return decoder


def _frame_size(frame: _Frame) -> tuple[int, int]:
    """A video keyframe's picture size, from decoding it (any codec, any packetisation)."""
    name = VIDEO_DECODERS.get(frame.codec_name)
    if name is not None:
        decoder: Any = av.CodecContext.create(name, "r")
        with contextlib.suppress(av.error.FFmpegError):
            for picture in decoder.decode(av.Packet(frame.data)):
                return int(picture.width), int(picture.height)
    return 640, 480


def _encode_video(track: _Track, picture: Any, pts: int) -> list[Any]:
    # The encoder's size is fixed by the first frame: a source that changes resolution (or a
    # new source) is scaled to it, so the file stays one valid stream.
    assert track.size is not None
    width, height = track.size
    pixel_format = track.stream.codec_context.pix_fmt
    if (picture.width, picture.height) != (width, height) or picture.format.name != pixel_format:
        picture = picture.reformat(width=width, height=height, format=pixel_format)
    picture.pts = pts
    picture.time_base = MS
    picture.pict_type = av.video.frame.PictureType.NONE
    return list(track.stream.encode(picture))


def _encode_audio(track: _Track, frame: Any, pts: int) -> list[Any]:
    context = track.stream.codec_context
    if track.resampler is None:
        track.resampler = av.AudioResampler(
            format=context.format.name,
            layout="stereo",
            rate=48000,
            frame_size=context.frame_size or 1024,
        )
    # Samples follow one another; a segment or a gap moves the count forward to the frame's time.
    track.samples = max(track.samples, pts * 48)
    frame.pts = None
    packets: list[Any] = []
    for chunk in track.resampler.resample(frame):
        chunk.pts = track.samples
        chunk.time_base = fractions.Fraction(1, 48000)
        track.samples += chunk.samples
        packets += track.stream.encode(chunk)
    return packets


def upload_file(path: Path, uri: str) -> None:
    """POST the finished file to ``uri`` in chunks (KMS's recorder sends ``Transfer-Encoding:
    chunked``), with Basic auth from the URI's ``user:password@``.

    Raises:
        RecordingError: RESOURCE_ERROR_WRITE when the server cannot be reached or refuses it.
    """
    parts = urllib.parse.urlsplit(uri)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=30)
    headers = {"Content-Type": "application/octet-stream"}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        with path.open("rb") as source:
            chunks = iter(lambda: source.read(UPLOAD_CHUNK), b"")
            connection.request("POST", target, body=chunks, headers=headers, encode_chunked=True)
            response = connection.getresponse()
            response.read()
    except OSError as exc:
        raise RecordingError("RESOURCE_ERROR_WRITE", f"Could not upload to {uri}: {exc}") from exc
    finally:
        connection.close()
        with contextlib.suppress(OSError):
            path.unlink()
    if response.status >= 300:
        raise RecordingError(
            "RESOURCE_ERROR_WRITE", f"Upload to {uri} refused: HTTP {response.status}"
        )
