"""The filters' per-frame work without a server: GStreamer elements on arrays, the code report
rule, image placement and loading."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from emulator.media.frame_filters import CodeScanner, ImageOverlay, PlacedImage, Throttle
from emulator.media.gst_elements import (
    BadProperty,
    CapsFilter,
    CommandRefused,
    TextOverlay,
    TimeOverlay,
    VideoBalance,
    VideoFlip,
    VideoRate,
    Volume,
    parse_command,
)
from emulator.media.images import ImageLoadFailed, fit, load_image, paste
from tests.media.clips import qr_image

Image = np.ndarray[Any, Any]


def numbered(height: int = 2, width: int = 3) -> Image:
    """A small BGR image whose pixels are numbered (blue channel) row by row."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(height * width).reshape(height, width)
    return image


def blue(image: Image | None) -> list[list[int]]:
    """The blue channel as lists (what a flip moved where)."""
    assert image is not None
    return np.asarray(image)[..., 0].tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("none", [[0, 1, 2], [3, 4, 5]]),
        ("horizontal-flip", [[2, 1, 0], [5, 4, 3]]),
        ("4", [[2, 1, 0], [5, 4, 3]]),
        ("vertical-flip", [[3, 4, 5], [0, 1, 2]]),
        ("rotate-180", [[5, 4, 3], [2, 1, 0]]),
        ("clockwise", [[3, 0], [4, 1], [5, 2]]),
        ("counterclockwise", [[2, 5], [1, 4], [0, 3]]),
        ("upper-left-diagonal", [[0, 3], [1, 4], [2, 5]]),
        ("upper-right-diagonal", [[5, 2], [4, 1], [3, 0]]),
        ("automatic", [[0, 1, 2], [3, 4, 5]]),
    ],
)
def test_videoflip_methods_move_pixels_as_gstreamer_does(
    method: str, expected: list[list[int]]
) -> None:
    """Each videoflip method (nick or number) turns the picture as GStreamer's does."""
    element = parse_command(f"videoflip method={method}")
    assert isinstance(element, VideoFlip)
    assert blue(element.process(numbered(), 0.0)) == expected


def test_videoflip_video_direction_nicks_set_the_same_method() -> None:
    """``video-direction`` (GstVideoOrientationMethod nicks) and ``method`` are one setting."""
    element = parse_command("videoflip video-direction=horiz")
    assert isinstance(element, VideoFlip)
    assert blue(element.process(numbered(), 0.0)) == [[2, 1, 0], [5, 4, 3]]
    assert element.values["method"] == 4
    element.set_property("method", "vert")
    assert element.values["video-direction"] == 5


def test_videobalance_brightness_contrast_and_saturation() -> None:
    """Saturation 0 gives grey, brightness raises every channel, contrast 0 flattens to grey;
    the lookup tables (no hue) and the hue rotation agree."""
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[:] = (30, 60, 200)
    grey = VideoBalance()
    grey.set_property("saturation", "0")
    out = np.asarray(grey.process(colour, 0.0)).astype(int)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 2
    bright = VideoBalance()
    bright.set_property("brightness", "0.2")
    assert (np.asarray(bright.process(colour, 0.0)).astype(int) > colour.astype(int)).all()
    rotated, table = VideoBalance(), VideoBalance()
    for element, hue in ((rotated, "0.000001"), (table, "0")):
        element.set_property("saturation", "1.5")
        element.set_property("contrast", "1.2")
        element.set_property("hue", hue)
    photo = np.random.default_rng(1).integers(0, 256, (8, 8, 3), np.uint8)
    mixed = np.asarray(rotated.process(photo, 0.0)).astype(int)
    assert np.abs(mixed - np.asarray(table.process(photo, 0.0)).astype(int)).max() <= 2
    flat = VideoBalance()
    flat.set_property("contrast", "0")
    flat.set_property("saturation", "0")
    out = np.asarray(flat.process(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8), 0.0))
    assert abs(int(out[0, 0, 0]) - int(out[0, 1, 0])) <= 2


def test_caps_scale_keeping_the_aspect_and_drop_frames_to_the_rate() -> None:
    """``video/x-raw,width=(int)160`` halves a 320x240 frame into 160x120 (quoted caps with
    spaces too, and new caps set live); ``framerate=15/1`` keeps one frame of two at 30 fps."""
    element = parse_command("capsfilter caps=video/x-raw,width=(int)160")
    assert isinstance(element, CapsFilter)
    out = element.process(np.zeros((240, 320, 3), np.uint8), 0.0)
    assert out is not None and out.shape == (120, 160, 3)
    spaced = parse_command('capsfilter caps="video/x-raw, width=(int)80, height=(int)60"')
    out = spaced.process(np.zeros((240, 320, 3), np.uint8), 0.0)  # type: ignore[attr-defined]
    assert out is not None and out.shape == (60, 80, 3)
    spaced.set_property("caps", "video/x-raw,width=40,height=30")
    out = spaced.process(np.zeros((240, 320, 3), np.uint8), 1.0)  # type: ignore[attr-defined]
    assert out is not None and out.shape == (30, 40, 3)
    rate = parse_command("video/x-raw,framerate=15/1,format=I420")
    kept = [rate.process(numbered(), n / 30) is not None for n in range(30)]  # type: ignore[attr-defined]
    assert sum(kept) == 15 and kept[:4] == [True, False, True, False]


def test_videorate_max_rate_drops_frames_above_it() -> None:
    """``videorate max-rate=10`` keeps 10 of 30 frames a second."""
    element = parse_command("videorate max-rate=10")
    assert isinstance(element, VideoRate)
    assert sum(element.process(numbered(), n / 30) is not None for n in range(30)) == 10


