"""Clips and images the media tests make: PyAV-encoded WebM with known pictures and tones."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import zxingcpp

RED = (0, 0, 255)
BLUE = (255, 0, 0)
GREEN = (0, 255, 0)
GREY = (128, 128, 128)
FPS = 15


def make_clip(
    path: Path, images: list[np.ndarray[Any, Any]], seconds: float, tone: float = 0.0
) -> str:
    """A VP8 WebM at 15 fps cycling through ``images`` (BGR) for ``seconds`` (each image for
    ``len(images)`` equal parts of it), with an Opus tone of ``tone`` Hz when not 0; its URI."""
    height, width = images[0].shape[:2]
    frames = int(seconds * FPS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 2_000_000
        stream.codec_context.gop_size = FPS
        audio = _tone_stream(container) if tone else None
        sample = 0
        for index in range(frames):
            image = images[index * len(images) // frames]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
            while audio is not None and sample < (index + 1) * 48000 // FPS:
                container.mux(audio.encode(_tone_frame(tone, sample)))
                sample += OPUS_FRAME
        container.mux(stream.encode(None))
        if audio is not None:
            container.mux(audio.encode(None))
    return path.as_uri()


OPUS_FRAME = 960


def _tone_stream(container: Any) -> Any:
    audio = container.add_stream("libopus", rate=48000)
    audio.layout, audio.format = "stereo", "s16"
    return audio


def _tone_frame(hz: float, start: int) -> av.AudioFrame:
    """20 ms of a sine tone at ``start`` (samples), stereo s16 at 48 kHz."""
    times = np.arange(start, start + OPUS_FRAME) / 48000
    mono = (np.sin(2 * np.pi * hz * times) * 8000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                       layout="stereo")  # fmt: skip
    frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
    return frame


def halves(left: tuple[int, int, int], right: tuple[int, int, int]) -> np.ndarray[Any, Any]:
    """A 320x240 BGR image: one colour on the left half, another on the right."""
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, :160] = left
    image[:, 160:] = right
    return image


def solid_png(path: Path, colour: tuple[int, int, int], size: int = 64) -> Path:
    """A square PNG of one colour."""
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = colour
    cv2.imwrite(str(path), image)
    return path


def qr_image(value: str) -> np.ndarray[Any, Any]:
    """A 320x240 BGR frame showing a QR code of ``value`` on white."""
    code = np.asarray(zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode(value, zxingcpp.BarcodeFormat.QRCode), scale=6
    ))  # fmt: skip
    frame = np.full((240, 320, 3), 255, np.uint8)
    height, width = code.shape[:2]
    top, left = (240 - height) // 2, (320 - width) // 2
    frame[top : top + height, left : left + width] = code[..., None]
    return frame
