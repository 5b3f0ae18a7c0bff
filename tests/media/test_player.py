"""PlayerEndpoint: clips made with ffmpeg, played into real peers that decode what they get."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from emulator.app import App
from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from emulator.transport.tls import self_signed_pem
from protocol.errors import RpcError
from tests.conftest import make_settings, server_and_client
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import TonePeer, dominant_frequency, peer_sdp, udp_peer
from tests.ports import free_port_range

pytestmark = pytest.mark.timeout(90)

TONE = "sine=frequency={hz}:sample_rate=48000:duration={seconds}"
PATTERN = "testsrc=size=320x240:rate=30:duration={seconds}"


async def make_clip(path: Path, *args: str) -> Path:
    """Run ffmpeg (inputs and codecs in ``args``) into ``path``."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    return path


def tone(hz: int, seconds: float) -> list[str]:
    """ffmpeg input arguments of a sine tone."""
    return ["-f", "lavfi", "-i", TONE.format(hz=hz, seconds=seconds)]


def pattern(seconds: float) -> list[str]:
    """ffmpeg input arguments of a 30 fps test pattern."""
    return ["-f", "lavfi", "-i", PATTERN.format(seconds=seconds)]


VP8_OPUS = ["-c:v", "libvpx", "-g", "30", "-b:v", "500k", "-c:a", "libopus"]


@dataclass
class ListenerPeer(TonePeer):
    """A receive-only browser-like peer: hears audio (``mime``) and counts decoded video
    frames of ``video_mime`` (none when empty)."""

    video_mime: str = ""

    def __post_init__(self) -> None:
        ClientPeer.__post_init__(self)
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        audio.setCodecPreferences(_codecs("audio", self.mime))
        if self.video_mime:
            video = self.pc.addTransceiver("video", direction="recvonly")
            video.setCodecPreferences(_codecs("video", self.video_mime))

    async def _read(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            await super()._read(track)
            return
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames["video"] = self.frames.get("video", 0) + 1
                self._arrived.set()


def _codecs(kind: str, mime: str) -> list[Any]:
    return [c for c in RTCRtpReceiver.getCapabilities(kind).codecs if c.mimeType == mime]


@contextlib.asynccontextmanager
async def listener(**kwargs: Any) -> AsyncIterator[ListenerPeer]:
    """A ListenerPeer, closed at the end."""
    peer = ListenerPeer(audio=False, video=False, **kwargs)
    try:
        yield peer
    finally:
        await peer.close()


async def player_into_peer(
    client: KurentoClient, uri: str, peer: ListenerPeer
) -> tuple[RemoteObject, RemoteObject]:
    """A pipeline: PlayerEndpoint -> WebRtcEndpoint negotiated with ``peer`` (not playing)."""
    pipeline = await client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=uri)
    webrtc = await pipeline.create("WebRtcEndpoint")
    await player.connect(webrtc)
    await negotiate_connected(webrtc, peer)
    return player, webrtc


async def next_event(events: EventStream, timeout: float = 15) -> dict[str, Any]:
    """The next event of a subscription."""
    return await events.get(timeout=timeout)


