"""RtpEndpoint with plain UDP peers on loopback: SDP, symmetric RTP, DTMF, direct media, SRTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulator.app import App
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import (
    MediaObjectIllegalParamError,
    NotEnoughResources,
    SdpEndPointAlreadyNegotiated,
    SdpEndPointAnswerAlreadyProccesed,
    SdpEndPointNoLocalSdpError,
    SdpEndPointNoRemoteSdpError,
    SdpEndPointNotOfferGenerated,
    SdpParseError,
)
from protocol.sdp import SessionDescription
from tests.conftest import make_settings, server_and_client
from tests.media.rtp_peers import RtpSender, dtmf_payload, peer_sdp, udp_peer
from tests.ports import PortBlock, free_port_range

PBX_OFFER_AUDIO = "0 PCMU/8000, 8 PCMA/8000, 9 G722/8000, 107 opus/48000/2"
AUDIO_ONLY = {"__module__": "kurento", "__type__": "OfferOptions", "offerToReceiveVideo": False}


@pytest.fixture
def nowhere() -> int:
    """A PBX's even port where nothing listens (audio RTP, RTCP, video RTP, RTCP from it on):
    reserved for this test and outside the ephemeral range, so what the endpoint sends there
    reaches no other test's peer."""
    return free_port_range(4).low


def _target(sdp: str, index: int = 0) -> tuple[str, int]:
    description = SessionDescription.parse(sdp)
    media = description.media[index]
    address = (media.connection or description.connection or "").split()[-1]
    return address, media.port


async def _rtp_endpoint(client: KurentoClient, **params: Any) -> tuple[RemoteObject, RemoteObject]:
    pipeline = await client.create("MediaPipeline")
    return pipeline, await pipeline.create("RtpEndpoint", **params)


async def test_rtp_endpoint_answers_a_pbx_offer(
    media_server: App, media_client: KurentoClient, nowhere: int
) -> None:
    """The answer keeps the offer's codec order, DTMF and video, on an even port with RTCP +1."""
    _, endpoint = await _rtp_endpoint(media_client)
    offer = peer_sdp(
        nowhere, audio=PBX_OFFER_AUDIO, mux=False, video="99 H264/90000", video_port=nowhere + 2
    )
    answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=offer))
    audio, video = answer.media
    assert audio.proto == "RTP/AVP" and audio.port % 2 == 0
    assert media_server.settings.min_port <= audio.port <= media_server.settings.max_port
    assert [c.name for c in audio.codecs] == ["PCMU", "PCMA", "G722", "opus", "telephone-event"]
    assert [c.payload_type for c in audio.codecs] == [0, 8, 9, 107, 101]
    assert audio.rtcp == (audio.port + 1, "127.0.0.1") and not audio.rtcp_mux
    assert audio.direction == "sendrecv" and audio.cryptos == []
    assert [c.name for c in video.codecs] == ["H264"] and video.port not in (0, audio.port)
    assert answer.connection is not None and answer.connection.endswith("127.0.0.1")
    assert await endpoint.invoke("getRemoteSessionDescriptor") == offer
    state = await endpoint.invoke("getConnectionState")
    assert state == "CONNECTED"


async def test_rtp_endpoint_sdp_errors_match_kms(media_client: KurentoClient, nowhere: int) -> None:
    """Empty or unacceptable offers, answers without offers and missing descriptors: 402xx."""
    _, endpoint = await _rtp_endpoint(media_client)
    with pytest.raises(SdpEndPointNoLocalSdpError):
        await endpoint.invoke("getLocalSessionDescriptor")
    with pytest.raises(SdpEndPointNoRemoteSdpError):
        await endpoint.invoke("getRemoteSessionDescriptor")
    with pytest.raises(SdpParseError, match="Empty offer not valid"):
        await endpoint.invoke("processOffer", offer="")
    # An m-line the endpoint cannot take is answered with port 0, as KMS's SDP agent does.
    refused = await endpoint.invoke("processOffer", offer=peer_sdp(nowhere, proto="RTP/SAVP"))
    assert [m.port for m in SessionDescription.parse(refused).media] == [0]
    _, endpoint = await _rtp_endpoint(media_client)
    with pytest.raises(SdpEndPointNotOfferGenerated):
        await endpoint.invoke("processAnswer", answer=peer_sdp(nowhere))
    await endpoint.invoke("generateOffer", options=AUDIO_ONLY)
    with pytest.raises(SdpEndPointAlreadyNegotiated):
        await endpoint.invoke("processOffer", offer=peer_sdp(nowhere))
    await endpoint.invoke("processAnswer", answer=peer_sdp(nowhere, audio="8 PCMA/8000"))
    with pytest.raises(SdpEndPointAnswerAlreadyProccesed):
        await endpoint.invoke("processAnswer", answer=peer_sdp(nowhere))


