"""Every aiortc and aioice internal the emulator relies on, and nothing else.

The media seams (``ice.py``, ``dtls.py``, ``peer.py``) need more of aiortc and aioice than their
documented API: private attributes and methods, hooks to override, module constants, classes that
their packages do not export. Each such name is used here only, behind a small named function or
class, and is declared in ``INTERNALS`` with what uses it. ``tests/test_aiortc_adapter.py`` checks
that every declared name still exists (and that the hooks are still called and the constants
still read), naming the name and its user when an upgrade removes it, and that no other module of
``emulator/`` touches one of them. Written against aiortc 1.16.0 and aioice 0.13.0.

Out of scope: the public names of aiortc's undocumented modules that other modules import as a
library (the RTCP packet classes of ``aiortc.rtp``, ``aiortc.codecs``' encoders, ``JitterFrame``):
an upgrade that removes one fails at import, naming it. The privates that tests and benchmarks
patch on aiortc's own client peers are declared in the test, not here.

Consent timing. aioice's consent freshness loop (``Connection.query_consent``, RFC 7675) reads the
module constants ``CONSENT_INTERVAL`` and ``CONSENT_FAILURES`` at every round, so setting them
changes every connection of the process, those of another server included. A connection whose
timing is its own would otherwise need a copy of that loop (and of the private names it uses).
Instead ``IceConnectionSeam.query_consent`` runs aioice's own function, its code unchanged, with
those two globals rebound to the connection's values (``consent_loop``): the test checks that the
function still reads both names, so that an upgrade cannot turn the override into a no-op.

Held containers. ``IceConnectionSeam`` keeps references to aioice's ``_nominated`` dict and
``_protocols`` list (``nominated``, ``protocols``), so that the per-packet send path reads the
nominated pair without a call, and replaces its ``_queue`` with a bounded one (``receive_queue``).
aioice assigns the three in ``Connection.__init__`` only and mutates them afterwards; the test
checks that too (``Internal.held``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import types
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import pylibsrtp
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, StunProtocol, server_reflexive_candidate
from aioice.turn import (
    DEFAULT_ALLOCATION_LIFETIME,
    DEFAULT_CHANNEL_REFRESH_TIME,
    TurnClientTcpProtocol,
    TurnClientUdpProtocol,
    TurnTransport,
)
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
)
from aiortc.rtcdtlstransport import State

__all__ = [
    "INTERNALS",
    "CandidatePair",
    "DtlsTransportSeam",
    "IceConnectionSeam",
    "Internal",
    "SrtpReceiver",
    "StunProtocol",
    "allocate_turn_on_socket",
    "allocate_turn_on_stream",
    "connection_protocols",
    "consent_loop",
    "dtls_role",
    "gatherer_connection",
    "host_candidate",
    "ice_connection",
    "ice_transport_over",
    "ice_validated",
    "nominated_pairs",
    "relay_candidate",
    "server_reflexive",
    "set_dtls_role",
    "srtp_sessions",
    "tcp_host_candidate",
]


@dataclass(frozen=True, slots=True)
class Internal:
    """One aiortc or aioice name used beyond their documented API."""

    path: str
    """Module, then class and attribute: ``aioice.ice.Connection._nominated``."""
    used_by: str
    """What relies on it: a function or class of this module (or a test helper)."""
    set_in: str = ""
    """For an instance attribute: the library function that assigns it, whose code must name it."""
    read_by: tuple[str, ...] = ()
    """Library functions whose code must still name it: the hooks they call, the attributes and
    constants they read (else overriding or rebinding it would silently change nothing)."""
    held: bool = False
    """A reference to it is kept: the library must assign it in ``__init__`` only."""

    @property
    def library(self) -> str:
        """``aiortc`` or ``aioice``."""
        return self.path.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The last part of the path: what a module would spell to use it."""
        return self.path.rsplit(".", 1)[1]


_DTLS = "aiortc.rtcdtlstransport.RTCDtlsTransport"
_ICE = "aiortc.rtcicetransport"
_CONNECTION = "aioice.ice.Connection"

