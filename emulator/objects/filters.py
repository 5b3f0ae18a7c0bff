"""Filters (KMD filters module): created and connected like any element, no video processing.

Their own operations answer 40006 NOT_IMPLEMENTED, so an application notices the difference instead
of seeing a silent success.
"""

from __future__ import annotations

from typing import Any

from emulator.objects.media_element import Filter

_NO_PROCESSING = "video processing filters are not supported by kurento-emulator"


class OpenCVFilter(Filter):
    """Abstract: OpenCV-based filters."""

    TYPE = "OpenCVFilter"


class GStreamerFilter(Filter):
    """A filter built from a GStreamer command line."""

    TYPE = "GStreamerFilter"
    NOT_YET = "GStreamer filter commands are not run by kurento-emulator"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.properties["command"] = self.params.get("command", "")


class FaceOverlayFilter(Filter):
    """Overlays an image on detected faces."""

    TYPE = "FaceOverlayFilter"
    NOT_YET = _NO_PROCESSING


class ImageOverlayFilter(Filter):
    """Overlays images on the video."""

    TYPE = "ImageOverlayFilter"
    NOT_YET = _NO_PROCESSING


class ZBarFilter(Filter):
    """Detects bar codes and QR codes."""

    TYPE = "ZBarFilter"
    NOT_YET = _NO_PROCESSING
