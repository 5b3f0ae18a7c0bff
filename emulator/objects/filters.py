"""Filters (KMD filters module): video processed frame by frame, events from what is seen.

Each filter's video goes through a ``VideoFilterStage`` (``emulator/media/video_filter.py``):
decoded on a worker thread, processed, encoded once per codec its sinks take. Audio is forwarded
without decoding, except through a GStreamerFilter running ``volume``.

- ``GStreamerFilter``: the elements of ``emulator/media/gst_elements.py``; any other command
  is refused at ``create`` with 40006 naming it and listing the supported ones.
- ``FaceOverlayFilter``: OpenCV's Haar cascade finds faces; ``setOverlayedImage`` draws an image
  over each.
- ``ImageOverlayFilter``: ``addImage``/``removeImage`` draw images at fixed places.
- ``ZBarFilter``: zxing-cpp reads QR and bar codes, ``CodeFound`` as KMS raises it; the video
  leaves as it came (ZBar only looks at it), so it is not re-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from emulator.media.codecs.coders import codec_identity, encodable_codec
from emulator.media.flow import MediaPacket
from emulator.media.frame_filters import (
    CodeScanner,
    FaceImage,
    FaceOverlay,
    ImageOverlay,
    PlacedImage,
)
from emulator.media.gst_elements import (
    AudioElement,
    BadProperty,
    CommandRefused,
    GstElement,
    VideoElement,
    parse_command,
)
from emulator.media.images import Bgra, ImageLoadFailed, load_image
from emulator.media.video_filter import AudioGainStage, FrameProcessor, VideoFilterStage
from emulator.objects.media_element import ElementLink, Filter
from protocol.errors import KurentoNotImplemented, MediaObjectIllegalParamError
from protocol.sdp import Codec


class OpenCVFilter(Filter):
    """Abstract: OpenCV-based filters."""

    TYPE = "OpenCVFilter"


class VideoProcessingFilter(Filter):
    """A filter whose video goes through a ``VideoFilterStage`` (not a KMD class)."""

    TYPE = "Filter"
    ENCODES: ClassVar[bool] = True
    """False: the video is only looked at, and forwarded as it came."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage: VideoFilterStage | None = None

    def video_processor(self) -> FrameProcessor | None:
        """What is done to each frame; None: the video is forwarded untouched."""
        raise NotImplementedError

    # -- media path ------------------------------------------------------------------------------

    def receive_media(self, media_type: str, packet: Any) -> None:
        """Video into the stage (and on as it came when the filter only looks); the rest on."""
        if media_type != "VIDEO" or not isinstance(packet, MediaPacket):
            super().receive_media(media_type, packet)
            return
        processor = self.video_processor()
        if processor is None:
            super().receive_media(media_type, packet)
            return
        self.mark_flow("in", "VIDEO", True)
        if self.ENCODES and not self.has_sinks("VIDEO"):
            return  # nobody to encode for: when a sink comes, the decoder asks for a keyframe
        if self.stage is None:
            short = self.id.rsplit("/", 1)[-1][:8]
            self.stage = VideoFilterStage(processor, self, short, encodes=self.ENCODES)
            self._update_targets()
        self.stage.feed(packet)
        if not self.ENCODES:
            super().receive_media(media_type, packet)

    def filtered_frame(self, codec: Codec, packets: list[MediaPacket]) -> None:
        """A processed frame in one output codec: to the VIDEO sinks that take that codec.

        Sinks negotiate after they are connected, and renegotiate: their codecs are looked at
        once per frame (a few attribute reads each), so that each gets its codec from its first
        frames on and no sink transcodes what the filter could encode for it.
        """
        routes = self._update_targets()
        identity = codec_identity(codec)
        sent = False
        for sink in self._sinks.get("VIDEO", ()):
            if routes.get(id(sink)) == identity:
                sent = True
                for packet in packets:
                    sink.receive_media("VIDEO", packet)
        if sent:
            self.mark_flow("out", "VIDEO", True)

    def filter_keyframe_needed(self) -> None:
        """The decoder lacks a keyframe: ask the source."""
        self.ask_keyframe("VIDEO")

    def _update_targets(self) -> dict[int, tuple[Any, ...]]:
        """Which output codec each VIDEO sink gets (by the sink's id()); the stage encodes
        each of them once, at the lowest bitrate the receivers take (their REMB)."""
        routes: dict[int, tuple[Any, ...]] = {}
        targets: dict[tuple[Any, ...], Codec] = {}
        for sink in self._sinks.get("VIDEO", ()):
            codec = encodable_codec("video", sink.codecs_taken("VIDEO"))
            identity = codec_identity(codec)
            routes[id(sink)] = identity
            targets.setdefault(identity, codec)
        if self.stage is not None:
            self.stage.set_targets(list(targets.values()))
            self.stage.set_bitrate(self.encoder_bitrates().choose(self.video_send_limit()))
        return routes

    def codecs_taken(self, media_type: str) -> list[Codec]:
        """A filter that encodes decodes any VP8 or H264: it asks nothing of its source."""
        if media_type == "VIDEO" and self.ENCODES:
            return []
        return super().codecs_taken(media_type)

    def produce_keyframe(self, media_type: str) -> None:
        """A sink wants a keyframe: the encoders make one (the source is not asked)."""
        if media_type == "VIDEO" and self.stage is not None and self.ENCODES:
            self.stage.request_keyframe()
            return
        super().produce_keyframe(media_type)

    def video_source_changed(self) -> None:
        """A new source: the decoder wants its keyframe. Sinks of encoded output see no change
        (the stream they get is the encoders'), sinks of forwarded video do."""
        self.ask_keyframe("VIDEO")
        if not self.ENCODES or self.video_processor() is None:
            super().video_source_changed()

    def on_link_added(self, link: ElementLink) -> None:
        """A new VIDEO sink may take another codec, and starts with a keyframe."""
        super().on_link_added(link)
        if link.media_type == "VIDEO":
            self._update_targets()

    async def on_release(self) -> None:
        """Stop the worker thread."""
        stage, self.stage = self.stage, None
        if stage is not None:
            stage.close()
            await stage.wait_closed()
        await super().on_release()