async def test_rtp_endpoint_offer_lists_pbx_codecs(media_client: KurentoClient) -> None:
    """generateOffer: RTP/AVP with PCMU, PCMA, G722, Opus, telephone-event; VP8 and H264."""
    _, endpoint = await _rtp_endpoint(media_client)
    offer = SessionDescription.parse(await endpoint.invoke("generateOffer"))
    audio, video = offer.media
    names = {c.name for c in audio.codecs}
    assert {"PCMU", "PCMA", "G722", "opus", "telephone-event"} <= names
    assert [c.name for c in video.codecs] == ["VP8", "H264"]
    assert audio.proto == video.proto == "RTP/AVP" and audio.rtcp_mux
    assert audio.rtcp is not None and audio.rtcp[0] == audio.port + 1


async def test_rtp_endpoint_plain_media_both_ways(media_client: KurentoClient) -> None:
    """A peer's RTP comes back (endpoint connected to itself) with the SDP's payload type."""
    _, endpoint = await _rtp_endpoint(media_client)
    await endpoint.connect(endpoint)
    flow_in = await endpoint.subscribe("MediaFlowInStateChanged")
    media_state = await endpoint.subscribe("MediaStateChanged")
    async with udp_peer() as peer:
        answer = await endpoint.invoke(
            "processOffer", offer=peer_sdp(peer.port, audio="8 PCMA/8000")
        )
        target = _target(answer)
        sender = RtpSender(8)
        for _ in range(5):
            peer.send(sender.packet(), target)
        first = await peer.next_rtp()
        assert first.payload_type == 8 and first.payload == b"\xff" * 160
        assert (await flow_in.get())["state"] == "FLOWING"
        # an RTCP receiver report from the peer turns mediaState CONNECTED
        peer.send(bytes.fromhex("80c90001") + sender.ssrc.to_bytes(4, "big"), target)
        event = await media_state.get()
        assert (event["oldState"], event["newState"]) == ("DISCONNECTED", "CONNECTED")
        stats = await endpoint.invoke("getStats", mediaType="AUDIO")
        inbound = [s for s in stats.values() if s.get("type") == "inboundrtp"]
        assert inbound[0]["packetsReceived"] == 5 and inbound[0]["ssrc"] == str(sender.ssrc)


async def test_rtp_legs_are_read_by_the_servers_media_poller(
    media_server: App, media_client: KurentoClient
) -> None:
    """Plain RTP comes in through the same door as WebRTC: the server's MediaPoller reads the
    legs' sockets (one wakeup per batch), not one asyncio callback per datagram."""
    poller = media_server.media_services.pollers.of(asyncio.get_running_loop())
    before = poller.datagrams
    _, endpoint = await _rtp_endpoint(media_client)
    await endpoint.connect(endpoint)
    async with udp_peer() as peer:
        answer = await endpoint.invoke(
            "processOffer", offer=peer_sdp(peer.port, audio="0 PCMU/8000")
        )
        sender = RtpSender(0)
        for _ in range(5):
            peer.send(sender.packet(), _target(answer))
        for _ in range(5):
            await peer.next_rtp()
    assert poller.datagrams >= before + 5


async def test_rtp_endpoint_drops_and_counts_foreign_sources(media_client: KurentoClient) -> None:
    """Symmetric RTP: packets from an address the SDP does not name are dropped and counted."""
    _, endpoint = await _rtp_endpoint(media_client)
    await endpoint.connect(endpoint)
    flow_in = await endpoint.subscribe("MediaFlowInStateChanged")
    async with udp_peer() as peer, udp_peer() as stranger:
        answer = await endpoint.invoke("processOffer", offer=peer_sdp(peer.port))
        target = _target(answer)
        bleed = RtpSender(0, ssrc=666)
        for _ in range(3):
            stranger.send(bleed.packet(), target)
        peer.send(RtpSender(0).packet(), target)
        assert (await flow_in.get())["state"] == "FLOWING"
        assert (await peer.next_rtp()).ssrc != 666
        stats = await endpoint.invoke("getStats")
        own = next(s for s in stats.values() if s["type"] == "endpoint")
        assert own["foreignSourceDrops"] == 3
        inbound = [s for s in stats.values() if s.get("type") == "inboundrtp"]
        assert [s["packetsReceived"] for s in inbound] == [1]
        assert stranger.rtp.empty()


async def test_rtp_endpoint_latching_follows_the_source(nowhere: int) -> None:
    """With latching on, the first source is accepted and media goes back to it."""
    settings = make_settings(network_interfaces="lo", rtp_latching=True)
    async with server_and_client(settings) as (_, client):
        _, endpoint = await _rtp_endpoint(client)
        await endpoint.connect(endpoint)
        async with udp_peer() as natted:
            answer = await endpoint.invoke("processOffer", offer=peer_sdp(nowhere))
            natted.send(RtpSender(0).packet(), _target(answer))
            assert (await natted.next_rtp()).payload_type == 0


