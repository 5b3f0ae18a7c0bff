"""The GStreamer elements a GStreamerFilter runs, done with numpy and OpenCV on decoded frames.

KMS's GStreamerFilter builds one GStreamer element from a gst-launch description (``element
prop=value ...``, or a bare caps string, which gst-launch reads as a capsfilter). The emulator
runs the elements that the Kurento tutorials and documentation use, with the same property
names, ranges and enum nicks:

- video: ``videoflip`` (``method``/``video-direction``), ``videobalance`` (``brightness``,
  ``contrast``, ``saturation``, ``hue``), ``capsfilter`` (``caps=video/x-raw,width=..,height=..,
  framerate=..``: scales, and drops frames down to the rate), ``videorate`` (``max-rate``),
  ``videoscale`` and ``videoconvert`` (no work of their own: the size comes from caps, and every
  encoder takes I420), ``textoverlay`` and ``timeoverlay`` (``text``, ``valignment``,
  ``halignment``, ``font-desc``, ``xpad``, ``ypad``, ``shaded-background``);
- audio: ``volume`` (``volume``, ``mute``), ``audiorate`` (it fills gaps and drops overlaps in a
  raw stream; RTP carries neither once the jitter buffer of the receiver is past, so the audio
  is forwarded as it is).

Anything else raises ``CommandRefused`` (KMS 40006 at ``create``), naming the element and the
supported ones; a property the element lacks or a value it refuses raises ``BadProperty``.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np

from emulator.media.video_filter import Image


class CommandRefused(ValueError):
    """The command is not one element the emulator runs."""


class BadProperty(ValueError):
    """A property the element does not have, or a value out of its range."""


Parser = Callable[[str], Any]


def boolean(text: str) -> bool:
    """GLib's boolean forms."""
    value = text.strip().lower()
    if value in ("true", "yes", "1", "t", "y"):
        return True
    if value in ("false", "no", "0", "f", "n"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false)")


def number(low: float, high: float, integer: bool = False) -> Parser:
    """A parser of a number within ``low..high``, as GStreamer's property specs bound it."""

    def parse(text: str) -> float:
        value = float(int(text)) if integer else float(text)
        if not low <= value <= high:
            raise ValueError(f"{text} is outside {low:g}..{high:g}")
        return int(value) if integer else value

    return parse


def enum(nicks: dict[str, int]) -> Parser:
    """A parser of a GStreamer enum: its nick or its number."""

    def parse(text: str) -> int:
        value = text.strip().lower()
        if value in nicks:
            return nicks[value]
        if value.lstrip("-").isdigit() and int(value) in nicks.values():
            return int(value)
        raise ValueError(f"{text!r} is not one of {', '.join(nicks)} (or their numbers)")

    return parse


def text(value: str) -> str:
    """A string property."""
    return value


