"""The seam over aioice: ICE whose every socket comes from the PortRange.

aioice binds host sockets on ``(address, 0)``, never gathers loopback, accepts data from any source,
queues it without bound (ecosystem.md 3.7) and times consent checks with process-wide constants.
``RangedConnection`` changes exactly those points (through ``aiortc_adapter``, which holds every
aioice internal it needs):

- host and TURN client sockets are bound by ``PortRange`` on the addresses ``IcePolicy`` picks
  (``networkInterfaces``, loopback included, IPv6 optional), and the host sockets are bound when
  ``bind_host_sockets`` is called, so that exhaustion fails that call with 40009; the TURN client
  socket is a UDP one, or for ``?transport=tcp|tls`` a TCP one connected from the range;
- with ``ice_tcp`` (KMS's ``iceTcp``), each host address also gets a passive TCP candidate, a
  listener bound in the range, and an active one (port 9) that connects from the range when a
  check goes to a remote passive candidate (RFC 6544); both carry RFC 4571 records through
  ``FramedTcpTransport`` into the same ``GuardedStunProtocol`` as a UDP socket;
- every local candidate is reported as soon as it exists (trickle ICE);
- ``GuardedStunProtocol`` passes media (RFC 7983: not STUN) only from addresses ICE validated, and
  hands RTP/RTCP to a synchronous ``fast_path`` when one is installed;
- host sockets are read by the server's ``MediaPoller`` for the event loop (batched reads), not
  by asyncio;
- the receive queue is bounded and counts what it drops;
- consent freshness (RFC 7675) runs with the server's timing (``IcePolicy``), per connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ifaddr
from aioice import Candidate, TransportPolicy

from emulator.media.legs.aiortc_adapter import (
    CandidatePair,
    IceConnectionSeam,
    StunProtocol,
    allocate_turn_on_socket,
    allocate_turn_on_stream,
    host_candidate,
    ice_validated,
    relay_candidate,
    server_reflexive,
    tcp_host_candidate,
)
from emulator.media.net.framed_tcp import FramedTcpTransport
from emulator.media.net.poller import MediaPoller, MediaPollers, PolledSocket, limit_reads
from emulator.media.net.ports import PortRange

logger = logging.getLogger(__name__)

RECEIVE_QUEUE = 2048
"""Datagrams waiting for aiortc's DTLS/SRTP loop before new ones are dropped."""

TCP_CONNECTIONS = 8
"""TCP connections one ICE TCP candidate holds at once (a peer needs one per pair it checks)."""

FastPath = Callable[[bytes, tuple[str, int]], bool]
"""``fast_path(datagram, source)`` -> True when it consumed an RTP/RTCP datagram."""


@dataclass(frozen=True, slots=True)
class IcePolicy:
    """How one server's ICE connections run: the local addresses host candidates are gathered on
    (an endpoint's ``networkInterfaces``), consent timing, and the pollers reading host sockets."""

    interfaces: tuple[str, ...] = ()
    """Interface names (``networkInterfaces``); empty means every interface."""
    ipv4: bool = True
    ipv6: bool = True
    loopback: bool = True
    consent_interval: float = 5.0
    """Seconds between consent checks (RFC 7675 section 5.1; aioice's default too)."""
    consent_failures: int = 6
    """Unanswered consent checks in a row after which the connection closes."""
    pollers: MediaPollers | None = field(default=None, compare=False)
    """The server's pollers; None: asyncio reads every socket (one wakeup per datagram)."""

    def addresses(self) -> list[str]:
        """Local addresses to bind, IPv4 first, link-local IPv6 excluded."""
        found_v4: list[str] = []
        found_v6: list[str] = []
        for adapter in ifaddr.get_adapters():
            if self.interfaces and adapter.nice_name not in self.interfaces:
                continue
            for ip in adapter.ips:
                address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                parsed = ipaddress.ip_address(address)
                if parsed.is_loopback and not (self.loopback or self.interfaces):
                    continue
                if parsed.version == 4 and self.ipv4:
                    found_v4.append(address)
                elif parsed.version == 6 and self.ipv6 and not parsed.is_link_local:
                    found_v6.append(address)
        return sorted(set(found_v4), key=found_v4.index) + sorted(set(found_v6), key=found_v6.index)