INTERNALS: tuple[Internal, ...] = (
    # aiortc's DTLS transport: decrypted packets go to the emulator, not to receivers.
    Internal("aiortc.rtcdtlstransport.State", "DtlsTransportSeam._set_state"),
    Internal(f"{_DTLS}._setup_srtp", "DtlsTransportSeam", read_by=(f"{_DTLS}.start",)),
    Internal(f"{_DTLS}._set_state", "DtlsTransportSeam", read_by=(f"{_DTLS}.start",)),
    Internal(
        f"{_DTLS}._validate_peer_identity",
        "DtlsTransportSeam.unverified_peer",
        read_by=(f"{_DTLS}.start",),
    ),
    Internal(f"{_DTLS}._handle_rtp_data", "DtlsTransportSeam", read_by=(f"{_DTLS}._recv_next",)),
    Internal(f"{_DTLS}._handle_rtcp_data", "DtlsTransportSeam", read_by=(f"{_DTLS}._recv_next",)),
    Internal(
        f"{_DTLS}._rx_srtp",
        "DtlsTransportSeam, srtp_sessions",
        set_in=f"{_DTLS}._setup_srtp",
        read_by=(f"{_DTLS}._recv_next",),
    ),
    Internal(
        f"{_DTLS}._tx_srtp",
        "DtlsTransportSeam, srtp_sessions",
        set_in=f"{_DTLS}._setup_srtp",
        read_by=(f"{_DTLS}._send_rtp",),
    ),
    Internal(f"{_DTLS}._role", "dtls_role", set_in=f"{_DTLS}._set_role"),
    Internal(f"{_DTLS}._set_role", "set_dtls_role"),
    # aiortc's ICE objects, driving an aioice connection the emulator made.
    Internal(
        f"{_ICE}.RTCIceGatherer._connection",
        "ice_transport_over, gatherer_connection",
        set_in=f"{_ICE}.RTCIceGatherer.__init__",
        read_by=(f"{_ICE}.RTCIceTransport.__init__", f"{_ICE}.RTCIceGatherer.gather"),
    ),
    Internal(
        f"{_ICE}.RTCIceTransport._connection",
        "ice_connection",
        set_in=f"{_ICE}.RTCIceTransport.__init__",
    ),
    # aioice's connection: gathering, the receive queue, validated pairs, consent.
    Internal(
        f"{_CONNECTION}.get_component_candidates",
        "IceConnectionSeam.gather_component",
        read_by=(f"{_CONNECTION}.gather_candidates",),
    ),
    Internal(
        f"{_CONNECTION}.data_received",
        "IceConnectionSeam.queue_datagram",
        read_by=("aioice.ice.StunProtocol.datagram_received",),
    ),
    Internal(
        f"{_CONNECTION}.query_consent",
        "IceConnectionSeam.query_consent",
        read_by=(f"{_CONNECTION}.connect",),
    ),
    Internal(
        "aioice.ice.CONSENT_INTERVAL", "consent_loop", read_by=(f"{_CONNECTION}.query_consent",)
    ),
    Internal(
        "aioice.ice.CONSENT_FAILURES", "consent_loop", read_by=(f"{_CONNECTION}.query_consent",)
    ),
    Internal(
        f"{_CONNECTION}._queue",
        "IceConnectionSeam.receive_queue",
        set_in=f"{_CONNECTION}.__init__",
        read_by=(f"{_CONNECTION}.recvfrom",),
        held=True,
    ),
    Internal(
        f"{_CONNECTION}._nominated",
        "IceConnectionSeam.nominated, nominated_pairs, ice_validated",
        set_in=f"{_CONNECTION}.__init__",
        read_by=(f"{_CONNECTION}.sendto",),
        held=True,
    ),
    Internal(
        f"{_CONNECTION}._protocols",
        "IceConnectionSeam.protocols, connection_protocols",
        set_in=f"{_CONNECTION}.__init__",
        read_by=(f"{_CONNECTION}.close", f"{_CONNECTION}._pair_remote_candidate"),
        held=True,
    ),
    Internal(f"{_CONNECTION}._check_list", "ice_validated", set_in=f"{_CONNECTION}.__init__"),
    Internal(
        f"{_CONNECTION}.check_complete",
        "IceConnectionSeam.check_complete (a nomination that replaces another)",
        read_by=(f"{_CONNECTION}.check_start", f"{_CONNECTION}.check_incoming"),
    ),
    Internal(
        f"{_CONNECTION}.check_incoming",
        "IceConnectionSeam.check_incoming (peer-reflexive candidates learnt over TCP)",
        read_by=(f"{_CONNECTION}.request_received",),
    ),
    Internal("aioice.ice.CandidatePair", "ice_validated, ice.py (nominated pairs)"),
    Internal("aioice.ice.CandidatePair.State", "ice_validated"),
    Internal(
        "aioice.ice.CandidatePair.remote_nominated",
        "ice_validated",
        set_in="aioice.ice.CandidatePair.__init__",
        read_by=(f"{_CONNECTION}.check_incoming",),
    ),
    Internal("aioice.ice.StunProtocol", "ice.GuardedStunProtocol (its base class)"),
    Internal("aioice.ice.server_reflexive_candidate", "server_reflexive"),
    Internal("aioice.candidate.candidate_foundation", "host_candidate, relay_candidate"),
    Internal("aioice.candidate.candidate_priority", "host_candidate, relay_candidate"),
    # aioice's TURN client, over a socket bound in the port range (UDP, TCP or TLS over TCP).
    Internal("aioice.turn.TurnClientUdpProtocol", "allocate_turn_on_socket"),
    Internal("aioice.turn.TurnClientTcpProtocol", "allocate_turn_on_stream"),
    Internal("aioice.turn.TurnTransport", "allocate_turn_on_socket, allocate_turn_on_stream"),
    Internal("aioice.turn.TurnTransport._connect", "_allocate"),
    Internal("aioice.turn.DEFAULT_ALLOCATION_LIFETIME", "_turn_client"),
    Internal("aioice.turn.DEFAULT_CHANNEL_REFRESH_TIME", "_turn_client"),
)


