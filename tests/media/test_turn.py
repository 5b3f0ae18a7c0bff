"""STUN and TURN with a real server (coturn): server-reflexive and relayed candidates, media over
the relay (TURN over UDP, TCP and TLS), the TURN client socket inside the port range."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulator.app import App
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings, server_and_client
from tests.media.conftest import TURN_USER, Listeners, coturn
from tests.media.peers import client_peer, negotiate
from tests.media.sockets import tcp_connections_of_this_process, udp_ports_of_this_process
from tests.media.test_ports import OFFER
from tests.ports import PortBlock, free_port_range


async def _gather(client: KurentoClient, **properties: object) -> list[str]:
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    for name, value in properties.items():
        await endpoint.invoke("set" + name[0].upper() + name[1:], **{name: value})
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    await endpoint.invoke("processOffer", offer=OFFER)
    await endpoint.invoke("gatherCandidates")
    await done.get(timeout=15)
    texts = []
    while not found.queue.empty():
        texts.append(found.queue.get_nowait()["candidate"]["candidate"])
    return texts


async def test_stun_server_gives_server_reflexive_candidate(
    turn_server: tuple[str, int], media_client: KurentoClient
) -> None:
    """stunServerAddress/Port make the endpoint gather a srflx candidate."""
    host, port = turn_server
    candidates = await _gather(media_client, stunServerAddress=host, stunServerPort=port)
    assert any(" typ srflx " in c for c in candidates), candidates


@contextlib.asynccontextmanager
async def relay_only_call(
    host: str, port: int, transport: str, media: PortBlock
) -> AsyncIterator[tuple[App, list[str]]]:
    """A relay-only server whose turnUrl names coturn over ``transport``, its endpoint looping an
    aiortc peer's media back once the peer decoded audio and video: yields the server and the
    candidates the endpoint trickled, while the call is up."""
    settings = make_settings(
        min_port=media.low,
        max_port=media.high,
        network_interfaces="lo",
        ice_relay_only=True,
        turn_url=f"{TURN_USER[0]}:{TURN_USER[1]}@{host}:{port}?transport={transport}",
    )
    async with server_and_client(settings) as (server, client):
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.connect(endpoint)
        found = await endpoint.subscribe("IceCandidateFound")
        async with client_peer() as peer:
            await negotiate(endpoint, peer)
            await peer.wait_for(
                lambda p: p.frames.get("audio", 0) > 3 and p.frames.get("video", 0) > 3
            )
            candidates = []
            while not found.queue.empty():
                candidates.append(found.queue.get_nowait()["candidate"]["candidate"])
            yield server, candidates


async def test_turn_relay_only_media_flows(
    turn_server: tuple[str, int], turn_relay_ports: PortBlock
) -> None:
    """Relay-only with turnUrl: only relay candidates, media loops back through coturn, and the
    TURN client socket is inside the port range."""
    host, port = turn_server
    media = free_port_range(100)
    async with relay_only_call(host, port, "udp", media) as (server, relayed):
        assert relayed and all(" typ relay " in c for c in relayed)
        assert int(relayed[0].split()[5]) in turn_relay_ports
        assert server.media_services.ports.usage().in_use >= 1
        assert [p for p in udp_ports_of_this_process() if p in media]


@pytest.mark.parametrize("listeners", ["tcp", "tls"])
async def test_turn_over_stream_relay_only_media_flows(
    listeners: Listeners, turn_relay_ports: PortBlock, tmp_path: Path
) -> None:
    """turnUrl ``?transport=tcp`` (coturn without UDP listeners) and ``?transport=tls`` (coturn
    with TLS only, its certificate self-signed: accepted, as KMS does): the relay carries the
    call, decoded at the peer, and the TCP socket connected to coturn is inside the port range
    (no UDP socket is)."""
    media = free_port_range(100)
    async with (
        coturn(turn_relay_ports, tmp_path, listeners) as (host, port),
        relay_only_call(host, port, listeners, media) as (server, relayed),
    ):
        to_turn = [local for local, remote in tcp_connections_of_this_process() if remote == port]
        assert to_turn and all(local in media for local in to_turn), (to_turn, media)
        assert not [p for p in udp_ports_of_this_process() if p in media]
        assert server.media_services.ports.usage().in_use == len(to_turn)
        assert relayed and all(" typ relay " in c for c in relayed)
        assert all(int(c.split()[5]) in turn_relay_ports for c in relayed)
