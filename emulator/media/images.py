"""Images that filters draw over video: loaded from a URI, pasted with their alpha.

Both overlay filters (FaceOverlayFilter, ImageOverlayFilter) use these. Loading blocks (a file or
an HTTP request): call ``load_image`` from a thread.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LOAD_TIMEOUT = 10.0
"""Seconds an http(s):// image may take."""
MAX_IMAGE_BYTES = 32 * 1024 * 1024

Bgra = np.ndarray[Any, np.dtype[np.uint8]]
"""An image with its alpha channel, height x width x 4."""


class ImageLoadFailed(ValueError):
    """The URI gives no image."""


def load_image(uri: str) -> Bgra:
    """The image at ``uri`` (``file://``, ``http://``, ``https://``) as BGRA.

    Raises:
        ImageLoadFailed: another scheme, a file or server that does not answer, or data that
            is not an image OpenCV decodes (PNG, JPEG, BMP, WebP...).
    """
    data = _read(uri)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageLoadFailed(f"{uri} is not an image (PNG, JPEG, BMP or WebP)")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)  # type: ignore[return-value]
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)  # type: ignore[return-value]
    return image  # type: ignore[return-value]


def _read(uri: str) -> bytes:
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "file":
        parts = urllib.parse.urlsplit(uri)
        path = Path(urllib.parse.unquote(parts.path))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageLoadFailed(f"cannot read {uri}: {exc.strerror or exc}") from None
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri, timeout=LOAD_TIMEOUT) as response:
                return bytes(response.read(MAX_IMAGE_BYTES))
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            raise ImageLoadFailed(f"cannot fetch {uri}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ImageLoadFailed(f"cannot fetch {uri}: {exc}") from None
    raise ImageLoadFailed(f"{uri!r}: images are loaded from file://, http:// or https:// URIs")


def paste(frame: Any, image: Bgra, x: int, y: int, width: int, height: int) -> None:
    """Draw ``image`` scaled to ``width`` x ``height`` at ``x``, ``y`` on the BGR ``frame``
    (in place), blended by its alpha; parts outside the frame are cut off."""
    if width <= 0 or height <= 0:
        return
    frame_height, frame_width = frame.shape[:2]
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + width, frame_width), min(y + height, frame_height)
    if left >= right or top >= bottom:
        return
    scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    part = scaled[top - y : bottom - y, left - x : right - x]
    alpha = part[..., 3:4].astype(np.float32) / 255
    region = frame[top:bottom, left:right]
    region[...] = (part[..., :3] * alpha + region * (1 - alpha)).astype(np.uint8)


def fit(
    image: Bgra, width: int, height: int, keep_aspect: bool, center: bool
) -> tuple[int, int, int, int]:
    """Where ``image`` goes inside a ``width`` x ``height`` box: offset and size.

    With ``keep_aspect`` the image keeps its proportions inside the box; with ``center`` a
    smaller image is centred in the box (else it sits at its top left corner).
    """
    if not keep_aspect:
        return 0, 0, width, height
    image_height, image_width = image.shape[:2]
    scale = min(width / image_width, height / image_height)
    fitted_width, fitted_height = round(image_width * scale), round(image_height * scale)
    if not center:
        return 0, 0, fitted_width, fitted_height
    return (width - fitted_width) // 2, (height - fitted_height) // 2, fitted_width, fitted_height
