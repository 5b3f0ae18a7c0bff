"""MediaServices belongs to one server: two servers in one process keep their own media settings."""

from __future__ import annotations

import asyncio
import contextlib

from emulator.app import App, running_emulator
from emulator.media.legs.aiortc_adapter import connection_protocols
from emulator.media.legs.ice import RangedConnection
from emulator.transport.client import KurentoClient, RemoteObject
from tests.conftest import make_settings
from tests.media.peers import ClientPeer, negotiate


async def _loopback_call(
    server: App, stack: contextlib.AsyncExitStack
) -> tuple[RemoteObject, ClientPeer, RangedConnection]:
    """A WebRtcEndpoint connected to itself and a client peer, media flowing both ways."""
    client = await stack.enter_async_context(
        await KurentoClient.connect(server.urls["ws"], reconnect=False)
    )
    peer = ClientPeer()
    stack.push_async_callback(peer.close)
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    await negotiate(endpoint, peer)
    await peer.wait_for(lambda p: p.frames.get("audio", 0) > 3 and p.frames.get("video", 0) > 3)
    media = server.media_set.objects[endpoint.id].media  # type: ignore[attr-defined]
    connection = next(iter(media.peer.transports.values())).connection
    assert isinstance(connection, RangedConnection)
    return endpoint, peer, connection


def _vanish(peer: ClientPeer) -> None:
    """Close the client's sockets without a word: only consent checks can notice."""
    for protocol in connection_protocols(peer.ice):
        protocol.transport.close()


async def test_two_servers_in_one_process_keep_their_own_batching_and_consent_timing() -> None:
    """Each server's sockets are read by its own poller with its own media_batch_ms, and its ICE
    checks consent with its own timing: when both peers vanish, the server with 0.2 s x 3 fails
    ICE while the one with aioice's 5 s x 6 (created after it) is still connected."""
    fast_settings = make_settings(
        min_port=44200,
        max_port=44249,
        network_interfaces="lo",
        media_batch_ms=2.5,
        ice_consent_interval=0.2,
        ice_consent_failures=3,
    )
    slow_settings = make_settings(
        min_port=44250, max_port=44299, network_interfaces="lo", media_batch_ms=0
    )
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        fast = await stack.enter_async_context(running_emulator(fast_settings))
        slow = await stack.enter_async_context(running_emulator(slow_settings))
        fast_endpoint, fast_peer, fast_ice = await _loopback_call(fast, stack)
        slow_endpoint, slow_peer, slow_ice = await _loopback_call(slow, stack)

        fast_poller, slow_poller = (
            fast.media_services.pollers.of(loop),
            slow.media_services.pollers.of(loop),
        )
        assert (fast_poller.interval, slow_poller.interval) == (0.0025, 0)
        assert fast_poller.datagrams > 0 and slow_poller.datagrams > 0  # each read its own media
        assert (fast_ice.consent_interval, fast_ice.consent_failures) == (0.2, 3)
        assert (slow_ice.consent_interval, slow_ice.consent_failures) == (5, 6)

        fast_states = await fast_endpoint.subscribe("IceComponentStateChanged")
        slow_states = await slow_endpoint.subscribe("IceComponentStateChanged")
        _vanish(fast_peer)
        _vanish(slow_peer)
        states: list[str] = []
        while "FAILED" not in states:
            states.append((await fast_states.get(timeout=15))["state"])
        slow_media = slow.media_set.objects[slow_endpoint.id].media  # type: ignore[attr-defined]
        assert slow_states.queue.empty() and slow_media.ice_states[-1] == "READY"
