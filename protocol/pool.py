"""Server pool decisions without sockets: the ``kurentoservers`` list, round-robin, backoff.

Controllers list their media servers as ``[{"url": "ws://10.21.3.11:8888/kurento",
"candkillipv6": 0, "candkilltcp": 0, "candonlyturn": 0}, ...]`` (ecosystem.md 1.5). New calls go
round-robin to the servers that are up; a server found down (connection refused, ping timeout) gets
no new calls and is retried with exponential backoff until it answers again (estos UCServer, BBB's
balancer). Times are ``now`` values from the caller's clock.

The list may also come from DNS (a Kubernetes headless Service: SRV records
``_kurento._tcp.<service>`` or its A/AAAA records): ``DnsServerList`` names what to look up and
turns the addresses found into entries; ``PoolPlan.set_listed`` takes each new list, keeping what
it knows of the servers that stay. The lookups themselves are ``emulator/transport/discovery.py``'s.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from protocol.sdp import IceCandidateLine


class PoolConfigError(ValueError):
    """The ``kurentoservers`` list cannot be used; the message names the entry and the fix."""


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One ``kurentoservers`` entry: the URL and the candidate filters callers apply."""

    url: str
    candkillipv6: bool = False
    candkilltcp: bool = False
    candonlyturn: bool = False

    @property
    def relay_only(self) -> bool:
        """``candonlyturn``: peers of this server should use relay candidates only."""
        return self.candonlyturn

    def candidate_filter(self, candidate: str) -> bool:
        """Whether an ICE candidate line passes this entry's filters (False: drop it).

        ``candkillipv6`` drops IPv6 addresses, ``candkilltcp`` drops TCP candidates,
        ``candonlyturn`` keeps relay candidates only. An unparsable line is dropped.
        """
        try:
            parsed = IceCandidateLine.parse(candidate)
        except ValueError:
            return False
        if self.candkillipv6 and ":" in parsed.address:
            return False
        if self.candkilltcp and parsed.transport.upper() == "TCP":
            return False
        return not (self.candonlyturn and parsed.type != "relay")


FLAGS = ("candkillipv6", "candkilltcp", "candonlyturn")


