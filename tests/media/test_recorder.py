"""RecorderEndpoint: real aiortc peers (VP8 video, an Opus tone) recorded through a
WebRtcEndpoint, the files probed with ffprobe and decoded with PyAV."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import VideoStreamTrack
from av.audio.frame import AudioFrame

from emulator.media.recorder import _Track
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import RpcError
from tests.conftest import make_settings, server_and_client
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import ToneTrack, dominant_frequency

TONE = 440.0
SECONDS = 2.0


class CountedTone(ToneTrack):
    """A ToneTrack that says when it has sent a given amount of audio."""

    def __init__(self, frequency: float) -> None:
        super().__init__(frequency)
        self.sent = asyncio.Event()
        self.target = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        if self.target and self.sample >= self.target:
            self.sent.set()
        return frame

    async def send_seconds(self, seconds: float) -> None:
        """Until ``seconds`` more of the tone have been sent."""
        self.sent.clear()
        self.target = self.sample + int(seconds * 8000)
        await asyncio.wait_for(self.sent.wait(), timeout=seconds + 10)


@dataclass
class TonePeerVideo(ClientPeer):
    """A peer sending VP8 video and an Opus tone."""

    tone: CountedTone = field(default_factory=lambda: CountedTone(TONE))

    def __post_init__(self) -> None:
        self.audio = False
        super().__post_init__()
        transceiver = self.pc.addTransceiver(self.tone, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "audio/opus"])


@contextlib.asynccontextmanager
async def recording_peer() -> AsyncIterator[TonePeerVideo]:
    peer = TonePeerVideo()
    try:
        yield peer
    finally:
        await peer.close()


async def fed_recorder(
    client: KurentoClient, peer: ClientPeer, uri: str, profile: str = "WEBM"
) -> tuple[RemoteObject, RemoteObject]:
    """A pipeline: the peer's WebRtcEndpoint -> a RecorderEndpoint, media flowing."""
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    recorder = await pipeline.create("RecorderEndpoint", uri=uri, mediaProfile=profile)
    await endpoint.connect(recorder)
    await negotiate_connected(endpoint, peer)
    return pipeline, recorder


class Span:
    """How much a recording can hold since ``start``: the wall time, or the tone the peer sent
    when its paced track caught up in a burst (a loaded machine), whichever is longer."""

    def __init__(self, tone: CountedTone) -> None:
        self.tone = tone
        self.started = time.monotonic()
        self.sample = tone.sample

    def seconds(self) -> float:
        """The longest media time since the span began."""
        sent = (self.tone.sample - self.sample) / 8000
        return max(time.monotonic() - self.started, sent)


async def record_for(recorder: RemoteObject, peer: TonePeerVideo, seconds: float) -> Span:
    """``record``, wait for ``Recording``, let ``seconds`` of tone go; the span since record,
    to be read once the recording stops (video goes on reaching the file until then)."""
    recording = await recorder.subscribe("Recording")
    span = Span(peer.tone)
    await recorder.invoke("record")
    assert await recording.get(timeout=15) is not None
    await peer.tone.send_seconds(seconds)
    return span


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's streams and format of a file."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return dict(json.loads(result.stdout))


def codecs(info: dict[str, Any]) -> dict[str, str]:
    """codec_type -> codec_name."""
    return {s["codec_type"]: s["codec_name"] for s in info["streams"]}


def tone_of(path: Path) -> float:
    """The dominant frequency of the file's audio, over its last second."""
    with av.open(str(path)) as container:
        chunks = [
            frame.to_ndarray().reshape(len(frame.layout.channels), -1, order="F")[0]
            if frame.format.is_packed
            else frame.to_ndarray()[0]
            for frame in container.decode(audio=0)
        ]
        rate = container.streams.audio[0].rate
    samples = np.concatenate(chunks)[-rate:]
    return dominant_frequency(samples, rate)


def assert_complete(path: Path, expected: dict[str, str], longest: float) -> None:
    """The file has those codecs, a duration up to the recorded time, and the tone."""
    info = probe(path)
    assert codecs(info) == expected
    duration = float(info["format"]["duration"])
    assert SECONDS - 0.1 <= duration <= longest + 0.1, (duration, longest)
    if "audio" in expected:
        assert abs(tone_of(path) - TONE) < 15


