"""ICE settings as KMS: external addresses, network interfaces, IPv6 and relay-only policies."""

from __future__ import annotations

import pytest

from emulator.transport.client import KurentoClient, RemoteObject
from protocol.errors import MediaObjectIllegalParamError
from tests.conftest import make_settings, server_and_client
from tests.media.test_ports import OFFER


async def _candidates(endpoint: RemoteObject) -> list[str]:
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    await endpoint.invoke("processOffer", offer=OFFER)
    await endpoint.invoke("gatherCandidates")
    await done.get()
    texts = []
    while not found.queue.empty():
        texts.append(found.queue.get_nowait()["candidate"]["candidate"])
    return texts


async def _endpoint(client: KurentoClient) -> RemoteObject:
    pipeline = await client.create("MediaPipeline")
    return await pipeline.create("WebRtcEndpoint")


async def test_external_ipv4_replaces_host_address(media_client: KurentoClient) -> None:
    """externalIPv4 is advertised instead of the IPv4 host address."""
    endpoint = await _endpoint(media_client)
    await endpoint.invoke("setExternalIPv4", externalIPv4="198.51.100.20")
    assert await endpoint.invoke("getExternalIPv4") == "198.51.100.20"
    candidates = await _candidates(endpoint)
    ipv4 = [c for c in candidates if ":" not in c.split()[4]]
    assert ipv4 and all(c.split()[4] == "198.51.100.20" for c in ipv4)


async def test_external_ipv6_replaces_the_ipv6_host_address() -> None:
    """externalIPv6 is advertised instead of the IPv6 host address (``::1`` on loopback), and
    the IPv4 candidates keep theirs."""
    settings = make_settings(network_interfaces="lo", ice_ipv6=True)
    async with server_and_client(settings) as (_, client):
        endpoint = await _endpoint(client)
        await endpoint.invoke("setExternalIPv6", externalIPv6="2001:db8::20")
        assert await endpoint.invoke("getExternalIPv6") == "2001:db8::20"
        candidates = await _candidates(endpoint)
    addresses = {c.split()[4] for c in candidates}
    assert "2001:db8::20" in addresses and "::1" not in addresses
    assert "127.0.0.1" in addresses


async def test_no_ipv6_policy_gathers_ipv4_only() -> None:
    """With IPv6 candidates off (candkillipv6), only IPv4 host candidates are gathered."""
    settings = make_settings(network_interfaces="lo", ice_ipv6=False)
    async with server_and_client(settings) as (_, client):
        candidates = await _candidates(await _endpoint(client))
    assert candidates and all(":" not in c.split()[4] for c in candidates)


async def test_network_interfaces_selects_addresses() -> None:
    """networkInterfaces limits host candidates to the named interfaces."""
    settings = make_settings()
    async with server_and_client(settings) as (_, client):
        endpoint = await _endpoint(client)
        await endpoint.invoke("setNetworkInterfaces", networkInterfaces="lo")
        candidates = await _candidates(endpoint)
        assert {c.split()[4] for c in candidates} <= {"127.0.0.1", "::1"}
        other = await _endpoint(client)
        await other.invoke("setNetworkInterfaces", networkInterfaces="no-such-interface")
        assert await _candidates(other) == []


async def test_relay_only_policy_without_turn_gathers_nothing() -> None:
    """With relay-only (candonlyturn) and no TURN server there is no candidate at all."""
    settings = make_settings(ice_relay_only=True)
    async with server_and_client(settings) as (server, client):
        assert await _candidates(await _endpoint(client)) == []
        assert server.media_services.ports.usage().in_use == 0


async def test_stun_and_turn_properties_have_kms_defaults(media_client: KurentoClient) -> None:
    """stunServerAddress/turnUrl default to "", stunServerPort to 3478, and are settable."""
    endpoint = await _endpoint(media_client)
    assert await endpoint.invoke("getStunServerAddress") == ""
    assert await endpoint.invoke("getStunServerPort") == 3478
    assert await endpoint.invoke("getTurnUrl") == ""
    await endpoint.invoke("setTurnUrl", turnUrl="user:pass@127.0.0.1:3478?transport=udp")
    assert await endpoint.invoke("getTurnUrl") == "user:pass@127.0.0.1:3478?transport=udp"


async def test_malformed_turn_url_rejected(media_client: KurentoClient) -> None:
    """A turnUrl without user:password@address:port is 40107 with the expected shape."""
    endpoint = await _endpoint(media_client)
    with pytest.raises(MediaObjectIllegalParamError, match="user:password@address:port"):
        await endpoint.invoke("setTurnUrl", turnUrl="turn.example.org")
