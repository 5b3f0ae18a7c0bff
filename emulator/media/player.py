"""The media behind a PlayerEndpoint: demux a URI with PyAV, pace it, packetise it into RTP.

One worker thread per player opens the URI (``file://``, ``http(s)://``, ``rtsp://``: whatever
FFmpeg reads), demuxes the first audio and the first video stream, waits until each packet is due
by the file's timestamps (real time, as KMS's ``uridecodebin`` with a synced sink) and turns it
into RTP payloads, which the event loop wraps in ``MediaPacket``s for the element to forward:

- codecs the pipeline carries are packetised without decoding by ``codecs/packetize.py`` (shared
  with the HttpPostEndpoint): VP8 (RFC 7741) and H264 (RFC 6184, length-prefixed MP4 samples
  turned into Annex B first) with aiortc's packetisers, Opus (RFC 7587) one packet per RTP
  packet, so packet sizes follow the file, not the peer's ptime;
- other codecs (AAC, MP3, Vorbis, PCM, FLAC...; VP9 and other video) are decoded here and
  encoded once into Opus (20 ms) or VP8, which every sink takes or the transcoders turn into
  what it negotiated: one decode per player however many sinks it has.

RTP timestamps follow the media clock (48 kHz Opus, 90 kHz video) from a random base, and keep
going forward across seeks and restarts, so that sinks see one continuous stream per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
from aiortc.codecs.vpx import Vp8Encoder

from emulator.media.codecs.packetize import (
    OPUS,
    VP8,
    RtpPayload,
    RtpStamper,
    StreamPacketizer,
    forwarded,
    video_payloads,
)
from emulator.media.flow import MediaPacket

logger = logging.getLogger(__name__)

OPUS_FRAME = 960
"""Samples of one re-encoded Opus packet (20 ms at 48 kHz)."""
OPEN_TIMEOUT = 10.0
READ_TIMEOUT = 10.0
"""Seconds FFmpeg may wait for a network source before the open or a read fails."""
SEEK_REWIND = 0.04
"""Seconds between the last timestamp sent and the first after a seek or a restart."""


class PlayerOwner(Protocol):
    """What the player tells its element, always on the event loop."""

    def player_packet(self, media_type: str, packet: MediaPacket) -> None:
        """One RTP packet to forward to the sinks of that media type."""

    def player_ended(self) -> None:
        """The source reached its end (KMD EndOfStream)."""

    def player_failed(self, error_type: str, description: str) -> None:
        """The source failed (KMS's Error event: ``RESOURCE_ERROR_OPEN``...)."""

    def player_reencoding(self, media_type: str, active: bool, reason: str) -> None:
        """The player decodes and re-encodes that media type (or stopped doing so)."""


class SeekFailed(ValueError):
    """A seek the source cannot do (live stream, beyond its end, not open yet)."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the source says of itself (KMD VideoInfo, in milliseconds)."""

    seekable: bool
    duration: int

    def to_kmd(self) -> dict[str, Any]:
        """The ``VideoInfo`` fields."""
        end = self.duration if self.seekable else 0
        return {
            "isSeekable": self.seekable,
            "seekableInit": 0,
            "seekableEnd": end,
            "duration": self.duration,
        }


NO_INFO = MediaInfo(False, 0)


class _Track:
    """One demuxed stream turned into RTP payloads of one codec (worker-thread side)."""

    kind = "audio"
    codec = OPUS
    reencodes = ""
    """Why this track decodes and re-encodes (empty when it forwards the file's packets)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.time_base = stream.time_base or fractions.Fraction(1, 1000)
        self.fresh = True

    def payloads(self, packet: Any) -> list[RtpPayload]:
        """The RTP payloads of one demuxed packet."""
        raise NotImplementedError

    def restart(self) -> None:
        """After a seek: decoders forget their state, audio marks a new talkspurt."""
        self.fresh = True

    def request_keyframe(self) -> None:
        """A sink wants a keyframe: only an encoder can make one on demand."""

    def seconds(self, pts: int | None) -> float:
        """A timestamp of this stream in seconds."""
        return float((pts or 0) * self.time_base)


class _ForwardedTrack(_Track):
    """A codec the pipeline carries, sent as encoded (``codecs/packetize.py``)."""

    def __init__(self, stream: Any, packetizer: StreamPacketizer) -> None:
        super().__init__(stream)
        self.packetizer = packetizer
        self.kind = packetizer.kind
        self.codec = packetizer.codec

    def payloads(self, packet: Any) -> list[RtpPayload]:
        return self.packetizer.payloads(packet)

    def restart(self) -> None:
        super().restart()
        self.packetizer.restart()


class _AudioReencoding(_Track):
    """Audio without an RTP form the pipeline carries: decoded, encoded once into Opus."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.reencodes = f"{stream.codec_context.name} has no RTP form the pipeline carries"
        self.decoder = stream.codec_context
        self.encoder: Any = None
        self.resampler: Any = None
        self.next_time = 0.0

    def restart(self) -> None:
        super().restart()
        self.encoder = self.resampler = None
        with contextlib.suppress(av.error.FFmpegError):
            self.decoder.flush_buffers()

    def payloads(self, packet: Any) -> list[RtpPayload]:
        out: list[RtpPayload] = []
        for frame in self.decoder.decode(packet):
            if self.encoder is None:
                self._open(self.seconds(frame.pts) if frame.pts is not None else 0.0)
            frame.pts = None
            for chunk in self.resampler.resample(frame):
                out += self._encode(chunk)
        return out

    def _open(self, start: float) -> None:
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = 48000
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.time_base = fractions.Fraction(1, 48000)
        encoder.bit_rate = 64000
        self.encoder = encoder
        self.resampler = av.AudioResampler("s16", "stereo", 48000, frame_size=OPUS_FRAME)
        self.next_time = start

    def _encode(self, chunk: Any) -> list[RtpPayload]:
        chunk.pts = None
        out: list[RtpPayload] = []
        for encoded in self.encoder.encode(chunk):
            marker, self.fresh = self.fresh, False
            out.append((bytes(encoded), self.next_time, marker))
            self.next_time += OPUS_FRAME / 48000
        return out


class _VideoReencoding(_Track):
    """Video the pipeline does not carry (VP9, MPEG-4, ...): decoded, encoded once into VP8."""

    kind = "video"
    codec = VP8

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.reencodes = f"{stream.codec_context.name} is not forwarded: the player sends VP8"
        self.decoder = stream.codec_context
        self.encoder = Vp8Encoder()
        self.force_keyframe = True

    def restart(self) -> None:
        super().restart()
        self.force_keyframe = True
        with contextlib.suppress(av.error.FFmpegError):
            self.decoder.flush_buffers()

    def request_keyframe(self) -> None:
        self.force_keyframe = True

    def payloads(self, packet: Any) -> list[RtpPayload]:
        out: list[RtpPayload] = []
        for frame in self.decoder.decode(packet):
            at = self.seconds(frame.pts)
            keyframe, self.force_keyframe = self.force_keyframe, False
            parts, _ = self.encoder.encode(frame, keyframe)
            out += video_payloads(parts, at)
        return out


def _track_for(stream: Any) -> _Track | None:
    """How a stream is sent: forwarded when its codec has an RTP form sinks take, else
    re-encoded; None for what is neither audio nor video."""
    packetizer = forwarded(stream)
    if packetizer is not None:
        return _ForwardedTrack(stream, packetizer)
    if stream.type == "audio":
        return _AudioReencoding(stream)
    if stream.type == "video":
        return _VideoReencoding(stream)
    return None


class _Clock:
    """When media time ``t`` is due on the wall clock: anchored at the first packet after a
    start, a seek or a resume."""

    def __init__(self) -> None:
        self.anchor: tuple[float, float] | None = None

    def due(self, media_time: float) -> float:
        """The ``time.monotonic()`` at which that media time plays."""
        if self.anchor is None:
            self.anchor = (time.monotonic(), media_time)
        wall, media = self.anchor
        return wall + (media_time - media)

    def shift(self, seconds: float) -> None:
        """Push everything later (a pause of that long)."""
        if self.anchor is not None:
            self.anchor = (self.anchor[0] + seconds, self.anchor[1])


SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cert.pem",
)