class GstElement:
    """One element: its properties (name -> parser, default) and what it does."""

    NAME: ClassVar[str] = ""
    KIND: ClassVar[str] = "video"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {}
    IGNORED: ClassVar[tuple[str, ...]] = ("name", "qos")
    """Properties accepted with no effect here (names, and timing controls RTP does not need)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {name: default for name, (_, default) in
                                       self.PROPERTIES.items()}  # fmt: skip

    def set_property(self, name: str, value: str) -> None:
        """Set a property from its string form (gst-launch, ``setElementProperty``).

        Raises:
            BadProperty: the element has no such property, or the value is refused.
            CommandRefused: a value the emulator does not apply (caps of another media type).
        """
        if name in self.IGNORED:
            return
        spec = self.PROPERTIES.get(name)
        if spec is None:
            known = ", ".join(self.PROPERTIES) or "none"
            raise BadProperty(f"{self.NAME} has no property {name!r} (it has: {known})")
        try:
            parsed = spec[0](value)
        except CommandRefused:
            raise  # something the emulator does not do (caps of other media), not a bad value
        except ValueError as exc:
            raise BadProperty(f"{self.NAME} property {name}={value!r}: {exc}") from None
        self.values = {**self.values, name: parsed}
        self.changed()

    def changed(self) -> None:
        """A property changed (elements deriving state from them recompute it)."""


class VideoElement(GstElement):
    """An element working on decoded frames (a ``FrameProcessor``)."""

    def process(self, image: Image, seconds: float) -> Image | None:
        """The frame to send, or None to drop it."""
        return image


class AudioElement(GstElement):
    """An element working on audio."""

    KIND = "audio"

    def gain(self) -> float:
        """The linear factor applied to the samples."""
        return 1.0

    def touches_audio(self) -> bool:
        """Whether the audio must be decoded (False: forwarded as it is)."""
        return False


FLIP_METHODS = {
    "none": 0, "identity": 0, "clockwise": 1, "90r": 1, "rotate-180": 2, "180": 2,
    "counterclockwise": 3, "90l": 3, "horizontal-flip": 4, "horiz": 4, "vertical-flip": 5,
    "vert": 5, "upper-left-diagonal": 6, "ul-lr": 6, "upper-right-diagonal": 7, "ur-ll": 7,
    "automatic": 8, "auto": 8,
}  # fmt: skip
"""GstVideoFlipMethod and GstVideoOrientationMethod nicks (``method``, ``video-direction``)."""


def flipped(image: Image, method: int) -> Image:
    """``image`` turned as videoflip's method says."""
    if method == 1:
        return np.ascontiguousarray(np.rot90(image, -1))
    if method == 2:
        return image[::-1, ::-1]
    if method == 3:
        return np.ascontiguousarray(np.rot90(image, 1))
    if method == 4:
        return image[:, ::-1]
    if method == 5:
        return image[::-1]
    if method == 6:
        return np.ascontiguousarray(image.transpose(1, 0, 2))
    if method == 7:
        return np.ascontiguousarray(image[::-1, ::-1].transpose(1, 0, 2))
    return image  # none, and automatic: RTP carries no orientation tag to follow


class VideoFlip(VideoElement):
    """videoflip: flips and rotations."""

    NAME = "videoflip"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "method": (enum(FLIP_METHODS), 0),
        "video-direction": (enum(FLIP_METHODS), 0),
    }

    def set_property(self, name: str, value: str) -> None:
        super().set_property(name, value)
        # Both properties set the one method, as in GStreamer.
        method = self.values.get(name, 0)
        self.values = {**self.values, "method": method, "video-direction": method}

    def process(self, image: Image, seconds: float) -> Image | None:
        return flipped(image, int(self.values["method"]))


class VideoBalance(VideoElement):
    """videobalance: brightness, contrast, saturation and hue, in YCrCb."""

    NAME = "videobalance"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "brightness": (number(-1, 1), 0.0),
        "contrast": (number(0, 2), 1.0),
        "saturation": (number(0, 2), 1.0),
        "hue": (number(-1, 1), 0.0),
    }

    def process(self, image: Image, seconds: float) -> Image | None:
        values = self.values
        brightness, contrast = values["brightness"], values["contrast"]
        saturation, hue = values["saturation"], values["hue"]
        if (brightness, contrast, saturation, hue) == (0.0, 1.0, 1.0, 0.0):
            return image  # GStreamer's passthrough too
        ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
        # gstvideobalance.c: luma (Y - 16) * contrast + brightness * 255 + 16; chroma rotated by
        # hue * pi around its centre and scaled by saturation. Without hue each channel maps on
        # its own: one lookup table per channel; hue mixes the two chroma channels.
        levels = np.arange(256, dtype=np.float32)
        luma = np.clip((levels - 16) * contrast + brightness * 255 + 16, 0, 255)
        if hue == 0.0:
            chroma = np.clip((levels - 128) * saturation + 128, 0, 255)
            table = np.stack([luma, chroma, chroma], axis=1).astype(np.uint8).reshape(256, 1, 3)
            return cv2.cvtColor(cv2.LUT(ycrcb, table), cv2.COLOR_YCrCb2BGR)  # type: ignore[return-value]
        out = ycrcb.astype(np.float32)
        out[..., 0] = luma[ycrcb[..., 0]]
        cb, cr = out[..., 2] - 128, out[..., 1] - 128
        cos, sin = math.cos(hue * math.pi), math.sin(hue * math.pi)
        out[..., 2] = (cb * cos + cr * sin) * saturation + 128
        out[..., 1] = (cr * cos - cb * sin) * saturation + 128
        balanced = np.clip(out, 0, 255).astype(np.uint8)
        return cv2.cvtColor(balanced, cv2.COLOR_YCrCb2BGR)  # type: ignore[return-value]