def parse_kurentoservers(data: Any) -> list[ServerEntry]:
    """Entries from the decoded list (or JSON text).

    Raises:
        PoolConfigError: not a non-empty list of objects with a ws:// or wss:// ``url``,
            a flag that is not 0/1/true/false, or a URL listed twice.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PoolConfigError(f"kurentoservers is not JSON: {exc}") from exc
    if isinstance(data, dict) and "kurentoservers" in data:
        data = data["kurentoservers"]
    if not isinstance(data, list) or not data:
        raise PoolConfigError('kurentoservers should be a non-empty list of {"url": ...} objects')
    entries: list[ServerEntry] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise PoolConfigError(f"kurentoservers[{index}] should be an object with a 'url'")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise PoolConfigError(
                f"kurentoservers[{index}].url should be a ws:// or wss:// URL, got {url!r}"
            )
        flags: dict[str, bool] = {}
        for name in FLAGS:
            value = item.get(name, 0)
            if value not in (0, 1, True, False) or isinstance(value, float):
                raise PoolConfigError(f"kurentoservers[{index}].{name} should be 0 or 1")
            flags[name] = bool(value)
        if any(entry.url == url for entry in entries):
            raise PoolConfigError(f"kurentoservers[{index}]: {url} is listed twice")
        entries.append(ServerEntry(url, **flags))
    return entries


@dataclass(frozen=True, slots=True)
class DnsServerList:
    """Where DNS lists the servers: a name (a headless Service) and how to build their URLs.

    The SRV records ``_<service>._tcp.<name>`` give each server's address and ws:// port
    (Kubernetes publishes them for the Service's port named ``service``); without them the A/AAAA
    records of ``name`` give the addresses, all on ``port``.
    """

    name: str
    port: int = 8888
    service: str = "kurento"
    scheme: str = "ws"
    path: str = "kurento"
    candkillipv6: bool = False
    candkilltcp: bool = False
    candonlyturn: bool = False

    def __post_init__(self) -> None:
        if not self.name or " " in self.name:
            raise PoolConfigError(f"DNS name {self.name!r} should be a host name")
        if self.scheme not in ("ws", "wss"):
            raise PoolConfigError(f"DNS scheme should be ws or wss, got {self.scheme!r}")
        if not 0 < self.port < 65536:
            raise PoolConfigError(f"DNS default port should be 1..65535, got {self.port}")

    @property
    def srv_name(self) -> str:
        """The SRV name looked up first."""
        return f"_{self.service}._tcp.{self.name}"

    def entries(self, addresses: list[tuple[str, int]]) -> list[ServerEntry]:
        """One entry per ``(address, port)``, sorted so that each lookup gives the same order."""
        urls = {self.url(address, port) for address, port in addresses}
        flags = (self.candkillipv6, self.candkilltcp, self.candonlyturn)
        return [ServerEntry(url, *flags) for url in sorted(urls)]

    def url(self, address: str, port: int) -> str:
        """The server's URL; an IPv6 address goes in brackets."""
        host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        return f"{self.scheme}://{host}:{port}/{self.path}"


@dataclass(slots=True)
class ServerHealth:
    """What the pool knows about one server."""

    entry: ServerEntry
    up: bool = False
    # False once the server left the list (DNS): it gets no new calls, and is not retried.
    listed: bool = True
    reason: str = "not tried yet"
    failures: int = 0
    retry_at: float | None = None


class PoolPlan:
    """Round-robin placement over the servers that are up, and the retry schedule of the others."""

    def __init__(
        self, entries: list[ServerEntry], retry_initial: float = 0.5, retry_max: float = 30.0
    ) -> None:
        self.servers = [ServerHealth(entry) for entry in entries]
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._next = 0

    def health(self, url: str) -> ServerHealth:
        """The state of one server, by URL."""
        for server in self.servers:
            if server.entry.url == url:
                return server
        raise KeyError(url)

    def up_urls(self) -> list[str]:
        """URLs of the servers that take calls, in list order."""
        return [s.entry.url for s in self.servers if s.up and s.listed]

    def listed_urls(self) -> list[str]:
        """URLs of the servers on the current list, up or down."""
        return [s.entry.url for s in self.servers if s.listed]

    def is_listed(self, url: str) -> bool:
        """Whether the server is on the current list (a server never listed is not)."""
        return any(s.entry.url == url and s.listed for s in self.servers)

    def set_listed(self, entries: list[ServerEntry]) -> tuple[list[ServerEntry], list[ServerEntry]]:
        """Take a new server list; returns ``(added, removed)``.

        A server that stays keeps its state (up, backoff); one that comes back after leaving the
        list is tried at once, as a new one; one that leaves gets no new calls (its calls go on).
        New servers join the round-robin at the end of the list.
        """
        wanted = {entry.url: entry for entry in entries}
        added: list[ServerEntry] = []
        removed: list[ServerEntry] = []
        for server in self.servers:
            if server.listed and server.entry.url not in wanted:
                server.listed = False
                removed.append(server.entry)
            elif not server.listed and server.entry.url in wanted:
                server.listed, server.failures, server.retry_at = True, 0, None
                server.entry = wanted[server.entry.url]
                added.append(server.entry)
        known = {server.entry.url for server in self.servers}
        for entry in entries:
            if entry.url not in known:
                self.servers.append(ServerHealth(entry))
                added.append(entry)
        return added, removed

    def pick(self, exclude: frozenset[str] = frozenset()) -> ServerEntry | None:
        """The next server for a new call (round-robin over those up), or None if none is."""
        count = len(self.servers)
        for step in range(count):
            index = (self._next + step) % count
            server = self.servers[index]
            if server.up and server.listed and server.entry.url not in exclude:
                self._next = index + 1
                return server.entry
        return None

    def mark_up(self, url: str) -> bool:
        """The server answered; returns True if it was down (a state change)."""
        server = self.health(url)
        changed = not server.up
        server.up, server.reason, server.failures, server.retry_at = True, "up", 0, None
        return changed

    def mark_down(self, url: str, reason: str, now: float) -> bool:
        """The server failed (refused, timed out, closed); returns True if it was up.

        The next retry is ``retry_initial`` after the failure, doubling per failed retry up to
        ``retry_max``.
        """
        server = self.health(url)
        changed = server.up or server.failures == 0
        delay = min(self.retry_initial * 2**server.failures, self.retry_max)
        server.up, server.reason = False, reason
        server.failures += 1
        server.retry_at = now + delay
        return changed

    def retry_delay(self, url: str, now: float) -> float:
        """Seconds until the server should be tried again (0 if due or up)."""
        server = self.health(url)
        if server.up or server.retry_at is None:
            return 0.0
        return max(0.0, server.retry_at - now)

    def next_deadline(self) -> float | None:
        """The earliest retry time of a server that is down."""
        times = [
            s.retry_at for s in self.servers if s.listed and not s.up and s.retry_at is not None
        ]
        return min(times) if times else None
