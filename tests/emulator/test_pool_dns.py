"""The pool's server list from DNS: a real DNS server on loopback whose records the test changes,
as Kubernetes changes a headless Service's SRV and A records when media server pods come and go."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from emulator.app import App
from emulator.transport.discovery import DnsDiscovery
from emulator.transport.pool import NoServerAvailable, ServerPool
from protocol.pool import DnsServerList
from tests.conftest import make_settings, restart_port
from tests.emulator.dns_server import Zone, dns_server
from tests.ports import free_port_range

FAST = {
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "connect_timeout": 1.0,
    "call_timeout": 2.0,
    "retry_initial": 0.1,
    "retry_max": 0.5,
}
SERVICE = "kms.test."
SRV = (f"_kurento._tcp.{SERVICE}", "SRV")
DECISIONS = "emulator.transport.pool"


@contextlib.asynccontextmanager
async def servers_on(hosts_ports: list[tuple[str, int]]) -> AsyncIterator[list[App]]:
    """Servers on these addresses and ws:// ports; whichever run at the end are stopped."""
    servers = [App(make_settings(host=host, port=port)) for host, port in hosts_ports]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            if server.listener.accepting:
                await server.stop()


def srv_records(zone: Zone, servers: dict[str, App]) -> None:
    """SRV records naming these servers (target name -> server), each with its A record."""
    zone.records = {SRV: [f"0 50 {app.port('ws')} {name}" for name, app in servers.items()]}
    for name in servers:
        zone.records[(name, "A")] = ["127.0.0.1"]


async def placed_on(pool: ServerPool, count: int) -> list[str]:
    """The servers of ``count`` new calls (released at once)."""
    urls = []
    for _ in range(count):
        call = await pool.place_call()
        urls.append(call.server.url)
        await call.release()
    return urls


async def test_pool_follows_srv_records_as_servers_come_and_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Listed servers share the calls; one that leaves DNS gets none (its calls go on); one that
    appears joins; failover and rejoin still work on the DNS-listed servers."""
    caplog.set_level(logging.INFO, logger=DECISIONS)
    zone = Zone()
    ports = [restart_port(), restart_port(), 0]
    async with servers_on([("127.0.0.1", p) for p in ports]) as apps, dns_server(zone) as port:
        urls = [app.urls["ws"] for app in apps]
        names = ["a.kms.test.", "b.kms.test.", "c.kms.test."]
        srv_records(zone, {names[0]: apps[0], names[1]: apps[1]})
        dns = DnsDiscovery(DnsServerList(SERVICE), ["127.0.0.1"], port, timeout=10.0)
        async with ServerPool(dns=dns, resolve_interval=0.1, **FAST) as pool:
            assert sorted(pool.listed()) == sorted(urls[:2])
            assert sorted(await placed_on(pool, 4)) == sorted(urls[:2] * 2)
            held = await pool.place_call()
            leaving = urls.index(held.server.url)
            staying = 1 - leaving

            srv_records(zone, {names[staying]: apps[staying], names[2]: apps[2]})
            await pool.wait_listed(urls[2], True, timeout=5)
            await pool.wait_listed(urls[leaving], False, timeout=5)
            await pool.wait_until(urls[2], up=True, timeout=5)
            listed = [urls[staying], urls[2]]
            assert sorted(await placed_on(pool, 4)) == sorted(listed * 2)
            # The call on the server that left the list goes on: its connection is kept.
            await held.pipeline.create("WebRtcEndpoint")
            assert f"= pool: server {urls[leaving]} left the DNS list" in caplog.text

            await apps[staying].stop()  # dies while still listed: failover to the new one
            assert await placed_on(pool, 3) == [urls[2]] * 3
            apps[staying] = App(make_settings(port=ports[staying]))
            await apps[staying].start()
            await pool.wait_until(urls[staying], up=True, timeout=10)
            assert sorted(await placed_on(pool, 4)) == sorted(listed * 2)

            srv_records(zone, dict(zip(names, apps, strict=True)))
            await pool.wait_listed(urls[leaving], True, timeout=5)
            await pool.wait_until(urls[leaving], up=True, timeout=5)
            assert sorted(await placed_on(pool, 6)) == sorted(urls * 2)
            await held.release()


async def test_pool_takes_address_records_without_srv() -> None:
    """Without SRV records, the name's A records list the servers, all on the default port
    (a headless Service's pods share one port; here, loopback addresses share one port)."""
    zone = Zone()
    port = free_port_range(1).low
    hosts = [("127.0.0.2", port), ("127.0.0.3", port)]
    async with servers_on(hosts) as apps, dns_server(zone) as dns_port:
        urls = [app.urls["ws"] for app in apps]
        assert urls == [f"ws://{host}:{port}/kurento" for host, _ in hosts]
        zone.records = {(SERVICE, "A"): ["127.0.0.2", "127.0.0.3"]}
        servers = DnsServerList(SERVICE, port=port)
        dns = DnsDiscovery(servers, ["127.0.0.1"], dns_port, timeout=10.0)
        async with ServerPool(dns=dns, resolve_interval=0.1, **FAST) as pool:
            assert await placed_on(pool, 4) == urls * 2
            zone.records = {(SERVICE, "A"): ["127.0.0.3"]}
            await pool.wait_listed(urls[0], False, timeout=5)
            assert await placed_on(pool, 3) == [urls[1]] * 3


async def test_pool_keeps_its_list_through_a_dns_outage_and_empties_on_nxdomain() -> None:
    """A lookup that times out keeps the last list (DNS down is not the media servers down);
    NXDOMAIN (no ready pod) empties it, and calls fail until records come back."""
    zone = Zone()
    async with servers_on([("127.0.0.1", 0)]) as apps, dns_server(zone) as port:
        url = apps[0].urls["ws"]
        srv_records(zone, {"a.kms.test.": apps[0]})
        dns = DnsDiscovery(DnsServerList(SERVICE), ["127.0.0.1"], port, timeout=1.0)
        async with ServerPool(dns=dns, resolve_interval=3600, **FAST) as pool:
            zone.silent = True
            await pool.refresh()
            assert pool.listed() == [url]
            assert (await pool.place_call()).server.url == url

            zone.silent, zone.records = False, {}
            await pool.refresh()
            assert pool.listed() == []
            with pytest.raises(NoServerAvailable):
                await pool.place_call()

            srv_records(zone, {"a.kms.test.": apps[0]})
            await pool.refresh()
            await pool.wait_until(url, up=True, timeout=5)
            assert (await pool.place_call()).server.url == url


async def test_srv_targets_without_glue_are_looked_up() -> None:
    """A DNS server that sends no additional section: each SRV target's A record is asked for."""
    zone = Zone(glue=False)
    async with dns_server(zone) as port:
        zone.records = {
            SRV: ["0 50 9001 a.kms.test.", "0 50 9002 b.kms.test."],
            ("a.kms.test.", "A"): ["10.0.0.1"],
            ("b.kms.test.", "AAAA"): ["fd00::2"],
        }
        dns = DnsDiscovery(DnsServerList(SERVICE), ["127.0.0.1"], port, timeout=10.0)
        assert sorted(await dns.resolve()) == [("10.0.0.1", 9001), ("fd00::2", 9002)]
        entries = dns.servers.entries(await dns.resolve())
        assert [e.url for e in entries] == [
            "ws://10.0.0.1:9001/kurento",
            "ws://[fd00::2]:9002/kurento",
        ]