@dataclass
class IceCounters:
    """What the guards dropped."""

    unvalidated_source: int = 0
    malformed_stun: int = 0
    """STUN-looking datagrams aioice's parser raised on (an attribute whose length lies)."""
    queue_overflow: int = 0
    send_errors: int = 0
    sources: set[tuple[str, int]] = field(default_factory=set)


class GuardedStunProtocol(StunProtocol):
    """aioice's socket protocol, with RFC 7983 demultiplexing and a source check for media."""

    fast_path: FastPath | None = None
    polled: PolledSocket | None = None
    """The host socket, read by the server's ``MediaPoller`` instead of asyncio."""
    _validated: tuple[Any, ...] | None = None
    """The last source ICE validated on this socket (sources stay valid for the connection)."""

    def __init__(self, connection: RangedConnection) -> None:
        super().__init__(connection)
        self.connection = connection
        """``receiver``, typed once (aioice types it as its own Connection)."""

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        """A datagram read by asyncio (TURN, or before the poller took the socket over)."""
        assert isinstance(data, bytes)
        self._handle(data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport closed: the poller stops reading the socket."""
        if self.polled is not None:
            self.polled.stop()
            self.polled = None
        super().connection_lost(exc)

    def read_with(
        self, transport: asyncio.BaseTransport, sock: socket.socket, poller: MediaPoller | None
    ) -> None:
        """Let ``poller`` read the socket, instead of ``transport`` (which still sends)."""
        limit_reads(transport)
        polled = PolledSocket(sock, self._handle, self.error_received)
        if poller is not None and polled.start(transport, poller):
            self.polled = polled

    def _handle(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """STUN goes to aioice; anything else only from a validated remote address."""
        if not data:
            return
        receiver = self.connection
        if data[0] < 4:
            if not receiver.drop_stun:
                self._stun(data, addr)
            return
        if addr != self._validated:
            source = (addr[0], addr[1])
            if not receiver.is_validated(self, source):
                receiver.drop_unvalidated(source)
                return
            self._validated = addr
        fast_path = self.fast_path
        if fast_path is not None and data[0] > 127 and fast_path(data, addr):
            return
        receiver.queue_datagram(data, self.local_candidate.component)

    def _stun(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # aioice catches only ValueError around its parser, which raises struct.error on an
        # attribute shorter than its type needs (ERROR-CODE of 1 byte): anyone, validated or
        # not, could otherwise raise out of the receive loop with one datagram.
        try:
            super().datagram_received(data, addr)
        except (struct.error, IndexError):
            self.connection.counters.malformed_stun += 1


class RangedConnection(IceConnectionSeam):
    """An aioice Connection whose sockets live in the port range and whose candidates trickle."""

    def __init__(
        self,
        *,
        ports: PortRange,
        policy: IcePolicy,
        on_candidate: Callable[[Candidate], None] | None = None,
        transport_policy: TransportPolicy = TransportPolicy.ALL,
        ice_tcp: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            receive_queue=RECEIVE_QUEUE,
            consent_interval=policy.consent_interval,
            consent_failures=policy.consent_failures,
            transport_policy=transport_policy,
            **kwargs,
        )
        self.ports = ports
        self.policy = policy
        self.transport_policy = transport_policy
        self.on_candidate = on_candidate
        self.ice_tcp = ice_tcp
        """Gather TCP host candidates too (KMS's ``iceTcp``)."""
        self.counters = IceCounters()
        self._bound: list[socket.socket] = []
        self._listeners: list[socket.socket] = []
        self._fast_path: FastPath | None = None
        self.drop_stun = False
        """Fault injection: ignore every STUN message, so that ICE never connects."""
        self._route: tuple[CandidatePair | None, Any, tuple[str, int]] = (None, None, ("", 0))

    # -- gathering -------------------------------------------------------------------------------

    def bind_host_sockets(self) -> None:
        """Bind one UDP socket per host address now (and with ``ice_tcp`` one TCP listener), so
        that a full port range fails this call.

        Raises:
            PortRangeExhausted: 40009, nothing stays bound.
        """
        if self._bound or self.transport_policy != TransportPolicy.ALL:
            return
        try:
            addresses = self.policy.addresses()
            for address in addresses:
                self._bound.append(self.ports.bind_udp(address))
            if self.ice_tcp:
                for address in addresses:
                    self._listeners.append(self.ports.bind_tcp_listener(address))
        except Exception:
            for sock in self._bound + self._listeners:
                sock.close()
            self._bound.clear()
            self._listeners.clear()
            raise

    async def gather_component(self, component: int, timeout: int = 5) -> list[Candidate]:
        """Host candidates from the pre-bound sockets, then server-reflexive and relayed ones."""
        self.bind_host_sockets()
        host_protocols = await self._host_protocols(component)
        candidates = [protocol.local_candidate for protocol in host_protocols]
        candidates += await self._tcp_candidates(component)
        tasks = self._server_tasks(component, host_protocols)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is None:
                    candidate, relay = task.result()
                    candidates.append(candidate)
                    if relay is not None:
                        self.protocols.append(relay)
                else:
                    logger.info("ICE server candidate failed: %s", task.exception())
        return candidates

    async def _host_protocols(self, component: int) -> list[StunProtocol]:
        """Wrap each pre-bound socket in aioice's protocol; a failure closes what is left."""
        loop = asyncio.get_running_loop()
        poller = self.policy.pollers.of(loop) if self.policy.pollers is not None else None
        bound, self._bound = self._bound, []
        protocols: list[StunProtocol] = []
        try:
            for order, sock in enumerate(bound):
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: GuardedStunProtocol(self), sock=sock
                )
                assert isinstance(protocol, GuardedStunProtocol)
                protocol.read_with(transport, sock, poller)
                protocol.fast_path = self._fast_path
                self.protocols.append(protocol)
                host, port = sock.getsockname()[:2]
                # A local preference per address, as libnice: earlier ones are preferred.
                protocol.local_candidate = host_candidate(component, host, port, 65535 - order)
                protocols.append(protocol)
                self._found(protocol.local_candidate)
        finally:
            for sock in bound[len(protocols) :]:
                sock.close()
        return protocols

    async def _tcp_candidates(self, component: int) -> list[Candidate]:
        """A passive candidate per listener, then an active one per address (RFC 6544 section
        5.1: an active candidate's port is 9); a failure closes the listeners left."""
        listeners, self._listeners = self._listeners, []
        hosts: list[str] = []
        candidates: list[Candidate] = []
        try:
            # A local preference per address, as for UDP: earlier ones are preferred.
            while listeners:
                sock = listeners[0]
                host, port = sock.getsockname()[:2]
                protocol = GuardedStunProtocol(self)
                protocol.fast_path = self._fast_path
                transport = FramedTcpTransport(
                    protocol, listener=sock, max_connections=TCP_CONNECTIONS
                )
                await transport.start()
                listeners.pop(0)
                order = 8191 - len(hosts)
                candidate = tcp_host_candidate(component, host, port, "passive", order)
                candidates.append(self._add_tcp(protocol, candidate))
                hosts.append(host)
        finally:
            for sock in listeners:
                sock.close()
        for order, host in enumerate(hosts):
            protocol = GuardedStunProtocol(self)
            protocol.fast_path = self._fast_path
            transport = FramedTcpTransport(
                protocol,
                connect_from=functools.partial(self.ports.bind_tcp, host),
                max_connections=TCP_CONNECTIONS,
            )
            await transport.start()
            candidate = tcp_host_candidate(component, host, 9, "active", 8191 - order)
            candidates.append(self._add_tcp(protocol, candidate))
        return candidates

    def _add_tcp(self, protocol: GuardedStunProtocol, candidate: Candidate) -> Candidate:
        protocol.local_candidate = candidate
        self.protocols.append(protocol)
        self._found(candidate)
        return candidate

    def _server_tasks(
        self, component: int, host_protocols: list[StunProtocol]
    ) -> list[asyncio.Task[tuple[Candidate, StunProtocol | None]]]:
        tasks: list[asyncio.Task[tuple[Candidate, StunProtocol | None]]] = []
        if self.stun_server:
            for protocol in host_protocols:
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                    tasks.append(asyncio.create_task(self._reflexive(protocol)))
        if self.turn_server:
            tasks.append(asyncio.create_task(self._relayed(component)))
        return tasks

    async def _reflexive(self, protocol: StunProtocol) -> tuple[Candidate, StunProtocol | None]:
        assert self.stun_server is not None
        candidate = await server_reflexive(protocol, self.stun_server)
        self._found(candidate)
        return candidate, None

    async def _relayed(self, component: int) -> tuple[Candidate, StunProtocol | None]:
        """A TURN allocation whose client socket, UDP or TCP, is bound in the port range."""
        assert self.turn_server is not None
        protocol = GuardedStunProtocol(self)
        protocol.fast_path = self._fast_path
        username, password = self.turn_username, self.turn_password
        server = (socket.gethostbyname(self.turn_server[0]), self.turn_server[1])
        if self.turn_transport == "udp":
            sock = self.ports.bind_udp("0.0.0.0")
            sock.connect(server)
            relayed, mapped = await allocate_turn_on_socket(
                sock, server, username, password, protocol
            )
        else:
            tls = turn_tls_context() if self.turn_ssl else None
            sock = self.ports.bind_tcp("0.0.0.0")
            relayed, mapped = await allocate_turn_on_stream(
                sock, server, username, password, protocol, tls
            )
        protocol.local_candidate = relay_candidate(
            component, relayed[0], relayed[1], mapped or ("0.0.0.0", 9)
        )
        self._found(protocol.local_candidate)
        return protocol.local_candidate, protocol

    def _found(self, candidate: Candidate) -> None:
        if self.on_candidate is not None:
            self.on_candidate(candidate)

    # -- media guards ------------------------------------------------------------------------

    def is_validated(self, protocol: StunProtocol, source: tuple[str, int]) -> bool:
        """Whether ICE validated ``source`` on this socket (a succeeded or nominated pair)."""
        return ice_validated(self, protocol, source)

    def drop_unvalidated(self, source: tuple[str, int]) -> None:
        """Count (and log once per source) media from an address ICE did not validate."""
        self.counters.unvalidated_source += 1
        if source not in self.counters.sources and len(self.counters.sources) < 64:
            self.counters.sources.add(source)
            logger.warning("! dropped media from %s:%s: not an ICE-validated address", *source)

    def queue_datagram(self, data: bytes, component: int) -> None:
        """Queue a datagram for aiortc, dropping when the queue is full."""
        try:
            self.receive_queue.put_nowait((data, component))
        except asyncio.QueueFull:
            self.counters.queue_overflow += 1

    def set_fast_path(self, fast_path: FastPath | None) -> None:
        """Install (or remove) the synchronous RTP/RTCP handler on every socket."""
        self._fast_path = fast_path
        for protocol in self.protocols:
            if isinstance(protocol, GuardedStunProtocol):
                protocol.fast_path = fast_path

    def send_now(self, data: bytes, component: int = 1) -> bool:
        """Send on the nominated pair without a coroutine; False when not connected."""
        pair = self.nominated.get(component)
        if pair is None:
            return False
        route = self._route
        if route[0] is not pair:
            # Once per nominated pair: aioice's remote_addr builds a tuple on every call, and a
            # host socket is written directly (asyncio's sendto only adds checks and a buffer
            # that a real-time packet is better off without).
            sock = getattr(pair.protocol, "sock", None)
            send = sock.sendto if sock is not None else pair.protocol.transport.sendto
            route = self._route = (pair, send, pair.remote_addr)
        try:
            route[1](data, route[2])
        except OSError:  # a full send buffer or an unreachable peer: the packet is lost, as UDP
            self.counters.send_errors += 1
            return False
        return True

    def polled_pair(self, component: int = 1) -> tuple[PolledSocket, tuple[Any, ...]] | None:
        """The nominated pair's host socket, read by a poller, and its remote address (None
        for a relayed or TCP pair, or before nomination): what a compiled route may use."""
        pair = self.nominated.get(component)
        if pair is None:
            return None
        polled = getattr(pair.protocol, "polled", None)
        if not isinstance(polled, PolledSocket):
            return None
        return polled, tuple(pair.remote_addr)

    def selected_pair(self, component: int = 1) -> tuple[Candidate, Candidate] | None:
        """The nominated (local, remote) candidates."""
        pair = self.nominated.get(component)
        if pair is None:
            return None
        return pair.local_candidate, pair.remote_candidate


def turn_tls_context() -> ssl.SSLContext:
    """The client context for TURN over TLS: any server certificate is accepted, unchecked.

    KMS verifies no TURN certificate either (libnice opens ``NICE_RELAY_TYPE_TURN_TLS`` in RFC
    5245 mode as plain TCP: its pseudo-TLS is for Google and MS-OC compatibility only), and
    ``turnURL`` names an IP address, not a host to check. TLS here only hides the TURN traffic
    (the long-term credential mechanism's HMAC already protects the password); it does not
    authenticate the server.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
