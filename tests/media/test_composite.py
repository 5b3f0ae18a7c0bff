"""Composite: real aiortc peers in one conference, each hearing the others (not itself) and
seeing the grid; a PBX leg (plain RTP, PCMA) and a WebRTC leg recorded through the mix."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from emulator.app import App
from emulator.media.mixing import grid
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import RpcError
from protocol.sdp import SessionDescription
from tests.media.peers import ClientPeer, negotiate_connected
from tests.media.rtp_peers import TonePeer, peer_sdp, udp_peer

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
