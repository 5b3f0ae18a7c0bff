"""Composite: real aiortc peers in one conference, each hearing the others (not itself) and
seeing the grid; a PBX leg (plain RTP, PCMA) and a WebRTC leg recorded through the mix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from emulator.app import running_emulator
from emulator.media.codecs.coders import EncoderBitrates
from emulator.media.codecs.packetize import VP8
from emulator.media.flow import MediaPacket
from emulator.media.mixing import (
    BlendLayout,
    GridLayout,
    HubMedia,
    Mix,
    MixFormat,
    Placement,
    blend,
    fit,
    grid,
)
from emulator.media.rtp.keyframes import vp8_keyframe
from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from protocol.errors import RpcError
from protocol.sdp import Codec, SessionDescription
from tests.conftest import make_settings
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import TonePeer, peer_sdp, spy_received, udp_peer

TONES = (440.0, 660.0, 880.0)
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 40, 220))
"""RGB test patterns, one per participant: solid colours survive scaling and VP8 alike."""


def tone_level(samples: np.ndarray[Any, Any], rate: int, frequency: float) -> float:
    """The strongest spectral magnitude within 15 Hz of ``frequency`` (Hann window)."""
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    bins = np.fft.rfftfreq(len(signal), 1 / rate)
    near = (bins > frequency - 15) & (bins < frequency + 15)
    return float(spectrum[near].max())


def assert_hears(samples: np.ndarray[Any, Any], rate: int, heard: list[float], not_heard: float):  # type: ignore[no-untyped-def]
    """Each tone of ``heard`` is strong; ``not_heard`` is at least 20 dB below the weakest."""
    levels = {f: tone_level(samples, rate, f) for f in (*heard, not_heard)}
    weakest = min(levels[f] for f in heard)
    assert weakest > 0, levels
    assert levels[not_heard] < weakest / 10, levels


class ColourTrack(VideoStreamTrack):
    """aiortc's paced 320x240 video, one solid colour."""

    def __init__(self, rgb: tuple[int, int, int]) -> None:
        super().__init__()
        picture = np.zeros((240, 320, 3), dtype=np.uint8)
        picture[:, :] = rgb
        self.picture = picture

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Participant(TonePeer):
    """A conference peer: an Opus tone, optionally a colour, keeping the last video picture."""

    colour: tuple[int, int, int] | None = None
    picture: np.ndarray[Any, Any] | None = None
    pictures: int = 0

    def __post_init__(self) -> None:
        self.mime = "audio/opus"
        super().__post_init__()
        if self.colour is not None:
            self.pc.addTransceiver(ColourTrack(self.colour), direction="sendrecv")

    async def _read(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            await super()._read(track)
            return
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.picture = frame.to_ndarray(format="rgb24")
                self.pictures += 1
                self._arrived.set()


def participant(index: int, video: bool = False) -> Participant:
    return Participant(
        audio=False,
        video=False,
        frequency=TONES[index],
        colour=COLOURS[index] if video else None,
    )


@contextlib.asynccontextmanager
async def joined(
    pipeline: RemoteObject, hub: RemoteObject, peer: ClientPeer
) -> AsyncIterator[tuple[RemoteObject, RemoteObject]]:
    """The peer's WebRtcEndpoint connected both ways to a new HubPort of ``hub``."""
    endpoint = await pipeline.create("WebRtcEndpoint")
    port = await hub.create("HubPort")
    await endpoint.connect(port)
    await port.connect(endpoint)
    await negotiate_connected(endpoint, peer)
    try:
        yield endpoint, port
    finally:
        await peer.close()


async def heard_fresh(peer: Participant, seconds: float = 1.0) -> np.ndarray[Any, Any]:
    """``seconds`` of audio the peer hears from now on."""
    peer.heard.clear()
    await peer.wait_for(peer.heard_seconds(seconds), timeout=30)
    return peer.last_heard(seconds)


async def test_composite_each_participant_hears_the_others_not_itself(
    media_client: KurentoClient,
) -> None:
    """Three peers sending 440, 660 and 880 Hz: each hears the two others' tones and not its
    own (kmsaudiomixer's mix-minus); the hub ports report media flowing in and out."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite")
    peers = [participant(i) for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for peer in peers:
            _, port = await stack.enter_async_context(joined(pipeline, hub, peer))
            ports.append(port)
        for index, peer in enumerate(peers):
            samples = await heard_fresh(peer)
            others = [t for i, t in enumerate(TONES) if i != index]
            assert_hears(samples, peer.heard_rate, others, TONES[index])
        for port in ports:
            assert await port.invoke("isMediaFlowingIn", mediaType="AUDIO") is True
            assert await port.invoke("isMediaFlowingOut", mediaType="AUDIO") is True
            assert await port.invoke("isMediaFlowingIn", mediaType="VIDEO") is False


def cell_colours(picture: np.ndarray[Any, Any], count: int) -> list[tuple[int, int, int]]:
    """The mean colour of the middle of each cell of a ``count``-picture grid."""
    height, width = picture.shape[:2]
    colours = []
    for x, y, w, h in grid(count, width, height):
        middle = picture[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
        colours.append(tuple(int(v) for v in middle.reshape(-1, 3).mean(axis=0)))
    return colours


def _close(expected: tuple[int, int, int], found: tuple[int, int, int]) -> bool:
    return max(abs(a - b) for a, b in zip(expected, found, strict=True)) < 40


def shows(peer: Participant, colours: list[tuple[int, int, int]]) -> bool:
    """Whether the peer's last picture is a grid of exactly these colours (any order)."""
    if peer.picture is None:
        return False
    found = cell_colours(peer.picture, len(colours))
    unmatched = list(colours)
    for colour in found:
        match = next((c for c in unmatched if _close(c, colour)), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


async def test_composite_grid_shows_each_participant_in_its_cell_and_follows_leaves(
    media_client: KurentoClient,
) -> None:
    """Three peers with solid colours: each receives a 320x240 grid at the Composite's size
    whose cells hold the three colours; when one leaves, the grid is two cells side by side
    and the others stop hearing its tone."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite", width=320, height=240, framerate=15)
    peers = [participant(i, video=True) for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for peer in peers:
            _, port = await stack.enter_async_context(joined(pipeline, hub, peer))
            ports.append(port)
        for peer in peers:
            await peer.wait_for(lambda p: shows(p, list(COLOURS)), timeout=40)
            assert peer.picture is not None and peer.picture.shape[:2] == (240, 320)
        assert await ports[0].invoke("isMediaFlowingIn", mediaType="VIDEO") is True
        assert await ports[0].invoke("isMediaFlowingOut", mediaType="VIDEO") is True
        await ports[2].release()
        for peer in peers[:2]:
            await peer.wait_for(lambda p: shows(p, list(COLOURS[:2])), timeout=30)
        assert_hears(await heard_fresh(peers[0]), peers[0].heard_rate, [TONES[1]], TONES[2])


async def test_composite_size_comes_from_the_config_unless_create_gives_one() -> None:
    """On a server whose Composite.conf.ini says 256x192 (``composite_width``/``height``), a
    Composite created without a size sends 256x192 pictures; one created with 320x240 sends
    those, and one created with the KMD default 800x600 sends that (a value the client gives is
    never taken for an absent one)."""
    settings = make_settings(network_interfaces="lo", composite_width=256, composite_height=192)
    async with (
        running_emulator(settings) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        pipeline = await client.create("MediaPipeline")
        sizes = (
            ({}, (192, 256)),
            ({"width": 320, "height": 240}, (240, 320)),
            ({"width": 800, "height": 600}, (600, 800)),
        )
        for params, size in sizes:
            hub = await pipeline.create("Composite", **params)
            peer = participant(0, video=True)
            async with joined(pipeline, hub, peer):
                await peer.wait_for(lambda p: shows(p, [COLOURS[0]]), timeout=40)
                assert peer.picture is not None and peer.picture.shape[:2] == size
            await hub.release()


async def test_an_empty_composite_sleeps_and_wakes_for_its_first_participants() -> None:
    """A hub nobody sends to stops its clocks once its flows have timed out (a lab's idle rooms
    cost nothing); the first packets wake them, and the participants hear each other."""
    settings = make_settings(network_interfaces="lo", media_flow_timeout=0.2)
    async with (
        running_emulator(settings) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        pipeline = await client.create("MediaPipeline")
        hub = await pipeline.create("Composite")
        media = server.media_set.lookup(hub.id).media  # type: ignore[attr-defined]
        for worker in (media.audio, media.video):
            assert await asyncio.to_thread(worker.asleep.wait, 10), "the hub's clocks never slept"
        peers = [participant(i) for i in range(2)]
        async with contextlib.AsyncExitStack() as stack:
            for peer in peers:
                await stack.enter_async_context(joined(pipeline, hub, peer))
            for index, peer in enumerate(peers):
                assert_hears(
                    await heard_fresh(peer), peer.heard_rate, [TONES[1 - index]], TONES[index]
                )


async def test_composite_participant_joins_mid_call(media_client: KurentoClient) -> None:
    """Two peers talk; a third joins: both then hear it, and it hears both of them."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite")
    peers = [participant(i) for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for peer in peers[:2]:
            await stack.enter_async_context(joined(pipeline, hub, peer))
        assert_hears(await heard_fresh(peers[0]), peers[0].heard_rate, [TONES[1]], TONES[2])
        await stack.enter_async_context(joined(pipeline, hub, peers[2]))
        for index, peer in enumerate(peers):
            others = [t for i, t in enumerate(TONES) if i != index]
            assert_hears(await heard_fresh(peer), peer.heard_rate, others, TONES[index])


async def test_mixer_mixes_the_audio_linked_to_each_port_and_routes_video(
    media_client: KurentoClient,
) -> None:
    """Mixer.connect(AUDIO) adds a source to the mix a sink port sends, connect(VIDEO) routes
    one source's pictures; disconnect(AUDIO) takes a source out; KMS's refusals for VIDEO
    disconnection and DATA."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Mixer")
    peers = [participant(i, video=True) for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for peer in peers:
            _, port = await stack.enter_async_context(joined(pipeline, hub, peer))
            ports.append(port)
        for source in ports[:2]:
            await hub.invoke("connect", media="AUDIO", source=source, sink=ports[2])
        await hub.invoke("connect", media="AUDIO", source=ports[2], sink=ports[0])
        await hub.invoke("connect", media="VIDEO", source=ports[0], sink=ports[1])
        heard = await heard_fresh(peers[2])
        assert_hears(heard, peers[2].heard_rate, [TONES[0], TONES[1]], TONES[2])
        assert_hears(await heard_fresh(peers[0]), peers[0].heard_rate, [TONES[2]], TONES[1])
        await peers[1].wait_for(lambda p: shows(p, [COLOURS[0]]), timeout=30)
        await hub.invoke("disconnect", media="AUDIO", source=ports[1], sink=ports[2])
        assert_hears(await heard_fresh(peers[2]), peers[2].heard_rate, [TONES[0]], TONES[1])
        with pytest.raises(RpcError) as refused:
            await hub.invoke("disconnect", media="VIDEO", source=ports[0], sink=ports[1])
        assert (refused.value.code, refused.value.message) == (
            40005,
            "Video disconnection is not implemented yet",
        )
        with pytest.raises(RpcError) as refused:
            await hub.invoke("connect", media="DATA", source=ports[0], sink=ports[1])
        assert refused.value.code == 40005


async def test_alpha_blending_draws_the_master_and_places_the_others(
    media_client: KurentoClient,
) -> None:
    """setMaster makes a port the background (its size is the output's); setPortProperties
    scales another port into the bottom right quarter above it; each port hears the other."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("AlphaBlending")
    peers = [participant(i, video=True) for i in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for peer in peers:
            _, port = await stack.enter_async_context(joined(pipeline, hub, peer))
            ports.append(port)
        await hub.invoke("setMaster", source=ports[0], zOrder=1)
        await hub.invoke(
            "setPortProperties",
            relativeX=0.5,
            relativeY=0.5,
            zOrder=2,
            relativeWidth=0.5,
            relativeHeight=0.5,
            port=ports[1],
        )

        def blended(peer: Participant) -> bool:
            picture = peer.picture
            if picture is None or picture.shape[:2] != (240, 320):
                return False
            corner = tuple(int(v) for v in picture[20:100, 20:140].reshape(-1, 3).mean(axis=0))
            placed = tuple(int(v) for v in picture[140:220, 180:300].reshape(-1, 3).mean(axis=0))
            return _close(COLOURS[0], corner) and _close(COLOURS[1], placed)  # type: ignore[arg-type]

        for peer in peers:
            await peer.wait_for(blended, timeout=40)
        assert_hears(await heard_fresh(peers[0]), peers[0].heard_rate, [TONES[1]], TONES[0])


async def test_hub_operations_refuse_ports_of_another_hub(media_client: KurentoClient) -> None:
    """A port of another hub is refused with 40107 naming it."""
    pipeline = await media_client.create("MediaPipeline")
    mixer = await pipeline.create("Mixer")
    other = await pipeline.create("Composite")
    mine, foreign = await mixer.create("HubPort"), await other.create("HubPort")
    with pytest.raises(RpcError) as refused:
        await mixer.invoke("connect", media="AUDIO", source=foreign, sink=mine)
    assert refused.value.code == 40107
    assert foreign.id in refused.value.message


class PbxLeg:
    """A PBX's media port: sends a PCMA tone every 20 ms, decodes the PCMA it receives."""

    def __init__(self, frequency: float) -> None:
        self.frequency = frequency
        self.encoder = av.CodecContext.create("pcm_alaw", "w")
        self.encoder.sample_rate = 8000
        self.encoder.layout = "mono"
        self.encoder.format = "s16"
        self.decoder = av.CodecContext.create("pcm_alaw", "r")
        self.decoder.sample_rate = 8000
        self.decoder.layout = "mono"
        self.sample = 0
        self.sequence = 1
        self.heard: list[np.ndarray[Any, Any]] = []
        self.payload_types: set[int] = set()
        self.heard_enough = asyncio.Event()
        """Set once two seconds have been heard."""

    def next_packet(self) -> bytes:
        """The next 20 ms of tone as an RTP packet (payload type 8)."""
        t = (np.arange(160) + self.sample) / 8000
        tone = (np.sin(2 * np.pi * self.frequency * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        payload = b"".join(bytes(p) for p in self.encoder.encode(frame))
        header = struct.pack("!BBHII", 0x80, 8, self.sequence & 0xFFFF, self.sample, 0x5EED)
        self.sample += 160
        self.sequence += 1
        return header + payload

    def received(self, payload_type: int, payload: bytes) -> None:
        """One RTP packet from the endpoint."""
        self.payload_types.add(payload_type)
        for frame in self.decoder.decode(av.Packet(payload)):
            self.heard.append(frame.to_ndarray().reshape(-1))
        if sum(len(x) for x in self.heard) >= 2 * 8000:
            self.heard_enough.set()


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


def decoded_audio(path: Path) -> tuple[np.ndarray[Any, Any], int]:
    """The file's first audio channel, decoded, and its rate."""
    with av.open(str(path)) as container:
        chunks = [
            frame.to_ndarray().reshape(len(frame.layout.channels), -1, order="F")[0]
            if frame.format.is_packed
            else frame.to_ndarray()[0]
            for frame in container.decode(audio=0)
        ]
        rate = container.streams.audio[0].rate
    return np.concatenate(chunks), rate


async def test_pbx_call_recorded_through_a_composite_holds_both_parties(
    media_client: KurentoClient, tmp_path: Path
) -> None:
    """The UC recording case: a WebRTC leg (Opus, 440 Hz) and a PBX leg (RtpEndpoint, PCMA,
    660 Hz) in one Composite whose third port feeds a RecorderEndpoint: the file probes as
    Opus and holds both tones; the PBX hears the WebRTC party in PCMA, not itself."""
    target = tmp_path / "call.webm"
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite")
    browser = participant(0)
    pbx = PbxLeg(TONES[1])
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(joined(pipeline, hub, browser))
        udp = await stack.enter_async_context(udp_peer())
        rtp = await pipeline.create("RtpEndpoint")
        rtp_port = await hub.create("HubPort")
        await rtp.connect(rtp_port)
        await rtp_port.connect(rtp)
        answer = await rtp.invoke("processOffer", offer=peer_sdp(udp.port, audio="8 PCMA/8000"))
        endpoint = ("127.0.0.1", SessionDescription.parse(answer).media[0].port)
        recorder = await pipeline.create(
            "RecorderEndpoint", uri=target.as_uri(), mediaProfile="WEBM_AUDIO_ONLY"
        )
        recorder_port = await hub.create("HubPort")
        await recorder_port.connect(recorder, "AUDIO")
        recording = await recorder.subscribe("Recording")

        async def pbx_media() -> None:
            while True:
                udp.send(pbx.next_packet(), endpoint)
                await asyncio.sleep(0.02)  # the PBX's own 20 ms packet clock

        async def pbx_ears() -> None:
            while True:
                view = await udp.next_rtp(timeout=30)
                pbx.received(view.payload_type, view.payload)

        tasks = [asyncio.ensure_future(pbx_media()), asyncio.ensure_future(pbx_ears())]
        try:
            await recorder.invoke("record")
            await recording.get(timeout=15)
            await browser.wait_for(browser.heard_seconds(3.0), timeout=30)
            assert_hears(browser.last_heard(1.0), browser.heard_rate, [TONES[1]], TONES[0])
            await asyncio.wait_for(pbx.heard_enough.wait(), 30)
            heard = np.concatenate(pbx.heard)[-8000:]
            assert pbx.payload_types == {8}
            assert_hears(heard, 8000, [TONES[0]], TONES[1])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await recorder.invoke("stopAndWait")
    info = probe(target)
    assert [s["codec_name"] for s in info["streams"]] == ["opus"]
    samples, rate = decoded_audio(target)
    assert len(samples) > rate
    levels = [tone_level(samples[-rate:], rate, f) for f in TONES[:2]]
    quiet = tone_level(samples[-rate:], rate, TONES[2])
    assert min(levels) > 10 * quiet, (levels, quiet)


async def _flow_states(events: EventStream, media_type: str, state: str) -> None:
    """Until the port reports ``state`` for ``media_type``."""
    async with asyncio.timeout(20):
        while True:
            event = await events.get(timeout=20)
            if (event["mediaType"], event["state"]) == (media_type, state):
                return


async def test_composite_ports_report_flows_from_real_media(media_client: KurentoClient) -> None:
    """A port's flow in is FLOWING once its participant's audio arrives and NOT_FLOWING after
    the participant leaves; the other port's flow out stops with it (nobody left to hear)."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite")
    peers = [participant(i) for i in range(2)]
    ports = [await hub.create("HubPort") for _ in peers]
    flows_in = await ports[0].subscribe("MediaFlowInStateChanged")
    flows_out = await ports[1].subscribe("MediaFlowOutStateChanged")
    assert await ports[0].invoke("isMediaFlowingIn", mediaType="AUDIO") is False
    try:
        for peer, port in zip(peers, ports, strict=True):
            endpoint = await pipeline.create("WebRtcEndpoint")
            await endpoint.connect(port)
            await port.connect(endpoint)
            await negotiate_connected(endpoint, peer)
        await _flow_states(flows_in, "AUDIO", "FLOWING")
        await _flow_states(flows_out, "AUDIO", "FLOWING")
        await peers[0].close()
        await _flow_states(flows_in, "AUDIO", "NOT_FLOWING")
        await _flow_states(flows_out, "AUDIO", "NOT_FLOWING")
        assert await ports[0].invoke("isMediaFlowingIn", mediaType="AUDIO") is False
    finally:
        for peer in peers:
            await peer.close()


async def test_composite_keyframe_request_reaches_the_shared_encoder(
    media_client: KurentoClient,
) -> None:
    """A viewer's PLI makes the grid's shared VP8 encoder send a keyframe."""
    pipeline = await media_client.create("MediaPipeline")
    hub = await pipeline.create("Composite", width=320, height=240)
    talker = participant(0, video=True)
    viewer = ClientPeer(audio=False, video=True)
    async with joined(pipeline, hub, talker):
        endpoint = await pipeline.create("WebRtcEndpoint")
        port = await hub.create("HubPort")
        await port.connect(endpoint)
        seen = spy_received(viewer)
        try:
            await negotiate_connected(endpoint, viewer)
            await viewer.wait_for(lambda p: p.frames.get("video", 0) > 30, timeout=30)

            def keyframes() -> set[int]:
                return {v.timestamp for v in seen if vp8_keyframe(v.payload)}

            before = keyframes()
            receiver = viewer.pc.getTransceivers()[0].receiver
            await receiver._send_rtcp_pli(seen[-1].ssrc)
            await viewer.wait_for(lambda _: len(keyframes() - before) > 0, timeout=10)
        finally:
            await viewer.close()


@dataclass(eq=False)
class _Viewer:
    """A hub port whose sinks take VP8 at ``limit`` bps (their REMB), or say nothing."""

    limit: int | None

    def wants(self, kind: str) -> list[Codec] | None:
        return [VP8] if kind == "video" else None

    def mixed(self, kind: str, packet: MediaPacket) -> None:
        pass

    def keyframe_needed(self) -> None:
        pass

    def flow_stopped(self, direction: str, kind: str) -> None:
        pass

    def video_send_limit(self) -> int | None:
        return self.limit


async def test_composite_picture_is_encoded_for_its_slowest_viewer_within_bounds() -> None:
    """One output codec, three viewers: the grid's encoder aims at the lowest REMB among them,
    held within the hub's encoder bounds (MediaElement.conf.ini); with no REMB known, at the
    configured encoderBitrate."""
    bounds = EncoderBitrates(target=300_000, low=350_000, high=1_000_000)
    viewers = [_Viewer(900_000), _Viewer(None), _Viewer(600_000)]
    media = HubMedia(
        "test",
        MixFormat(bitrates=bounds),
        lambda: list(viewers),
        lambda p, s: Mix(),
        GridLayout(64, 48),
    )
    try:
        media._refresh(0.0)  # the loop side's refresh, which each audio tick runs
        assert media.video is not None
        assert list(media.video.bitrates.values()) == [600_000]
        (out_key,) = media.video.bitrates
        assert media.video.encoding(out_key, VP8).bitrate == 600_000  # what the encoder aims at
        viewers[2].limit = 200_000
        media._refresh(0.0)
        assert list(media.video.bitrates.values()) == [350_000]
        viewers[:] = [_Viewer(None)]
        media._refresh(0.0)
        assert list(media.video.bitrates.values()) == [350_000]  # 300 kbps, below the floor
        assert media.video.encoding(out_key, VP8).bitrate == 350_000
    finally:
        await media.close()


def test_grid_cells_follow_kms_composite_layout() -> None:
    """1 picture fills the output, 2 sit side by side, then ceil(sqrt(n)) columns."""
    assert grid(1, 800, 600) == [(0, 0, 800, 600)]
    assert grid(2, 800, 600) == [(0, 0, 400, 600), (400, 0, 400, 600)]
    assert grid(3, 800, 600) == [(0, 0, 400, 300), (400, 0, 400, 300), (0, 300, 400, 300)]
    assert len(grid(5, 800, 600)) == 5 and grid(5, 800, 600)[4] == (266, 300, 266, 300)


def test_grid_pictures_keep_their_shape_centred_in_their_cell() -> None:
    """A 4:3 picture in a tall cell is letterboxed, centred."""
    picture = av.VideoFrame(640, 480, "yuv420p")
    assert fit(picture, 400, 0, 400, 600) == (400, 150, 400, 300)


def test_blend_places_ports_by_z_order_relative_to_the_master() -> None:
    """The master sets the size; a placed port is scaled to its share, above a lower z."""
    master, placed, plain = (av.VideoFrame(320, 240, "yuv420p") for _ in range(3))
    layout = BlendLayout("m", 3, {"p": Placement(0.5, 0.25, 0.5, 0.5, 4)})
    width, height, layers = blend(layout, {"p": placed, "m": master, "x": plain})
    assert (width, height) == (320, 240)
    assert [(layer[0], layer[1:]) for layer in layers] == [
        (plain, (0, 0, 320, 240)),
        (master, (0, 0, 320, 240)),
        (placed, (160, 60, 160, 120)),
    ]
