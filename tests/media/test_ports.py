"""Media sockets (UDP, and TCP to a TURN server) stay inside minPort..maxPort and return to the
pool; exhaustion is 40009."""

from __future__ import annotations

import contextlib
import socket

import pytest

from emulator.media.net.ports import PortRange, PortRangeExhausted
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import NotEnoughResources
from tests.conftest import make_settings, server_and_client
from tests.media.sockets import udp_ports_of_this_process
from tests.ports import free_port_range

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=mid:1",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:96 VP8/90000",
        "",
    ]
)


async def _gathered_endpoint(client: KurentoClient) -> RemoteObject:
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    done = await endpoint.subscribe("IceGatheringDone")
    await endpoint.invoke("processOffer", offer=OFFER)
    await endpoint.invoke("gatherCandidates")
    await done.get()
    return pipeline


async def test_every_media_socket_inside_range_and_freed() -> None:
    """Twenty gathered endpoints hold sockets only inside the range; none remain after release."""
    block = free_port_range(100)
    settings = make_settings(min_port=block.low, max_port=block.high, network_interfaces="lo")
    async with server_and_client(settings) as (server, client):
        before = udp_ports_of_this_process()
        pipelines = [await _gathered_endpoint(client) for _ in range(20)]
        during = udp_ports_of_this_process()
        new = sorted(set(during) - set(before))
        assert len(new) >= 20
        assert all(port in block for port in during), during
        for pipeline in pipelines:
            await pipeline.release()
        assert not [p for p in udp_ports_of_this_process() if p in block]
        assert server.media_services.ports.usage().in_use == 0


async def test_exhausted_range_is_40009_and_others_untouched() -> None:
    """When no port is left, gatherCandidates fails with 40009 naming the range; others go on."""
    block = free_port_range(3)
    settings = make_settings(min_port=block.low, max_port=block.high, network_interfaces="lo")
    async with server_and_client(settings) as (server, client):
        first = await _gathered_endpoint(client)
        pipeline = await client.create("MediaPipeline")
        second = await pipeline.create("WebRtcEndpoint")
        await second.invoke("processOffer", offer=OFFER)
        full = f"{block} \\(3 of 3 UDP ports held by this server"
        with pytest.raises(NotEnoughResources, match=full) as info:
            await second.invoke("gatherCandidates")
        assert info.value.code == 40009
        assert all(p in block for p in udp_ports_of_this_process())
        endpoint = (await first.invoke("getChildren"))[0]
        sdp = await client.call(
            "invoke", {"object": endpoint, "operation": "getLocalSessionDescriptor"}
        )
        assert "a=candidate" in sdp["value"]
        await first.release()
        third = await _gathered_endpoint(client)
        assert server.media_services.ports.usage().in_use > 0
        await third.release()


def test_tcp_sockets_bound_inside_range_apart_from_udp() -> None:
    """bind_tcp binds in the range, TCP and UDP numbers are separate spaces, usage counts both,
    and a full TCP range is 40009 naming the range and TCP."""
    block = free_port_range(2, connectable_tcp=True)
    ports = PortRange(block.low, block.high)
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(ports.bind_udp("127.0.0.1"))
        tcp = [stack.enter_context(ports.bind_tcp("127.0.0.1")) for _ in range(2)]
        assert sorted(s.getsockname()[1] for s in tcp) == [block.low, block.high]
        assert all(s.type == socket.SOCK_STREAM and not s.getblocking() for s in tcp)
        assert ports.usage().in_use == 4
        full = f"a TCP port on 127.0.0.1 .* {block} \\(2 of 2 TCP ports held by this server"
        with pytest.raises(PortRangeExhausted, match=full):
            ports.bind_tcp("127.0.0.1")
        tcp.pop().close()
        assert ports.usage().in_use == 3
