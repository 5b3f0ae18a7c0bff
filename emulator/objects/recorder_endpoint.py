"""RecorderEndpoint (KMD elements): records what it receives to a file:// or http(s):// URI.

The KMD face: ``record``, ``pause``, ``stop``, ``stopAndWait``, the ``Recording``, ``Paused``
and ``Stopped`` events (KMD: they extend ``Media`` and carry nothing else), and KMS's ``Error``
for a path that cannot be written or a full disk. The media work is
``emulator.media.recorder.Recorder``, one per ``record`` from ``STOP``.

As in KMS: ``stop`` returns at once and ``Stopped`` follows when the file is complete;
``stopAndWait`` returns only then; releasing the element (or the pipeline, or stopping the server)
finishes the file first. A missing folder is not created (``RESOURCE_ERROR_OPEN``). An http(s)://
target is recorded into a temporary file that is POSTed when the recording stops.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.recorder import KSR_REFUSAL, PROFILES, Profile, Recorder
from emulator.objects.uri_endpoint import UriEndpoint, file_path
from protocol.errors import MediaObjectIllegalParamError, UriPathFileNotFound


class RecorderEndpoint(UriEndpoint):
    """Records what it receives to a URI."""

    TYPE = "RecorderEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile = _profile(str(self.params.get("mediaProfile") or "WEBM"))
        self.stop_on_end_of_stream = bool(self.params.get("stopOnEndOfStream", False))
        self.path, self.upload = _target(self.uri)
        self.recorder: Recorder | None = None
        self.finishing: asyncio.Task[None] | None = None
        self.announced = False
        self.ending: asyncio.Future[None] | None = None
        """The stop that an end of stream started (kept so that it is not collected)."""

    # -- KMD operations ----------------------------------------------------------------------

    async def record(self) -> None:
        """KMD record: start (or resume) recording; ``Recording`` when media is written."""
        if self.state == "START":
            return
        if self.finishing is not None:
            await self.finishing  # a new recording waits until the last file is complete
        if self.recorder is None:
            self.check_file_roots()  # again: a symbolic link may have been put there since
            self.recorder = Recorder(
                self.profile,
                self._write_path(),
                self.upload,
                self._gaps_fix(),
                self,
                max_bytes=self.services.settings.recorder_max_bytes,
            )
        else:
            self.recorder.resume()
        self.announced = False
        self.set_uri_state("START")
        # The file must start at a keyframe: ask the source now rather than wait for one.
        self.ask_keyframe("VIDEO")

    async def stop_and_wait(self) -> None:
        """KMD stopAndWait: stop and return once the file is complete (and uploaded)."""
        await self.stop()
        if self.finishing is not None:
            await asyncio.shield(self.finishing)

    async def on_pause(self) -> None:
        """Hold the recording; the paused time is left out of the file."""
        if self.recorder is not None:
            self.recorder.pause()
        self.emit("Paused")

    async def on_stop(self) -> None:
        """Finish the file in the background (``Stopped`` when done)."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.pause()
            self.finishing = asyncio.ensure_future(self._finish(recorder))

    async def _finish(self, recorder: Recorder) -> None:
        await recorder.finish()
        if recorder.dropped:
            self.log.warning("! %d packets dropped on overload while recording", recorder.dropped)
        self.log.info("= recording complete: %s", self.uri)
        self.emit("Stopped")
        self.finishing = None

    async def on_release(self) -> None:
        """Finish the file before the element goes (a recording is never lost to a release)."""
        await super().on_release()
        if self.finishing is not None:
            await asyncio.shield(self.finishing)

    # -- media path ------------------------------------------------------------------------------

    def receive_media(self, media_type: str, packet: Any) -> None:
        """A packet from the source: recorded while in ``START``."""
        if not isinstance(packet, MediaPacket):
            return
        self.mark_flow("in", media_type, True)
        if self.recorder is not None and self.state == "START":
            self.recorder.feed(media_type.lower(), packet)

    def source_stopped_flowing(self, media_type: str) -> None:
        """Nothing more to record of ``media_type`` for now: MediaFlowIn NOT_FLOWING."""
        self.mark_flow("in", media_type, False)

    def source_ended(self) -> None:
        """The source's media ended (a PlayerEndpoint or an upload at EndOfStream): with
        ``stopOnEndOfStream`` the recording stops and its file is finished (``Stopped``), as
        KMS's recorder does on EOS; without it, the recorder waits for more."""
        if not self.stop_on_end_of_stream or self.state == "STOP":
            return
        self.log.info("= end of stream from the source: stopping (stopOnEndOfStream)")
        self.ending = asyncio.ensure_future(self.stop())

    def video_source_changed(self) -> None:
        """A new video source: the recording goes on at its first keyframe (asked for now)."""
        if self.state == "START":
            self.ask_keyframe("VIDEO")

    # -- RecorderListener (called on the event loop by the recording) ----------------------------

    def recording_started(self) -> None:
        """The first frame since ``record`` is in the file: KMS's ``Recording``."""
        if not self.announced and self.state == "START":
            self.announced = True
            self.emit("Recording")

    def keyframe_needed(self) -> None:
        """The recording waits for a keyframe: ask the source."""
        self.ask_keyframe("VIDEO")

    def recording_failed(self, error_type: str, description: str) -> None:
        """The file cannot be written: KMS's ``Error``; only this recorder stops."""
        self.raise_error(error_type, description)
        if self.state != "STOP":
            self.set_uri_state("STOP")
            self.recorder = None

    # -- helpers ---------------------------------------------------------------------------------

    def _gaps_fix(self) -> str:
        return str(self.services.settings.gaps_fix)

    def _write_path(self) -> Path:
        if self.path is not None:
            return self.path
        handle, name = tempfile.mkstemp(prefix="kurento-recording-", suffix=".tmp")
        os.close(handle)
        return Path(name)


def _profile(name: str) -> Profile:
    """The profile by ``MediaProfileSpecType`` name.

    Raises:
        MediaObjectIllegalParamError: 40107 for KURENTO_SPLIT_RECORDER, as KMS 7 answers
            without its optional split-recorder plugin.
    """
    if name == "KURENTO_SPLIT_RECORDER":
        raise MediaObjectIllegalParamError(KSR_REFUSAL)
    return PROFILES[name]


def _target(uri: str) -> tuple[Path | None, str | None]:
    """(local path, None) for file://, (None, URI) for http(s)://.

    Raises:
        UriPathFileNotFound: 40600 for a URI a recording cannot be written to (rtsp://).
    """
    path = file_path(uri)
    if path is not None:
        return path, None
    if uri.lower().startswith(("http://", "https://")):
        return None, uri
    raise UriPathFileNotFound(
        f"RecorderEndpoint cannot write to {uri!r}: use file:// or http(s)://"
    )
