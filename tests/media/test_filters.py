"""Filters: clips made here with PyAV, played by a PlayerEndpoint through the filter into a real
aiortc peer that decodes what it gets; the test looks at the decoded frames and the events."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from emulator.app import App
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import KurentoNotImplemented, MediaObjectIllegalParamError
from tests.media.clips import BLUE, GREEN, GREY, RED, halves, make_clip, qr_image, solid_png
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import dominant_frequency

pytestmark = pytest.mark.timeout(120)


@dataclass
class FramePeer(ClientPeer):
    """A receive-only peer keeping the last decoded video frames (BGR arrays), taking only
    ``video_mime`` when set; with ``hear`` it also receives Opus audio and keeps it (mono)."""

    video_mime: str = ""
    hear: bool = False
    images: list[np.ndarray[Any, Any]] = field(default_factory=list)
    heard: list[np.ndarray[Any, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        video = self.pc.addTransceiver("video", direction="recvonly")
        if self.video_mime:
            codecs = RTCRtpReceiver.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in codecs if c.mimeType == self.video_mime])
        if self.hear:
            self.pc.addTransceiver("audio", direction="recvonly")

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    channels = len(frame.layout.channels)
                    self.heard.append(frame.to_ndarray().reshape(-1)[::channels])
                else:
                    self.images = [*self.images[-9:], frame.to_ndarray(format="bgr24")]
                self.frames[track.kind] = self.frames.get(track.kind, 0) + 1
                self._arrived.set()

    def last_heard(self, seconds: float) -> np.ndarray[Any, Any]:
        """The last ``seconds`` of audio heard (48 kHz mono)."""
        if not self.heard:
            return np.zeros(0)
        return np.concatenate(self.heard[-int(seconds * 50) - 1 :])[-int(seconds * 48000) :]

    async def frame_where(
        self, check: Callable[[np.ndarray[Any, Any]], bool], timeout: float = 30
    ) -> np.ndarray[Any, Any]:
        """The first decoded frame (from now on) for which ``check`` holds."""
        await self.wait_for(lambda p: any(check(image) for image in p.images), timeout)
        return next(image for image in self.images if check(image))


@contextlib.asynccontextmanager
async def frame_peer(**kwargs: Any) -> AsyncIterator[FramePeer]:
    """A FramePeer, closed at the end."""
    peer = FramePeer(audio=False, video=False, **kwargs)
    try:
        yield peer
    finally:
        await peer.close()


async def play_through(
    client: KurentoClient, uri: str, filter_type: str, peer: FramePeer, **params: Any
) -> tuple[RemoteObject, RemoteObject]:
    """PlayerEndpoint(uri) -> filter -> WebRtcEndpoint negotiated with ``peer``; the player
    is playing. Returns the player and the filter."""
    pipeline = await client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=uri)
    flt = await pipeline.create(filter_type, **params)
    webrtc = await pipeline.create("WebRtcEndpoint")
    await player.connect(flt)
    await flt.connect(webrtc)
    await negotiate_connected(webrtc, peer)
    await player.invoke("play")
    return player, flt


def mean(image: np.ndarray[Any, Any], area: tuple[slice, slice]) -> np.ndarray[Any, Any]:
    """Mean BGR of an area."""
    return np.asarray(image[area].reshape(-1, 3).mean(axis=0))


def near(colour: np.ndarray[Any, Any], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    """Whether a mean colour is within ``tolerance`` of ``expected`` on every channel."""
    return bool(np.all(np.abs(colour - np.array(expected)) < tolerance))


LEFT = (slice(40, 200), slice(20, 140))
RIGHT = (slice(40, 200), slice(180, 300))


# -- GStreamerFilter -------------------------------------------------------------------------------


async def test_gstreamer_videoflip_mirrors_frames_and_set_element_property_changes_it(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """``videoflip method=horizontal-flip``: red-left/blue-right frames arrive blue-left/
    red-right; setElementProperty method=none turns them back, live; release ends the
    filter's worker thread."""
    uri = make_clip(tmp_path / "halves.webm", [halves(RED, BLUE)], 20)
    async with frame_peer() as peer:
        _, flt = await play_through(
            media_client, uri, "GStreamerFilter", peer, command="videoflip method=horizontal-flip"
        )
        flipped = await peer.frame_where(lambda i: near(mean(i, LEFT), BLUE))
        assert near(mean(flipped, RIGHT), RED)
        await flt.invoke("setElementProperty", propertyName="method", propertyValue="none")
        peer.images = []
        straight = await peer.frame_where(lambda i: near(mean(i, LEFT), RED))
        assert near(mean(straight, RIGHT), BLUE)
        assert await flt.invoke("isMediaFlowingIn", mediaType="VIDEO")
        assert await flt.invoke("isMediaFlowingOut", mediaType="VIDEO")
        assert filter_threads(flt)
        await flt.release()
        assert not filter_threads(flt)