def system_ca_file() -> str | None:
    """The system's CA bundle: ``SSL_CERT_FILE`` or OpenSSL's, else the first known path.

    FFmpeg's TLS (GnuTLS in PyAV's wheels) would look only where it was built to look
    (``/etc/pki/tls/cert.pem``), which most distributions lack: the file is named to it.
    """
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *SYSTEM_CA_FILES):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """How the player opens its sources (from the element's parameters and Settings)."""

    network_cache_ms: int = 2000
    """``networkCache``: the RTSP jitter buffer."""
    ca_file: Path | None = None
    """The CAs trusted for https:// (``player_ca_file``); None: the system's bundle."""

    def for_uri(self, uri: str) -> dict[str, str]:
        """FFmpeg options for a source. ``networkCache`` is the RTSP jitter buffer (KMS passes
        it to rtspsrc's ``latency``); FFmpeg calls it ``max_delay``, in microseconds. https://
        is verified (certificate chain and host name), as KMS's souphttpsrc (``ssl-strict``)
        does; FFmpeg would not by default."""
        scheme = urllib.parse.urlsplit(uri).scheme.lower()
        if scheme == "rtsp":
            return {"max_delay": str(max(self.network_cache_ms, 0) * 1000)}
        if scheme == "https":
            ca_file = str(self.ca_file) if self.ca_file is not None else system_ca_file()
            return {"tls_verify": "1", **({"ca_file": ca_file} if ca_file else {})}
        return {}

    def open_error(self, uri: str, exc: Exception) -> tuple[str, str]:
        """KMS's Error type and a description for a source that would not open."""
        if isinstance(exc, av.error.InvalidDataError):
            return "STREAM_ERROR_DECODE", f"{uri} holds no media FFmpeg can read: {exc}"
        description = f"cannot open {uri}: {exc}"
        if urllib.parse.urlsplit(uri).scheme.lower() == "https":
            trusted = self.for_uri(uri).get("ca_file", "FFmpeg's built-in CA path")
            description += (
                f" (the TLS connection failed: is the server's certificate, for this host name,"
                f" signed by a CA in {trusted}? set player_ca_file to trust another)"
            )
        return "RESOURCE_ERROR_OPEN", description


