"""Fault injection on real media: seeded RTP loss at the sending side, ICE that never connects."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from emulator.app import App
from emulator.faults import FaultController
from emulator.media.lab.impairment import Impairment
from emulator.media.services import MediaOwnerIds, MediaServices
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings, server_and_client
from tests.media.peers import client_peer, negotiate
from tests.observability.admin_http import metric


@contextlib.asynccontextmanager
async def faulty_lab(
    **overrides: Any,
) -> AsyncIterator[tuple[App, KurentoClient]]:
    """A media server with fault injection (no admin listener: the controller is used directly)."""
    settings = make_settings(
        network_interfaces="lo",
        admin_port=None,
        fault_injection=True,
        **overrides,
    )
    async with server_and_client(settings) as lab:
        yield lab


def _drops(seed: int, packets: int = 2000) -> list[int]:
    """Indexes of the packets an rtp loss rule of 5% drops for the first endpoint."""
    media_services = MediaServices.from_settings(make_settings())
    rule = {"kind": "rtp", "media": "AUDIO", "loss": 0.05}
    controller = FaultController(media_services.live, seed, [rule])
    fake: Any = SimpleNamespace(impairments=None)
    controller._impair(fake, MediaOwnerIds("endpoint", "pipeline", 0))
    assert set(fake.impairments) == {"audio"}
    impairment: Impairment = fake.impairments["audio"]
    sent: list[bytes] = []

    def send(_line: Any, data: bytes) -> bool:
        sent.append(data)
        return True

    for index in range(packets):
        impairment.send(send, None, index.to_bytes(2, "big"))
    kept = {int.from_bytes(data, "big") for data in sent}
    return [index for index in range(packets) if index not in kept]


def test_fault_rtp_loss_is_reproducible_from_the_seed() -> None:
    """The same seed drops the same packets; another seed others; the rate is near 5%."""
    first, again, other = _drops(seed=42), _drops(seed=42), _drops(seed=43)
    assert first == again
    assert first != other
    assert 50 <= len(first) <= 150


def test_fault_rtp_loss_uses_its_own_rng() -> None:
    """Impairments never draw from the global random module (tests stay reproducible)."""
    state = random.getstate()
    _drops(seed=1, packets=100)
    assert random.getstate() == state


async def test_fault_lose_audio_at_the_sending_side() -> None:
    """An rtp loss rule on AUDIO drops that share of the audio sent; video is untouched and
    the far peer sees the loss."""
    async with faulty_lab(
        fault_seed=5, faults=[{"kind": "rtp", "media": "AUDIO", "loss": 0.3}]
    ) as (server, client):
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.connect(endpoint)
        async with client_peer() as peer:
            await negotiate(endpoint, peer)
            await peer.wait_for(lambda p: p.frames.get("audio", 0) > 60, timeout=30)
            stats = await endpoint.invoke("getStats", mediaType="AUDIO")
            audio_out = next(s for s in stats.values() if s["type"] == "outboundrtp")
            assert server.faults is not None
            assert server.faults.injected["rtp"] == 1  # one endpoint, audio
            dropped = server.faults.impairments.dropped
            assert 0.15 < dropped / audio_out["packetsSent"] < 0.45
            report = await peer.pc.getStats()
            lost = [
                s.packetsLost
                for s in report.values()
                if s.type == "inbound-rtp" and s.kind == "audio"
            ]
            assert lost and lost[0] > 0
            text = server.metrics.exposition().decode()
            assert metric(text, "kurento_fault_rtp_packets_total", action="dropped") == dropped
            assert metric(text, "kurento_rtp_packets_total", direction="out", kind="video") > 0
            assert metric(text, "kurento_rtp_packets_total", direction="in", kind="audio") > 0


async def test_fault_ice_blackhole_keeps_the_next_endpoint_from_connecting() -> None:
    """With an ice_blackhole rule (count 1) the next endpoint never connects; the one after does."""
    async with faulty_lab(faults=[{"kind": "ice_blackhole", "count": 1}]) as (server, client):
        pipeline = await client.create("MediaPipeline")
        dark = await pipeline.create("WebRtcEndpoint")
        lit = await pipeline.create("WebRtcEndpoint")
        await dark.connect(dark)
        await lit.connect(lit)
        dark_ice = await dark.subscribe("IceComponentStateChanged")
        async with client_peer() as dark_peer, client_peer() as lit_peer:
            await negotiate(dark, dark_peer)
            await negotiate(lit, lit_peer)
            await lit_peer.wait_for(lambda p: p.frames.get("video", 0) > 3)
            states = []
            while not dark_ice.queue.empty():
                states.append(dark_ice.queue.get_nowait()["state"])
            assert "CONNECTED" not in states
            assert dark_peer.frames == {}
            assert server.faults is not None
            assert server.faults.injected["ice_blackhole"] == 1
            assert server.faults.rules == []
