"""RtpEndpoint with a real RTP peer that is not this project's code: Debian's ffmpeg.

ffmpeg sends a sine tone as RTP (``-f rtp``, or ``srtp://`` with SDES keys) and receives RTP
described by an SDP file, writing a WAV file whose dominant frequency is checked. Two ffmpeg
processes play one PBX: their RTP goes through ``SymmetricPort``, the PBX's single media port,
because the endpoint sends to and accepts from the address in the SDP only (symmetric RTP).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shutil
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCRtpSender

from emulator.media.rtp.packet import is_rtcp, parse_rtp
from emulator.transport.client import KurentoClient
from protocol.sdp import SessionDescription
from tests.media.peers import ClientPeer, negotiate
from tests.media.rtp_peers import (
    PcmuPeer,
    TonePeer,
    UdpPeer,
    dominant_frequency,
    peer_sdp,
    spy_received,
    udp_peer,
)
from tests.ports import free_port_range

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg missing (make rtp-deps)")


def read_wav(path: Path) -> tuple[np.ndarray[Any, Any], int]:
    """Mono 16-bit samples of a WAV file and its rate."""
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
        return np.frombuffer(data, dtype="<i2"), wav.getframerate()


def free_pair() -> int:
    """An even port and its +1 for an ffmpeg receiver, reserved for this test: ffmpeg binds what
    its SDP file says, so the OS cannot pick them (tests/ports.py)."""
    return free_port_range(2).low


class Processes:
    """ffmpeg subprocesses of one test; every one is killed at teardown."""

    def __init__(self) -> None:
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """Start ffmpeg quietly with these arguments."""
        assert FFMPEG is not None
        process = await asyncio.create_subprocess_exec(
            FFMPEG,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self.running.append(process)
        return process

    async def kill_all(self) -> None:
        """Kill what still runs."""
        for process in self.running:
            if process.returncode is None:
                process.kill()
            await process.wait()


@pytest.fixture
async def ffmpeg() -> AsyncIterator[Processes]:
    """Start ffmpeg processes; they are killed when the test ends."""
    processes = Processes()
    try:
        yield processes
    finally:
        await processes.kill_all()


class SymmetricPort:
    """The PBX's media port: RTP from the endpoint goes to the ffmpeg receiver, RTP from the
    ffmpeg sender goes to the endpoint, both from this one port. Records payload types."""

    def __init__(self, peer: UdpPeer, receiver_port: int) -> None:
        self.peer = peer
        self.receiver = ("127.0.0.1", receiver_port)
        self.endpoint: tuple[str, int] | None = None
        self.payload_types: list[int] = []
        self.arrived = asyncio.Event()
        peer.datagram_received = self._relay  # type: ignore[method-assign]

    def _relay(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return  # the ffmpeg peers keep their own RTCP: this port relays media
        if addr == self.endpoint:
            view = parse_rtp(data)
            if view is not None:
                self.payload_types.append(view.payload_type)
                if len(self.payload_types) >= 25:
                    self.arrived.set()
            self.peer.send(data, self.receiver)
        elif self.endpoint is not None:
            self.peer.send(data, self.endpoint)


def receiver_sdp(port: int, crypto: str | None = None, codec: str = "0 PCMU/8000") -> str:
    """The SDP file ffmpeg reads to receive ``codec`` (optionally SDES-SRTP) on ``port``."""
    proto = "RTP/SAVP" if crypto else "RTP/AVP"
    lines = [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=pbx",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} {proto} {codec.split()[0]}",
        f"a=rtpmap:{codec}",
    ]
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    return "\n".join(lines) + "\n"


async def receive_wav(ffmpeg: Processes, sdp: str, folder: Path) -> tuple[Path, Any]:
    """Start an ffmpeg receiver writing 2 s of what arrives to a WAV file."""
    (folder / "call.sdp").write_text(sdp)
    out = folder / "received.wav"
    process = await ffmpeg.start(
        "-protocol_whitelist",
        "file,udp,rtp,srtp,crypto",
        "-i",
        str(folder / "call.sdp"),
        "-t",
        "2",
        "-ac",
        "1",
        "-y",
        str(out),
    )
    return out, process


def send_args(
    target: int, params: list[str], url: str = "rtp", codec: str = "pcm_mulaw", rate: int = 8000
) -> list[str]:
    """ffmpeg arguments sending a 440 Hz tone (PCMU unless ``codec`` says otherwise, sampled at
    ``rate``) as RTP to ``127.0.0.1:target``."""
    return [
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate={rate}",
        "-t",
        "15",
        "-ac",
        "1",
        "-c:a",
        codec,
        "-f",
        "rtp",
        *params,
        f"{url}://127.0.0.1:{target}",
    ]


async def finished(process: Any, timeout: float = 20.0) -> None:
    """Wait for an ffmpeg process to exit 0."""
    await asyncio.wait_for(process.wait(), timeout)
    errors = (await process.stderr.read()).decode(errors="replace")
    assert process.returncode == 0, errors


async def test_ffmpeg_pcmu_call_with_webrtc_peer(
    media_client: KurentoClient, ffmpeg: Processes, tmp_path: Path
) -> None:
    """A PCMU call: aiortc (880 Hz) <-> WebRtcEndpoint <-> RtpEndpoint <-> ffmpeg (440 Hz).
    Nothing is transcoded; each end hears the other's tone, with payload type 0 on the RTP leg."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await webrtc.connect(rtp, "AUDIO")
    await rtp.connect(webrtc, "AUDIO")
    receiver_port = free_pair()
    peer = PcmuPeer(audio=False, video=False)
    try:
        await negotiate(webrtc, peer)
        async with udp_peer() as pbx:
            port = SymmetricPort(pbx, receiver_port)
            answer = await rtp.invoke("processOffer", offer=peer_sdp(pbx.port, dtmf=None))
            port.endpoint = ("127.0.0.1", SessionDescription.parse(answer).media[0].port)
            wav, receiver = await receive_wav(ffmpeg, receiver_sdp(receiver_port), tmp_path)
            await ffmpeg.start(*send_args(pbx.port, []))
            await asyncio.wait_for(port.arrived.wait(), 15)
            await peer.wait_for(peer.heard_seconds())
            await finished(receiver)
        assert set(port.payload_types) == {0}
        samples, rate = read_wav(wav)
        assert rate == 8000 and len(samples) > 8000
        assert abs(dominant_frequency(samples[800:], rate) - 880) < 10
        heard = np.concatenate(peer.heard)[-8000:]
        assert abs(dominant_frequency(heard, 8000) - 440) < 10
        transcoding = await rtp.invoke("isMediaTranscoding", mediaType="AUDIO")
        assert transcoding is False
    finally:
        await peer.close()