class GStreamerFilter(VideoProcessingFilter):
    """A filter built from a GStreamer command line (one element)."""

    TYPE = "GStreamerFilter"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        command = str(self.params.get("command", ""))
        self.properties["command"] = command
        try:
            self.element = self._element(command, str(self.params.get("filterType") or ""))
        except Exception:
            self.graph.remove(self)  # not created: the pipeline forgets it
            raise
        self.audio_stage: AudioGainStage | None = None

    @staticmethod
    def _element(command: str, filter_type: str) -> GstElement:
        try:
            element = parse_command(command)
        except CommandRefused as exc:
            raise KurentoNotImplemented(str(exc)) from None
        except BadProperty as exc:
            raise MediaObjectIllegalParamError(str(exc)) from None
        if filter_type in ("AUDIO", "VIDEO") and filter_type.lower() != element.KIND:
            raise MediaObjectIllegalParamError(
                f"filterType {filter_type} does not fit {element.NAME}, a {element.KIND} "
                f"element: use filterType {element.KIND.upper()} or AUTODETECT"
            )
        return element

    def video_processor(self) -> FrameProcessor | None:
        return self.element if isinstance(self.element, VideoElement) else None

    def receive_media(self, media_type: str, packet: Any) -> None:
        """Audio through ``volume`` is decoded and scaled; everything else as the base does."""
        element = self.element
        if (
            media_type == "AUDIO"
            and isinstance(packet, MediaPacket)
            and isinstance(element, AudioElement)
            and element.touches_audio()
        ):
            self.mark_flow("in", "AUDIO", True)
            if self.audio_stage is None:
                short = self.id.rsplit("/", 1)[-1][:8]
                self.audio_stage = AudioGainStage(element.gain, self._scaled_audio, short)
            self.audio_stage.feed(packet)
            return
        super().receive_media(media_type, packet)

    def _scaled_audio(self, packet: MediaPacket) -> None:
        if self.has_sinks("AUDIO"):
            self.mark_flow("out", "AUDIO", True)
            self.forward("AUDIO", packet)

    def set_element_property(self, property_name: str, property_value: str) -> None:
        """KMD setElementProperty: change a property of the element, live.

        Raises:
            MediaObjectIllegalParamError: 40107 for a property the element lacks or a value
                it refuses.
            KurentoNotImplemented: 40006 for a value the emulator does not apply (caps fields).
        """
        try:
            self.element.set_property(property_name, property_value)
        except CommandRefused as exc:
            raise KurentoNotImplemented(str(exc)) from None
        except BadProperty as exc:
            raise MediaObjectIllegalParamError(str(exc)) from None
        self.log.info("= %s %s=%s", self.element.NAME, property_name, property_value)

    async def on_release(self) -> None:
        """Stop the audio transcoder too."""
        if self.audio_stage is not None:
            self.audio_stage.close()
        await super().on_release()


