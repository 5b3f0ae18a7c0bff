"""The per-frame work of the OpenCV filters: face overlay, image overlay, bar code scanning.

Each class here is a ``FrameProcessor`` (``video_filter.py``): ``process`` runs on the filter's
worker thread with a BGR image. Their settings are replaced whole from the event loop (one
attribute assignment, which the worker reads once per frame), never mutated in place.

Detectors (faces, codes) cost more than a frame interval on large frames; ``Throttle`` then has
them look at every Nth frame only and keeps their last result for the frames between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import zxingcpp

from emulator.media.images import Bgra, fit, paste
from emulator.media.video_filter import Image

FACE_CASCADE = "haarcascade_frontalface_default.xml"
"""The frontal face Haar cascade that OpenCV ships (KMS's kmsfaceoverlay loads the same one)."""
DETECTION_WIDTH = 320
"""Frames are scaled down to this width for detection (the boxes are scaled back)."""
SMALLEST_FACE = 32
"""Pixels (at the detection width: a tenth of it) of the smallest face looked for; smaller
sizes cost more than the frame rate allows on one core."""


class Throttle:
    """Whether a detector runs on this frame: when one run took longer than the frames leave
    time for, it runs on every Nth frame only (N following its cost), so that the worker keeps
    up with the frame rate; the caller keeps the last result meanwhile."""

    def __init__(self, share: float = 0.5) -> None:
        self.share = share
        """The part of the worker's time detection may take."""
        self.next_at = 0.0

    def due(self) -> bool:
        """Whether to run the detector now."""
        return time.monotonic() >= self.next_at

    def ran(self, started: float) -> None:
        """It ran from ``started`` until now."""
        ended = time.monotonic()
        self.next_at = ended + (ended - started) * (1 - self.share) / self.share


Box = tuple[int, int, int, int]
"""x, y, width, height in pixels."""


def detection_scale(image: Image) -> tuple[Any, float]:
    """A grey, equalised copy of ``image`` for detectors, and the factor back to its size."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    width = image.shape[1]
    factor = 1.0
    if width > DETECTION_WIDTH:
        factor = width / DETECTION_WIDTH
        size = (DETECTION_WIDTH, round(image.shape[0] / factor))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return cv2.equalizeHist(grey), factor


@dataclass(frozen=True, slots=True)
class FaceImage:
    """``setOverlayedImage``: the image and where it goes relative to each face (ratios of the
    face's width and height, as the KMD describes them despite their ``Percent`` names)."""

    image: Bgra
    offset_x: float
    offset_y: float
    width: float
    height: float


class FaceOverlay:
    """Detects faces (OpenCV's Haar cascade) and draws the image over each."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + FACE_CASCADE)  # type: ignore[attr-defined]
        self.overlay: FaceImage | None = None
        self.faces: list[Box] = []
        self.throttle = Throttle()

    def process(self, image: Image, seconds: float) -> Image | None:
        overlay = self.overlay
        if overlay is None:
            return image  # no image set: the frames go out as they came, as in KMS
        if self.throttle.due():
            started = time.monotonic()
            self.faces = self.detect(image)
            self.throttle.ran(started)
        if not self.faces:
            return image
        image = image.copy()
        for x, y, width, height in self.faces:
            paste(
                image,
                overlay.image,
                round(x + overlay.offset_x * width),
                round(y + overlay.offset_y * height),
                round(overlay.width * width),
                round(overlay.height * height),
            )
        return image

    def detect(self, image: Image) -> list[Box]:
        """The faces in ``image``, in its pixels."""
        grey, factor = detection_scale(image)
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.2, minNeighbors=3,
                                              minSize=(SMALLEST_FACE, SMALLEST_FACE))  # fmt: skip
        return [
            (round(x * factor), round(y * factor), round(w * factor), round(h * factor))
            for x, y, w, h in found
        ]


@dataclass(frozen=True, slots=True)
class PlacedImage:
    """``addImage``: an image placed by ratios of the frame's size."""

    image: Bgra
    offset_x: float
    offset_y: float
    width: float
    height: float
    keep_aspect_ratio: bool
    center: bool

    def draw(self, frame: Image) -> None:
        """Paste it on ``frame`` (in place)."""
        frame_height, frame_width = frame.shape[:2]
        box_width, box_height = round(self.width * frame_width), round(self.height * frame_height)
        dx, dy, width, height = fit(
            self.image, box_width, box_height, self.keep_aspect_ratio, self.center
        )
        x = round(self.offset_x * frame_width) + dx
        y = round(self.offset_y * frame_height) + dy
        paste(frame, self.image, x, y, width, height)


class ImageOverlay:
    """Draws the images added with ``addImage``, in the order they were added."""

    def __init__(self) -> None:
        self.images: dict[str, PlacedImage] = {}

    def process(self, image: Image, seconds: float) -> Image | None:
        placed = list(self.images.values())
        if not placed:
            return image
        image = image.copy()
        for item in placed:
            item.draw(image)
        return image


ZBAR_NAMES = {
    "QRCode": "QR-Code",
    "EAN13": "EAN-13",
    "EAN8": "EAN-8",
    "UPCA": "UPC-A",
    "UPCE": "UPC-E",
    "Code128": "CODE-128",
    "Code39": "CODE-39",
    "Code93": "CODE-93",
    "Codabar": "Codabar",
    "ITF": "I2/5",
    "DataBar": "DataBar",
    "DataBarExp": "DataBar-Exp",
    "PDF417": "PDF417",
}
"""zxing-cpp's formats -> the names ZBar gives its symbologies (``zbar_get_symbol_name``), which
KMS sends as ``codeType``: only the symbologies ZBar reads are looked for."""
ZBAR_FORMATS = zxingcpp.barcode_formats_from_str(",".join(ZBAR_NAMES))
RESEND_AFTER = 1.0
"""Seconds of stream time after which KMS reports the same code again."""

CodeCallback = Callable[[str, str], None]


class CodeScanner:
    """Reads QR and bar codes (zxing-cpp) and reports them as KMS's ZBarFilter does."""

    def __init__(self, found: CodeCallback) -> None:
        self.found = found
        self.throttle = Throttle()
        self.last: tuple[str, str] | None = None
        self.last_at = 0.0

    def process(self, image: Image, seconds: float) -> Image | None:
        if self.throttle.due():
            started = time.monotonic()
            for code_type, value in self.scan(image):
                self.report(code_type, value, seconds)
            self.throttle.ran(started)
        return image

    def scan(self, image: Image) -> list[tuple[str, str]]:
        """The codes in ``image``: (ZBar type name, value)."""
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return [
            (ZBAR_NAMES.get(code.format.name, code.format.name), code.text)
            for code in zxingcpp.read_barcodes(grey, formats=ZBAR_FORMATS)
        ]

    def report(self, code_type: str, value: str, seconds: float) -> None:
        """KMS's ZBarFilterImpl raises CodeFound for a code whose type or value differs from
        the last one reported, or for the same code more than a second (of the stream's
        timestamps) after it was last reported."""
        code = (code_type, value)
        if code == self.last and 0 <= seconds - self.last_at <= RESEND_AFTER:
            return
        self.last, self.last_at = code, seconds
        self.found(code_type, value)
