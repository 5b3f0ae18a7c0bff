"""``externalIPv4``/``externalIPv6`` set to ``auto``: the address is the one the STUN server
(coturn on loopback) sees; without a STUN server, or one that does not answer, the setting is left
unset with a warning, as KMS's image leaves it when its lookup fails."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from emulator.media.services import MediaServices
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings, server_and_client
from tests.media.conftest import coturn
from tests.media.peers import client_peer, negotiate
from tests.media.test_ports import OFFER
from tests.ports import PortBlock, free_port_range


async def _host_candidates(client: KurentoClient) -> tuple[str, list[str]]:
    """A new WebRtcEndpoint's externalIPv4 and the addresses of its host candidates."""
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    found = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    await endpoint.invoke("processOffer", offer=OFFER)
    await endpoint.invoke("gatherCandidates")
    await done.get(timeout=15)
    addresses = []
    while not found.queue.empty():
        fields = found.queue.get_nowait()["candidate"]["candidate"].split()
        if fields[7] == "host":
            addresses.append(fields[4])
    return await endpoint.invoke("getExternalIPv4"), addresses


async def test_external_ipv4_auto_is_the_stun_mapped_address(
    turn_server: tuple[str, int],
) -> None:
    """externalIPv4=auto with coturn as stunServerAddress: the endpoints' externalIPv4 is the
    address coturn saw (127.0.0.1), every IPv4 host candidate carries it (those of other
    interfaces too), an RtpEndpoint writes it in c=, and a peer's call connects through it."""
    host, port = turn_server
    settings = make_settings(
        external_ipv4="auto", stun_server_address=host, stun_server_port=port, ice_ipv6=False
    )
    async with server_and_client(settings) as (server, client):
        assert server.media_services.external_ipv4 == "127.0.0.1"
        external, addresses = await _host_candidates(client)
        assert external == "127.0.0.1"
        assert addresses and set(addresses) == {"127.0.0.1"}, addresses
        pipeline = await client.create("MediaPipeline")
        rtp = await pipeline.create("RtpEndpoint")
        assert "c=IN IP4 127.0.0.1" in await rtp.invoke("generateOffer")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.connect(endpoint)
        async with client_peer() as peer:
            await negotiate(endpoint, peer)
            await peer.wait_for(lambda p: p.frames.get("video", 0) > 3)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_external_ipv6_auto_is_the_stun_mapped_address(
    turn_relay_ports: PortBlock, tmp_path: Path
) -> None:
    """externalIPv6=auto with coturn listening on ::1: externalIPv6 is ::1, every IPv6 host
    candidate carries it, and externalIPv4 (not auto) is left as it was."""
    async with coturn(turn_relay_ports, tmp_path, "udp+tcp", listening_ip="::1") as (host, port):
        settings = make_settings(
            external_ipv6="auto", stun_server_address=host, stun_server_port=port
        )
        async with server_and_client(settings) as (server, client):
            assert server.media_services.external_ipv6 == "::1"
            assert server.media_services.external_ipv4 == ""
            pipeline = await client.create("MediaPipeline")
            endpoint = await pipeline.create("WebRtcEndpoint")
            assert await endpoint.invoke("getExternalIPv6") == "::1"
            found = await endpoint.subscribe("IceCandidateFound")
            done = await endpoint.subscribe("IceGatheringDone")
            await endpoint.invoke("processOffer", offer=OFFER)
            await endpoint.invoke("gatherCandidates")
            await done.get(timeout=15)
            ipv6_hosts = []
            while not found.queue.empty():
                fields = found.queue.get_nowait()["candidate"]["candidate"].split()
                if fields[7] == "host" and ":" in fields[4]:
                    ipv6_hosts.append(fields[4])
            assert ipv6_hosts and set(ipv6_hosts) == {"::1"}, ipv6_hosts


def _silent_udp_port() -> int:
    """A loopback UDP port nobody listens on (ICMP port unreachable answers there)."""
    return free_port_range(1).low


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"external_ipv4": "auto"}, "no stunServerAddress"),
        (
            {"external_ipv4": "AUTO", "stun_server_address": "127.0.0.1", "port_of_stun": True},
            "gave no address",
        ),
        (
            {"external_ipv6": "auto", "stun_server_address": "127.0.0.1"},
            "is not IPv6",
        ),
    ],
    ids=["no-stun-server", "stun-unreachable", "stun-of-other-family"],
)
async def test_external_auto_left_unset_with_a_warning(
    overrides: dict[str, object], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """auto without a STUN server, with one that does not answer, or with one of the other
    family: the address is left unset (candidates keep their own) and a warning says why."""
    if overrides.pop("port_of_stun", False):
        overrides["stun_server_port"] = _silent_udp_port()
    services = MediaServices.from_settings(make_settings(external_address_timeout=2, **overrides))
    with caplog.at_level(logging.WARNING, logger="emulator.media.services"):
        await services.resolve_external_addresses()
    assert (services.external_ipv4, services.external_ipv6) == ("", "")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "=auto" in warnings[0] and reason in warnings[0], warnings
    assert "left unset" in warnings[0]


async def test_external_auto_timeout_bounds_a_silent_stun_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A STUN server that swallows requests (a bound socket that never answers) holds the start
    for ``external_address_timeout`` only, then the warning says it gave no address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        settings = make_settings(
            external_ipv4="auto",
            stun_server_address="127.0.0.1",
            stun_server_port=silent.getsockname()[1],
            external_address_timeout=0.8,
        )
        services = MediaServices.from_settings(settings)
        with caplog.at_level(logging.WARNING, logger="emulator.media.services"):
            await services.resolve_external_addresses()
        assert silent.recv(1500)  # the request did reach it
    assert services.external_ipv4 == ""
    assert any("gave no address" in r.getMessage() for r in caplog.records)
