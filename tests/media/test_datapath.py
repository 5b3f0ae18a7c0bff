"""The compiled forwarding loop in a running server: it forwards what the Python path would, the
Python path takes streams back whenever their journey changes, and ``datapath=python`` forwards
everything in Python as before.

Real aiortc peers on loopback; the forwarder's own counters say who forwarded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from emulator.app import App, running_emulator
from emulator.media import fastpath
from emulator.media.fastpath import compiled_available
from emulator.media.session import datapath
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.conftest import make_settings
from tests.media.peers import ClientPeer, negotiate
from tests.media.rtp_peers import RtpSender, peer_sdp, spy_received, udp_peer

needs_compiled = pytest.mark.skipif(
    not compiled_available(), reason="the compiled loop is not built (make build)"
)


@contextlib.asynccontextmanager
async def server(datapath_name: str) -> AsyncIterator[tuple[App, KurentoClient]]:
    settings = make_settings(network_interfaces="lo", datapath=datapath_name)
    async with (
        running_emulator(settings) as app,
        await KurentoClient.connect(app.urls["ws"], reconnect=False) as client,
    ):
        yield app, client


def counters(app: App) -> dict[str, int]:
    forwarder = app.media_services.pollers.of(asyncio.get_running_loop()).forwarder
    assert forwarder is not None
    figures: dict[str, int] = forwarder.counters()  # type: ignore[attr-defined]
    return figures


def _both(count: int) -> Any:
    return lambda p: p.frames.get("audio", 0) > count and p.frames.get("video", 0) > count


@contextlib.asynccontextmanager
async def call(
    pipeline: RemoteObject, count: int
) -> AsyncIterator[list[tuple[RemoteObject, ClientPeer]]]:
    pairs: list[tuple[RemoteObject, ClientPeer]] = []
    try:
        for _ in range(count):
            endpoint = await pipeline.create("WebRtcEndpoint")
            peer = ClientPeer()
            pairs.append((endpoint, peer))
            await negotiate(endpoint, peer)
        yield pairs
    finally:
        for _, peer in pairs:
            await peer.close()


async def _sent(endpoint: RemoteObject, media_type: str) -> int:
    stats = await endpoint.invoke("getStats", mediaType=media_type)
    return sum(s["packetsSent"] for s in stats.values() if s["type"] == "outboundrtp")


@needs_compiled
async def test_a_one_to_one_call_is_forwarded_by_the_compiled_loop() -> None:
    """A <-> B: once the first packets went through Python, the compiled loop forwards both
    ways; both peers decode audio and video, and getStats keeps counting what it sends."""
    async with server("compiled") as (app, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, peer_a), (b, peer_b)]:
            await a.connect(b)
            await b.connect(a)
            await peer_a.wait_for(_both(3))
            await peer_b.wait_for(_both(3))
            before = counters(app)["forwarded"]
            audio_sent = await _sent(b, "AUDIO")
            seen = peer_b.frames["video"]
            await peer_b.wait_for(lambda p: p.frames["video"] > seen + 30)
            await peer_a.wait_for(_both(seen + 30))
            assert counters(app)["forwarded"] > before + 50
            assert await _sent(b, "AUDIO") > audio_sent  # figures synced from the loop
            assert len(datapath.ACTIVE) >= 2
            flows = await b.invoke("isMediaFlowingOut", mediaType="VIDEO")
            assert flows is True


@needs_compiled
async def test_a_sink_connected_while_routed_gets_the_media() -> None:
    """A link added while the loop forwards A -> B drops the routes: the new sink C is reached
    at once (through Python, then the route learnt again with two sinks)."""
    async with server("compiled") as (_, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 3) as [(a, _), (b, peer_b), (c, peer_c)]:
            await a.connect(b)
            await peer_b.wait_for(_both(10))
            assert any(r.source is not None for r in datapath.ACTIVE.values())
            await a.connect(c)
            await peer_c.wait_for(_both(10))
            fanouts = [len(r.sinks) for r in datapath.ACTIVE.values()]
            assert 2 in fanouts
            await a.invoke("disconnect", sink=b)
            seen = peer_c.frames["video"]
            await peer_c.wait_for(lambda p: p.frames["video"] > seen + 10)
            assert all(len(r.sinks) == 1 for r in datapath.ACTIVE.values())


@needs_compiled
async def test_a_released_endpoint_leaves_no_route() -> None:
    """Releasing the endpoints (their DTLS keys go) removes every route that used them first."""
    async with server("compiled") as (_, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(10))
            assert datapath.ACTIVE
            await pipeline.release()
            assert not datapath.ACTIVE


async def test_the_python_datapath_forwards_without_the_loop() -> None:
    """datapath=python: no forwarder, no route, the call works as before."""
    async with server("python") as (app, client):
        assert app.media_services.pollers.of(asyncio.get_running_loop()).forwarder is None
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, peer_a), (b, peer_b)]:
            await a.connect(b)
            await b.connect(a)
            await peer_a.wait_for(_both(10))
            await peer_b.wait_for(_both(10))
            assert not datapath.ACTIVE


def _target(sdp: str) -> tuple[str, int]:
    description = SessionDescription.parse(sdp)
    media = description.media[0]
    address = (media.connection or description.connection or "").split()[-1]
    return address, media.port


@needs_compiled
async def test_plain_and_sdes_rtp_legs_are_forwarded_by_the_loop() -> None:
    """phone A -> RtpEndpoint -> SDES-SRTP RtpEndpoint -> SDES RtpEndpoint -> RtpEndpoint ->
    phone B: after the first packet, each hop is the compiled loop's (SRTP protected and
    unprotected in C with the keys Python negotiated), and every payload arrives, in order."""
    async with server("compiled") as (app, client):
        pipeline = await client.create("MediaPipeline")
        key = base64.b64encode(bytes(range(30))).decode()
        sdes = {"__module__": "kurento", "__type__": "SDES", "crypto": "AES_128_CM_HMAC_SHA1_80"}
        edge_in = await pipeline.create("RtpEndpoint")
        near = await pipeline.create("RtpEndpoint", crypto={**sdes, "keyBase64": key})
        far = await pipeline.create("RtpEndpoint", crypto=sdes)
        edge_out = await pipeline.create("RtpEndpoint")
        await edge_in.connect(near)
        await far.connect(edge_out)
        answer = await far.invoke("processOffer", offer=await near.invoke("generateOffer"))
        await near.invoke("processAnswer", answer=answer)
        async with udp_peer() as phone_a, udp_peer() as phone_b:
            answer_in = await edge_in.invoke("processOffer", offer=peer_sdp(phone_a.port))
            await edge_out.invoke("processOffer", offer=peer_sdp(phone_b.port))
            sender = RtpSender(0)
            before = counters(app)["forwarded"]
            for index in range(200):
                phone_a.send(sender.packet(bytes([index]) * 160), _target(answer_in))
                got = await phone_b.next_rtp()
                assert got.payload == bytes([index]) * 160
            assert len(datapath.ACTIVE) == 2  # edge_in -> near (to far), far -> edge_out
            assert counters(app)["forwarded"] - before > 2 * 190
        stats = await far.invoke("getStats", mediaType="AUDIO")
        inbound = next(s for s in stats.values() if s["type"] == "inboundrtp")
        assert inbound["packetsReceived"] == 200
        assert (
            next(s for s in (await far.invoke("getStats")).values() if s["type"] == "endpoint")[
                "srtpFailures"
            ]
            == 0
        )


async def test_without_the_compiled_loop_the_server_falls_back_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the extension was not built, datapath=compiled runs the Python loop, and the start
    log says why."""
    monkeypatch.setattr(fastpath, "_forward", None)
    monkeypatch.setattr(fastpath, "IMPORT_ERROR", "No module named '_forward'")
    caplog.set_level(logging.INFO, logger="emulator.app")
    async with server("compiled") as (app, client):
        assert app.media_services.pollers.of(asyncio.get_running_loop()).forwarder is None
        assert "media data path: Python (the compiled loop is not built" in caplog.text
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(5))
            assert not datapath.ACTIVE


