"""WebRtcEndpoint with real aiortc peers on loopback: negotiation, ICE, DTLS-SRTP, media, events."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from protocol.errors import (
    IceAddCandidateError,
    IceGatherCandidatesError,
    SdpEndPointAlreadyNegotiated,
    SdpEndPointAnswerAlreadyProccesed,
    SdpEndPointNoLocalSdpError,
    SdpEndPointNoRemoteSdpError,
    SdpEndPointNotOfferGenerated,
    SdpParseError,
)
from protocol.sdp import SessionDescription
from tests.media.peers import client_peer, negotiate, trickle

EVENTS = (
    "MediaSessionStarted",
    "IceCandidateFound",
    "IceGatheringDone",
    "IceComponentStateChanged",
    "NewCandidatePairSelected",
    "DtlsConnectionStateChange",
    "ConnectionStateChanged",
    "MediaStateChanged",
    "MediaFlowInStateChanged",
    "MediaFlowOutStateChanged",
)


async def _endpoint(client: KurentoClient, **params: Any) -> tuple[RemoteObject, RemoteObject]:
    pipeline = await client.create("MediaPipeline")
    return pipeline, await pipeline.create("WebRtcEndpoint", **params)


def _both(peer: Any) -> bool:
    return bool(peer.frames.get("audio", 0) > 3 and peer.frames.get("video", 0) > 3)


async def test_hello_world_loopback_returns_audio_and_video(media_client: KurentoClient) -> None:
    """An endpoint connected to itself sends back what it receives (Kurento Hello World)."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(_both)
        stats = await endpoint.invoke("getStats")
        inbound = [s for s in stats.values() if s["type"] == "inboundrtp"]
        outbound = [s for s in stats.values() if s["type"] == "outboundrtp"]
        assert len(inbound) == 2 and len(outbound) == 2
        assert all(s["packetsReceived"] > 0 and s["bytesReceived"] > 0 for s in inbound)
        assert all(s["packetsSent"] > 0 for s in outbound)


async def test_events_follow_kms_order(media_client: KurentoClient) -> None:
    """Negotiation, ICE, DTLS, connection and flow events arrive in KMS's order."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    streams = {name: await endpoint.subscribe(name) for name in EVENTS}
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(_both)
        flow_in = [await streams["MediaFlowInStateChanged"].get() for _ in range(2)]
        assert {e["mediaType"] for e in flow_in} == {"AUDIO", "VIDEO"}
        assert {e["state"] for e in flow_in} == {"FLOWING"}
        ice = [(await streams["IceComponentStateChanged"].get())["state"] for _ in range(4)]
        assert ice == ["GATHERING", "CONNECTING", "CONNECTED", "READY"]
        dtls = [(await streams["DtlsConnectionStateChange"].get())["state"] for _ in range(2)]
        assert dtls == ["CONNECTING", "CONNECTED"]
        connection = await streams["ConnectionStateChanged"].get()
        assert (connection["oldState"], connection["newState"]) == ("DISCONNECTED", "CONNECTED")
        pair = (await streams["NewCandidatePairSelected"].get())["candidatePair"]
        assert pair["localCandidate"].startswith("candidate:") and pair["streamId"] == "1"
        assert (await streams["MediaSessionStarted"].get())["type"] == "MediaSessionStarted"
        media_state = await streams["MediaStateChanged"].get(timeout=10)
        assert media_state["newState"] == "CONNECTED"


async def test_candidates_emitted_once_per_bundled_mline(media_client: KurentoClient) -> None:
    """With BUNDLE, each local candidate is emitted for every m-line, then IceGatheringDone."""
    _, endpoint = await _endpoint(media_client)
    candidates = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    async with client_peer() as peer:
        await endpoint.invoke("processOffer", offer=await peer.offer())
        await endpoint.invoke("gatherCandidates")
        await done.get()
    found = []
    while not candidates.queue.empty():
        found.append(candidates.queue.get_nowait()["candidate"])
    assert found, "no candidates"
    by_mid: dict[str, list[str]] = {}
    for candidate in found:
        by_mid.setdefault(candidate["sdpMid"], []).append(candidate["candidate"])
        assert candidate["__type__"] == "IceCandidate"
    assert set(by_mid) == {"0", "1"}
    assert by_mid["0"] == by_mid["1"]
    assert all(" 127.0.0.1 " in c or " ::1 " in c for c in by_mid["0"])


async def test_non_trickle_answer_carries_candidates(media_client: KurentoClient) -> None:
    """After IceGatheringDone, the local descriptor holds the candidates: no trickle needed."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    done = await endpoint.subscribe("IceGatheringDone")
    async with client_peer() as peer:
        await endpoint.invoke("processOffer", offer=await peer.offer())
        await endpoint.invoke("gatherCandidates")
        await done.get()
        answer = await endpoint.invoke("getLocalSessionDescriptor")
        parsed = SessionDescription.parse(answer)
        assert parsed.media[0].candidates and parsed.media[0].end_of_candidates
        await peer.accept_answer(answer)
        await peer.wait_for(_both)