async def test_rtp_endpoint_reoffer_keeps_port_and_moves_media(
    media_client: KurentoClient,
) -> None:
    """A re-INVITE: same local port, o= version +1, new codec and address; hold answers recvonly."""
    _, endpoint = await _rtp_endpoint(media_client)
    await endpoint.connect(endpoint)
    async with udp_peer() as first, udp_peer() as moved:
        answer1 = await endpoint.invoke("processOffer", offer=peer_sdp(first.port))
        target = _target(answer1)
        first.send(RtpSender(0).packet(), target)
        assert (await first.next_rtp()).payload_type == 0
        reoffer = peer_sdp(moved.port, audio="8 PCMA/8000, 0 PCMU/8000", version=2)
        answer2 = await endpoint.invoke("processOffer", offer=reoffer)
        assert _target(answer2) == target
        v1 = SessionDescription.parse(answer1).origin
        v2 = SessionDescription.parse(answer2).origin
        assert v2.session_id == v1.session_id
        assert int(v2.session_version) == int(v1.session_version) + 1
        moved.send(RtpSender(8, ssrc=77).packet(), target)
        assert (await moved.next_rtp()).payload_type == 8
        held = peer_sdp(moved.port, direction="sendonly", version=3)
        answer3 = SessionDescription.parse(await endpoint.invoke("processOffer", offer=held))
        assert answer3.media[0].direction == "recvonly"
        assert answer3.origin.session_version == str(int(v2.session_version) + 1)


async def test_rtp_endpoint_dtmf_and_direct_media(media_client: KurentoClient) -> None:
    """Two RtpEndpoints whose SDPs point at each other carry audio and DTMF over loopback;
    telephone-event keeps its payload but takes each leg's payload type (101 -> 96)."""
    pipeline = await media_client.create("MediaPipeline")
    edge_in, near, far, edge_out = [await pipeline.create("RtpEndpoint") for _ in range(4)]
    await edge_in.connect(near)
    await far.connect(edge_out)
    offer = await near.invoke("generateOffer", options=AUDIO_ONLY)
    answer = await far.invoke("processOffer", offer=offer)
    await near.invoke("processAnswer", answer=answer)
    assert _target(offer)[0] == _target(answer)[0] == "127.0.0.1"
    async with udp_peer() as phone_a, udp_peer() as phone_b:
        answer_in = await edge_in.invoke("processOffer", offer=peer_sdp(phone_a.port))
        await edge_out.invoke(
            "processOffer",
            offer=peer_sdp(phone_b.port, audio="0 PCMU/8000", dtmf="96 telephone-event/8000"),
        )
        sender = RtpSender(0)
        target = _target(answer_in)
        phone_a.send(sender.packet(), target)
        audio = await phone_b.next_rtp()
        assert audio.payload_type == 0
        digit = dtmf_payload(5, end=False)
        phone_a.send(sender.packet(digit, marker=True, pt=101), target)
        event = await phone_b.next_rtp()
        assert (event.payload_type, event.payload, event.marker) == (96, digit, True)
        assert event.sequence == (audio.sequence + 1) & 0xFFFF
        stats = await far.invoke("getStats")
        inbound = [s for s in stats.values() if s.get("type") == "inboundrtp"]
        assert inbound and inbound[0]["packetsReceived"] == 2
        own = next(s for s in stats.values() if s["type"] == "endpoint")
        assert own["foreignSourceDrops"] == 0


async def test_rtp_endpoint_sdes_srtp_between_endpoints(media_client: KurentoClient) -> None:
    """Two SDES endpoints (AES_CM_128_HMAC_SHA1_80 and _32) negotiate RTP/SAVP and carry media."""
    pipeline = await media_client.create("MediaPipeline")
    key = base64.b64encode(bytes(range(30))).decode()
    sdes = {"__module__": "kurento", "__type__": "SDES", "crypto": "AES_128_CM_HMAC_SHA1_80"}
    edge_in = await pipeline.create("RtpEndpoint")
    near = await pipeline.create("RtpEndpoint", crypto={**sdes, "keyBase64": key})
    far = await pipeline.create("RtpEndpoint", crypto=sdes)
    edge_out = await pipeline.create("RtpEndpoint")
    await edge_in.connect(near)
    await far.connect(edge_out)
    offer = await near.invoke("generateOffer")
    media = SessionDescription.parse(offer).media[0]
    assert media.proto == "RTP/SAVP"
    assert [(c.suite, c.key_base64) for c in media.cryptos] == [("AES_CM_128_HMAC_SHA1_80", key)]
    answer = await far.invoke("processOffer", offer=offer)
    answered = SessionDescription.parse(answer).media[0].cryptos
    assert answered[0].suite == "AES_CM_128_HMAC_SHA1_80" and answered[0].key_base64 != key
    await near.invoke("processAnswer", answer=answer)
    async with udp_peer() as phone_a, udp_peer() as phone_b:
        answer_in = await edge_in.invoke("processOffer", offer=peer_sdp(phone_a.port))
        await edge_out.invoke("processOffer", offer=peer_sdp(phone_b.port))
        phone_a.send(RtpSender(0).packet(b"\x11" * 160), _target(answer_in))
        assert (await phone_b.next_rtp()).payload == b"\x11" * 160
    stats = await far.invoke("getStats")
    assert next(s for s in stats.values() if s["type"] == "endpoint")["srtpFailures"] == 0