def player_threads() -> list[threading.Thread]:
    """The players' demux threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("player ")]


async def test_player_forwards_vp8_opus_webm_untranscoded_in_real_time(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """A VP8/Opus WebM reaches a WebRTC peer without transcoding: it decodes the 30 fps
    pattern and hears the 440 Hz tone, paced in real time; EndOfStream at the end."""
    clip = await make_clip(tmp_path / "clip.webm", *tone(440, 3), *pattern(3), *VP8_OPUS)
    async with listener(mime="audio/opus", video_mime="video/VP8") as peer:
        player, _ = await player_into_peer(media_client, clip.as_uri(), peer)
        ended = await player.subscribe("EndOfStream")
        states = await player.subscribe("UriEndpointStateChanged")
        started = time.monotonic()
        await player.invoke("play")
        await next_event(ended)
        elapsed = time.monotonic() - started
        await peer.wait_for(lambda p: p.frames.get("video", 0) >= 75, timeout=5)
        assert (await next_event(states))["state"] == "START"
        assert 2.7 < elapsed < 4.5, elapsed
        assert peer.frames["video"] <= 90
        assert abs(dominant_frequency(peer.last_heard(1.0), peer.heard_rate) - 440) < 10
        for kind in ("AUDIO", "VIDEO"):
            assert await player.invoke("isMediaTranscoding", mediaType=kind) is False


async def test_player_transcodes_mp3_for_an_opus_peer(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """MP3 has no RTP form the pipeline carries: the player decodes it and encodes Opus once,
    reports TRANSCODING, and the peer hears the 660 Hz tone."""
    clip = await make_clip(tmp_path / "tone.mp3", *tone(660, 3), "-c:a", "libmp3lame")
    async with listener(mime="audio/opus") as peer:
        player, _ = await player_into_peer(media_client, clip.as_uri(), peer)
        transcoding = await player.subscribe("MediaTranscodingStateChanged")
        await player.invoke("play")
        event = await next_event(transcoding)
        assert (event["state"], event["mediaType"]) == ("TRANSCODING", "AUDIO")
        await peer.wait_for(peer.heard_seconds(1.5))
        assert abs(dominant_frequency(peer.last_heard(1.0), peer.heard_rate) - 660) < 10
        assert await player.invoke("isMediaTranscoding", mediaType="AUDIO") is True


async def test_player_forwards_h264_and_transcodes_aac_from_mp4(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """An H264/AAC MP4 into an H264 peer: video forwarded (decoded at the peer), AAC
    transcoded into Opus (the 550 Hz tone heard)."""
    clip = await make_clip(
        tmp_path / "clip.mp4", *tone(550, 3), *pattern(3),
        "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac",
    )  # fmt: skip
    transcoding = await play_to_listener(media_client, clip, "video/H264", 550)
    assert transcoding == {"AUDIO": True, "VIDEO": False}


async def play_to_listener(
    client: KurentoClient, clip: Path, video_mime: str, hz: int
) -> dict[str, bool]:
    """Play ``clip`` to a peer taking Opus and ``video_mime``: it decodes 30 frames and hears
    the ``hz`` tone. The player's isMediaTranscoding per media type, while it plays."""
    async with listener(mime="audio/opus", video_mime=video_mime) as peer:
        player, _ = await player_into_peer(client, clip.as_uri(), peer)
        await player.invoke("play")
        await peer.wait_for(lambda p: p.frames.get("video", 0) >= 30 and p.heard_seconds(1.5)(p))
        assert abs(dominant_frequency(peer.last_heard(1.0), peer.heard_rate) - hz) < 10
        return {
            kind: await player.invoke("isMediaTranscoding", mediaType=kind)
            for kind in ("AUDIO", "VIDEO")
        }


async def test_music_on_hold_reaches_a_pcma_only_pbx(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """A WAV into an RtpEndpoint whose PBX takes PCMA only: it receives payload type 8
    carrying the 440 Hz tone."""
    clip = await make_clip(tmp_path / "hold.wav", *tone(440, 4), "-c:a", "pcm_s16le")
    await play_to_pcma_pbx(media_client, clip.as_uri())


async def play_to_pcma_pbx(client: KurentoClient, uri: str, **params: Any) -> RemoteObject:
    """A PlayerEndpoint (``params`` added) -> RtpEndpoint whose PBX takes PCMA only, playing:
    the PBX receives payload type 8 carrying the 440 Hz tone (1.5 s of it). The player."""
    pipeline = await client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=uri, **params)
    rtp = await pipeline.create("RtpEndpoint")
    await player.connect(rtp, "AUDIO")
    async with udp_peer() as pbx:
        await rtp.invoke("processOffer", offer=peer_sdp(pbx.port, audio="8 PCMA/8000"))
        await player.invoke("play")
        decoder = av.CodecContext.create("pcm_alaw", "r")
        decoder.sample_rate, decoder.layout = 8000, "mono"
        samples: list[np.ndarray[Any, Any]] = []
        while sum(len(s) for s in samples) < 12000:
            view = await pbx.next_rtp(timeout=10)
            assert view.payload_type == 8
            samples += [f.to_ndarray().reshape(-1) for f in decoder.decode(av.Packet(view.payload))]
    assert abs(dominant_frequency(np.concatenate(samples)[-8000:], 8000) - 440) < 10
    return player