@needs_compiled
async def test_a_fault_rule_takes_a_routed_stream_back_to_python() -> None:
    """An rtp fault rule added while the loop forwards a call drops its routes, so the loss is
    applied (the impairment counts drops); cleared, the stream is routed again."""
    settings = make_settings(network_interfaces="lo", fault_injection=True, fault_seed=3)
    async with (
        running_emulator(settings) as app,
        await KurentoClient.connect(app.urls["ws"], reconnect=False) as client,
    ):
        assert app.faults is not None
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(10))
            assert datapath.ACTIVE
            app.faults.add({"kind": "rtp", "media": "AUDIO", "loss": 0.2})
            assert not any(r.kind == "audio" for r in datapath.ACTIVE.values())
            seen = peer_b.frames["audio"]
            await peer_b.wait_for(lambda p: p.frames["audio"] > seen + 50)
            assert app.faults.impairments.dropped > 10
            app.faults.clear()
            dropped = app.faults.impairments.dropped
            seen = peer_b.frames["audio"]
            await peer_b.wait_for(lambda p: p.frames["audio"] > seen + 50)
            assert any(r.kind == "audio" for r in datapath.ACTIVE.values())
            assert app.faults.impairments.dropped - dropped < 5


class LosingSrtp:
    """The peer's receiving SRTP session, losing one chosen video packet before it is
    unprotected (as the network would: the replay window never sees it)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.armed = False
        self.lost: tuple[int, int] | None = None

    def unprotect(self, data: bytes) -> bytes:
        if self.armed and len(data) > 400 and self.lost is None:
            self.lost = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
            raise pylibsrtp.Error("lost on purpose")
        return bytes(self.session.unprotect(data))

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return bytes(self.session.unprotect_rtcp(data))


@needs_compiled
async def test_a_nack_for_a_routed_video_packet_is_answered_from_the_loops_history() -> None:
    """The compiled loop keeps what it sent on video streams: a NACK from the sink's peer for a
    packet it lost gets that packet, through the Python RTCP path, from the loop's history."""
    async with server("compiled") as (_, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(10))
            assert any(r.kind == "video" for r in datapath.ACTIVE.values())
            dtls = peer_b.pc.getTransceivers()[0].receiver.transport
            losing = LosingSrtp(dtls._rx_srtp)
            dtls._rx_srtp = losing
            seen = spy_received(peer_b)  # BUNDLE: every packet of the peer's one transport
            losing.armed = True
            await peer_b.wait_for(lambda _: losing.lost is not None)
            assert losing.lost is not None
            ssrc, sequence = losing.lost
            assert not any(r.kind == "video" and not r.sinks for r in datapath.ACTIVE.values())
            nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1234, media_ssrc=ssrc)
            nack.lost = [sequence]
            await dtls._send_rtp(bytes(nack))
            await peer_b.wait_for(
                lambda _: any(v.sequence == sequence and v.ssrc == ssrc for v in seen)
            )
            assert any(r.kind == "video" for r in datapath.ACTIVE.values())  # still routed


