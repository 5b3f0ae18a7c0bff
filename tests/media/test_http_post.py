"""HttpPostEndpoint: a WebM POSTed to getUrl plays into the pipeline and reaches a WebRTC peer;
EndOfStream, disconnectionTimeout, bad input, and the HTTP endpoint listener's settings."""

from __future__ import annotations

import asyncio
import io
import itertools
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator.app import App, running_emulator
from emulator.media.http_post import Demuxer, DemuxError
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import HttpEndPointRegistrationError
from tests.conftest import make_settings
from tests.media.peers import ClientPeer, client_peer, negotiate_connected
from tests.ports import free_port_range

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def webm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """3 s of VP8 (320x240, 15 fps, a keyframe each second) and Opus, made by ffmpeg."""
    path = tmp_path_factory.mktemp("http_post") / "clip.webm"
    _ffmpeg(path, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k")
    return path.read_bytes()


def _ffmpeg(path: Path, *video: str) -> None:
    import subprocess

    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "3", *video, "-g", "15", "-c:a", "libopus", "-ac", "2", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[App]:
    """A media server whose HTTP endpoint listener binds loopback on a free port."""
    settings = make_settings(network_interfaces="lo", http_endpoint_address="127.0.0.1")
    async with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def client(server: App) -> AsyncIterator[KurentoClient]:
    async with await KurentoClient.connect(server.urls["ws"], reconnect=False) as kurento:
        yield kurento


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def cookie(self) -> str:
        return self.headers["set-cookie"].split(";", 1)[0]


async def http(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str | None = "video/webm",
    cookie: str | None = None,
    chunked: bool = False,
) -> Reply:
    """One request with a plain asyncio client (Connection: close), its whole answer."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    if cookie is not None:
        head.append(f"Cookie: {cookie}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        size = 7000
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=20)
    writer.close()
    await writer.wait_closed()
    head_text, _, text = raw.decode("latin-1").partition("\r\n\r\n")
    lines = head_text.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split(" ")[1]), headers, text.strip())


def multipart(media: bytes, boundary: str = "kurento-emulator-test") -> tuple[bytes, str]:
    """A form with a text field first and then the file, as a browser's FormData sends it."""
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nmy clip\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.webm"'
            "\r\nContent-Type: video/webm\r\n\r\n"
        ).encode()
        + media
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def upload_to_peer(
    client: KurentoClient, peer: ClientPeer, **params: object
) -> tuple[RemoteObject, RemoteObject]:
    """A pipeline with an HttpPostEndpoint feeding a WebRtcEndpoint negotiated with ``peer``."""
    pipeline = await client.create("MediaPipeline")
    post = await pipeline.create("HttpPostEndpoint", **params)
    webrtc = await pipeline.create("WebRtcEndpoint")
    await post.connect(webrtc)
    await negotiate_connected(webrtc, peer)
    return post, webrtc


def decoded_audio_and_video(peer: ClientPeer) -> bool:
    return peer.frames.get("video", 0) >= 10 and peer.frames.get("audio", 0) >= 25


async def test_http_post_raw_webm_reaches_webrtc_peer(client: KurentoClient, webm: bytes) -> None:
    """A raw WebM body POSTed to getUrl is decoded by the peer (VP8 and Opus), then EndOfStream."""
    async with client_peer() as peer:
        post, _ = await upload_to_peer(client, peer)
        started = await post.subscribe("MediaSessionStarted")
        ended = await post.subscribe("EndOfStream")
        flowing = await post.subscribe("MediaFlowOutStateChanged")
        url = await post.invoke("getUrl")
        reply = await http(url, webm)
        assert (reply.status, reply.body) == (200, "OK")
        assert reply.headers["set-cookie"].startswith("HttpEPCookie=")
        await started.get(timeout=5)
        await peer.wait_for(decoded_audio_and_video, timeout=20)
        states = [await flowing.get(timeout=5) for _ in range(2)]
        assert sorted((s["mediaType"], s["state"]) for s in states) == [
            ("AUDIO", "FLOWING"),
            ("VIDEO", "FLOWING"),
        ]
        await ended.get(timeout=10)


