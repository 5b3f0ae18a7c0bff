"""Filter cost per frame: what one filter's worker thread spends on a frame, by filter.

    python -m benchmarks.filter_frames [--size 640x480] [--frames 90] [--out benchmarks/results]

A filter's worker decodes each frame (VP8), runs the filter's work on it and encodes it (VP8,
aiortc's encoder at its default bitrate) once per output codec; ZBarFilter encodes nothing.
This times the three parts separately on one core, on scikit-image's astronaut photograph
scaled to the size and panning (a real face for FaceOverlayFilter, a QR code pasted in a corner for
ZBarFilter), and prints milliseconds per frame (median) and the frame rate one core sustains
for a filter with one output codec. The media path around it (RTP in and out) is not timed:
see ``media_elements.py`` for that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import zxingcpp
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from skimage import data as skimage_data

from emulator.media.frame_filters import (
    CodeScanner,
    FaceImage,
    FaceOverlay,
    ImageOverlay,
    PlacedImage,
)
from emulator.media.gst_elements import parse_command

Image = np.ndarray[Any, Any]


def picture(width: int, height: int) -> Image:
    """The astronaut at ``width`` x ``height`` with a QR code in the bottom right corner."""
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    code = np.asarray(zxingcpp.write_barcode_to_image(
        zxingcpp.create_barcode("benchmark", zxingcpp.BarcodeFormat.QRCode), scale=4
    ))  # fmt: skip
    side = code.shape[0]
    photo[height - side :, width - side :] = code[..., None]
    return photo


def moving(image: Image, index: int) -> Image:
    """Frame ``index`` of a picture panning 4 pixels a frame (encoders see motion)."""
    return np.ascontiguousarray(np.roll(image, index * 4, axis=1))


def processors() -> dict[str, Callable[[Image, float], Image | None]]:
    """One processor of each filter, set up as an application would."""
    hat = np.zeros((64, 64, 4), np.uint8)
    hat[..., 1], hat[..., 3] = 255, 255
    faces = FaceOverlay()
    faces.overlay = FaceImage(hat, -0.35, -1.2, 1.6, 1.6)
    faces.throttle.share = 1.0  # time every detection: the throttle would skip frames
    overlay = ImageOverlay()
    overlay.images = {"logo": PlacedImage(hat, 0.8, 0.0, 0.2, 0.2, True, True)}
    scanner = CodeScanner(lambda kind, value: None)
    scanner.throttle.share = 1.0
    return {
        "GStreamerFilter videoflip method=horizontal-flip": parse_command(
            "videoflip method=horizontal-flip"
        ).process,  # type: ignore[attr-defined]
        "GStreamerFilter videobalance saturation=0": parse_command(
            "videobalance saturation=0"
        ).process,  # type: ignore[attr-defined]
        "GStreamerFilter textoverlay": parse_command(
            'textoverlay text="Kurento" font-desc="Sans 24"'
        ).process,  # type: ignore[attr-defined]
        "FaceOverlayFilter (detection on every frame)": faces.process,
        "ImageOverlayFilter (one image)": overlay.process,
        "ZBarFilter (scan on every frame)": scanner.process,
    }


def median_ms(samples: list[float]) -> float:
    """Median of seconds, in milliseconds."""
    return round(statistics.median(samples) * 1000, 2)


def run(width: int, height: int, frames: int) -> dict[str, Any]:
    """Time decode, each filter's work and encode on ``frames`` frames."""
    image = picture(width, height)
    encoder = Vp8Encoder()
    encoded: list[bytes] = []
    encode_times: list[float] = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(moving(image, index), format="bgr24")
        frame.pts, frame.time_base = index * 3000, Fraction(1, 90000)
        started = time.perf_counter()
        payloads, _ = encoder.encode(frame, index == 0)
        encode_times.append(time.perf_counter() - started)
        encoded.append(b"".join(vp8_depayload(payload) for payload in payloads))
    decoder = av.CodecContext.create("libvpx", "r")
    decode_times: list[float] = []
    for index in range(frames):
        started = time.perf_counter()
        decoded = decoder.decode(av.Packet(encoded[index]))
        for frame in decoded:
            frame.to_ndarray(format="bgr24")
        decode_times.append(time.perf_counter() - started)
    decode, encode = median_ms(decode_times), median_ms(encode_times)
    results: dict[str, Any] = {"size": f"{width}x{height}", "decode_ms": decode,
                               "encode_vp8_ms": encode, "filters": {}}  # fmt: skip
    for name, process in processors().items():
        times = []
        for index in range(frames):
            started = time.perf_counter()
            process(moving(image, index), index / 30)
            times.append(time.perf_counter() - started)
        work = median_ms(times)
        total = decode + work + (0 if name.startswith("ZBar") else encode)
        results["filters"][name] = {"work_ms": work, "frame_ms": round(total, 2),
                                    "fps_per_core": round(1000 / total, 1)}  # fmt: skip
    return results


def main() -> None:
    """Run and print (and write with ``--out``) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    cv2.setNumThreads(1)  # one core, as one filter's worker thread has
    results = run(width, height, args.frames)
    text = json.dumps(results, indent=2)
    print(text)  # noqa: T201  # the program's output
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"filter_frames-{date.today()}-{args.size}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