class FrameRate:
    """Drops frames down to a rate (``videorate``'s ``max-rate``, a caps ``framerate``)."""

    def __init__(self) -> None:
        self.next_due: float | None = None

    def keep(self, seconds: float, rate: float) -> bool:
        """Whether the frame at ``seconds`` is sent at ``rate`` frames per second (0: all)."""
        if rate <= 0:
            return True
        interval = 1 / rate
        if self.next_due is not None and seconds < self.next_due - interval / 10:
            return False
        self.next_due = max(seconds, self.next_due or seconds) + interval
        if self.next_due < seconds:  # a pause in the source: start again from this frame
            self.next_due = seconds + interval
        return True


def _fraction(value: str) -> float:
    numerator, _, denominator = value.partition("/")
    rate = float(numerator) / float(denominator or 1)
    if rate < 0:
        raise ValueError(f"{value} is not a frame rate")
    return rate


CAPS_FIELDS: dict[str, Parser] = {
    "width": number(1, 8192, integer=True),
    "height": number(1, 8192, integer=True),
    "framerate": _fraction,
    "format": text,  # every encoder here takes I420: the format is converted anyway
    "pixel-aspect-ratio": text,  # square pixels: RTP video carries no aspect ratio
}


def parse_caps(caps: str) -> dict[str, Any]:
    """``video/x-raw,width=320,framerate=(fraction)15/1`` -> the fields the emulator applies.

    Raises:
        CommandRefused: caps of another media type, or fields the emulator does not apply.
    """
    media_type, *fields = [part.strip() for part in caps.strip().strip("\"'").split(",")]
    if media_type != "video/x-raw":
        raise CommandRefused(
            f"caps {caps!r}: only video/x-raw caps are applied by kurento-emulator "
            f"(fields {', '.join(CAPS_FIELDS)})"
        )
    parsed: dict[str, Any] = {}
    for item in filter(None, fields):
        name, _, value = item.partition("=")
        value = re.sub(r"^\(\w+\)", "", value.strip())
        parse = CAPS_FIELDS.get(name.strip())
        if parse is None:
            raise CommandRefused(
                f"caps field {name.strip()!r} is not applied by kurento-emulator "
                f"(it applies {', '.join(CAPS_FIELDS)})"
            )
        try:
            parsed[name.strip()] = parse(value)
        except ValueError as exc:
            raise BadProperty(f"caps field {item!r}: {exc}") from None
    return parsed


def even(value: float) -> int:
    """A frame dimension every encoder takes (4:2:0 chroma wants even sizes)."""
    return max(2, round(value / 2) * 2)


class CapsFilter(VideoElement):
    """capsfilter: the frame size and rate of the caps (the scaling and rate conversion that
    KMS's videoscale and videorate do to meet them)."""

    NAME = "capsfilter"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {"caps": (parse_caps, {})}

    def __init__(self) -> None:
        super().__init__()
        self.rate = FrameRate()

    def process(self, image: Image, seconds: float) -> Image | None:
        caps = self.values["caps"]
        if not self.rate.keep(seconds, caps.get("framerate", 0)):
            return None
        height, width = image.shape[:2]
        if "width" in caps or "height" in caps:
            new_width = caps.get("width") or width * caps["height"] / height
            new_height = caps.get("height") or height * caps["width"] / width
            size = (even(new_width), even(new_height))
            if size != (width, height):
                return cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # type: ignore[return-value]
        return image