def source_name(uri: str) -> str:
    """What FFmpeg opens: a local path for ``file://``, the URI otherwise."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() == "file":
        return urllib.parse.unquote(parts.netloc + parts.path)
    return uri


def probe(uri: str, options: SourceOptions) -> MediaInfo:
    """Open the source only to read what it says of itself (blocking: call from a thread)."""
    try:
        with av.open(
            source_name(uri),
            options=options.for_uri(uri),
            timeout=(OPEN_TIMEOUT, READ_TIMEOUT),
        ) as container:
            return _media_info(uri, container)
    except (av.error.FFmpegError, OSError):
        return NO_INFO


def _media_info(uri: str, container: Any) -> MediaInfo:
    duration = container.duration  # AV_TIME_BASE units (microseconds); None when live
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    seekable = bool(duration) and scheme != "rtsp"
    return MediaInfo(seekable, int(duration // 1000) if duration else 0)


class MediaPlayer:
    """Plays one URI: a worker thread demuxes, paces and packetises; the event loop forwards.

    ``start()`` plays (or resumes, or restarts after the end), ``pause()`` holds, ``seek(ms)``
    jumps, ``close()`` ends the thread and waits for it.
    """

    def __init__(self, uri: str, owner: PlayerOwner, name: str, options: SourceOptions) -> None:
        self.uri = uri
        self.owner = owner
        self.name = name
        self.options = options
        self.info: MediaInfo | None = None
        self.position = 0
        """Milliseconds into the source of the last packet sent."""
        self._loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[MediaInfo] = self._loop.create_future()
        self._ended = asyncio.Event()
        self._wake = threading.Condition()
        self._stopping = False
        self._paused = False
        self._at_end = False
        self._seek_to: float | None = None
        self._tracks: dict[int, _Track] = {}
        self._outputs: dict[str, RtpStamper] = {}
        self._shift = 0.0
        self._last_time = 0.0
        self._failed = False
        self._thread: threading.Thread | None = None

    # -- event loop side ------------------------------------------------------------------------

    def start(self) -> None:
        """Play: start the thread, resume after a pause, or play again from the start after
        the end."""
        with self._wake:
            self._paused = False
            if self._at_end:
                self._at_end = False
                self._seek_to = 0.0
            self._wake.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"player {self.name}")
            self._thread.daemon = True
            self._thread.start()

    def pause(self) -> None:
        """Hold where it is; ``start()`` resumes."""
        with self._wake:
            self._paused = True
            self._wake.notify()

    async def media_info(self, timeout: float = OPEN_TIMEOUT) -> MediaInfo:
        """What the source says of itself, once open (NO_INFO when it does not open)."""
        if self.info is not None:
            return self.info
        try:
            return await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            return NO_INFO

    def seek(self, position_ms: int) -> None:
        """Jump to ``position_ms`` into the source.

        Raises:
            SeekFailed: the source is not open yet, not seekable, or shorter than that.
        """
        info = self.info
        if info is None:
            raise SeekFailed(f"{self.uri} is not open yet: play it first")
        if not info.seekable:
            raise SeekFailed(f"{self.uri} is not seekable (a live stream)")
        if not 0 <= position_ms <= info.duration:
            raise SeekFailed(f"position {position_ms} ms is outside 0..{info.duration} ms")
        with self._wake:
            self._seek_to = position_ms / 1000
            self._at_end = False
            self._wake.notify()

    def request_keyframe(self) -> None:
        """A sink wants a keyframe: re-encoded video makes one now; forwarded video has its
        next keyframe in the file, which is what KMS can give too."""
        for track in list(self._tracks.values()):
            if track.kind == "video":
                track.request_keyframe()

    async def close(self) -> None:
        """Stop the thread and wait until it has ended (its sockets and files are closed)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            await self._ended.wait()
            await asyncio.to_thread(self._thread.join)

    def _deliver(self, kind: str, payloads: list[RtpPayload]) -> None:
        if self._stopping:
            return  # posted before stop: nothing leaves a stopped player
        for packet in self._outputs[kind].packets(payloads, time.monotonic()):
            self.owner.player_packet(kind.upper(), packet)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _set_opened(self, info: MediaInfo | None) -> None:
        """The source opened (with what it says of itself) or failed to (None)."""
        self.info = info
        if not self._opened.done():
            self._opened.set_result(info or NO_INFO)

    # -- worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._play_source()
        except Exception as exc:  # a bug here must not kill the loop; the element reports it
            logger.exception("! player %s failed", self.name)
            self._post(self.owner.player_failed, "UNEXPECTED_ELEMENT_ERROR", str(exc))
        finally:
            self._post(self._ended.set)

    def _play_source(self) -> None:
        try:
            container = av.open(
                source_name(self.uri),
                options=self.options.for_uri(self.uri),
                timeout=(OPEN_TIMEOUT, READ_TIMEOUT),
            )
        except (av.error.FFmpegError, OSError) as exc:
            self._post(self._set_opened, None)
            self._post(self.owner.player_failed, *self.options.open_error(self.uri, exc))
            return
        with container:
            self._tracks = self._select(container)
            if not self._tracks:
                self._post(self._set_opened, None)
                description = f"{self.uri} has no audio or video stream"
                self._post(self.owner.player_failed, "STREAM_ERROR_DECODE", description)
                return
            self._post(self._set_opened, _media_info(self.uri, container))
            for track in self._tracks.values():
                if track.reencodes:
                    self._post(self.owner.player_reencoding, track.kind.upper(), True,
                               track.reencodes)  # fmt: skip
            try:
                self._pump(container)
            finally:
                for track in self._tracks.values():
                    if track.reencodes:
                        self._post(self.owner.player_reencoding, track.kind.upper(), False, "")

    def _select(self, container: Any) -> dict[int, _Track]:
        """The first audio and the first video stream, as KMS's player plays one of each."""
        tracks: dict[int, _Track] = {}
        for kind in ("audio", "video"):
            stream = next((s for s in container.streams if s.type == kind), None)
            track = _track_for(stream) if stream is not None else None
            if track is None:
                continue
            tracks[track.stream.index] = track
            self._outputs[kind] = RtpStamper(kind, track.codec)
        return tracks

    def _pump(self, container: Any) -> None:
        """Demux, pace and send until stopped; wait at the end for a restart or a seek."""
        clock = _Clock()
        packets = self._demux(container)
        pending: Any = None
        while not self._failed:
            stop, seek = self._wait_command(clock)
            if stop:
                return
            if seek is not None:
                packets, pending = self._seek(container, seek, clock), None
            if pending is None:
                pending = next(packets, None)
            if pending is None:
                if not self._failed:
                    self._end()
                continue
            track = self._tracks[pending.stream.index]
            at = track.seconds(pending.dts if pending.dts is not None else pending.pts)
            if self._wait_until(clock.due(at + self._shift)):
                self._send(track, pending)
                pending = None
            # else stopped, paused or seeking meanwhile: the packet waits for the command loop

    def _demux(self, container: Any) -> Iterator[Any]:
        streams = [track.stream for track in self._tracks.values()]
        try:
            for packet in container.demux(streams):
                if packet.size:  # the flush packets at the end carry nothing
                    yield packet
        except av.error.EOFError:
            return
        except (av.error.FFmpegError, OSError) as exc:
            self._fail("RESOURCE_ERROR_READ", f"reading {self.uri} failed: {exc}")

    def _send(self, track: _Track, packet: Any) -> None:
        try:
            payloads = track.payloads(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            self._fail("STREAM_ERROR_DECODE", f"cannot decode {track.kind} of {self.uri}: {exc}")
            return
        if not payloads:
            return
        self.position = int(payloads[-1][1] * 1000)
        shifted = [(p, at + self._shift, marker) for p, at, marker in payloads]
        self._last_time = max(self._last_time, shifted[-1][1])
        self._post(self._deliver, track.kind, shifted)

    def _fail(self, error_type: str, description: str) -> None:
        """The source cannot go on: report it and stop playing (no EndOfStream after it)."""
        self._failed = True
        self._post(self.owner.player_failed, error_type, description)

    def _end(self) -> None:
        with self._wake:
            self._at_end = True
        self._post(self.owner.player_ended)

    def _seek(self, container: Any, seconds: float, clock: _Clock) -> Iterator[Any]:
        """Seek to the keyframe at or before ``seconds``; timestamps continue after the last
        one sent."""
        container.seek(int(seconds * av.time_base), backward=True, any_frame=False)
        for track in self._tracks.values():
            track.restart()
        clock.anchor = None
        self._shift = self._last_time + SEEK_REWIND - seconds
        return self._demux(container)

    def _wait_command(self, clock: _Clock) -> tuple[bool, float | None]:
        """Hold while paused or at the end; whether to stop, and where to seek (if asked)."""
        with self._wake:
            paused_at: float | None = None
            while not self._stopping and self._seek_to is None and (self._paused or self._at_end):
                paused_at = paused_at or time.monotonic()
                self._wake.wait()
            if paused_at is not None:
                clock.shift(time.monotonic() - paused_at)
            seek, self._seek_to = self._seek_to, None
            return self._stopping, seek

    def _wait_until(self, due: float) -> bool:
        """Sleep until ``due``; False when a command came first (the packet is not sent)."""
        with self._wake:
            while not (self._stopping or self._paused or self._seek_to is not None):
                left = due - time.monotonic()
                if left <= 0:
                    return True
                self._wake.wait(left)
            return False