async def test_server_offer_client_answer(media_client: KurentoClient) -> None:
    """generateOffer, the client answers, processAnswer: media flows back."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    candidates = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    offer = await endpoint.invoke("generateOffer")
    parsed = SessionDescription.parse(offer)
    assert [m.kind for m in parsed.media] == ["audio", "video"]
    assert parsed.media[0].setup == "actpass"
    async with client_peer() as peer:
        answer = await peer.answer(offer)
        local = await endpoint.invoke("processAnswer", answer=answer)
        assert local.startswith("v=0")
        await endpoint.invoke("gatherCandidates")
        await trickle(peer, candidates, done)
        await peer.wait_for(_both)
        assert await endpoint.invoke("getRemoteSessionDescriptor") == answer


async def test_offer_options_select_media(media_client: KurentoClient) -> None:
    """OfferOptions offerToReceiveVideo=false leaves the video line out."""
    _, endpoint = await _endpoint(media_client)
    offer = await endpoint.invoke(
        "generateOffer",
        options={
            "offerToReceiveAudio": True,
            "offerToReceiveVideo": False,
            "__module__": "kurento",
            "__type__": "OfferOptions",
        },
    )
    assert [m.kind for m in SessionDescription.parse(offer).media] == ["audio"]


async def test_recvonly_endpoint_answers_recvonly(media_client: KurentoClient) -> None:
    """The recvonly constructor parameter makes the answer recvonly."""
    _, endpoint = await _endpoint(media_client, recvonly=True)
    async with client_peer() as peer:
        answer = await endpoint.invoke("processOffer", offer=await peer.offer())
    assert {m.direction for m in SessionDescription.parse(answer).media} == {"recvonly"}


async def test_sdp_errors_have_kms_codes(media_client: KurentoClient) -> None:
    """Empty, invalid and repeated negotiation answer the 402xx codes."""
    _, endpoint = await _endpoint(media_client)
    with pytest.raises(SdpEndPointNoLocalSdpError):
        await endpoint.invoke("getLocalSessionDescriptor")
    with pytest.raises(SdpEndPointNoRemoteSdpError):
        await endpoint.invoke("getRemoteSessionDescriptor")
    with pytest.raises(IceGatherCandidatesError):
        await endpoint.invoke("gatherCandidates")
    with pytest.raises(SdpEndPointNotOfferGenerated):
        await endpoint.invoke("processAnswer", answer="v=0\r\n")
    with pytest.raises(SdpParseError, match="Empty offer not valid"):
        await endpoint.invoke("processOffer", offer="")
    with pytest.raises(SdpParseError, match="line 2"):
        await endpoint.invoke("processOffer", offer="v=0\r\nthis is not sdp\r\n")
    async with client_peer() as peer:
        await endpoint.invoke("processOffer", offer=await peer.offer())
        with pytest.raises(SdpEndPointAlreadyNegotiated):
            await endpoint.invoke("processOffer", offer=await peer.offer())
        with pytest.raises(SdpEndPointAlreadyNegotiated):
            await endpoint.invoke("generateOffer")
    _, offerer = await _endpoint(media_client)
    offer = await offerer.invoke("generateOffer")
    async with client_peer() as peer:
        answer = await peer.answer(offer)
        await offerer.invoke("processAnswer", answer=answer)
        with pytest.raises(SdpEndPointAnswerAlreadyProccesed):
            await offerer.invoke("processAnswer", answer=answer)


async def test_add_ice_candidate_validates_and_buffers(media_client: KurentoClient) -> None:
    """A malformed candidate is 40401; an empty one (end of candidates) and early ones are kept."""
    _, endpoint = await _endpoint(media_client)
    with pytest.raises(IceAddCandidateError):
        await endpoint.invoke(
            "addIceCandidate",
            candidate={"candidate": "candidate:nonsense", "sdpMid": "0", "sdpMLineIndex": 0},
        )
    early = {
        "candidate": "candidate:1 1 UDP 2122252543 127.0.0.1 9 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "__module__": "kurento",
        "__type__": "IceCandidate",
    }
    assert await endpoint.invoke("addIceCandidate", candidate=early) is None
    empty = {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
    assert await endpoint.invoke("addIceCandidate", candidate=empty) is None


async def test_state_properties_after_connection(media_client: KurentoClient) -> None:
    """Connection, ICE and DTLS state getters report the live connection."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    assert await endpoint.invoke("getConnectionState") == "DISCONNECTED"
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(_both)
        assert await endpoint.invoke("getConnectionState") == "CONNECTED"
        pairs = await endpoint.invoke("getICECandidatePairs")
        assert pairs[0]["__type__"] == "IceCandidatePair"
        ice = await endpoint.invoke("getIceConnectionState")
        assert ice[0]["state"] == "READY"
        dtls = await endpoint.invoke("getDtlsConnectionState")
        assert dtls[0]["state"] == "CONNECTED"


async def _wait_state(stream: EventStream, new_state: str) -> dict[str, Any]:
    while True:
        event = await stream.get(timeout=15)
        if event.get("newState", event.get("state")) == new_state:
            return event


async def test_peer_closing_disconnects(media_client: KurentoClient) -> None:
    """A peer that goes away leads to DISCONNECTED and NOT_FLOWING; release frees it."""
    _, endpoint = await _endpoint(media_client)
    await endpoint.connect(endpoint)
    connection = await endpoint.subscribe("ConnectionStateChanged")
    flow = await endpoint.subscribe("MediaFlowInStateChanged")
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(_both)
        await _wait_state(connection, "CONNECTED")
    await _wait_state(connection, "DISCONNECTED")
    await _wait_state(flow, "NOT_FLOWING")
    await endpoint.release()