async def _load(uri: str) -> Bgra:
    """The image at ``uri``, loaded off the event loop.

    Raises:
        MediaObjectIllegalParamError: 40107 when the URI gives no image.
    """
    try:
        return await asyncio.to_thread(load_image, uri)
    except ImageLoadFailed as exc:
        raise MediaObjectIllegalParamError(f"cannot load the image: {exc}") from None


def _ratio(name: str, value: float, low: float = 0.0) -> float:
    if value < low:
        raise MediaObjectIllegalParamError(f"{name} is {value}: it must be {low:g} or more")
    return float(value)


class FaceOverlayFilter(VideoProcessingFilter):
    """Overlays an image on detected faces."""

    TYPE = "FaceOverlayFilter"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faces = FaceOverlay()

    def video_processor(self) -> FrameProcessor | None:
        return self.faces

    async def set_overlayed_image(
        self,
        uri: str,
        offset_x_percent: float,
        offset_y_percent: float,
        width_percent: float,
        height_percent: float,
    ) -> None:
        """KMD setOverlayedImage: the image drawn over each face, placed and sized by ratios of
        the face's size.

        Raises:
            MediaObjectIllegalParamError: 40107 for a negative size or an image that does not
                load.
        """
        width = _ratio("widthPercent", width_percent)
        height = _ratio("heightPercent", height_percent)
        image = await _load(uri)
        self.faces.overlay = FaceImage(image, offset_x_percent, offset_y_percent, width, height)
        self.log.info("= face overlay image %s", uri)

    def unset_overlayed_image(self) -> None:
        """KMD unsetOverlayedImage: stop drawing over faces."""
        self.faces.overlay = None


class ImageOverlayFilter(VideoProcessingFilter):
    """Overlays images on the video."""

    TYPE = "ImageOverlayFilter"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overlay = ImageOverlay()

    def video_processor(self) -> FrameProcessor | None:
        return self.overlay

    async def add_image(
        self,
        id: str,  # the KMD parameter's name
        uri: str,
        offset_x_percent: float,
        offset_y_percent: float,
        width_percent: float,
        height_percent: float,
        keep_aspect_ratio: bool,
        center: bool,
    ) -> None:
        """KMD addImage: draw the image at ``uri`` at that place (ratios of the frame's size);
        an image with the same id is replaced.

        Raises:
            MediaObjectIllegalParamError: 40107 for a negative size or an image that does not
                load.
        """
        placed = PlacedImage(
            await _load(uri),
            offset_x_percent,
            offset_y_percent,
            _ratio("widthPercent", width_percent),
            _ratio("heightPercent", height_percent),
            keep_aspect_ratio,
            center,
        )
        self.overlay.images = {**self.overlay.images, id: placed}
        self.log.info("= overlay image %s: %s", id, uri)

    def remove_image(self, id: str) -> None:  # the KMD parameter's name
        """KMD removeImage: stop drawing that image (an unknown id is ignored, as in KMS)."""
        self.overlay.images = {k: v for k, v in self.overlay.images.items() if k != id}


class ZBarFilter(VideoProcessingFilter):
    """Detects bar codes and QR codes: ``CodeFound`` (KMD filters)."""

    TYPE = "ZBarFilter"
    ENCODES = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop = asyncio.get_running_loop()
        self.scanner = CodeScanner(self._found_in_worker)

    def video_processor(self) -> FrameProcessor | None:
        return self.scanner

    def _found_in_worker(self, code_type: str, value: str) -> None:
        # A closed loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._found, code_type, value)

    def _found(self, code_type: str, value: str) -> None:
        self.log.info("= code found: %s %r", code_type, value)
        self.emit("CodeFound", codeType=code_type, value=value)
