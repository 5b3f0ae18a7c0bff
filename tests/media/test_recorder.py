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
from av.audio.frame import AudioFrame

from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import RpcError
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


async def record_for(recorder: RemoteObject, peer: TonePeerVideo, seconds: float) -> float:
    """``record``, wait for ``Recording``, let ``seconds`` of tone go; the time since record."""
    recording = await recorder.subscribe("Recording")
    started = time.monotonic()
    await recorder.invoke("record")
    assert await recording.get(timeout=15) is not None
    await peer.tone.send_seconds(seconds)
    return time.monotonic() - started


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
        elapsed = await record_for(recorder, peer, SECONDS)
        await recorder.invoke("stopAndWait")
        assert await stopped.get(timeout=5) is not None
        assert await recorder.invoke("getState") == "STOP"
    assert_complete(target, {"video": "vp8", "audio": "opus"}, elapsed)


async def test_recorder_mp4_transcodes_to_h264_and_aac(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """MP4 from a VP8 + Opus source: video encoded to H264, audio to AAC."""
    target = tmp_path / "call.mp4"
    async with recording_peer() as peer:
        _, recorder = await fed_recorder(media_client, peer, target.as_uri(), "MP4")
        elapsed = await record_for(recorder, peer, SECONDS)
        await recorder.invoke("stopAndWait")
    assert_complete(target, {"video": "h264", "audio": "aac"}, elapsed)


async def test_recorder_audio_only_profile_keeps_one_track(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """WEBM_AUDIO_ONLY records the audio of an audio+video source only."""
    target = tmp_path / "call.webm"
    async with recording_peer() as peer:
        _, recorder = await fed_recorder(media_client, peer, target.as_uri(), "WEBM_AUDIO_ONLY")
        elapsed = await record_for(recorder, peer, SECONDS)
        await recorder.invoke("stopAndWait")
    assert_complete(target, {"audio": "opus"}, elapsed)


async def test_recorder_release_while_recording_finishes_the_file(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """Releasing the pipeline while recording leaves a complete, playable file."""
    target = tmp_path / "released.webm"
    async with recording_peer() as peer:
        pipeline, recorder = await fed_recorder(media_client, peer, target.as_uri())
        elapsed = await record_for(recorder, peer, SECONDS)
        await pipeline.release()
    assert_complete(target, {"video": "vp8", "audio": "opus"}, elapsed)


async def test_recorder_pause_leaves_the_paused_time_out(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """pause raises Paused and the state PAUSE; what is sent while paused is not in the file."""
    target = tmp_path / "paused.webm"
    async with recording_peer() as peer:
        _, recorder = await fed_recorder(media_client, peer, target.as_uri())
        paused = await recorder.subscribe("Paused")
        elapsed = await record_for(recorder, peer, 1.0)
        await recorder.invoke("pause")
        assert await paused.get(timeout=5) is not None
        assert await recorder.invoke("getState") == "PAUSE"
        await peer.tone.send_seconds(1.5)
        resumed = time.monotonic()
        await recorder.invoke("record")
        await peer.tone.send_seconds(1.0)
        elapsed += time.monotonic() - resumed
        await recorder.invoke("stopAndWait")
    info = probe(target)
    assert codecs(info) == {"video": "vp8", "audio": "opus"}
    assert 1.9 <= float(info["format"]["duration"]) <= elapsed + 0.1


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
            elapsed = await record_for(recorder, peer, SECONDS)
            await recorder.invoke("stopAndWait")
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


async def test_recorder_profiles_not_recorded_are_refused_with_40006(
    media_client: KurentoClient,
) -> None:
    """JPEG_VIDEO_ONLY and KURENTO_SPLIT_RECORDER are refused at create, saying what is missing."""
    pipeline = await media_client.create("MediaPipeline")
    for profile in ("JPEG_VIDEO_ONLY", "KURENTO_SPLIT_RECORDER"):
        with pytest.raises(RpcError) as caught:
            await pipeline.create("RecorderEndpoint", uri="file:///tmp/x", mediaProfile=profile)
        assert caught.value.code == 40006 and profile in str(caught.value)