def _sink_of(kind: str) -> datapath.FastRoute:
    return next(r for r in datapath.ACTIVE.values() if r.kind == kind and r.sinks)


def _of_type(stats: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in stats.values() if s["type"] == kind]


@needs_compiled
async def test_latency_stats_count_what_the_loop_forwards() -> None:
    """The loop measures each routed packet from its receive to its send: the sink's latency
    figures (getStats' E2ELatency with latencyStats on) go on counting, and stay plausible."""
    async with server("compiled") as (app, client):
        pipeline = await client.create("MediaPipeline")
        await pipeline.invoke("setLatencyStats", latencyStats=True)
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(5))
            sink_session = _sink_of("video").sinks[0][0]
            counted = sink_session.latency.sums["video"][1]
            before = counters(app)["forwarded"]
            seen = peer_b.frames["video"]
            await peer_b.wait_for(lambda p: p.frames["video"] > seen + 30)
            stats = await b.invoke("getStats")
            forwarded = counters(app)["forwarded"] - before
            assert forwarded > 50
            # every packet the loop sent to B counted once (B is the only sink)
            assert (
                sink_session.latency.sums["video"][1] + sink_session.latency.sums["audio"][1]
                >= counted + forwarded * 0.9
            )
        (endpoint,) = _of_type(stats, "endpoint")
        latencies = {e["type"]: e["avg"] for e in endpoint["E2ELatency"]}
        assert set(latencies) == {"AUDIO", "VIDEO"}
        assert all(0 < avg < 50e6 for avg in latencies.values())


@needs_compiled
async def test_transport_stats_count_the_datagrams_the_loop_carries() -> None:
    """The DTLS transport's counters (getStats' transport and candidate-pair bytes and packets)
    include what the loop sent and received: at least the RTP packets of the routed streams."""
    async with server("compiled") as (app, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, peer_a), (b, peer_b)]:
            await a.connect(b)
            await b.connect(a)
            await peer_a.wait_for(_both(5))
            await peer_b.wait_for(_both(5))
            before = counters(app)["forwarded"]
            seen = peer_b.frames["video"]
            await peer_b.wait_for(lambda p: p.frames["video"] > seen + 30)
            assert counters(app)["forwarded"] - before > 50
            stats = await b.invoke("getStats")
            routed = sum(
                r.inbound.packets for r in datapath.ACTIVE.values() if r.source.name == b.id
            )
    rtp_sent = sum(s["packetsSent"] for s in _of_type(stats, "outboundrtp"))
    octets_sent = sum(s["bytesSent"] for s in _of_type(stats, "outboundrtp"))
    (transport,) = _of_type(stats, "transport")
    (pair,) = _of_type(stats, "candidatepair")
    for entry in (transport, pair):
        assert entry["packetsSent"] >= rtp_sent > 50
        assert entry["bytesSent"] > octets_sent  # headers and SRTP tags on the wire
        assert entry["packetsReceived"] >= routed > 50  # the streams the loop received


@needs_compiled
async def test_a_nack_right_after_a_route_change_is_answered() -> None:
    """A packet the loop sent is lost; a link change drops the route before the peer's NACK
    comes: the route's history went to the Python stream, which answers it."""
    async with server("compiled") as (_, client):
        pipeline = await client.create("MediaPipeline")
        async with call(pipeline, 2) as [(a, _), (b, peer_b)]:
            await a.connect(b)
            await peer_b.wait_for(_both(10))
            route = _sink_of("video")
            dtls = peer_b.pc.getTransceivers()[0].receiver.transport
            losing = LosingSrtp(dtls._rx_srtp)
            dtls._rx_srtp = losing
            seen = spy_received(peer_b)
            losing.armed = True
            await peer_b.wait_for(lambda _: losing.lost is not None)
            assert losing.lost is not None
            ssrc, sequence = losing.lost
            recorder = await pipeline.create("PassThrough")
            await a.connect(recorder)  # a link added: every route is dropped
            assert id(route) not in datapath.ACTIVE
            nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1234, media_ssrc=ssrc)
            nack.lost = [sequence]
            await dtls._send_rtp(bytes(nack))
            await peer_b.wait_for(
                lambda _: any(v.sequence == sequence and v.ssrc == ssrc for v in seen)
            )