@contextlib.contextmanager
def http_server(folder: Path, pem: Path | None = None) -> Iterator[str]:
    """A local HTTP server on loopback (port 0) serving ``folder``; its base URL. With ``pem``
    (certificate and key) it serves https://."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if pem is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, name="test http server")
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request lines on stderr."""


async def hear_880_hz_from(client: KurentoClient, folder: Path, pem: Path | None = None) -> None:
    """An Ogg/Opus 880 Hz tone served from ``folder`` over http:// (https:// with ``pem``) is
    played to a peer, which hears it."""
    await make_clip(folder / "tone.ogg", *tone(880, 3), "-c:a", "libopus")
    with http_server(folder, pem) as base:
        async with listener(mime="audio/opus") as peer:
            player, _ = await player_into_peer(client, f"{base}/tone.ogg", peer)
            await player.invoke("play")
            await peer.wait_for(peer.heard_seconds(1.5))
            assert abs(dominant_frequency(peer.last_heard(1.0), peer.heard_rate) - 880) < 10
            await player.release()


async def test_player_plays_ogg_opus_from_http(media_client: KurentoClient, tmp_path: Path) -> None:
    """An http:// URI (a local server) of an Ogg/Opus file: the peer hears its 880 Hz tone."""
    await hear_880_hz_from(media_client, tmp_path)


def server_pem(folder: Path) -> Path:
    """A self-signed certificate and key for 127.0.0.1, as the server generates them."""
    pem = folder / "server.pem"
    pem.write_bytes(self_signed_pem(["localhost", "127.0.0.1"]))
    return pem


async def test_player_plays_https_trusting_player_ca_file(tmp_path: Path) -> None:
    """An https:// URI whose certificate ``player_ca_file`` trusts plays: the peer hears it."""
    pem = server_pem(tmp_path)
    settings = make_settings(network_interfaces="lo", player_ca_file=pem)
    async with server_and_client(settings) as (_, client):
        await hear_880_hz_from(client, tmp_path, pem)


async def test_player_refuses_an_untrusted_https_certificate(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """An https:// server whose certificate no trusted CA signed (FFmpeg alone would accept
    it): Error RESOURCE_ERROR_OPEN naming the URI and saying the certificate may be why."""
    await make_clip(tmp_path / "tone.ogg", *tone(880, 1), "-c:a", "libopus")
    with http_server(tmp_path, server_pem(tmp_path)) as base:
        event = await expect_error(
            media_client, f"{base}/tone.ogg", "RESOURCE_ERROR_OPEN", f"{base}/tone.ogg"
        )
    assert "certificate" in event["description"] and "player_ca_file" in event["description"]


async def test_seek_video_info_states_and_end_of_stream(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """getVideoInfo tells a 4 s file's duration and seekability; setPosition jumps, so that
    EndOfStream comes early; getPosition follows; the states are START, PAUSE, START, STOP."""
    clip = await make_clip(tmp_path / "clip.webm", *tone(440, 4), *pattern(4), *VP8_OPUS)
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
    info = await player.invoke("getVideoInfo")
    assert info["isSeekable"] is True and info["seekableInit"] == 0
    assert 3900 <= info["duration"] <= 4100 and info["seekableEnd"] == info["duration"]
    states = await player.subscribe("UriEndpointStateChanged")
    ended = await player.subscribe("EndOfStream")
    await player.invoke("play")
    await player.invoke("pause")
    await player.invoke("play")
    seeked = time.monotonic()
    await player.invoke("setPosition", position=3000)
    await next_event(ended)
    assert time.monotonic() - seeked < 2.5
    assert await player.invoke("getPosition") >= 2900
    await player.invoke("stop")
    assert [(await next_event(states))["state"] for _ in range(4)] == [
        "START", "PAUSE", "START", "STOP",
    ]  # fmt: skip
    assert await player.invoke("getPosition") == 0


async def test_play_after_end_of_stream_plays_again(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """play() after EndOfStream starts the file again (a loop for music on hold)."""
    clip = await make_clip(tmp_path / "short.ogg", *tone(440, 0.5), "-c:a", "libopus")
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
    ended = await player.subscribe("EndOfStream")
    await player.invoke("play")
    await next_event(ended)
    await player.invoke("play")
    await next_event(ended)


async def test_seek_on_a_player_not_playing_is_40700(media_client: KurentoClient) -> None:
    """setPosition before play answers 40700 PLAYER_SEEK_FAIL saying why."""
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri="file:///nowhere/clip.webm")
    with pytest.raises(RpcError) as caught:
        await player.invoke("setPosition", position=1000)
    assert caught.value.code == 40700 and "not playing" in str(caught.value)
    with pytest.raises(RpcError) as refused:
        await pipeline.create("PlayerEndpoint", uri="ftp://host/clip.webm")
    assert refused.value.code == 40600


async def expect_error(
    client: KurentoClient, uri: str, error_type: str, text: str
) -> dict[str, Any]:
    """Play ``uri`` and return the Error event, checking its type and description."""
    pipeline = await client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=uri)
    errors = await player.subscribe("Error")
    await player.invoke("play")
    event = await next_event(errors)
    assert event["type"] == error_type and text in event["description"], event
    await player.release()
    return event


async def test_bad_sources_raise_error_events_and_leave_no_thread(
    media_server: App, media_client: KurentoClient, tmp_path: Path
) -> None:
    """A missing file, garbage, a refused HTTP or RTSP connection: KMS's Error event on the
    player, saying what failed; the other elements carry on and no demux thread is left."""
    pipeline = await media_client.create("MediaPipeline")
    other = await pipeline.create("PassThrough")
    missing = tmp_path / "missing.webm"
    await expect_error(media_client, missing.as_uri(), "RESOURCE_ERROR_OPEN", str(missing))
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"not a media file at all" * 100)
    await expect_error(media_client, garbage.as_uri(), "STREAM_ERROR_DECODE", str(garbage))
    closed = free_port_range(1).low  # allocated to this test, nothing listens there
    for uri in (f"http://127.0.0.1:{closed}/clip.webm", f"rtsp://127.0.0.1:{closed}/live"):
        await expect_error(media_client, uri, "RESOURCE_ERROR_OPEN", uri)
    assert await other.invoke("getName")
    assert player_threads() == []