def test_textoverlay_writes_where_the_alignment_says() -> None:
    """``textoverlay`` top-left text changes pixels in the top left corner only; timeoverlay
    writes the running time."""
    element = parse_command('textoverlay text="Hello Kurento" valignment=top halignment=left '
                            'font-desc="Sans 24"')  # fmt: skip
    assert isinstance(element, TextOverlay)
    black = np.zeros((240, 320, 3), np.uint8)
    out = np.asarray(element.process(black.copy(), 0.0))
    assert out[:80, :200].max() > 200 and out[160:, :].max() == 0
    clock = TimeOverlay()
    assert clock.label(10.0) == "0:00:00.000" and clock.label(71.5) == "0:01:01.500"


def test_volume_gain_and_mute() -> None:
    """``volume volume=0.5`` halves; ``mute=true`` silences; out of range is refused."""
    element = parse_command("volume volume=0.5")
    assert isinstance(element, Volume) and element.gain() == 0.5 and element.touches_audio()
    element.set_property("mute", "true")
    assert element.gain() == 0.0
    with pytest.raises(BadProperty, match=r"outside 0\.\.10"):
        element.set_property("volume", "11")
    assert not parse_command("audiorate").touches_audio()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "error", "words"),
    [
        ("facedetect", CommandRefused, ["'facedetect'", "videoflip", "textoverlay"]),
        ("videoflip ! videoconvert", CommandRefused, ["one element"]),
        ("audio/x-raw,rate=8000", CommandRefused, ["video/x-raw"]),
        ("video/x-raw,interlace-mode=mixed", CommandRefused, ["interlace-mode"]),
        ("videoflip angle=3", BadProperty, ["angle", "method"]),
        ("videoflip method", BadProperty, ["property=value"]),
        ("videobalance hue=2", BadProperty, ["outside -1..1"]),
        ("", BadProperty, ["empty"]),
        ('textoverlay text="open', BadProperty, ["does not parse"]),
    ],
)
def test_commands_refused_with_what_to_fix(
    command: str, error: type[Exception], words: list[str]
) -> None:
    """Commands the emulator does not run, or that GStreamer would refuse, say why."""
    with pytest.raises(error) as raised:
        parse_command(command)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_code_scanner_reports_a_code_once_per_change_or_after_a_second() -> None:
    """KMS's rule: a new type or value is reported at once; the same code again only more than
    a second later (stream time)."""
    found: list[tuple[str, str]] = []
    scanner = CodeScanner(lambda kind, value: found.append((kind, value)))
    for at, value in [(0.0, "a"), (0.5, "a"), (0.9, "b"), (1.0, "a"), (1.5, "a"), (2.6, "a")]:
        scanner.report("QR-Code", value, at)
    assert found == [("QR-Code", v) for v in ["a", "b", "a", "a"]]
    assert scanner.scan(qr_image("zxing")) == [("QR-Code", "zxing")]


def test_throttle_skips_frames_while_a_detection_would_not_fit() -> None:
    """After a detection that took 0.2 s, the detector is not due for about as long again."""
    throttle = Throttle()
    assert throttle.due()
    started = time.monotonic() - 0.2
    throttle.ran(started=started)
    after = time.monotonic()
    assert not throttle.due()
    # It ended between started + 0.2 and after: the wait is as long again, from then on (bounds
    # from the clock readings around the call, not from how fast this machine runs it).
    assert started + 0.4 <= throttle.next_at <= after + (after - started)


def test_image_placement_fits_centres_and_clips() -> None:
    """``fit`` keeps the aspect ratio and centres; ``paste`` blends by alpha and cuts what lies
    outside the frame."""
    wide = np.zeros((10, 40, 4), np.uint8)
    assert fit(wide, 100, 100, keep_aspect=False, center=False) == (0, 0, 100, 100)
    assert fit(wide, 100, 100, keep_aspect=True, center=False) == (0, 0, 100, 25)
    assert fit(wide, 100, 100, keep_aspect=True, center=True) == (0, 37, 100, 25)
    frame = np.zeros((20, 20, 3), np.uint8)
    half = np.zeros((4, 4, 4), np.uint8)
    half[..., 2], half[..., 3] = 255, 128
    paste(frame, half, -5, 15, 10, 10)
    assert frame[15:, :5, 2].min() in (127, 128) and frame[:15].max() == 0
    overlay = ImageOverlay()
    opaque = np.full((2, 2, 4), 255, np.uint8)
    overlay.images = {"x": PlacedImage(opaque, 0.5, 0.5, 0.5, 0.5, False, False)}
    out = np.asarray(overlay.process(np.zeros((20, 20, 3), np.uint8), 0.0))
    assert out[10:, 10:].min() == 255 and out[:10].max() == 0


def test_load_image_reads_files_and_says_why_it_cannot(tmp_path: Path) -> None:
    """A PNG loads as BGRA; a missing file, a non-image and another scheme say what failed."""
    png = tmp_path / "grey.png"
    cv2.imwrite(str(png), np.full((3, 5), 90, np.uint8))
    image = load_image(png.as_uri())
    assert image.shape == (3, 5, 4) and image[0, 0].tolist() == [90, 90, 90, 255]
    (tmp_path / "text.png").write_text("not an image")
    for uri, reason in [
        ((tmp_path / "missing.png").as_uri(), "No such file"),
        ((tmp_path / "text.png").as_uri(), "is not an image"),
        ("ftp://host/a.png", "file://, http:// or https://"),
    ]:
        with pytest.raises(ImageLoadFailed, match=reason):
            load_image(uri)