async def test_http_post_multipart_chunked_upload_plays(client: KurentoClient, webm: bytes) -> None:
    """multipart/form-data (a text field, then the file), sent chunked: the file part plays."""
    async with client_peer() as peer:
        post, _ = await upload_to_peer(client, peer)
        ended = await post.subscribe("EndOfStream")
        body, content_type = multipart(webm)
        reply = await http(
            await post.invoke("getUrl"), body, content_type=content_type, chunked=True
        )
        assert reply.status == 200
        await peer.wait_for(decoded_audio_and_video, timeout=20)
        await ended.get(timeout=10)


async def test_http_post_not_media_is_415_with_error_event(
    client: KurentoClient, webm: bytes
) -> None:
    """A body that is no media container: 415 and KMS's Error event on that element only; a
    second endpoint of the same pipeline still plays its upload."""
    pipeline = await client.create("MediaPipeline")
    bad = await pipeline.create("HttpPostEndpoint")
    good = await pipeline.create("HttpPostEndpoint")
    errors = await bad.subscribe("Error")
    good_errors = await good.subscribe("Error")
    ended = await good.subscribe("EndOfStream")
    reply = await http(await bad.invoke("getUrl"), b"this is not a media file\n" * 400)
    assert reply.status == 415
    assert reply.body.startswith("not a media container")
    error = await errors.get(timeout=5)
    assert (error["type"], error["errorCode"]) == ("STREAM_ERROR_TYPE_NOT_FOUND", 4)
    assert error["description"].startswith("not a media container")
    assert (await http(await good.invoke("getUrl"), webm)).status == 200
    await ended.get(timeout=10)
    assert good_errors.queue.empty()


async def test_http_post_multipart_without_file_is_400(client: KurentoClient) -> None:
    """A form without a part holding a file is refused with 400 naming what is missing."""
    pipeline = await client.create("MediaPipeline")
    post = await pipeline.create("HttpPostEndpoint")
    body = b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nno file\r\n--b--\r\n'
    reply = await http(
        await post.invoke("getUrl"), body, content_type="multipart/form-data; boundary=b"
    )
    assert (reply.status, reply.body) == (
        400,
        "multipart body without a part holding a file (filename=)",
    )


async def test_http_post_wrong_path_method_and_cookie(client: KurentoClient, webm: bytes) -> None:
    """A path nobody registered: 404; another client while one streams: 400 "Invalid cookie";
    the same client while it streams: 409; OPTIONS: CORS; GET: 405."""
    async with client_peer() as peer:
        post, _ = await upload_to_peer(client, peer)
        url = await post.invoke("getUrl")
        wrong = url.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
        assert (await http(wrong, webm)).status == 404
        first = await http(url, webm)
        assert first.status == 200  # the body is in; its 3 s of media still play
        other = await http(url, webm)
        assert (other.status, other.body) == (400, "Invalid cookie")
        again = await http(url, webm, cookie=first.cookie)
        assert (again.status, again.body) == (
            409,
            "an upload is already streaming to this endpoint",
        )
        options = await http(url, method="OPTIONS", content_type=None)
        assert (options.status, options.headers["allow"]) == (200, "POST")
        assert options.headers["access-control-allow-origin"] == "*"
        get = await http(url, method="GET", content_type=None, cookie=first.cookie)
        assert get.status == 405
        await peer.wait_for(decoded_audio_and_video, timeout=20)


