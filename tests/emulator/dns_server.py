"""A tiny authoritative DNS server on loopback for the pool's tests: answers from a dict the test
changes (as Kubernetes changes a headless Service's records when pods come and go)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 5  # CoreDNS's default for Kubernetes records


@dataclass
class Zone:
    """Records by (name, type), e.g. ``("kms.test.", "A"): ["127.0.0.2"]`` or
    ``("_kurento._tcp.kms.test.", "SRV"): ["0 50 8888 s1.kms.test."]``; names in the zone without
    any record answer NXDOMAIN. ``glue``: SRV answers carry the targets' A records (CoreDNS)."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    glue: bool = True
    silent: bool = False  # drop every query: a DNS outage
    queries: int = 0

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to one query."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        found = self.records.get((name, rdtype))
        if found:
            response.answer.append(self._rrset(name, rdtype, found))
            if rdtype == "SRV" and self.glue:
                for line in found:
                    target = line.split()[-1]
                    for kind in ("A", "AAAA"):
                        if (target, kind) in self.records:
                            response.additional.append(
                                self._rrset(target, kind, self.records[(target, kind)])
                            )
        elif not any(key[0] == name for key in self.records if self.records[key]):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    @staticmethod
    def _rrset(name: str, rdtype: str, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, values)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.zone.queries += 1
        if self.zone.silent or self.transport is None:
            return
        query = dns.message.from_wire(data)
        self.transport.sendto(self.zone.answer(query).to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_server(zone: Zone) -> AsyncIterator[int]:
    """Serve the zone over UDP on 127.0.0.1, on a port of the OS's choosing (yielded)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(zone), local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