class VideoRate(VideoElement):
    """videorate: ``max-rate`` drops frames above it (duplicating frames to raise a rate would
    only add bytes to an RTP stream)."""

    NAME = "videorate"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "max-rate": (number(1, 2**31 - 1, integer=True), 2**31 - 1),
        "drop-only": (boolean, False),
        "skip-to-first": (boolean, False),
    }

    def __init__(self) -> None:
        super().__init__()
        self.rate = FrameRate()

    def process(self, image: Image, seconds: float) -> Image | None:
        max_rate = self.values["max-rate"]
        return image if self.rate.keep(seconds, max_rate if max_rate < 1000 else 0) else None


class VideoScale(VideoElement):
    """videoscale: scales to the size that caps ask for (a ``capsfilter``); alone it passes
    frames through, as in GStreamer."""

    NAME = "videoscale"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "method": (number(0, 5, integer=True), 1),
        "add-borders": (boolean, True),
    }


class VideoConvert(VideoElement):
    """videoconvert: pixel format conversion, which the encoders here do anyway."""

    NAME = "videoconvert"


VALIGN = {"baseline": 0, "bottom": 1, "top": 2, "position": 3, "center": 4, "absolute": 5}
HALIGN = {"left": 0, "center": 1, "right": 2, "position": 4, "absolute": 5}
HERSHEY_HEIGHT = 22
"""Pixels of a capital letter of OpenCV's Hershey simplex font at scale 1."""


def font_size(desc: str, default: float) -> float:
    """The size in points of a Pango font description (``Sans Bold 24``)."""
    sizes = re.findall(r"(\d+(?:\.\d+)?)(?:px)?\s*$", desc.strip())
    return float(sizes[0]) if sizes else default


class TextOverlay(VideoElement):
    """textoverlay: a line of text drawn over the video (OpenCV's Hershey font stands in for
    Pango's; size from ``font-desc``, position from the alignments and pads)."""

    NAME = "textoverlay"
    DEFAULT_VALIGN = "baseline"
    DEFAULT_HALIGN = "center"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "text": (text, ""),
        "valignment": (enum(VALIGN), VALIGN["baseline"]),
        "halignment": (enum(HALIGN), HALIGN["center"]),
        "font-desc": (text, ""),
        "xpad": (number(0, 2**31 - 1, integer=True), 25),
        "ypad": (number(0, 2**31 - 1, integer=True), 25),
        "shaded-background": (boolean, False),
        "silent": (boolean, False),
        "color": (lambda v: int(v, 0), 0xFFFFFFFF),
    }

    def label(self, seconds: float) -> str:
        """What is written on the frame at ``seconds``."""
        return str(self.values["text"])

    def process(self, image: Image, seconds: float) -> Image | None:
        label = self.label(seconds)
        if self.values["silent"] or not label:
            return image
        image = np.ascontiguousarray(image)
        height, width = image.shape[:2]
        # Pango sizes are points at 96 dpi; KMS's videos are scaled to a 640 px wide canvas.
        pixels = font_size(self.values["font-desc"], 18) * 96 / 72 * width / 640
        scale = max(pixels / HERSHEY_HEIGHT, 0.3)
        thickness = max(1, round(scale * 2))
        (text_width, text_height), baseline = cv2.getTextSize(
            label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness
        )
        x, y = self._origin(width, height, text_width, text_height, baseline)
        if self.values["shaded-background"]:
            top, bottom = y - text_height - 4, y + baseline + 4
            region = image[max(top, 0) : max(bottom, 0), max(x - 4, 0) : x + text_width + 4]
            region[...] = (region * 0.5).astype(np.uint8)
        colour = self.values["color"]
        bgr = (colour & 0xFF, (colour >> 8) & 0xFF, (colour >> 16) & 0xFF)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, label, (x, y), font, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(image, label, (x, y), font, scale, bgr, thickness, cv2.LINE_AA)
        return image

    def _origin(
        self, width: int, height: int, text_width: int, text_height: int, baseline: int
    ) -> tuple[int, int]:
        xpad, ypad = self.values["xpad"], self.values["ypad"]
        halign, valign = self.values["halignment"], self.values["valignment"]
        if halign == HALIGN["left"]:
            x = xpad
        elif halign == HALIGN["right"]:
            x = width - text_width - xpad
        else:
            x = (width - text_width) // 2
        if valign == VALIGN["top"]:
            y = ypad + text_height
        elif valign == VALIGN["center"]:
            y = (height + text_height) // 2
        elif valign == VALIGN["bottom"]:
            y = height - ypad - baseline
        else:  # baseline, and the positions this emulator does not place
            y = height - ypad
        return x, y


