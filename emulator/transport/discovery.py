"""The server list from DNS: SRV and A/AAAA lookups of a headless Service, with dnspython.

Kubernetes gives a headless Service (``clusterIP: None``) one A (or AAAA) record per ready pod
under the Service's name, and SRV records ``_<port name>._tcp.<service>`` naming each pod with
the port; pods that are not ready (starting, or past SIGTERM) are left out. ``DnsDiscovery``
resolves the SRV name first and falls back to the address records; what to look up and how the
URLs are built is ``protocol.pool.DnsServerList``'s. A name that does not exist (NXDOMAIN: the
Service has no ready pod) is an empty list; a lookup that fails (timeout, no server answers)
raises ``DiscoveryError``, and the pool keeps the list it had.
"""

from __future__ import annotations

import logging

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from protocol.pool import DnsServerList

logger = logging.getLogger(__name__)

ADDRESS_TYPES = ("A", "AAAA")


class DiscoveryError(ConnectionError):
    """DNS did not answer; the message names the lookup and why."""


class DnsDiscovery:
    """Resolves a ``DnsServerList`` to ``(address, port)`` pairs.

    Args:
        servers: what to look up.
        nameservers: DNS servers to ask (addresses); None: the system's (/etc/resolv.conf, with
            its search domains, so a Service's short name works inside a pod).
        nameserver_port: their port (53; tests run one on an ephemeral port).
        timeout: seconds one lookup may take, retries included.
    """

    def __init__(
        self,
        servers: DnsServerList,
        nameservers: list[str] | None = None,
        nameserver_port: int = 53,
        timeout: float = 2.0,
    ) -> None:
        self.servers = servers
        self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = nameserver_port
        self._resolver.lifetime = timeout
        self._resolver.cache = None
        # Search domains only with the system's configuration, where they come from resolv.conf.
        self._search = nameservers is None

    async def resolve(self) -> list[tuple[str, int]]:
        """The servers' ``(address, port)`` pairs, SRV first, else the name's A/AAAA records.

        Raises:
            DiscoveryError: the DNS servers did not answer, or answered with an error.
        """
        spec = self.servers
        try:
            srv = await self._lookup(spec.srv_name, "SRV")
            if srv is not None:
                return await self._srv_targets(srv)
            found: list[tuple[str, int]] = []
            for rdtype in ADDRESS_TYPES:
                answer = await self._lookup(spec.name, rdtype)
                found += [(rr.address, spec.port) for rr in answer or []]
            return found
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"DNS lookup of {spec.name} failed: {exc}") from exc

    async def _lookup(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, or None where the name or this type of record does not exist."""
        try:
            return await self._resolver.resolve(name, rdtype, search=self._search)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None

    async def _srv_targets(self, answer: dns.resolver.Answer) -> list[tuple[str, int]]:
        """Each SRV target's addresses, from the answer's additional section where the server
        put them (CoreDNS does), else looked up."""
        additional = _addresses_by_name(answer.response)
        found: list[tuple[str, int]] = []
        for record in answer:
            target = record.target
            addresses = additional.get(target)
            if addresses is None:
                addresses = []
                for rdtype in ADDRESS_TYPES:
                    looked_up = await self._lookup(target.to_text(), rdtype)
                    addresses += [rr.address for rr in looked_up or []]
            if not addresses:
                logger.warning("= pool: SRV target %s has no address, skipped", target)
            found += [(address, record.port) for address in addresses]
        return found


def _addresses_by_name(response: dns.message.Message) -> dict[dns.name.Name, list[str]]:
    found: dict[dns.name.Name, list[str]] = {}
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            found.setdefault(rrset.name, []).extend(rr.address for rr in rrset)
    return found