async def test_ffmpeg_sdes_srtp_both_ways(
    media_client: KurentoClient, ffmpeg: Processes, tmp_path: Path
) -> None:
    """ffmpeg's srtp:// sends AES_CM_128_HMAC_SHA1_80 to an SDES RtpEndpoint looped to itself;
    the endpoint's own key (from its answer) lets a second ffmpeg decrypt the tone."""
    pipeline = await media_client.create("MediaPipeline")
    sdes = {"__module__": "kurento", "__type__": "SDES", "crypto": "AES_128_CM_HMAC_SHA1_80"}
    rtp = await pipeline.create("RtpEndpoint", crypto=sdes)
    await rtp.connect(rtp, "AUDIO")
    ffmpeg_key = base64.b64encode(secrets.token_bytes(30)).decode()
    receiver_port = free_pair()
    async with udp_peer() as pbx:
        port = SymmetricPort(pbx, receiver_port)
        offer = peer_sdp(
            pbx.port,
            dtmf=None,
            proto="RTP/SAVP",
            crypto=f"1 AES_CM_128_HMAC_SHA1_80 inline:{ffmpeg_key}",
        )
        answer = SessionDescription.parse(await rtp.invoke("processOffer", offer=offer))
        media = answer.media[0]
        assert media.proto == "RTP/SAVP"
        (crypto,) = media.cryptos
        assert (crypto.tag, crypto.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
        port.endpoint = ("127.0.0.1", media.port)
        wav, receiver = await receive_wav(
            ffmpeg, receiver_sdp(receiver_port, crypto.to_value()), tmp_path
        )
        srtp = ["-srtp_out_suite", "AES_CM_128_HMAC_SHA1_80", "-srtp_out_params", ffmpeg_key]
        await ffmpeg.start(*send_args(pbx.port, srtp, "srtp"))
        await asyncio.wait_for(port.arrived.wait(), 15)
        await finished(receiver)
    samples, rate = read_wav(wav)
    assert abs(dominant_frequency(samples[800:], rate) - 440) < 10
    stats = await rtp.invoke("getStats")
    assert next(s for s in stats.values() if s["type"] == "endpoint")["srtpFailures"] == 0


@pytest.mark.parametrize(
    ("sdp_codec", "encoder", "rate"),
    [("8 PCMA/8000", "pcm_alaw", 8000), ("9 G722/8000", "g722", 16000)],
    ids=["pcma", "g722"],
)
async def test_ffmpeg_transcoded_call_with_opus_peer(
    media_client: KurentoClient,
    ffmpeg: Processes,
    tmp_path: Path,
    sdp_codec: str,
    encoder: str,
    rate: int,
) -> None:
    """aiortc (Opus only, 880 Hz) <-> WebRtcEndpoint <-> RtpEndpoint <-> an ffmpeg PBX that
    offers PCMA (or G.722) only, 440 Hz: both directions are transcoded. The RTP leg carries the
    PBX's payload type, each end decodes the other's tone, and each element reports TRANSCODING
    for the sink it feeds."""
    payload_type = int(sdp_codec.split()[0])
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    events = {
        "webrtc": await webrtc.subscribe("MediaTranscodingStateChanged"),
        "rtp": await rtp.subscribe("MediaTranscodingStateChanged"),
    }
    await webrtc.connect(rtp, "AUDIO")
    await rtp.connect(webrtc, "AUDIO")
    receiver_port = free_pair()
    peer = TonePeer(audio=False, video=False, mime="audio/opus", frequency=880)
    try:
        await negotiate(webrtc, peer)
        seen = spy_received(peer)
        async with udp_peer() as pbx:
            port = SymmetricPort(pbx, receiver_port)
            offer = peer_sdp(pbx.port, audio=sdp_codec, dtmf=None)
            answer = SessionDescription.parse(await rtp.invoke("processOffer", offer=offer))
            assert [c.name for c in answer.media[0].codecs] == [sdp_codec.split()[1][:4]]
            port.endpoint = ("127.0.0.1", answer.media[0].port)
            wav, receiver = await receive_wav(
                ffmpeg, receiver_sdp(receiver_port, codec=sdp_codec), tmp_path
            )
            await ffmpeg.start(*send_args(pbx.port, [], codec=encoder, rate=rate))
            await asyncio.wait_for(port.arrived.wait(), 15)
            await peer.wait_for(peer.heard_seconds(2.0))
            await finished(receiver)
        assert set(port.payload_types) == {payload_type}
        samples, wav_rate = read_wav(wav)
        assert wav_rate == rate and len(samples) > rate
        assert abs(dominant_frequency(samples[rate // 10 :], wav_rate) - 880) < 10
        assert peer.heard_rate == 48000
        assert {v.payload_type for v in seen} == {_opus_payload_type(peer)}
        assert abs(dominant_frequency(peer.last_heard(1.0), 48000) - 440) < 10
        for name, element in (("webrtc", webrtc), ("rtp", rtp)):
            event = await events[name].get(timeout=5)
            assert (event["state"], event["binName"]) == ("TRANSCODING", "transcoder_audio")
            assert event["source"] == element.id
            assert await element.invoke("isMediaTranscoding", mediaType="AUDIO") is True
    finally:
        await peer.close()


def _opus_payload_type(peer: TonePeer) -> int:
    """The payload type of Opus in the server's answer (its only audio codec)."""
    (codec,) = SessionDescription.parse(peer.pc.remoteDescription.sdp).media[0].codecs
    assert codec.name.lower() == "opus"
    return codec.payload_type


VIDEO_ENCODERS = {
    "H264": ["-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency"],
    "VP8": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
}


@pytest.mark.parametrize(("codec", "payload_type"), [("H264", 96), ("VP8", 97)])
async def test_ffmpeg_video_reaches_webrtc_peer(
    media_client: KurentoClient, ffmpeg: Processes, codec: str, payload_type: int
) -> None:
    """A video phone: ffmpeg sends H264 (or VP8) RTP from the port of its SDP to an
    RtpEndpoint connected to a WebRtcEndpoint; the aiortc peer, which prefers that codec,
    decodes more than 10 frames (a keyframe a second, so a late start still decodes)."""
    pipeline = await media_client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await rtp.connect(webrtc, "VIDEO")
    peer = ClientPeer(audio=False, video=True)
    (transceiver,) = peer.pc.getTransceivers()
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == codec]
    )
    video_port = free_pair()
    try:
        await negotiate(webrtc, peer)
        async with udp_peer() as audio:
            offer = peer_sdp(
                audio.port,
                dtmf=None,
                video=f"{payload_type} {codec}/90000",
                video_port=video_port,
            )
            answer = SessionDescription.parse(await rtp.invoke("processOffer", offer=offer))
            video = answer.media[1]
            assert [c.name for c in video.codecs] == [codec]
            await ffmpeg.start(
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=15",
                "-t",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "15",
                *VIDEO_ENCODERS[codec],
                "-f",
                "rtp",
                "-payload_type",
                str(payload_type),
                f"rtp://127.0.0.1:{video.port}?localrtpport={video_port}"
                f"&localrtcpport={video_port + 1}",
            )
            await peer.wait_for(lambda p: p.frames.get("video", 0) > 10, timeout=20)
        assert await webrtc.invoke("isMediaTranscoding", mediaType="VIDEO") is False
    finally:
        await peer.close()
