"""getStats from real packet flow, checked against what the aiortc peers sent and received; REMB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

from emulator.media.rtp.bitrate import receive_target, send_limit
from emulator.transport.client import KurentoClient, RemoteObject
from tests.media.peers import ClientPeer, client_peer, negotiate
from tests.media.rtp_peers import spy_received

Stats = dict[str, dict[str, Any]]


async def _stats_until(
    endpoint: RemoteObject, predicate: Callable[[Stats], bool], timeout: float = 15
) -> Stats:
    """getStats again as reports arrive (once a second) until the predicate holds."""
    async with asyncio.timeout(timeout):
        while True:
            stats: Stats = await endpoint.invoke("getStats")
            if predicate(stats):
                return stats
            await asyncio.sleep(0.2)  # polling a remote state with a deadline, not a sync point


def _of_type(stats: Stats, kind: str, remote: bool = False) -> list[dict[str, Any]]:
    return [s for s in stats.values() if s["type"] == kind and s.get("isRemote", False) == remote]


async def _client_rtp(peer: ClientPeer, kind: str, media: str) -> int:
    report = await peer.pc.getStats()
    field = "packetsSent" if kind == "outbound-rtp" else "packetsReceived"
    return sum(getattr(s, field) for s in report.values() if s.type == kind and s.kind == media)


async def test_rtp_stats_match_the_peer(media_client: KurentoClient) -> None:
    """Loopback: what the server counts lies between the peer's own counts before and after."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(
            lambda p: p.frames.get("audio", 0) > 50 and p.frames.get("video", 0) > 10
        )
        sent_before = await _client_rtp(peer, "outbound-rtp", "audio")
        received_before = await _client_rtp(peer, "inbound-rtp", "audio")
        stats: Stats = await endpoint.invoke("getStats", mediaType="AUDIO")
        sent_after = await _client_rtp(peer, "outbound-rtp", "audio")
        received_after = await _client_rtp(peer, "inbound-rtp", "audio")
    (inbound,) = _of_type(stats, "inboundrtp")
    (outbound,) = _of_type(stats, "outboundrtp")
    assert sent_before - 5 <= inbound["packetsReceived"] <= sent_after
    assert received_before <= outbound["packetsSent"] <= received_after + 5
    assert inbound["bytesReceived"] > 0 and inbound["packetsLost"] == 0
    assert 0 <= inbound["jitter"] < 0.1
    assert not _of_type(stats, "transport"), "connection entries belong to no media type"


async def test_remote_inbound_rtt_and_connection_entries(media_client: KurentoClient) -> None:
    """Receiver reports give the remote side and an RTT; the selected pair names its candidates."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        stats = await _stats_until(
            endpoint, lambda s: any(o["roundTripTime"] > 0 for o in _of_type(s, "outboundrtp"))
        )
    remote = _of_type(stats, "inboundrtp", remote=True)
    assert remote and all(stats[r["associateStatsId"]]["type"] == "outboundrtp" for r in remote)
    rtts = [o["roundTripTime"] for o in _of_type(stats, "outboundrtp")]
    assert 0 < max(rtts) < 1.0
    (transport,) = _of_type(stats, "transport")
    assert transport["activeConnection"] is True and transport["bytesReceived"] > 0
    pair = stats[transport["selectedCandidatePairId"]]
    assert pair["__type__"] == "RTCIceCandidatePairStats" and pair["nominated"] is True
    assert pair["state"] == "succeeded"
    local = stats[pair["localCandidateId"]]
    assert local["type"] == "localcandidate" and local["ipAddress"] == "127.0.0.1"
    assert stats[pair["remoteCandidateId"]]["type"] == "remotecandidate"
    (session,) = _of_type(stats, "session")
    assert session["__type__"] == "RTCPeerConnectionStats"


async def test_remote_inbound_counts_what_the_peer_received(media_client: KurentoClient) -> None:
    """The remote side of each outbound stream counts, from the peer's receiver reports, the
    packets it received and their payload bytes: exactly the first packets the peer's transport
    decrypted for that SSRC (loopback, no loss). codecId stays empty, as KMS leaves it: its
    StatsType has no ``codec`` entry to point at."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        received = spy_received(peer)
        await negotiate(endpoint, peer)
        stats = await _stats_until(
            endpoint,
            lambda s: (
                len(_of_type(s, "inboundrtp", remote=True)) == 2
                and all(r["packetsReceived"] > 20 for r in _of_type(s, "inboundrtp", remote=True))
            ),
        )
    for remote in _of_type(stats, "inboundrtp", remote=True):
        outbound = stats[remote["associateStatsId"]]
        ssrc = int(outbound["ssrc"])
        payloads = [len(v.data) - v.header_end for v in received if v.ssrc == ssrc]
        count = remote["packetsReceived"]
        assert count <= outbound["packetsSent"] and count <= len(payloads)
        assert remote["bytesReceived"] == sum(payloads[:count]), outbound["ssrc"]
        assert remote["codecId"] == outbound["codecId"] == ""