# -- DTLS-SRTP ------------------------------------------------------------------------------------


class SrtpReceiver(Protocol):
    """What aiortc's receive loop asks of its SRTP session."""

    def unprotect(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTP packet."""

    def unprotect_rtcp(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTCP packet."""


class DtlsTransportSeam(RTCDtlsTransport):
    """aiortc's DTLS transport whose decrypted packets go to ``on_rtp``/``on_rtcp``, with its
    SRTP sessions and ICE connection under public names."""

    def __init__(self, transport: RTCIceTransport, certificates: list[RTCCertificate]) -> None:
        super().__init__(transport, certificates)
        self.ice_connection: Connection = ice_connection(transport)
        """The aioice connection under ``transport`` (aiortc's gatherer made it, once)."""
        self.on_rtp: Callable[[bytes], None] = _ignore
        """Each decrypted RTP packet that aiortc's receive loop reads."""
        self.on_rtcp: Callable[[bytes], None] = _ignore
        """Each decrypted RTCP compound packet."""
        self.tx_session = cast(pylibsrtp.Session, None)
        """The sending SRTP session, once keyed (``ready`` guards every use)."""
        self.ready = False
        """DTLS is connected and SRTP keyed (kept as a flag: ``state`` builds a string)."""
        self.unverified_peer = False
        """Accept the peer's certificate whatever it is: its SDP gave no fingerprint, and KMS
        (GStreamer's DTLS elements accept every peer certificate) takes such a peer."""

    async def start(self, remoteParameters: RTCDtlsParameters) -> None:  # noqa: N803 (aiortc's)
        """aiortc's start; without fingerprints, with ``unverified_peer`` (aiortc asserts one)."""
        parameters = remoteParameters
        if not parameters.fingerprints:
            self.unverified_peer = True
            parameters = RTCDtlsParameters([RTCDtlsFingerprint("sha-256", "")], parameters.role)
        await super().start(parameters)

    def _validate_peer_identity(self, remoteParameters: RTCDtlsParameters) -> None:  # noqa: N803
        if not self.unverified_peer:
            super()._validate_peer_identity(remoteParameters)

    def receive_session(self, session: pylibsrtp.Session) -> SrtpReceiver:
        """What aiortc's receive loop unprotects with, given the keyed session (a hook)."""
        return session

    def _setup_srtp(self) -> None:
        super()._setup_srtp()
        # aiortc types it as pylibsrtp's Session and calls only what SrtpReceiver declares.
        self._rx_srtp = self.receive_session(self._rx_srtp)  # type: ignore[assignment]
        self.tx_session = self._tx_srtp

    def _set_state(self, state: State) -> None:
        self.ready = state == State.CONNECTED and self._tx_srtp is not None
        super()._set_state(state)

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.on_rtp(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.on_rtcp(data)


def dtls_role(dtls: RTCDtlsTransport) -> str:
    """The DTLS role: ``auto`` until set, then ``client`` or ``server``."""
    return str(dtls._role)


def set_dtls_role(dtls: RTCDtlsTransport, role: str) -> None:
    """Fix the DTLS role before ``start`` (RFC 5763: the SDP ``a=setup`` decides it, not ICE)."""
    dtls._set_role(role)


def srtp_sessions(dtls: RTCDtlsTransport) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """The keyed (sending, receiving) SRTP sessions of a connected transport."""
    return dtls._tx_srtp, dtls._rx_srtp


def _ignore(_: bytes) -> None:
    """Default packet handler before the owner installs its own."""


# -- ICE transports --------------------------------------------------------------------------------


def ice_transport_over(connection: Connection) -> RTCIceTransport:
    """aiortc's ICE transport driving ``connection`` instead of an aioice connection of its own."""
    gatherer = RTCIceGatherer(iceServers=[])
    gatherer._connection = connection
    return RTCIceTransport(gatherer)


def gatherer_connection(gatherer: RTCIceGatherer) -> Connection:
    """The aioice connection an aiortc gatherer gathers on."""
    return gatherer._connection


def ice_connection(transport: RTCIceTransport) -> Connection:
    """The aioice connection under an aiortc ICE transport."""
    return transport._connection


# -- aioice connections ----------------------------------------------------------------------------


class IceConnectionSeam(Connection):
    """aioice's Connection with its gathering, receive queue and consent loop made hooks, and its
    nominated pairs and sockets under public names."""

    def __init__(
        self,
        *,
        receive_queue: int,
        consent_interval: float,
        consent_failures: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.receive_queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(receive_queue)
        """What aiortc's DTLS loop reads (``recv``): bounded, unlike aioice's own."""
        self._queue = self.receive_queue
        self.nominated: dict[int, CandidatePair] = self._nominated
        """Nominated pairs by component (aioice's own dict, updated in place)."""
        self.protocols: list[StunProtocol] = self._protocols
        """The sockets aioice pairs, checks and closes (its own list: append to it)."""
        self.consent_interval = consent_interval
        """Seconds between consent checks (RFC 7675), randomised by 0.8..1.2 as aioice does."""
        self.consent_failures = consent_failures
        """Checks in a row without an answer after which the connection closes."""

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        return await self.gather_component(component, timeout)

    async def gather_component(self, component: int, timeout: int) -> list[Candidate]:
        """Every local candidate of ``component`` (aioice asks once per component)."""
        raise NotImplementedError

    def data_received(self, data: bytes, component: int) -> None:
        self.queue_datagram(data, component)

    def queue_datagram(self, data: bytes, component: int) -> None:
        """Hand a datagram to aiortc (aioice's own calls come here too)."""
        self.receive_queue.put_nowait((data, component))

    async def query_consent(self) -> None:
        """aioice's consent freshness loop with this connection's interval and failures."""
        await consent_loop(self.consent_interval, self.consent_failures)(self)

    on_nomination_changed: Callable[[int], None] | None = None
    """Called with the component when its nominated pair is replaced by another one: aioice keeps
    the pair nominated last (a controlling peer with aggressive nomination may nominate a second
    one after the first) and sends on it from then on."""

    def check_complete(self, pair: CandidatePair) -> None:
        """aioice's end of a check, which may nominate the pair; a changed nomination is told."""
        before = self._nominated.get(pair.component)
        super().check_complete(pair)
        after = self._nominated.get(pair.component)
        if before is not None and after is not before and self.on_nomination_changed is not None:
            self.on_nomination_changed(pair.component)

    def check_incoming(self, message: Any, addr: tuple[str, int], protocol: StunProtocol) -> None:
        """aioice's handling of an authenticated check; a peer-reflexive candidate it learns on a
        TCP candidate is labelled TCP (aioice writes ``udp``), with the direction the peer took:
        one that connected to a passive candidate is active (RFC 6544 section 7.1)."""
        super().check_incoming(message, addr, protocol)
        local = protocol.local_candidate
        if local.transport.lower() != "tcp":
            return
        for candidate in self.remote_candidates:
            if (
                candidate.type == "prflx"
                and candidate.transport == "udp"
                and (candidate.host, candidate.port) == (addr[0], addr[1])
            ):
                candidate.transport = "tcp"
                candidate.tcptype = "active" if local.tcptype == "passive" else "passive"


def consent_loop(
    interval: float, failures: int
) -> Callable[[Connection], Coroutine[Any, Any, None]]:
    """``Connection.query_consent`` reading ``interval`` and ``failures`` instead of aioice's
    module constants (see the module docstring)."""
    original = cast(types.FunctionType, Connection.query_consent)
    namespace = {
        **original.__globals__,
        "CONSENT_INTERVAL": interval,
        "CONSENT_FAILURES": failures,
    }
    return cast(
        Callable[[Connection], Coroutine[Any, Any, None]],
        types.FunctionType(
            original.__code__,
            namespace,
            original.__name__,
            original.__defaults__,
            original.__closure__,
        ),
    )


def nominated_pairs(connection: Connection) -> dict[int, CandidatePair]:
    """Nominated pairs by component, of any aioice connection."""
    return connection._nominated


def connection_protocols(connection: Connection) -> list[StunProtocol]:
    """The sockets of any aioice connection."""
    return connection._protocols


def ice_validated(connection: Connection, protocol: StunProtocol, source: tuple[str, int]) -> bool:
    """Whether ICE validated ``source`` on this socket: a nominated or succeeded pair, or one the
    controlling peer nominated with a check we authenticated and answered (RFC 8445 7.3.1.5).

    The last case matters while our own check of that pair is pending, and for good when aioice
    cancelled it: ``connect()`` cancels every check task it finds once ICE completes, a
    triggered check started in the same loop turn included, which leaves that pair IN_PROGRESS
    for ever. A controlling peer with aggressive nomination (aiortc) whose later check succeeded
    sends from the pair it nominated last, so its DTLS would be dropped until it gave up.
    """
    for pair in connection._nominated.values():
        if pair.protocol is protocol and pair.remote_addr == source:
            return True
    return any(
        pair.protocol is protocol
        and pair.remote_addr == source
        and (pair.state == CandidatePair.State.SUCCEEDED or pair.remote_nominated)
        for pair in connection._check_list
    )


# -- candidates ----------------------------------------------------------------------------------


def host_candidate(component: int, host: str, port: int, local_pref: int) -> Candidate:
    """A host candidate whose priority carries ``local_pref`` (RFC 8445 5.1.2.1)."""
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host", local_pref=local_pref),
        host=host,
        port=port,
        type="host",
    )


class TcpCandidate(Candidate):
    """A local TCP candidate, paired as RFC 6544 section 6.2 says: an active one with remote
    passive candidates only; a passive one with none (the peer connects to it, and the pair
    appears when its check arrives, as a peer-reflexive one); simultaneous-open is not done."""

    def can_pair_with(self, other: Candidate) -> bool:
        return (
            self.tcptype == "active"
            and (other.tcptype or "").lower() == "passive"
            and super().can_pair_with(other)
        )


TCP_DIRECTION = {"active": 6, "passive": 4, "so": 2}
"""RFC 6544 section 4.2: the direction preference of host TCP candidates."""


def tcp_host_candidate(
    component: int, host: str, port: int, tcptype: str, other_pref: int
) -> Candidate:
    """A host TCP candidate (RFC 6544): local preference ``direction << 13 | other_pref``, and
    the type preference halved, as libnice does for TCP on a media stream, so that UDP wins."""
    local_pref = (TCP_DIRECTION[tcptype] << 13) | (other_pref & 0x1FFF)
    priority = candidate_priority(component, "host", local_pref=local_pref)
    return TcpCandidate(
        foundation=candidate_foundation("host", "tcp", host),
        component=component,
        transport="tcp",
        priority=priority - (63 << 24),  # type preference 126 -> 63
        host=host,
        port=port,
        type="host",
        tcptype=tcptype,
    )


def relay_candidate(component: int, host: str, port: int, related: tuple[str, int]) -> Candidate:
    """A relayed candidate (TURN) at ``host:port``, allocated from ``related``."""
    return Candidate(
        foundation=candidate_foundation("relay", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "relay"),
        host=host,
        port=port,
        type="relay",
        related_address=related[0],
        related_port=related[1],
    )


async def server_reflexive(protocol: StunProtocol, stun_server: tuple[str, int]) -> Candidate:
    """The server-reflexive candidate of a host socket, asked of a STUN server."""
    candidate, _ = await server_reflexive_candidate(protocol, stun_server)
    return candidate


# -- TURN ----------------------------------------------------------------------------------------

Relayed = tuple[tuple[str, int], tuple[str, int] | None]
"""A TURN allocation's relayed address and the mapped address the server saw (if it said)."""


async def allocate_turn_on_socket(
    sock: socket.socket,
    server: tuple[str, int],
    username: str | None,
    password: str | None,
    protocol: asyncio.DatagramProtocol,
) -> Relayed:
    """A TURN allocation over ``sock`` (connected to ``server``; aioice would bind its own),
    relaying to ``protocol``. On failure the socket is closed."""
    loop = asyncio.get_running_loop()
    try:
        inner_transport, inner = await loop.create_datagram_endpoint(
            lambda: _turn_client(TurnClientUdpProtocol, server, username, password), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return await _allocate(inner_transport, inner, protocol)


async def allocate_turn_on_stream(
    sock: socket.socket,
    server: tuple[str, int],
    username: str | None,
    password: str | None,
    protocol: asyncio.DatagramProtocol,
    tls: ssl.SSLContext | None,
) -> Relayed:
    """A TURN allocation over TCP (RFC 6062's client to server leg; RFC 5766 section 2.1), or
    TLS over TCP when ``tls`` is given, from ``sock`` (bound, not connected; aioice would
    connect from a port of the operating system's choosing), relaying to ``protocol``. On
    failure the socket is closed."""
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, server)
        inner_transport, inner = await loop.create_connection(
            lambda: _turn_client(TurnClientTcpProtocol, server, username, password),
            sock=sock,
            ssl=tls,
            server_hostname=server[0] if tls is not None else None,
        )
    except BaseException:
        sock.close()
        raise
    return await _allocate(inner_transport, inner, protocol)


_Client = TypeVar("_Client", TurnClientUdpProtocol, TurnClientTcpProtocol)


def _turn_client(
    kind: type[_Client], server: tuple[str, int], username: str | None, password: str | None
) -> _Client:
    return kind(
        server,
        username=username,
        password=password,
        lifetime=DEFAULT_ALLOCATION_LIFETIME,
        channel_refresh_time=DEFAULT_CHANNEL_REFRESH_TIME,
    )


async def _allocate(
    inner_transport: asyncio.BaseTransport,
    inner: TurnClientUdpProtocol | TurnClientTcpProtocol,
    protocol: asyncio.DatagramProtocol,
) -> Relayed:
    """Allocate on the connected TURN client ``inner``; on failure its transport is closed."""
    try:
        turn = TurnTransport(inner)
        await turn._connect(protocol)
    except BaseException:
        inner_transport.close()
        raise
    return _relayed(turn)


def _relayed(turn: TurnTransport) -> Relayed:
    host, port = turn.get_extra_info("sockname")
    mapped = turn.get_extra_info("related_address")
    return (host, port), (mapped[0], mapped[1]) if mapped else None