class TimeOverlay(TextOverlay):
    """timeoverlay: the stream's running time (``H:MM:SS.mmm``), after ``text`` if set."""

    NAME = "timeoverlay"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        **TextOverlay.PROPERTIES,
        "valignment": (enum(VALIGN), VALIGN["top"]),
        "halignment": (enum(HALIGN), HALIGN["left"]),
    }

    def __init__(self) -> None:
        super().__init__()
        self.start: float | None = None

    def label(self, seconds: float) -> str:
        if self.start is None:
            self.start = seconds
        elapsed = max(seconds - self.start, 0.0)
        hours, rest = divmod(elapsed, 3600)
        minutes, secs = divmod(rest, 60)
        clock = f"{int(hours)}:{int(minutes):02d}:{secs:06.3f}"
        prefix = str(self.values["text"])
        return f"{prefix} {clock}" if prefix else clock


class Volume(AudioElement):
    """volume: scales the samples (``volume`` 0..10, ``mute``)."""

    NAME = "volume"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "volume": (number(0, 10), 1.0),
        "mute": (boolean, False),
    }

    def gain(self) -> float:
        return 0.0 if self.values["mute"] else float(self.values["volume"])

    def touches_audio(self) -> bool:
        return True


class AudioRate(AudioElement):
    """audiorate: a raw stream's gaps filled and overlaps dropped; RTP audio is forwarded as
    it is (see the module's docstring)."""

    NAME = "audiorate"
    PROPERTIES: ClassVar[dict[str, tuple[Parser, Any]]] = {
        "tolerance": (number(0, 2**63 - 1, integer=True), 40000000),
        "skip-to-first": (boolean, False),
    }


ELEMENTS: dict[str, type[GstElement]] = {
    cls.NAME: cls
    for cls in (
        VideoFlip, VideoBalance, CapsFilter, VideoRate, VideoScale, VideoConvert, TextOverlay,
        TimeOverlay, Volume, AudioRate,
    )
}  # fmt: skip


def supported() -> str:
    """The elements the emulator runs, for messages."""
    return ", ".join(ELEMENTS)


def parse_command(command: str) -> GstElement:
    """The element a gst-launch description makes, its properties set.

    Raises:
        CommandRefused: not one element, or an element the emulator does not run (40006).
        BadProperty: a property the element lacks, or a value it refuses (40107).
    """
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise BadProperty(f"command {command!r} does not parse: {exc}") from None
    if not words:
        raise BadProperty("the command is empty: give one GStreamer element, e.g. videoflip")
    if "!" in words:
        raise CommandRefused(
            f"command {command!r} links several elements: a GStreamerFilter holds one element "
            f"(use one filter per element)"
        )
    if "/" in words[0]:  # gst-launch reads bare caps as a capsfilter
        element: GstElement = CapsFilter()
        element.set_property("caps", " ".join(words))
        return element
    cls = ELEMENTS.get(words[0])
    if cls is None:
        raise CommandRefused(
            f"GStreamer element {words[0]!r} is not run by kurento-emulator; supported: "
            f"{supported()}"
        )
    element = cls()
    for word in words[1:]:
        name, equals, value = word.partition("=")
        if not equals:
            raise BadProperty(f"{word!r} in {command!r} is not a property=value pair")
        element.set_property(name, value)
    return element
