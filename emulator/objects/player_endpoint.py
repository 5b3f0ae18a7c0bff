"""PlayerEndpoint (KMD elements): plays a file or a stream into the pipeline.

As KMS's ``PlayerEndpointImpl``: ``play`` starts (or resumes, or plays again after the end),
``pause``/``stop`` come from UriEndpoint, ``EndOfStream`` at the end, KMS's ``Error`` event for a
source that does not open or decode, ``getPosition``/``setPosition`` in milliseconds (40700
PLAYER_SEEK_FAIL for a live source), ``getVideoInfo``. The media work (demux, pacing, RTP) is
``emulator/media/player.py``; this class forwards its packets like any element.
"""

from __future__ import annotations

import asyncio
from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.player import MediaPlayer, SeekFailed, SourceOptions, probe
from emulator.objects.uri_endpoint import UriEndpoint
from protocol.errors import PlayerSeekFail
from protocol.types import complex_value


class PlayerEndpoint(UriEndpoint):
    """Plays a URI into the pipeline."""

    TYPE = "PlayerEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # useEncodedMedia is deprecated in KMS 7 (encoded media is forwarded whenever the sink
        # takes it, which this player always does); kept for clients that still pass it.
        self.use_encoded_media = bool(self.params.get("useEncodedMedia", False))
        self.properties["networkCache"] = int(self.params.get("networkCache", 2000))
        self.media: MediaPlayer | None = None

    # -- KMD operations ----------------------------------------------------------------------

    def play(self) -> None:
        """KMD play: start, resume after pause, or play again after EndOfStream."""
        if self.media is None:
            self.check_file_roots()  # again: a symbolic link may have been put there since
            short = self.id.rsplit("/", 1)[-1][:8]
            self.media = MediaPlayer(self.uri, self, short, self.source_options)
        self.media.start()
        self.set_uri_state("START")

    async def get_video_info(self) -> dict[str, Any]:
        """KMD videoInfo: seekability and duration (ms) of the source."""
        if self.media is not None:
            info = await self.media.media_info()
        else:  # not playing: KMS prerolls the source to answer; open it once to read it
            info = await asyncio.to_thread(probe, self.uri, self.source_options)
        return complex_value("VideoInfo", **info.to_kmd())

    def get_position(self) -> int:
        """KMD position: milliseconds into the source of what was last sent (0 when stopped)."""
        return self.media.position if self.media is not None else 0

    async def set_position(self, position: int) -> None:
        """KMD setPosition: seek (to the keyframe at or before ``position`` ms).

        Raises:
            PlayerSeekFail: 40700 when the source is not playing, live, or shorter.
        """
        if self.media is None:
            raise PlayerSeekFail(f"cannot seek {self.uri}: it is not playing (call play first)")
        await self.media.media_info()  # right after play(), the source may still be opening
        try:
            self.media.seek(position)
        except SeekFailed as exc:
            raise PlayerSeekFail(f"cannot seek: {exc}") from None

    @property
    def network_cache(self) -> int:
        """The ``networkCache`` constructor parameter: milliseconds of buffering for network
        sources (the RTSP jitter buffer)."""
        return int(self.properties["networkCache"])

    @property
    def source_options(self) -> SourceOptions:
        """How the source is opened: ``networkCache``, and the CAs trusted for https://."""
        return SourceOptions(self.network_cache, self.services.settings.player_ca_file)

    def produce_keyframe(self, media_type: str) -> None:
        """A sink wants a keyframe: re-encoded video makes one; forwarded video has its next
        one in the file (as in KMS, which cannot make keyframes of encoded media either)."""
        if self.media is not None and media_type == "VIDEO":
            self.media.request_keyframe()

    # -- UriEndpoint hooks ---------------------------------------------------------------------

    async def on_pause(self) -> None:
        """Hold the source where it is."""
        if self.media is not None:
            self.media.pause()
        self.stop_flowing_out()

    async def on_stop(self) -> None:
        """End playing: the thread ends, the next play starts from the beginning."""
        media, self.media = self.media, None
        if media is not None:
            await media.close()
        self.stop_flowing_out()

    # -- PlayerOwner (the media's callbacks, on the event loop) --------------------------------

    def player_packet(self, media_type: str, packet: MediaPacket) -> None:
        """Forward one of the source's RTP packets to this element's sinks."""
        if self.has_sinks(media_type):
            self.mark_flow("out", media_type, True)
            self.forward(media_type, packet)

    def player_ended(self) -> None:
        """KMD EndOfStream: the source is over (play() starts it again)."""
        self.own_media_ended()

    def player_failed(self, error_type: str, description: str) -> None:
        """KMS's Error event: the source could not be opened, read or decoded."""
        self.stop_flowing_out()
        self.raise_error(error_type, description)

    def player_reencoding(self, media_type: str, active: bool, reason: str) -> None:
        """The player decodes and re-encodes this media type: MediaTranscodingStateChanged
        as KMS's agnosticbin raises it when it transcodes."""
        if active:
            self.log.info("= transcoding %s in the player: %s", media_type, reason)
        self.transcoding_for(self, media_type, f"transcoder_{media_type.lower()}", active)
