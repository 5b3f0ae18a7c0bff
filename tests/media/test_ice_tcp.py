"""ICE over TCP (RFC 6544): TCP host candidates in the port range, and media across a TCP pair.

aiortc gathers UDP only, so the TCP pair is between two WebRtcEndpoints of one server that
exchange TCP candidates only: an aiortc peer sends to A over UDP, A feeds B, B and C connect over
TCP, C feeds A, and A returns the media to the peer, which decodes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulator.media.net.framed_tcp import FramedTcpTransport
from emulator.media.net.ports import PortRange
from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from protocol.sdp import IceCandidateLine
from tests.conftest import make_settings, server_and_client
from tests.media.peers import client_peer, negotiate
from tests.media.sockets import tcp_connections_of_this_process, time_wait_connections
from tests.ports import free_port_range


async def _candidates(found: EventStream, done: EventStream) -> list[dict[str, Any]]:
    """Every IceCandidateFound until IceGatheringDone."""
    await done.get(timeout=15)
    events = []
    while not found.queue.empty():
        events.append(found.queue.get_nowait()["candidate"])
    return events


def _lines(events: list[dict[str, Any]]) -> list[IceCandidateLine]:
    return [IceCandidateLine.parse(event["candidate"]) for event in events]


async def test_ice_tcp_gathers_passive_and_active_host_candidates(
    media_client: KurentoClient,
) -> None:
    """With iceTcp (the default) each host address has a UDP, a passive TCP (a listener in the
    range) and an active TCP candidate (port 9), priorities UDP > active > passive; with iceTcp
    off, UDP only."""
    pipeline = await media_client.create("MediaPipeline")
    offerer = await pipeline.create("WebRtcEndpoint")
    off = await pipeline.create("WebRtcEndpoint")
    await off.invoke("setIceTcp", iceTcp=False)
    lines = {}
    for name, endpoint in (("on", offerer), ("off", off)):
        found = await endpoint.subscribe("IceCandidateFound")
        done = await endpoint.subscribe("IceGatheringDone")
        await endpoint.invoke("generateOffer")
        await endpoint.invoke("gatherCandidates")
        lines[name] = _lines(await _candidates(found, done))
    assert {c.transport.lower() for c in lines["off"]} == {"udp"}
    on = lines["on"]
    udp = [c for c in on if c.transport.lower() == "udp"]
    passive = [c for c in on if c.tcptype == "passive"]
    active = [c for c in on if c.tcptype == "active"]
    assert len(udp) == len(passive) == len(active) >= 1, on
    assert all(c.transport.lower() == "tcp" for c in passive + active)
    assert all(c.port == 9 for c in active)
    assert min(c.priority for c in udp) > max(c.priority for c in active)
    assert min(c.priority for c in active) > max(c.priority for c in passive)


async def _forward_tcp(events: list[dict[str, Any]], to: RemoteObject) -> int:
    count = 0
    for event in events:
        if " tcp " in event["candidate"].lower():
            await to.invoke("addIceCandidate", candidate=event)
            count += 1
    return count


async def _selected_tcp(endpoint: RemoteObject) -> tuple[dict[str, Any], dict[str, Any]]:
    stats = await endpoint.invoke("getStats")
    local = [s for s in stats.values() if s["type"] == "localcandidate"]
    remote = [s for s in stats.values() if s["type"] == "remotecandidate"]
    assert len(local) == len(remote) == 1, stats
    return local[0], remote[0]


async def test_media_crosses_a_tcp_candidate_pair() -> None:
    """Two endpoints that know only each other's TCP candidates connect over TCP (RFC 4571
    records): the peer decodes audio and video that crossed it, both selected pairs are TCP,
    and both ends of every TCP connection of the call are inside the port range."""
    media = free_port_range(100)
    settings = make_settings(min_port=media.low, max_port=media.high, network_interfaces="lo")
    async with server_and_client(settings) as (_server, client):
        pipeline = await client.create("MediaPipeline")
        a = await pipeline.create("WebRtcEndpoint")
        b = await pipeline.create("WebRtcEndpoint")
        c = await pipeline.create("WebRtcEndpoint")
        await a.connect(b)
        await c.connect(a)
        streams = {}
        for name, endpoint in (("b", b), ("c", c)):
            streams[name] = (
                await endpoint.subscribe("IceCandidateFound"),
                await endpoint.subscribe("IceGatheringDone"),
            )
        connected = await c.subscribe("ConnectionStateChanged")
        offer = await b.invoke("generateOffer")
        answer = await c.invoke("processOffer", offer=offer)
        await b.invoke("processAnswer", answer=answer)
        await b.invoke("gatherCandidates")
        await c.invoke("gatherCandidates")
        from_b, from_c = await asyncio.gather(
            _candidates(*streams["b"]), _candidates(*streams["c"])
        )
        assert await _forward_tcp(from_b, c) >= 2
        assert await _forward_tcp(from_c, b) >= 2
        while (await connected.get(timeout=20))["newState"] != "CONNECTED":
            pass
        async with client_peer() as peer:
            await negotiate(a, peer)
            await peer.wait_for(
                lambda p: p.frames.get("audio", 0) > 3 and p.frames.get("video", 0) > 3
            )
            for endpoint in (b, c):
                local, remote = await _selected_tcp(endpoint)
                assert (local["transport"], remote["transport"]) == ("tcp", "tcp")
            call = [
                (local, remote)
                for local, remote in tcp_connections_of_this_process()
                if local in media or remote in media
            ]
            assert call and all(local in media and remote in media for local, remote in call)


class _Records(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.records: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.lost = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.records.put_nowait((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


async def _reset(reader: asyncio.StreamReader) -> None:
    """The server reset the connection (no TIME_WAIT left on its port)."""
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)


async def test_framed_tcp_records_limit_and_close() -> None:
    """RFC 4571 records split across reads arrive whole, keyed by the peer's address; replies go
    back on that connection; connections past the bound are closed; closing the transport closes
    its connections (resets: no TIME_WAIT keeps the port) and its listener (the port returns to
    the range, bindable again at once)."""
    block = free_port_range(4)
    ports = PortRange(block.low, block.high)
    protocol = _Records()
    transport = FramedTcpTransport(
        protocol, listener=ports.bind_tcp("127.0.0.1"), max_connections=1
    )
    await transport.start()
    address = transport.get_extra_info("sockname")
    reader, writer = await asyncio.open_connection(*address)
    record = b"\x80" + bytes(range(200))
    framed = len(record).to_bytes(2, "big") + record
    writer.write(framed[:1])
    await writer.drain()
    writer.write(framed[1:50])
    await writer.drain()
    writer.write(framed[50:] + b"\x00\x01x")
    data, peer = await asyncio.wait_for(protocol.records.get(), 5)
    assert data == record and peer == writer.get_extra_info("sockname")[:2]
    assert await asyncio.wait_for(protocol.records.get(), 5) == (b"x", peer)
    transport.sendto(b"reply", peer)
    assert await asyncio.wait_for(reader.readexactly(7), 5) == b"\x00\x05reply"
    extra_reader, extra_writer = await asyncio.open_connection(*address)
    await _reset(extra_reader)  # refused: one at most
    assert transport.refused == 1
    transport.close()
    await asyncio.wait_for(protocol.lost.wait(), 5)
    await _reset(reader)
    clients = {w.get_extra_info("sockname")[1] for w in (writer, extra_writer)}
    for w in (writer, extra_writer):
        w.close()
    assert ports.usage().in_use == 0
    # Resets, not FINs: neither connection is left in TIME_WAIT on the range's port (which would
    # keep the port from being bound again for a minute). Other tests' connections on a recycled
    # block may be, which is why only these two are looked at.
    lingering = [(p, c) for p, c in time_wait_connections() if p in block and c in clients]
    assert not lingering