def filter_threads(flt: RemoteObject) -> list[threading.Thread]:
    """The worker threads of that filter alive now (named after its id)."""
    name = "filter " + flt.id.rsplit("/", 1)[-1][:8]
    return [t for t in threading.enumerate() if t.name == name]


async def test_gstreamer_videobalance_saturation_zero_gives_grey_frames(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """``videobalance saturation=0``: red and blue frames arrive grey."""
    uri = make_clip(tmp_path / "colours.webm", [halves(RED, BLUE)], 20)
    async with frame_peer() as peer:
        await play_through(
            media_client, uri, "GStreamerFilter", peer, command="videobalance saturation=0.0"
        )
        await peer.wait_for(lambda p: p.frames.get("video", 0) >= 5)
        image = peer.images[-1].astype(int)
        spread = image.max(axis=2) - image.min(axis=2)
        assert spread[LEFT].mean() < 12 and spread[RIGHT].mean() < 12


async def test_gstreamer_capsfilter_scales_frames(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """A bare caps command (``video/x-raw,width=160,height=120``) scales the frames."""
    uri = make_clip(tmp_path / "big.webm", [halves(RED, BLUE)], 20)
    async with frame_peer() as peer:
        await play_through(
            media_client, uri, "GStreamerFilter", peer, command="video/x-raw,width=160,height=120"
        )
        image = await peer.frame_where(lambda i: i.shape[:2] == (120, 160))
        assert near(mean(image, (slice(20, 100), slice(10, 70))), RED)


async def test_gstreamer_unsupported_commands_are_refused(media_client: KurentoClient) -> None:
    """An element the emulator does not run: 40006 naming it and listing the supported ones;
    a property the element lacks, a bad value or a filterType that does not fit: 40107;
    setElementProperty likewise; the refused filters were not created."""
    pipeline = await media_client.create("MediaPipeline")
    with pytest.raises(KurentoNotImplemented) as refused:
        await pipeline.create("GStreamerFilter", command="facedetect min-size-width=60")
    assert "'facedetect'" in str(refused.value) and "videoflip" in str(refused.value)
    assert "volume" in str(refused.value)
    with pytest.raises(KurentoNotImplemented, match="one element"):
        await pipeline.create("GStreamerFilter", command="videoflip ! videobalance")
    with pytest.raises(MediaObjectIllegalParamError, match="videoflip has no property 'angle'"):
        await pipeline.create("GStreamerFilter", command="videoflip angle=90")
    with pytest.raises(MediaObjectIllegalParamError, match="is not one of"):
        await pipeline.create("GStreamerFilter", command="videoflip method=sideways")
    with pytest.raises(MediaObjectIllegalParamError, match="filterType VIDEO does not fit volume"):
        await pipeline.create("GStreamerFilter", command="volume volume=2", filterType="VIDEO")
    flt = await pipeline.create("GStreamerFilter", command="videobalance")
    with pytest.raises(MediaObjectIllegalParamError, match=r"outside 0\.\.2"):
        await flt.invoke("setElementProperty", propertyName="saturation", propertyValue="5")
    assert await flt.invoke("getCommand") == "videobalance"
    assert await pipeline.invoke("getChildren") == [flt.id]


def rms(samples: np.ndarray[Any, Any]) -> float:
    """Root mean square of s16 samples."""
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def tone_heard(peer: FramePeer, seconds: float = 0.5) -> bool:
    """Whether the last ``seconds`` heard are loud in each tenth of them (a steady tone)."""
    samples = peer.last_heard(seconds)
    return len(samples) >= seconds * 48000 and all(
        rms(part) > 2000 for part in np.array_split(samples, 10)
    )


async def test_gstreamer_volume_scales_the_audio_live(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """``volume volume=0``: the peer hears silence; setElementProperty volume=1: the 440 Hz
    tone; the video goes through untouched."""
    uri = make_clip(tmp_path / "tone.webm", [halves(RED, BLUE)], 30, tone=440)
    async with frame_peer(hear=True) as peer:
        _, flt = await play_through(
            media_client, uri, "GStreamerFilter", peer, command="volume volume=0"
        )
        await peer.wait_for(lambda p: len(p.last_heard(1.0)) >= 48000 and p.images)
        assert rms(peer.last_heard(1.0)) < 50
        assert near(mean(peer.images[-1], LEFT), RED)
        await flt.invoke("setElementProperty", propertyName="volume", propertyValue="1.0")
        await peer.wait_for(tone_heard)
        assert abs(dominant_frequency(peer.last_heard(0.5), 48000) - 440) < 10


async def test_video_filter_forwards_audio_without_decoding_it(
    media_server: App, media_client: KurentoClient, tmp_path: Path
) -> None:
    """Through a videoflip the peer hears the clip's 440 Hz tone while no transcoder runs:
    the audio was forwarded as it came."""
    uri = make_clip(tmp_path / "tone.webm", [halves(RED, BLUE)], 30, tone=440)
    async with frame_peer(hear=True) as peer:
        await play_through(
            media_client, uri, "GStreamerFilter", peer, command="videoflip method=rotate-180"
        )
        await peer.frame_where(lambda i: near(mean(i, LEFT), BLUE))
        await peer.wait_for(tone_heard)
        assert abs(dominant_frequency(peer.last_heard(0.5), 48000) - 440) < 10
        assert media_server.media_services.transcoders.live == 0


async def attach_peer(filter_: RemoteObject, peer: FramePeer) -> RemoteObject:
    """A new WebRtcEndpoint fed by ``filter_`` and negotiated with ``peer``."""
    pipeline = RemoteObject(filter_.client, filter_.id.split("/", 1)[0], "MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    await filter_.connect(webrtc)
    await negotiate_connected(webrtc, peer)
    return webrtc


async def test_filter_encodes_each_codec_its_sinks_take_and_keyframes_for_late_sinks(
    media_server: App, media_client: KurentoClient, tmp_path: Path
) -> None:
    """A VP8 peer that joins a running filter decodes its frames (its keyframe request reached
    the filter's encoder); an H264-only peer gets H264 from the filter itself: no transcoder
    runs, each codec is encoded once by the filter."""
    uri = make_clip(tmp_path / "halves.webm", [halves(RED, BLUE)], 40)
    async with frame_peer(video_mime="video/VP8") as first:
        _, flt = await play_through(
            media_client, uri, "GStreamerFilter", first, command="videoflip method=4"
        )
        await first.frame_where(lambda i: near(mean(i, LEFT), BLUE))
        async with (
            frame_peer(video_mime="video/VP8") as late,
            frame_peer(video_mime="video/H264") as h264,
        ):
            await attach_peer(flt, late)
            await attach_peer(flt, h264)
            for peer in (late, h264):
                image = await peer.frame_where(lambda i: near(mean(i, LEFT), BLUE))
                assert near(mean(image, RIGHT), RED)
            assert media_server.media_services.transcoders.live == 0


# -- ZBarFilter ------------------------------------------------------------------------------------


async def test_zbar_filter_raises_code_found_when_the_code_changes(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """A clip showing one QR code, then another: CodeFound with ZBar's type name and each
    value in turn; the video reaches the peer as it came."""
    first, second = "https://kurento.example/1", "second code"
    uri = make_clip(tmp_path / "qr.webm", [qr_image(first), qr_image(second)], 8)
    async with frame_peer() as peer:
        pipeline = await media_client.create("MediaPipeline")
        player = await pipeline.create("PlayerEndpoint", uri=uri)
        zbar = await pipeline.create("ZBarFilter")
        webrtc = await pipeline.create("WebRtcEndpoint")
        codes = await zbar.subscribe("CodeFound")
        await player.connect(zbar)
        await zbar.connect(webrtc)
        await negotiate_connected(webrtc, peer)
        await player.invoke("play")
        event = await codes.get(timeout=30)
        assert (event["codeType"], event["value"]) == ("QR-Code", first)
        while event["value"] == first:
            event = await codes.get(timeout=30)
        assert (event["codeType"], event["value"]) == ("QR-Code", second)
        await peer.wait_for(lambda p: p.frames.get("video", 0) >= 5)
        assert mean(peer.images[-1], (slice(0, 20), slice(0, 320))).min() > 200  # white


# -- FaceOverlayFilter -----------------------------------------------------------------------------


def astronaut() -> np.ndarray[Any, Any]:
    """scikit-image's astronaut photograph (a real face) at 320x320, BGR."""
    skimage_data = pytest.importorskip("skimage.data")
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA)  # type: ignore[return-value]


def green_area(image: np.ndarray[Any, Any]) -> tuple[int, int, int, int] | None:
    """The bounding box (x, y, w, h) of the pure green pixels, None when there are few."""
    b, g, r = (image[..., c].astype(int) for c in range(3))
    mask = (g > 180) & (r < 90) & (b < 90)
    if mask.sum() < 300:
        return None
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())


async def test_face_overlay_filter_draws_the_image_over_the_face(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """The astronaut's face, found by the filter, is covered by the green image set with
    setOverlayedImage (offsets 0, size 1: the face's box); unsetOverlayedImage removes it."""
    photo = astronaut()
    assert green_area(photo) is None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    faces = cascade.detectMultiScale(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), 1.2, 3)
    assert len(faces) >= 1
    fx, fy, fw, fh = faces[0]
    uri = make_clip(tmp_path / "face.webm", [photo], 30)
    png = solid_png(tmp_path / "green.png", GREEN)
    async with frame_peer() as peer:
        _, flt = await play_through(media_client, uri, "FaceOverlayFilter", peer)
        await peer.wait_for(lambda p: p.frames.get("video", 0) >= 3)
        assert green_area(peer.images[-1]) is None
        await flt.invoke(
            "setOverlayedImage",
            uri=png.as_uri(),
            offsetXPercent=0.0,
            offsetYPercent=0.0,
            widthPercent=1.0,
            heightPercent=1.0,
        )
        covered = await peer.frame_where(lambda i: green_area(i) is not None)
        x, y, w, h = green_area(covered) or (0, 0, 0, 0)
        centre = (x + w / 2, y + h / 2)
        assert abs(centre[0] - (fx + fw / 2)) < fw / 3 and abs(centre[1] - (fy + fh / 2)) < fh / 3
        assert 0.6 * fw < w < 1.4 * fw
        await flt.invoke("unsetOverlayedImage")
        peer.images = []
        await peer.frame_where(lambda i: green_area(i) is None)


# -- ImageOverlayFilter ----------------------------------------------------------------------------


@contextlib.contextmanager
def http_files(folder: Path) -> Iterator[str]:
    """An HTTP server on loopback serving ``folder``; its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request."""

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        pass


TOP_LEFT = (slice(10, 50), slice(10, 70))
BOTTOM_RIGHT = (slice(190, 230), slice(250, 310))


async def test_image_overlay_filter_draws_images_from_file_and_http(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """addImage from file:// (top left) and http:// (bottom right) draws both where asked;
    removeImage takes one away; a URI that gives no image is refused with 40107."""
    grey = np.full((240, 320, 3), GREY, np.uint8)
    uri = make_clip(tmp_path / "grey.webm", [grey], 30)
    images = tmp_path / "images"
    images.mkdir()
    solid_png(images / "red.png", RED)
    solid_png(images / "blue.png", BLUE)
    place = {"keepAspectRatio": False, "center": False}
    with http_files(images) as base:
        async with frame_peer() as peer:
            _, flt = await play_through(media_client, uri, "ImageOverlayFilter", peer)
            await flt.invoke("addImage", id="red", uri=(images / "red.png").as_uri(),
                             **corner(0.0), **place)  # fmt: skip
            await flt.invoke("addImage", id="blue", uri=f"{base}/blue.png",
                             **corner(0.75), **place)  # fmt: skip
            both = await peer.frame_where(
                lambda i: near(mean(i, TOP_LEFT), RED) and near(mean(i, BOTTOM_RIGHT), BLUE)
            )
            assert near(mean(both, (slice(100, 140), slice(140, 180))), GREY)
            await flt.invoke("removeImage", id="red")
            peer.images = []
            await peer.frame_where(
                lambda i: near(mean(i, TOP_LEFT), GREY) and near(mean(i, BOTTOM_RIGHT), BLUE)
            )
            for bad in (f"{base}/missing.png", (tmp_path / "grey.webm").as_uri(), "ftp://x/y"):
                with pytest.raises(MediaObjectIllegalParamError, match="cannot load the image"):
                    await flt.invoke("addImage", id="bad", uri=bad, **corner(0.0), **place)


def corner(offset: float) -> dict[str, float]:
    """addImage's placement: a quarter of the frame's size at ``offset`` of it."""
    return {
        "offsetXPercent": offset,
        "offsetYPercent": offset,
        "widthPercent": 0.25,
        "heightPercent": 0.25,
    }