async def test_release_while_playing_joins_the_demux_thread(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """Releasing a playing player ends its demux thread before the release is answered."""
    clip = await make_clip(tmp_path / "long.ogg", *tone(440, 30), "-c:a", "libopus")
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
    flowing = await player.subscribe("MediaFlowOutStateChanged")
    sink = await pipeline.create("PassThrough")
    await player.connect(sink, "AUDIO")
    await player.invoke("play")
    assert (await next_event(flowing))["state"] == "FLOWING"
    assert len(player_threads()) == 1
    await player.release()
    assert player_threads() == []


async def test_two_pbx_sinks_share_one_player_and_one_transcoder(
    media_server: App, media_client: KurentoClient, tmp_path: Path
) -> None:
    """Two PCMA PBXs fed by one MP3 player: one demuxer, one Opus encoding in the player, one
    Opus -> PCMA transcoder for both; each receives the tone."""
    clip = await make_clip(tmp_path / "hold.mp3", *tone(440, 4), "-c:a", "libmp3lame")
    pipeline = await media_client.create("MediaPipeline")
    player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
    async with udp_peer() as first, udp_peer() as second:
        for pbx in (first, second):
            rtp = await pipeline.create("RtpEndpoint")
            await rtp.invoke("processOffer", offer=peer_sdp(pbx.port, audio="8 PCMA/8000"))
            await player.connect(rtp, "AUDIO")
        await player.invoke("play")
        for pbx in (first, second):
            assert (await pbx.next_rtp(timeout=10)).payload_type == 8
        assert media_server.media_services.transcoders.live == 1
        assert len(player_threads()) == 1


async def test_player_reencodes_vp9_vorbis_mkv_into_vp8_and_opus(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """VP9/Vorbis Matroska: the player decodes both and encodes VP8 and Opus once; the VP8
    peer decodes the pattern and hears the 330 Hz tone."""
    clip = await make_clip(
        tmp_path / "clip.mkv", *tone(330, 3), *pattern(3),
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libvorbis",
    )  # fmt: skip
    transcoding = await play_to_listener(media_client, clip, "video/VP8", 330)
    assert transcoding == {"AUDIO": True, "VIDEO": True}


def pcma_tone(hz: int, packets: int) -> list[bytes]:
    """``packets`` PCMA payloads of 20 ms (160 samples) of a sine tone."""
    encoder = av.CodecContext.create("pcm_alaw", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
    t = np.arange(160 * packets) / 8000
    samples = (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2")
    payloads = []
    for index in range(packets):
        frame = av.AudioFrame.from_ndarray(
            samples[index * 160 : (index + 1) * 160].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        payloads += [bytes(p) for p in encoder.encode(frame)]
    return payloads


RTSP_SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=tone\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:track1\r\n"
)


class RtspSource:
    """A minimal RTSP server (RFC 2326) for one live PCMA tone, RTP interleaved in the TCP
    connection; ``refuse`` answers DESCRIBE with 404. ffmpeg cannot serve RTSP to a client (its
    RTSP muxer only pushes to a server), so the test serves it."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.senders: list[asyncio.Task[None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while request := await reader.readuntil(b"\r\n\r\n"):
                method, headers = _rtsp_request(request.decode())
                if method == "PLAY":
                    self.senders.append(asyncio.create_task(self._send(writer)))
                writer.write(self._answer(method, headers).encode())
                await writer.drain()
        writer.close()

    def _answer(self, method: str, headers: dict[str, str]) -> str:
        extra = ""
        status = "200 OK"
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
        elif method == "DESCRIBE" and self.refuse:
            status = "404 Not Found"
        elif method == "DESCRIBE":
            extra = f"Content-Type: application/sdp\r\nContent-Length: {len(RTSP_SDP)}\r\n"
        elif method == "SETUP" and "interleaved" not in headers.get("transport", ""):
            status = "461 Unsupported Transport"
        elif method == "SETUP":
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678\r\n"
        elif method in ("PLAY", "TEARDOWN"):
            extra = "Session: 12345678\r\n"
        body = RTSP_SDP if extra.startswith("Content-Type") else ""
        return f"RTSP/1.0 {status}\r\nCSeq: {headers.get('cseq', '0')}\r\n{extra}\r\n{body}"

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        # A live source: one 20 ms packet every 20 ms, as a camera's audio.
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, payload in enumerate(pcma_tone(440, 1500)):
            head = struct.pack(
                "!BBHII", 0x80, 8 | (0x80 if index == 0 else 0), index, index * 160, 7
            )
            packet = head + payload
            writer.write(b"$\x00" + struct.pack("!H", len(packet)) + packet)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))

    async def close(self) -> None:
        for task in self.senders:
            task.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)


def _rtsp_request(text: str) -> tuple[str, dict[str, str]]:
    lines = text.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].split(" ", 1)[0], headers


@contextlib.asynccontextmanager
async def rtsp_source(refuse: bool = False) -> AsyncIterator[str]:
    """An RtspSource on loopback (port 0); its URL."""
    source = RtspSource(refuse)
    server = await asyncio.start_server(source.handle, "127.0.0.1", 0)
    try:
        yield f"rtsp://127.0.0.1:{server.sockets[0].getsockname()[1]}/tone"
    finally:
        await source.close()
        server.close()
        await server.wait_closed()


async def test_player_plays_a_live_rtsp_source_to_a_pbx(media_client: KurentoClient) -> None:
    """An rtsp:// live PCMA source reaches a PCMA PBX (the 440 Hz tone); it is not seekable:
    getVideoInfo says so and setPosition answers 40700."""
    async with rtsp_source() as url:
        player = await play_to_pcma_pbx(media_client, url, networkCache=200)
        info = await player.invoke("getVideoInfo")
        assert info["isSeekable"] is False
        with pytest.raises(RpcError) as caught:
            await player.invoke("setPosition", position=1000)
        assert caught.value.code == 40700 and "not seekable" in str(caught.value)
        await player.release()


async def test_refused_rtsp_session_raises_error(media_client: KurentoClient) -> None:
    """An RTSP server that answers DESCRIBE with 404: Error RESOURCE_ERROR_OPEN naming it."""
    async with rtsp_source(refuse=True) as url:
        event = await expect_error(media_client, url, "RESOURCE_ERROR_OPEN", url)
    assert "404" in event["description"] or "not found" in event["description"].lower()