async def test_rtp_endpoint_crypto_parameter_checked(media_client: KurentoClient) -> None:
    """A key of the wrong length or an unsupported suite is refused at create (40107)."""
    pipeline = await media_client.create("MediaPipeline")
    sdes = {"__module__": "kurento", "__type__": "SDES"}
    with pytest.raises(MediaObjectIllegalParamError, match="30 bytes"):
        await pipeline.create(
            "RtpEndpoint", crypto={**sdes, "crypto": "AES_128_CM_HMAC_SHA1_32", "key": "short"}
        )
    with pytest.raises(MediaObjectIllegalParamError, match="not supported"):
        await pipeline.create("RtpEndpoint", crypto={**sdes, "crypto": "AES_256_CM_HMAC_SHA1_80"})
    plain = await pipeline.create("RtpEndpoint", crypto=sdes)
    offer = SessionDescription.parse(await plain.invoke("generateOffer"))
    assert offer.media[0].proto == "RTP/AVP"


@pytest.fixture
def rtp_pair() -> PortBlock:
    """Two ports (one RTP/RTCP pair) for ``rtp_range_client``'s RtpEndpoints."""
    return free_port_range(2)


@pytest.fixture
async def rtp_range_client(
    rtp_pair: PortBlock,
) -> AsyncIterator[tuple[App, KurentoClient]]:
    """A server whose RtpEndpoints use their own sub-range of two ports (one pair)."""
    settings = make_settings(
        network_interfaces="lo", rtp_min_port=rtp_pair.low, rtp_max_port=rtp_pair.high
    )
    async with server_and_client(settings) as running:
        yield running


async def test_rtp_endpoint_own_port_range(
    rtp_range_client: tuple[App, KurentoClient], rtp_pair: PortBlock, nowhere: int
) -> None:
    """RtpEndpoints bind inside rtp_min_port..rtp_max_port; an exhausted range answers 40009."""
    _, client = rtp_range_client
    _, first = await _rtp_endpoint(client)
    answer = await first.invoke("processOffer", offer=peer_sdp(nowhere))
    assert _target(answer)[1] == rtp_pair.low
    _, second = await _rtp_endpoint(client)
    with pytest.raises(NotEnoughResources, match=f"RtpEndpoint port range {rtp_pair}"):
        await second.invoke("processOffer", offer=peer_sdp(nowhere))
    await first.release()
    answer = await second.invoke("processOffer", offer=peer_sdp(nowhere))
    assert _target(answer)[1] == rtp_pair.low


async def test_rtp_endpoint_separate_rtcp_ports(media_client: KurentoClient) -> None:
    """Without rtcp-mux, RTCP flows between the RTCP ports: the peer's a=rtcp port and the
    endpoint's RTP port + 1, where the peer's reports turn mediaState CONNECTED."""
    _, endpoint = await _rtp_endpoint(media_client)
    await endpoint.connect(endpoint)
    media_state = await endpoint.subscribe("MediaStateChanged")
    async with udp_peer() as rtp_port, udp_peer() as rtcp_port:
        offer = peer_sdp(rtp_port.port, rtcp_port=rtcp_port.port, mux=False)
        answer = SessionDescription.parse(await endpoint.invoke("processOffer", offer=offer))
        assert not answer.media[0].rtcp_mux
        local = answer.media[0].port
        sender = RtpSender(0)
        rtp_port.send(sender.packet(), ("127.0.0.1", local))
        assert (await rtp_port.next_rtp()).payload_type == 0
        rtcp_port.send(
            bytes.fromhex("80c90001") + sender.ssrc.to_bytes(4, "big"), ("127.0.0.1", local + 1)
        )
        assert (await media_state.get())["newState"] == "CONNECTED"
        report, source = await asyncio.wait_for(rtcp_port.rtcp.get(), 5)
        assert source == ("127.0.0.1", local + 1) and report[1] in (200, 201)
        assert rtp_port.rtcp.empty()
