"""Hostile media against a running server with negotiated calls (issue 18).

Real sockets on loopback: an attacker's UDP socket (an address ICE never validated, a stranger to
the PBX's SDP) and the legitimate peers' own sockets (validated, so that what they send reaches
SRTP and the parsers). Every attack is dropped and counted in ``/metrics`` under
``kurento_media_dropped_total{reason=...}``, nothing it sends is forwarded (RTP bleed), the
attacked call and a bystander call keep their media, and the server answers afterwards.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator.app import App, running_emulator
from emulator.media.legs.aiortc_adapter import nominated_pairs, srtp_sessions
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.conftest import make_settings
from tests.media.peers import ClientPeer, client_peer, negotiate
from tests.media.rtp_peers import RtpSender, peer_sdp, udp_peer
from tests.observability.admin_http import http

ATTACKER_SSRC = 0x0BAD5EED


def dropped(server: App) -> dict[str, float]:
    """``kurento_media_dropped_total`` by reason, as /metrics shows it now."""
    text = server.metrics.exposition().decode()
    found = re.findall(r'^kurento_media_dropped_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


@pytest.fixture
async def hostile_server() -> AsyncIterator[tuple[App, KurentoClient]]:
    """A server on loopback with its admin listener, and a client."""
    settings = make_settings(network_interfaces="lo", admin_port=0)
    async with (
        running_emulator(settings) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        yield server, client


def _flowing(peer: ClientPeer) -> bool:
    return peer.frames.get("audio", 0) > 3 and peer.frames.get("video", 0) > 3


async def _loopback_call(client: KurentoClient, peer: ClientPeer) -> RemoteObject:
    """A WebRtcEndpoint connected to itself: the peer gets its own media back."""
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    await negotiate(endpoint, peer)
    await peer.wait_for(_flowing)
    return endpoint


def _server_address(server: App, endpoint: RemoteObject) -> tuple[str, int]:
    """The server's local address of the endpoint's selected candidate pair."""
    media: Any = server.media_set.objects[endpoint.id].media  # type: ignore[attr-defined]
    transport = next(iter(media.peer.transports.values()))
    local = transport.connection.selected_pair()[0]
    return local.host, local.port


async def _keeps_flowing(peer: ClientPeer, frames: int = 30) -> None:
    """Wait until the peer has decoded ``frames`` more video frames."""
    target = peer.frames.get("video", 0) + frames
    await peer.wait_for(lambda p: p.frames.get("video", 0) >= target, timeout=30)


def _rtp(ssrc: int = ATTACKER_SSRC, payload: bytes = bytes(100), first: int = 0x80) -> bytes:
    return struct.pack("!BBHII", first, 96, 1, 1, ssrc) + payload


def _extension_past_the_end() -> bytes:
    """RTP whose header extension claims 255 words it does not have."""
    return struct.pack("!BBHII", 0x90, 0, 7, 7, 0x1234ABCD) + struct.pack("!HH", 0xBEDE, 255)


def _lying_rtcp() -> list[bytes]:
    """RTCP compounds whose length fields lie: too long, zero, past the datagram."""
    return [
        struct.pack("!BBHI", 0x81, 201, 60, 5) + bytes(20),  # RR claiming 244 bytes
        struct.pack("!BBHI", 0x80, 200, 0, 5),  # SR of length 0 (no sender info)
        struct.pack("!BBHII", 0x8F, 206, 3, 5, 0) + b"REMB",  # REMB cut after its name
        struct.pack("!BBHI", 0x81, 205, 0xFFFF, 5) + bytes(8),  # NACK past the end
    ]


CLIENT_HELLO = bytes.fromhex("16fefd000000000000000000") + os.urandom(120)
"""A DTLS 1.2 record header (handshake) with a ClientHello-sized body."""


async def test_hostile_datagrams_from_outside_ice_dropped_and_counted(
    hostile_server: tuple[App, KurentoClient],
) -> None:
    """From an address ICE never validated: RTP, RTCP, a DTLS ClientHello flood, oversized,
    truncated and empty datagrams, STUN with lying attribute lengths. The RTP never becomes a
    stream (no bleed), each is counted (``unvalidated_source``, ``malformed_stun``), the
    attacked call and a bystander call keep their media, the server answers."""
    server, client = hostile_server
    async with client_peer() as victim, client_peer() as bystander:
        endpoint = await _loopback_call(client, victim)
        await _loopback_call(client, bystander)
        target = _server_address(server, endpoint)
        before = dropped(server)
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            attacker.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            datagrams = [
                _rtp(),
                *_lying_rtcp(),
                b"\x80",
                _rtp(payload=bytes(60_000)),
                _extension_past_the_end(),
            ] + [CLIENT_HELLO] * 1000
            for data in datagrams:
                attacker.sendto(data, target)
                sent += 1
            attacker.sendto(b"", target)
            # STUN binding request whose PRIORITY attribute is 2 bytes long (aioice's parser
            # raises struct.error on it, which it does not catch), and a STUN header cut short.
            stun = struct.pack("!HHI", 0x0001, 8, 0x2112A442) + os.urandom(12)
            attacker.sendto(stun + struct.pack("!HH", 0x0024, 2) + b"\x00\x01\x00\x00", target)
            attacker.sendto(stun[:10], target)

        def counted(_: ClientPeer) -> bool:
            now = dropped(server)
            return (
                now["unvalidated_source"] - before["unvalidated_source"] >= sent
                and now["malformed_stun"] > before["malformed_stun"]
            )

        await victim.wait_for(counted, timeout=30)
        await _keeps_flowing(victim)
        await _keeps_flowing(bystander)
        stats = await endpoint.invoke("getStats")
        ssrcs = {s.get("ssrc") for s in stats.values() if s["type"] == "inboundrtp"}
        assert str(ATTACKER_SSRC) not in ssrcs
        assert (await client.ping())["value"] == "pong"
        assert server.admin is not None
        status, text = await http(server.admin.url, "/metrics")
        assert status == 200 and 'kurento_media_dropped_total{reason="unvalidated_source"}' in text


async def test_hostile_srtp_and_rtcp_from_the_validated_peer(
    hostile_server: tuple[App, KurentoClient],
) -> None:
    """From the peer's own validated socket: SRTP with bad authentication tags, truncated and
    oversized SRTP and SRTCP, RTP whose header extension runs past the end (libsrtp refuses
    it), and properly protected SRTCP with lying lengths and a REMB cut short: dropped and
    counted (``srtp_auth``, ``malformed_rtcp``), while that call and a bystander's keep their
    media. Before the fix an oversized SRTCP datagram or the short REMB raised out of aiortc's
    DTLS receive loop, which closed the transport: the call was over."""
    server, client = hostile_server
    async with client_peer() as victim, client_peer() as bystander:
        await _loopback_call(client, victim)
        await _loopback_call(client, bystander)
        pair = nominated_pairs(victim.ice)[1]
        before = dropped(server)
        forged = [
            _rtp(payload=os.urandom(100)),  # a tag that cannot match
            _rtp(payload=b"")[:12],  # a header and nothing to authenticate
            _rtp(payload=os.urandom(9000)),  # past libsrtp's buffer: ValueError, not Error
            struct.pack("!BBHI", 0x80, 200, 6, 5) + os.urandom(3000),  # SRTCP, the same
            _extension_past_the_end() + bytes(10),
        ]
        for data in forged:
            pair.protocol.transport.sendto(data, pair.remote_addr)
        tx, _ = srtp_sessions(victim.pc.getTransceivers()[0].receiver.transport)
        lying = _lying_rtcp()
        for data in lying:
            pair.protocol.transport.sendto(bytes(tx.protect_rtcp(data)), pair.remote_addr)

        def counted(_: ClientPeer) -> bool:
            now = dropped(server)
            return now["srtp_auth"] - before["srtp_auth"] >= len(forged) and now[
                "malformed_rtcp"
            ] - before["malformed_rtcp"] >= len(lying)

        await victim.wait_for(counted, timeout=30)
        await _keeps_flowing(victim)
        await _keeps_flowing(bystander)
        assert (await client.ping())["value"] == "pong"


async def test_hostile_plain_rtp_dropped_and_counted(
    hostile_server: tuple[App, KurentoClient],
) -> None:
    """An RtpEndpoint in a call with a PBX: a stranger's RTP (bleed attempt) is dropped as
    ``foreign_source`` and never forwarded; from the PBX's own address, RTP with an extension
    past the end and truncated RTP are ``malformed_rtp``, RTCP with lying lengths
    ``malformed_rtcp``; the PBX's real audio keeps coming back."""
    server, client = hostile_server
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("RtpEndpoint")
    await endpoint.connect(endpoint)
    async with udp_peer() as pbx, udp_peer() as stranger:
        answer = await endpoint.invoke("processOffer", offer=peer_sdp(pbx.port))
        media = SessionDescription.parse(answer).media[0]
        target = ("127.0.0.1", media.port)
        sender = RtpSender(0)
        pbx.send(sender.packet(), target)
        assert (await pbx.next_rtp()).ssrc != ATTACKER_SSRC
        before = dropped(server)
        bleed = RtpSender(0, ssrc=ATTACKER_SSRC)
        for _ in range(20):
            stranger.send(bleed.packet(), target)
        malformed = [_extension_past_the_end(), b"\x80\x00\x00", _rtp()[:11]]
        for data in malformed:
            pbx.send(data, target)
        for data in _lying_rtcp():
            pbx.send(data, target)
        for _ in range(5):
            pbx.send(sender.packet(), target)
            assert (await pbx.next_rtp()).ssrc != ATTACKER_SSRC
        now = dropped(server)
        assert now["foreign_source"] - before["foreign_source"] == 20
        assert now["malformed_rtp"] - before["malformed_rtp"] == len(malformed)
        assert now["malformed_rtcp"] - before["malformed_rtcp"] == len(_lying_rtcp())
        assert stranger.raw == []
        stats = await endpoint.invoke("getStats")
        ssrcs = {s.get("ssrc") for s in stats.values() if s.get("type") == "inboundrtp"}
        assert str(ATTACKER_SSRC) not in ssrcs