async def test_latency_stats_when_the_pipeline_asks(media_client: KurentoClient) -> None:
    """With latencyStats on, the endpoint reports the time packets spend in the server (ns)."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    async with client_peer(video=False) as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(lambda p: p.frames.get("audio", 0) > 10)
        off: Stats = await endpoint.invoke("getStats")
        await pipeline.invoke("setLatencyStats", latencyStats=True)
        on: Stats = await endpoint.invoke("getStats")
    assert _of_type(off, "endpoint")[0]["E2ELatency"] == []
    (entry,) = _of_type(on, "endpoint")
    (audio,) = entry["E2ELatency"]
    assert audio["type"] == "AUDIO" and 0 < audio["avg"] < 50e6


async def test_data_channel_stats_count_messages(media_client: KurentoClient) -> None:
    """RTCDataChannelStats count the messages each way; the session counts opened channels."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint", useDataChannels=True)
    await endpoint.connect(endpoint)
    async with client_peer(audio=True, video=False, data=True) as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(lambda p: p.channel is not None and p.channel.readyState == "open")
        assert peer.channel is not None
        for text in ("one", "two", "three"):
            peer.channel.send(text)
        await peer.wait_for(lambda p: len(p.messages) == 3)
        stats: Stats = await endpoint.invoke("getStats")
    (channel,) = _of_type(stats, "datachannel")
    assert channel["label"] == "chat" and channel["state"] == "open"
    assert channel["messagesReceived"] == 3 and channel["messagesSent"] == 3
    assert channel["bytesReceived"] == len("onetwothree")
    assert _of_type(stats, "session")[0]["dataChannelsOpened"] == 1


def _remb_recorder(peer: ClientPeer) -> list[int]:
    """REMB bitrates the peer's video sender receives (a seam over aiortc's RTCP handler)."""
    bitrates: list[int] = []
    (sender,) = [s for s in peer.pc.getSenders() if s.track and s.track.kind == "video"]
    handle = sender._handle_rtcp_packet

    async def recording(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrates.append(unpack_remb_fci(packet.fci)[0])
            peer._arrived.set()  # wakes ClientPeer.wait_for
        await handle(packet)

    sender._handle_rtcp_packet = recording  # type: ignore[method-assign]
    assert isinstance(sender, RTCRtpSender)
    return bitrates


async def test_remb_relays_the_lowest_limit_to_the_source(media_client: KurentoClient) -> None:
    """source -> sink: the source's peer gets a REMB within both legs' bandwidth properties."""
    pipeline = await media_client.create("MediaPipeline")
    source = await pipeline.create("WebRtcEndpoint")
    sink = await pipeline.create("WebRtcEndpoint")
    await source.invoke("setMaxVideoRecvBandwidth", maxVideoRecvBandwidth=400)
    await sink.invoke("setMaxVideoSendBandwidth", maxVideoSendBandwidth=250)
    await source.connect(sink)
    async with client_peer() as sender, client_peer() as viewer:
        bitrates = _remb_recorder(sender)
        await negotiate(source, sender)
        await negotiate(sink, viewer)
        await viewer.wait_for(lambda p: p.frames.get("video", 0) > 5)
        await sender.wait_for(lambda _: 250_000 in bitrates)
        stats = await _stats_until(
            source, lambda s: any(i["remb"] for i in _of_type(s, "inboundrtp"))
        )
    video_in = [i for i in _of_type(stats, "inboundrtp") if i["remb"]]
    assert [i["remb"] for i in video_in] == [250_000]


async def test_available_bitrates_are_the_rembs_both_ways(media_client: KurentoClient) -> None:
    """The selected pair's availableOutgoingBitrate is what the peer's REMB allows us, and its
    availableIncomingBitrate what our REMB allows the peer (loopback: both exist)."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        await negotiate(endpoint, peer)

        def both(stats: Stats) -> bool:
            pairs = _of_type(stats, "candidatepair")
            return bool(pairs) and all(
                pairs[0][k] > 0 for k in ("availableOutgoingBitrate", "availableIncomingBitrate")
            )

        stats = await _stats_until(endpoint, both)
    (pair,) = _of_type(stats, "candidatepair")
    sent = sum(o["remb"] for o in _of_type(stats, "outboundrtp"))
    asked = sum(i["remb"] for i in _of_type(stats, "inboundrtp"))
    assert pair["availableOutgoingBitrate"] == sent
    assert pair["availableIncomingBitrate"] == asked


def test_bitrate_policy() -> None:
    """REMB arithmetic: remote REMB beats the minimum, maxima cap, 30 kbps floor, 0 unlimited."""
    assert send_limit(0, 300_000, 100, 500) == 300_000
    assert send_limit(2_000_000, 300_000, 100, 500) == 500_000
    assert send_limit(50_000, 300_000, 100, 500) == 50_000
    assert send_limit(2_000_000, 300_000, 100, 0) == 2_000_000
    assert receive_target([], 0, 0) is None
    assert receive_target([], 0, 800) == 800_000
    assert receive_target([500_000, 250_000], 0, 400) == 250_000
    assert receive_target([10_000], 0, 0) == 30_000
    assert receive_target([10_000], 100, 0) == 100_000
