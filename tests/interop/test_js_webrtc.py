"""The official JS client drives WebRtcEndpoints that real aiortc peers connect to."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from emulator.app import App
from tests.interop.node_client import NodeScenario
from tests.media.peers import ClientPeer, client_peer, loopback_peers


@pytest.fixture(autouse=True)
def _loopback_peers() -> Iterator[None]:
    with loopback_peers():
        yield


def _both(peer: ClientPeer) -> bool:
    return peer.frames.get("audio", 0) > 3 and peer.frames.get("video", 0) > 3


async def _trickle_until_done(node: NodeScenario, peer: ClientPeer) -> None:
    while True:
        report = await node.step_any(("candidate", "gathering-done"))
        if report["step"] == "gathering-done":
            return
        await peer.add_candidate({"candidate": report["candidate"]})


async def test_js_client_peer_offers(server: App) -> None:
    """Node app (kurento-client) + aiortc peer offering: media loops back, flow is reported."""
    async with NodeScenario.run(server.urls["ws"], "webrtc") as node, client_peer() as peer:
        await node.step("ready")
        await node.command("offer " + json.dumps({"sdp": await peer.offer()}))
        answer = await node.step("answer")
        await peer.accept_answer(answer["sdp"])
        await _trickle_until_done(node, peer)
        await peer.wait_for(_both)
        flow = await node.step("flow-in")
        assert flow["state"] == "FLOWING"
        await node.command("stats")
        stats = (await node.step("stats"))["stats"]
        assert any(
            s.get("type") == "inboundrtp" and s["packetsReceived"] > 0 for s in stats.values()
        )
        await node.command("quit")
        assert await node.finish() == 0


async def test_js_client_server_offers(server: App) -> None:
    """Node app generates the offer; the aiortc peer answers; media loops back."""
    async with (
        NodeScenario.run(server.urls["ws"], "webrtc-server-offer") as node,
        client_peer() as peer,
    ):
        offer = await node.step("offer")
        answer = await peer.answer(offer["sdp"])
        await node.command("answer " + json.dumps({"sdp": answer}))
        await node.step("answered")
        await _trickle_until_done(node, peer)
        await peer.wait_for(_both)
        await node.command("quit")
        assert await node.finish() == 0