async def test_http_post_disconnection_timeout_expires_url(
    client: KurentoClient, webm: bytes
) -> None:
    """After EndOfStream the same client may POST again; disconnectionTimeout seconds after the
    last upload the URL expires: MediaSessionTerminated, getUrl "" and 404."""
    pipeline = await client.create("MediaPipeline")
    post = await pipeline.create("HttpPostEndpoint", disconnectionTimeout=1)
    ended = await post.subscribe("EndOfStream")
    terminated = await post.subscribe("MediaSessionTerminated")
    url = await post.invoke("getUrl")
    first = await http(url, webm)
    await ended.get(timeout=10)
    assert (await http(url, webm, cookie=first.cookie)).status == 200
    await ended.get(timeout=10)
    await terminated.get(timeout=5)
    assert await post.invoke("getUrl") == ""
    assert (await http(url, webm, cookie=first.cookie)).status == 404


async def test_http_post_listener_settings_name_the_url(webm: bytes) -> None:
    """The listener opens at the first HttpPostEndpoint on http_endpoint_port, and getUrl names
    http_endpoint_announced_address; released endpoints' paths answer 404."""
    port = free_port_range(1).low
    settings = make_settings(
        http_endpoint_address="127.0.0.1",
        http_endpoint_port=port,
        http_endpoint_announced_address="media.example.org",
    )
    async with running_emulator(settings) as app:
        assert not app.http_endpoints.is_open
        async with await KurentoClient.connect(app.urls["ws"], reconnect=False) as client:
            pipeline = await client.create("MediaPipeline")
            post = await pipeline.create("HttpPostEndpoint")
            url = await post.invoke("getUrl")
            parts = urllib.parse.urlsplit(url)
            assert (parts.scheme, parts.hostname, parts.port) == ("http", "media.example.org", port)
            assert len(parts.path) == 37  # "/" and a UUID, as KMS
            local = f"http://127.0.0.1:{port}{parts.path}"
            await post.release()
            assert (await http(local, webm)).status == 404


async def test_http_post_listener_port_taken_is_40300(server: App) -> None:
    """A port the listener cannot bind fails the create with HTTP_END_POINT_REGISTRATION_ERROR."""
    port = server.port("ws")  # taken by the server's own WebSocket listener
    settings = make_settings(http_endpoint_address="127.0.0.1", http_endpoint_port=port)
    async with (
        running_emulator(settings) as app,
        await KurentoClient.connect(app.urls["ws"], reconnect=False) as client,
    ):
        pipeline = await client.create("MediaPipeline")
        with pytest.raises(HttpEndPointRegistrationError, match="http_endpoint_port"):
            await pipeline.create("HttpPostEndpoint")


def test_http_post_demuxer_reads_faststart_mp4(tmp_path: Path) -> None:
    """The Demuxer streams a faststart MP4 (H.264 + Opus) without seeking: H.264 payloads are
    RFC 6184 NAL units (SPS first at a keyframe, marker on a frame's last packet), timestamps
    rise from 0 in each clock."""
    path = tmp_path / "clip.mp4"
    _ffmpeg(path, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-profile:v", "baseline",
            "-movflags", "+faststart")  # fmt: skip
    with path.open("rb") as source:
        demuxer = Demuxer(source)
        frames = list(demuxer.frames())
        demuxer.close()
    assert demuxer.kinds == ["audio", "video"]
    video = [f for f in frames if f.kind == "video"]
    audio = [f for f in frames if f.kind == "audio"]
    assert (video[0].codec.name, audio[0].codec.name) == ("H264", "opus")
    assert len(video) == 45 and video[0].keyframe and video[0].timestamp == 0
    first, _, _ = video[0].payloads[0]
    assert first[0] & 0x1F in (7, 24)  # an SPS, alone or in a STAP-A
    assert [marker for _, _, marker in video[0].payloads][-1]  # marker on the frame's last
    assert video[-1].timestamp == 44 * 6000 and audio[-1].timestamp > 2 * 48000
    assert all(a.seconds <= b.seconds for a, b in itertools.pairwise(frames))


def test_http_post_demuxer_refuses_text() -> None:
    """Bytes that are no container raise DemuxError before any frame."""
    with pytest.raises(DemuxError, match="not a media container") as raised:
        Demuxer(io.BytesIO(b"hello, this is text\n" * 100))
    assert not raised.value.opened