async def test_recorder_webm_remuxes_vp8_and_opus(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """WEBM from a VP8 + Opus source is muxed as received; stopAndWait returns a complete file
    and Stopped follows."""
    target = tmp_path / "call.webm"
    async with recording_peer() as peer:
        _, recorder = await fed_recorder(media_client, peer, target.as_uri())
        stopped = await recorder.subscribe("Stopped")
        span = await record_for(recorder, peer, SECONDS)
        await recorder.invoke("stopAndWait")
        elapsed = span.seconds()
        assert await stopped.get(timeout=5) is not None
        assert await recorder.invoke("getState") == "STOP"
    assert_complete(target, {"video": "vp8", "audio": "opus"}, elapsed)


async def record_peer(
    client: KurentoClient,
    target: Path,
    profile: str = "WEBM",
    release: bool = False,
    peer_type: type[TonePeerVideo] = TonePeerVideo,
) -> float:
    """Record ``SECONDS`` of a peer's video and tone into ``target``, then ``stopAndWait`` (or
    release the pipeline); the longest span the file can hold."""
    peer = peer_type()
    try:
        pipeline, recorder = await fed_recorder(client, peer, target.as_uri(), profile)
        span = await record_for(recorder, peer, SECONDS)
        if release:
            await pipeline.release()
        else:
            await recorder.invoke("stopAndWait")
        return span.seconds()
    finally:
        await peer.close()


async def test_recorder_mp4_transcodes_to_h264_and_aac(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """MP4 from a VP8 + Opus source: video encoded to H264, audio to AAC."""
    target = tmp_path / "call.mp4"
    elapsed = await record_peer(media_client, target, "MP4")
    assert_complete(target, {"video": "h264", "audio": "aac"}, elapsed)


async def test_recorder_audio_only_profile_keeps_one_track(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """WEBM_AUDIO_ONLY records the audio of an audio+video source only."""
    target = tmp_path / "call.webm"
    elapsed = await record_peer(media_client, target, "WEBM_AUDIO_ONLY")
    assert_complete(target, {"audio": "opus"}, elapsed)


async def test_recorder_release_while_recording_finishes_the_file(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """Releasing the pipeline while recording leaves a complete, playable file."""
    target = tmp_path / "released.webm"
    elapsed = await record_peer(media_client, target, release=True)
    assert_complete(target, {"video": "vp8", "audio": "opus"}, elapsed)


async def test_recorder_pause_leaves_the_paused_time_out(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """pause raises Paused and the state PAUSE; what is sent while paused is not in the file."""
    target = tmp_path / "paused.webm"
    async with recording_peer() as peer:
        _, recorder = await fed_recorder(media_client, peer, target.as_uri())
        paused = await recorder.subscribe("Paused")
        first = await record_for(recorder, peer, 1.0)
        await recorder.invoke("pause")
        elapsed = first.seconds()
        assert await paused.get(timeout=5) is not None
        assert await recorder.invoke("getState") == "PAUSE"
        await peer.tone.send_seconds(1.5)
        resumed = Span(peer.tone)
        await recorder.invoke("record")
        await peer.tone.send_seconds(1.0)
        await recorder.invoke("stopAndWait")
        elapsed += resumed.seconds()
    info = probe(target)
    assert codecs(info) == {"video": "vp8", "audio": "opus"}
    assert 1.9 <= float(info["format"]["duration"]) <= elapsed + 0.1


def make_clip(path: Path, seconds: float) -> Path:
    """A WebM of a 30 fps test pattern (VP8) and the 440 Hz tone (Opus), made by ffmpeg."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={TONE:g}:sample_rate=48000:duration={seconds}",
         "-c:v", "libvpx", "-g", "30", "-b:v", "500k", "-c:a", "libopus", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


async def test_recorder_stop_on_end_of_stream_finishes_the_file(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """PlayerEndpoint -> PassThrough -> RecorderEndpoint with stopOnEndOfStream: the player's
    end reaches the recorder through the PassThrough; it stops by itself (Stopped, state STOP)
    and the file holds the whole clip. A recorder without the flag keeps recording."""
    clip = make_clip(tmp_path / "clip.webm", SECONDS)
    target, other = tmp_path / "eos.webm", tmp_path / "other.webm"
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
    middle = await pipeline.create("PassThrough")
    recorder = await pipeline.create(
        "RecorderEndpoint", uri=target.as_uri(), mediaProfile="WEBM", stopOnEndOfStream=True
    )
    keeps = await pipeline.create("RecorderEndpoint", uri=other.as_uri(), mediaProfile="WEBM")
    await player.connect(middle)
    await middle.connect(recorder)
    await player.connect(keeps)
    stopped = await recorder.subscribe("Stopped")
    ended = await player.subscribe("EndOfStream")
    await recorder.invoke("record")
    await keeps.invoke("record")
    await player.invoke("play")
    assert await ended.get(timeout=15) is not None
    assert await stopped.get(timeout=10) is not None
    assert await recorder.invoke("getState") == "STOP"
    assert await keeps.invoke("getState") == "START"
    info = probe(target)
    assert codecs(info) == {"video": "vp8", "audio": "opus"}
    assert abs(float(info["format"]["duration"]) - SECONDS) < 0.3, info["format"]
    assert abs(tone_of(target) - TONE) < 15
    await pipeline.release()


class _Store(http.server.BaseHTTPRequestHandler):
    """Keeps each POSTed body (chunked, as KMS sends it) by path."""

    received: dict[str, bytes]

    def do_POST(self) -> None:
        body = b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received[self.path] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_store() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server on port 0 that stores what it receives."""
    received: dict[str, bytes] = {}
    handler = type("Store", (_Store,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


async def test_recorder_uploads_to_an_http_target(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """An http:// target receives the complete file (POST, chunked) by the time stopAndWait
    returns."""
    with http_store() as (base, received):
        async with recording_peer() as peer:
            _, recorder = await fed_recorder(media_client, peer, f"{base}/rec/call.webm")
            span = await record_for(recorder, peer, SECONDS)
            await recorder.invoke("stopAndWait")
            elapsed = span.seconds()
        assert list(received) == ["/rec/call.webm"]
        target = tmp_path / "uploaded.webm"
        target.write_bytes(received["/rec/call.webm"])
    assert_complete(target, {"video": "vp8", "audio": "opus"}, elapsed)


@pytest.mark.parametrize(
    ("path", "error_type"),
    [("missing-folder/x.webm", "RESOURCE_ERROR_OPEN")],
)
async def test_recorder_unwritable_path_raises_error(
    media_client: KurentoClient, tmp_path: Path, path: str, error_type: str
) -> None:
    """A folder that does not exist is not created (as KMS): Error, and the recorder stops."""
    pipeline = await media_client.create("MediaPipeline")
    recorder = await pipeline.create("RecorderEndpoint", uri=(tmp_path / path).as_uri())
    errors = await recorder.subscribe("Error")
    states = await recorder.subscribe("UriEndpointStateChanged")
    await recorder.invoke("record")
    error = await errors.get(timeout=5)
    assert error["type"] == error_type and "missing-folder" in error["description"]
    assert [(await states.get())["state"], (await states.get())["state"]] == ["START", "STOP"]
    assert not (tmp_path / "missing-folder").exists()
    await recorder.invoke("stopAndWait")  # harmless after the error


async def test_recorder_full_disk_raises_error(media_client: KurentoClient) -> None:
    """Writing on a full disk (/dev/full) raises Error RESOURCE_ERROR_NO_SPACE_LEFT and stops
    only that recorder."""
    async with recording_peer() as peer:
        pipeline = await media_client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        full = await pipeline.create("RecorderEndpoint", uri="file:///dev/full")
        await endpoint.connect(full)
        await negotiate_connected(endpoint, peer)
        errors = await full.subscribe("Error")
        await full.invoke("record")
        error = await errors.get(timeout=15)
        assert error["type"] == "RESOURCE_ERROR_NO_SPACE_LEFT"
        assert await full.invoke("getState") == "STOP"
        assert await endpoint.invoke("getMediaState") is not None  # the pipeline carries on


async def test_kurento_split_recorder_is_refused_as_kms_does(
    media_client: KurentoClient,
) -> None:
    """KMS 7 without its optional split-recorder plugin: 40107, "Kurento Split Recorder not
    supported" (RecorderEndpointImpl)."""
    pipeline = await media_client.create("MediaPipeline")
    with pytest.raises(RpcError) as caught:
        await pipeline.create(
            "RecorderEndpoint", uri="file:///tmp/x", mediaProfile="KURENTO_SPLIT_RECORDER"
        )
    assert caught.value.code == 40107 and "Kurento Split Recorder not supported" in str(
        caught.value
    )


async def test_recorder_jpeg_video_only_writes_jpeg_pictures(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """JPEG_VIDEO_ONLY: the peer's VP8 pictures, each encoded as a JPEG image into the file (no
    audio); FFmpeg reads them back as MJPEG pictures of the peer's size."""
    target = tmp_path / "frames.jpg"
    await record_peer(media_client, target, "JPEG_VIDEO_ONLY")
    with av.open(str(target), format="mjpeg") as container:
        assert [s.type for s in container.streams] == ["video"]
        pictures = [(f.width, f.height) for f in container.decode(video=0)]
    assert len(pictures) >= SECONDS * 10  # 30 fps from the peer, a loaded machine aside
    assert set(pictures) == {(640, 480)}
    assert target.read_bytes()[:2] == b"\xff\xd8"  # a JPEG image starts the file


def decodes_cleanly(path: Path) -> tuple[int, set[tuple[int, int]]]:
    """Every video packet of the file decodes: (frames, picture sizes)."""
    sizes: set[tuple[int, int]] = set()
    frames = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames += 1
            sizes.add((frame.width, frame.height))
    return frames, sizes


async def test_recorder_keeps_a_valid_file_across_a_source_switch(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """Connecting another source mid-recording goes on at its first keyframe: one valid file
    holding both feeds."""
    target = tmp_path / "switched.webm"
    async with recording_peer() as first, recording_peer() as second:
        pipeline, recorder = await fed_recorder(media_client, first, target.as_uri())
        other = await pipeline.create("WebRtcEndpoint")
        await negotiate_connected(other, second)
        span = await record_for(recorder, first, 1.5)
        switched = Span(second.tone)
        await other.connect(recorder)
        elapsed = span.seconds()
        await second.tone.send_seconds(1.5)
        await recorder.invoke("stopAndWait")
        elapsed += switched.seconds()
    info = probe(target)
    assert codecs(info) == {"video": "vp8", "audio": "opus"}
    assert 2.9 <= float(info["format"]["duration"]) <= elapsed + 0.1
    frames, _ = decodes_cleanly(target)
    assert frames >= 30


class ResizingVideo(VideoStreamTrack):
    """aiortc's paced video whose picture grows from 320x240 to 640x480 after ``switch_after``
    frames (a camera changing resolution)."""

    def __init__(self, switch_after: int = 30) -> None:
        super().__init__()
        self.count = 0
        self.switch_after = switch_after

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.count += 1
        width, height = (320, 240) if self.count <= self.switch_after else (640, 480)
        picture = np.full((height, width, 3), self.count % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class ResizingPeer(TonePeerVideo):
    """A TonePeerVideo whose video changes resolution."""

    def __post_init__(self) -> None:
        self.video = False
        super().__post_init__()
        self.pc.addTrack(ResizingVideo())


@pytest.mark.parametrize(
    ("profile", "suffix", "video"), [("WEBM", "webm", "vp8"), ("MP4", "mp4", "h264")]
)
async def test_recorder_keeps_a_valid_file_when_the_resolution_changes(
    media_client: KurentoClient, tmp_path: Path, profile: str, suffix: str, video: str
) -> None:
    """A source that changes resolution mid-recording: muxed as received the file holds both
    sizes, transcoded it is scaled to the first; every frame decodes either way."""
    target = tmp_path / f"resized.{suffix}"
    elapsed = await record_peer(media_client, target, profile, peer_type=ResizingPeer)
    assert_complete(target, {"video": video, "audio": "opus" if video == "vp8" else "aac"}, elapsed)
    frames, sizes = decodes_cleanly(target)
    assert frames >= 30
    assert sizes == ({(320, 240), (640, 480)} if video == "vp8" else {(320, 240)})


async def test_recorder_server_stop_finishes_the_file(tmp_path: Path) -> None:
    """Stopping the server while recording leaves a complete file."""
    target = tmp_path / "shutdown.mp4"
    settings = make_settings(network_interfaces="lo")
    async with recording_peer() as peer, server_and_client(settings) as (_, client):
        _, recorder = await fed_recorder(client, peer, target.as_uri(), "MP4")
        span = await record_for(recorder, peer, SECONDS)
    assert_complete(target, {"video": "h264", "audio": "aac"}, span.seconds())


@dataclass
class H264Peer(TonePeerVideo):
    """A TonePeerVideo whose video is H264."""

    def __post_init__(self) -> None:
        super().__post_init__()
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])


@pytest.mark.parametrize(
    ("profile", "suffix", "expected"),
    [
        ("MP4", "mp4", {"video": "h264", "audio": "aac"}),
        ("MKV", "mkv", {"video": "h264", "audio": "aac"}),
        ("FLV", "flv", {"video": "h264", "audio": "aac"}),
        ("MP4_VIDEO_ONLY", "mp4", {"video": "h264"}),
    ],
)
async def test_recorder_h264_source_is_muxed_into_the_h264_profiles(
    media_client: KurentoClient, tmp_path: Path, profile: str, suffix: str, expected: dict[str, str]
) -> None:
    """An H264 source is muxed as received into MP4, MKV and FLV (its Opus encoded to AAC)."""
    target = tmp_path / f"h264.{suffix}"
    elapsed = await record_peer(media_client, target, profile, peer_type=H264Peer)
    assert_complete(target, expected, elapsed)
    frames, sizes = decodes_cleanly(target)
    assert frames >= 30 and sizes == {(640, 480)}


@pytest.mark.parametrize(("gaps_fix", "after_gap"), [(False, 2040), (True, 40)])
def test_recorder_gaps_fix_genpts_closes_gaps(gaps_fix: bool, after_gap: int) -> None:
    """NONE keeps a 2 s hole in a 50 fps audio stream; GENPTS puts the next frame right after
    the last one (RecorderEndpoint.conf.ini gapsFix)."""
    track = _Track("audio", gaps_fix)
    places = [track.place(ts, 48000, 0.0, 0.0) for ts in (0, 960, 960 + 96960, 960 + 97920)]
    assert places == [0, 20, after_gap, after_gap + 20]


async def test_recorder_max_bytes_stops_the_recording(tmp_path: Path) -> None:
    """Past ``recorder_max_bytes`` the recording stops with Error RESOURCE_ERROR_NO_SPACE_LEFT
    naming the setting; the file stays about that size and the pipeline carries on."""
    limit = 30_000
    settings = make_settings(network_interfaces="lo", recorder_max_bytes=limit)
    async with server_and_client(settings) as (_, client), recording_peer() as peer:
        target = tmp_path / "bounded.webm"
        _, recorder = await fed_recorder(client, peer, target.as_uri())
        errors = await recorder.subscribe("Error")
        await recorder.invoke("record")
        error = await errors.get(timeout=30)
        assert error["type"] == "RESOURCE_ERROR_NO_SPACE_LEFT"
        assert "recorder_max_bytes" in error["description"]
        assert await recorder.invoke("getState") == "STOP"
        assert limit < target.stat().st_size < limit + 64 * 1024  # one muxer buffer over at most


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (the tests run as root); skipped elsewhere."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_recorder_disk_filling_mid_recording(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """A disk that fills while recording (a 256 KiB tmpfs): Error RESOURCE_ERROR_NO_SPACE_LEFT,
    that recorder stops; a second recorder of the same source on another disk keeps writing
    and its file is complete."""
    with tiny_filesystem(tmp_path / "tiny", "256k") as tiny:
        async with recording_peer() as peer:
            pipeline = await media_client.create("MediaPipeline")
            endpoint = await pipeline.create("WebRtcEndpoint")
            full = await pipeline.create("RecorderEndpoint", uri=(tiny / "a.webm").as_uri())
            good_path = tmp_path / "b.webm"
            good = await pipeline.create("RecorderEndpoint", uri=good_path.as_uri())
            await endpoint.connect(full)
            await endpoint.connect(good)
            await negotiate_connected(endpoint, peer)
            errors = await full.subscribe("Error")
            await full.invoke("record")
            await good.invoke("record")
            error = await errors.get(timeout=60)
            assert error["type"] == "RESOURCE_ERROR_NO_SPACE_LEFT"
            assert await full.invoke("getState") == "STOP"
            await peer.tone.send_seconds(1.0)  # the other recorder still takes media
            await good.invoke("stopAndWait")
    assert codecs(probe(good_path)) == {"video": "vp8", "audio": "opus"}
