"""WebRtcPeer: the ICE/DTLS-SRTP/SCTP stack behind one WebRtcEndpoint, built from aiortc's parts.

aiortc's RTCPeerConnection gathers all candidates before answering, binds sockets anywhere and
decodes what it receives; KMS answers at once, trickles candidates and forwards RTP. So the peer
assembles aiortc's transports itself: one ``RangedConnection`` (the aioice seam) per transport (one
per BUNDLE group, else per m-line), aiortc's ``RTCIceTransport``, a ``MediaDtlsTransport`` (the DTLS
seam) and, with data channels, aiortc's ``RTCSctpTransport``. SDP is written by ``negotiation``.
What this needs of aiortc's internals goes through ``aiortc_adapter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aioice import Candidate, TransportPolicy
from aiortc import (
    RTCCertificate,
    RTCDataChannel,
    RTCDataChannelParameters,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCIceParameters,
    RTCIceTransport,
    RTCSctpCapabilities,
    RTCSctpTransport,
)

from emulator.media.lab.capture import Address, PacketTap
from emulator.media.legs.aiortc_adapter import dtls_role, ice_transport_over, set_dtls_role
from emulator.media.legs.dtls import UNPROTECT_ERRORS, MediaDtlsTransport
from emulator.media.legs.ice import IcePolicy, RangedConnection
from emulator.media.net.ports import PortRange
from emulator.media.rtp.packet import RtpView, parse_rtp
from emulator.media.sdp import negotiation
from emulator.media.sdp.negotiation import LineTransport, LocalPolicy, MediaLine
from emulator.media.sdp.offer_answer import OfferAnswer
from protocol.errors import IceAddCandidateError
from protocol.sdp import IceCandidateLine, MediaSection, SessionDescription

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server as KMS's ``turnURL``: ``user:password@address:port?transport=udp|tcp|tls``.

    ``tcp`` and ``tls`` (TLS over TCP, the server's certificate not verified, as KMS) reach the
    server over a TCP socket connected from the port range; the relay itself is UDP either way.
    There is no ``turn:``/``turns:`` scheme form: KMS's turnURL has none (``?transport=tls``).
    """

    host: str
    port: int
    username: str
    password: str
    transport: str = "udp"


@dataclass(frozen=True)
class PeerConfig:
    """Everything a peer needs from its endpoint and the server."""

    ports: PortRange
    ice: IcePolicy
    """Host addresses, consent timing and pollers (``MediaServices.ice_policy``)."""
    certificate: RTCCertificate
    policy: LocalPolicy = field(default_factory=LocalPolicy)
    stun: tuple[str, int] | None = None
    turn: TurnServer | None = None
    relay_only: bool = False
    ice_tcp: bool = False
    """Gather TCP host candidates too (KMS's ``iceTcp``, RFC 6544)."""
    external_ipv4: str = ""
    external_ipv6: str = ""


class PeerListener(Protocol):
    """What a peer reports to its endpoint."""

    def on_local_candidate(self, candidate: str, mid: str, index: int) -> None:
        """A local candidate, once per m-line of its transport."""

    def on_gathering_done(self) -> None:
        """Every transport finished gathering."""

    def on_ice_state(self, state: str) -> None:
        """KMS IceComponentState: GATHERING, CONNECTING, CONNECTED, READY, FAILED, DISCONNECTED."""

    def on_pair_selected(self, local: str, remote: str) -> None:
        """The nominated candidate pair."""

    def on_dtls_state(self, state: str, connection_id: str) -> None:
        """KMS DtlsConnectionState: NEW, CONNECTING, CONNECTED, FAILED, CLOSED."""

    def on_transport_ready(self) -> None:
        """DTLS is up on every transport: media can flow."""

    def on_rtp(self, line: MediaLine, view: RtpView) -> None:
        """A decrypted RTP packet of an m-line."""

    def on_rtcp(self, transport: PeerTransport, data: bytes) -> None:
        """A decrypted RTCP compound packet."""

    def on_data_channel(self, channel: RTCDataChannel, created_remotely: bool) -> None:
        """A data channel exists (open events come from the channel)."""


@dataclass(eq=False)
class PeerTransport:
    """One ICE/DTLS transport and the m-lines it carries."""

    key: int
    connection: RangedConnection
    ice: RTCIceTransport
    dtls: MediaDtlsTransport
    lines: list[MediaLine] = field(default_factory=list)
    remote_ice: RTCIceParameters | None = None
    remote_dtls: RTCDtlsParameters | None = None
    candidates: list[str] = field(default_factory=list)
    gathered: bool = False
    task: asyncio.Task[None] | None = None
    by_ssrc: dict[int, MediaLine] = field(default_factory=dict)
    by_payload_type: dict[int, MediaLine] = field(default_factory=dict)
    malformed_rtp: int = 0
    """Authenticated packets that are not valid RTP (extensions past the end...): dropped."""

    def route(self) -> None:
        """Index the m-lines by signalled SSRC and by payload type, for demultiplexing."""
        self.by_ssrc = {ssrc: line for line in self.lines for ssrc in line.remote_ssrcs}
        counts: dict[int, int] = {}
        for line in self.lines:
            for codec in [*line.codecs, *([line.dtmf] if line.dtmf else [])]:
                counts[codec.payload_type] = counts.get(codec.payload_type, 0) + 1
        self.by_payload_type = {
            codec.payload_type: line
            for line in self.lines
            for codec in [*line.codecs, *([line.dtmf] if line.dtmf else [])]
            if counts[codec.payload_type] == 1
        }

    def line_of(self, view: RtpView) -> MediaLine | None:
        """The m-line of an incoming packet: by SSRC, else by payload type (then learnt)."""
        line = self.by_ssrc.get(view.ssrc)
        if line is None:
            line = self.by_payload_type.get(view.payload_type)
            if line is not None:
                self.by_ssrc[view.ssrc] = line
                line.remote_ssrcs.add(view.ssrc)
        return line


class WebRtcPeer:
    """Negotiation, ICE, DTLS-SRTP and data channels of one endpoint."""

    def __init__(self, config: PeerConfig, listener: PeerListener, name: str) -> None:
        self.config = config
        self.listener = listener
        self.name = name
        self.lines: list[MediaLine] = []
        self.transports: dict[int, PeerTransport] = {}
        self.negotiation = OfferAnswer(renegotiates=False)
        """KMS answers 40208 to any offer once a WebRtcEndpoint is negotiated."""
        self.cname = secrets.token_hex(8)
        self.stream_id = secrets.token_hex(8)
        self.session_id = negotiation.new_session_id()
        self.session_version = 0
        self.sctp: RTCSctpTransport | None = None
        self.channels: dict[int, RTCDataChannel] = {}
        self.pending_candidates: list[tuple[IceCandidateLine | None, str | None, int | None]] = []
        self.gathering = False
        self.closed = False
        self.make_tap: Callable[[Address, Address], PacketTap] | None = None
        """What ``set_tap`` installs on each transport (a capture), kept for a pair change."""
        self.drop_stun = False
        """Fault injection: the transports created from now on ignore STUN (ICE never connects)."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- negotiation ------------------------------------------------------------------------

    async def process_offer(self, offer_text: str) -> str:
        """Answer a remote offer (KMS processOffer).

        Raises:
            SdpEndPointAlreadyNegotiated: 40208 on a second negotiation.
            SdpParseError: 40201 for an empty or invalid offer.
        """
        self.negotiation.check_new_offer()
        offer = negotiation.parse_description(offer_text, "offer")
        self.lines = negotiation.plan_answer(offer, self.config.policy)
        negotiation.warn_if_all_refused(self.name, self.lines)
        self._create_transports(controlling=offer.ice_lite)
        self._apply_remote(offer, answering=True)
        answer = self.describe()
        self.negotiation.offer_answered(offer_text, answer)
        self._start_connections()
        return answer

    async def generate_offer(self, audio: bool = True, video: bool = True) -> str:
        """A local offer (KMS generateOffer).

        Raises:
            SdpEndPointAlreadyNegotiated: 40208 once negotiated or while an offer is pending.
        """
        self.negotiation.check_new_offer()
        self.lines = negotiation.plan_offer(self.config.policy, audio, video)
        self._create_transports(controlling=True)
        self.negotiation.offer_pending = True  # before describe(): the offer says actpass
        offer = self.describe()
        self.negotiation.offer_made(offer)
        return offer

    async def process_answer(self, answer_text: str) -> str:
        """Apply the remote answer to a local offer (KMS processAnswer); returns the local SDP.

        Raises:
            SdpEndPointNotOfferGenerated: 40209 without generateOffer.
            SdpEndPointAnswerAlreadyProccesed: 40210 for a second answer.
        """
        self.negotiation.check_answer()
        answer = negotiation.parse_description(answer_text, "answer")
        negotiation.apply_answer(self.lines, answer)
        self._apply_remote(answer, answering=False)
        self.negotiation.answer_taken(answer_text)
        self._start_connections()
        return self.negotiation.local()

    def local_description(self) -> str:
        """The local SDP, with the candidates gathered so far (KMS getLocalSessionDescriptor)."""
        self.negotiation.local()  # raises before any negotiation
        return self.describe()

    def remote_description(self) -> str:
        """The remote SDP (KMS getRemoteSessionDescriptor)."""
        return self.negotiation.remote()

    def describe(self) -> str:
        """Write the local SDP from the plan and the transports."""
        transports = {key: self._line_transport(t) for key, t in self.transports.items()}
        description = negotiation.write_description(
            self.lines,
            transports,
            session_version=self.session_version,
            session_id=self.session_id,
            cname=self.cname,
            stream_id=self.stream_id,
        )
        return description.to_string()

    def _line_transport(self, transport: PeerTransport) -> LineTransport:
        params = transport.connection
        fingerprint = self.config.certificate.getFingerprints()[-1]
        role = dtls_role(transport.dtls)
        setup = (
            "actpass"
            if self.negotiation.offer_pending and transport.remote_dtls is None
            else ("active" if role == "client" else "passive")
        )
        address, port = "0.0.0.0", 9
        if transport.candidates:
            first = IceCandidateLine.parse(transport.candidates[0])
            address, port = first.address, first.port
        return LineTransport(
            ufrag=params.local_username,
            pwd=params.local_password,
            fingerprint=(fingerprint.algorithm, fingerprint.value),
            setup=setup,
            candidates=list(transport.candidates),
            end_of_candidates=transport.gathered,
            address=address,
            port=port,
        )

    def _create_transports(self, controlling: bool) -> None:
        for line in self.lines:
            if not line.accepted:
                continue
            if line.transport not in self.transports:
                self.transports[line.transport] = self._new_transport(line.transport, controlling)
            self.transports[line.transport].lines.append(line)
            if line.kind != "application":
                line.local_ssrc = random.getrandbits(32) or 1

    def _new_transport(self, key: int, controlling: bool) -> PeerTransport:
        config = self.config
        turn = config.turn
        connection = RangedConnection(
            ports=config.ports,
            policy=config.ice,
            ice_controlling=controlling,
            stun_server=config.stun,
            turn_server=(turn.host, turn.port) if turn else None,
            turn_username=turn.username if turn else None,
            turn_password=turn.password if turn else None,
            # aioice's spelling: TLS is TCP with turn_ssl
            turn_transport="udp" if turn is None or turn.transport == "udp" else "tcp",
            turn_ssl=turn is not None and turn.transport == "tls",
            use_ipv6=config.ice.ipv6,
            transport_policy=TransportPolicy.RELAY if config.relay_only else TransportPolicy.ALL,
            ice_tcp=config.ice_tcp,
        )
        connection.drop_stun = self.drop_stun
        ice = ice_transport_over(connection)
        dtls = MediaDtlsTransport(ice, [config.certificate])
        transport = PeerTransport(key, connection, ice, dtls)
        connection.on_candidate = lambda candidate: self._local_candidate(transport, candidate)
        connection.on_nomination_changed = lambda _: self._nomination_changed(transport)
        ice.on("statechange", lambda: self._ice_state_changed(transport))
        dtls.on("statechange", lambda: self._dtls_state_changed(transport))
        dtls.on_rtp = functools.partial(self._rtp, transport)
        dtls.on_rtcp = functools.partial(self._rtcp, transport)
        return transport

    def _apply_remote(self, description: SessionDescription, answering: bool) -> None:
        for transport in self.transports.values():
            transport.route()
            media = description.media[transport.lines[0].index]
            credentials = negotiation.remote_ice(description, media)
            if credentials is None:
                self._warn(media, "a=ice-ufrag/a=ice-pwd", "ICE cannot check the peer: no media")
            else:
                transport.remote_ice = RTCIceParameters(
                    usernameFragment=credentials[0],
                    password=credentials[1],
                    iceLite=description.ice_lite,
                )
            fingerprints, setup = negotiation.remote_dtls(description, media)
            if not fingerprints:
                self._warn(media, "a=fingerprint", "the peer's DTLS certificate goes unverified")
            if answering and media.kind != "application" and not media.rtcp_mux:
                self._warn_no_rtcp_mux(media)
            role = _dtls_role(setup, answering)
            set_dtls_role(transport.dtls, role)
            transport.remote_dtls = RTCDtlsParameters(
                fingerprints=[RTCDtlsFingerprint(a, v) for a, v in fingerprints], role="auto"
            )
            for line in transport.lines:
                self._queue_sdp_candidates(description.media[line.index], line)
        self._flush_pending_candidates()

    def _warn(self, media: MediaSection, missing: str, consequence: str) -> None:
        logger.warning(
            "! %s: m-line %s has no %s: answered as KMS does, but %s (add %s to the SDP)",
            self.name,
            media.mid or media.kind,
            missing,
            consequence,
            missing,
        )

    def _warn_no_rtcp_mux(self, media: MediaSection) -> None:
        # KMS answers without a=rtcp-mux and gathers a second ICE component for RTCP; this
        # server's ICE has one component, so it answers a=rtcp-mux and says so.
        logger.warning(
            "! %s: m-line %s has no a=rtcp-mux: answered with a=rtcp-mux all the same (KMS would "
            "take RTCP on a second ICE component, which this server does not gather), so RTCP "
            "goes on the RTP port (add a=rtcp-mux to the SDP)",
            self.name,
            media.mid or media.kind,
        )

    def _queue_sdp_candidates(self, media: MediaSection, line: MediaLine) -> None:
        for candidate in media.candidates:
            self.pending_candidates.append((candidate, line.mid, line.index))
        if media.end_of_candidates:
            self.pending_candidates.append((None, line.mid, line.index))

    # -- candidates ------------------------------------------------------------------------

    def gather_candidates(self) -> None:
        """Start gathering on every transport (KMS gatherCandidates); 40009 if no port is free."""
        if self.gathering:
            return
        for transport in self.transports.values():
            transport.connection.bind_host_sockets()
        self.gathering = True
        self.listener.on_ice_state("GATHERING")
        self._spawn(self._gather_all())

    async def _gather_all(self) -> None:
        await asyncio.gather(*(self._gather(t) for t in self.transports.values()))
        self.negotiation.local_sdp = self.describe()
        self.listener.on_gathering_done()
        self._start_connections()

    async def _gather(self, transport: PeerTransport) -> None:
        try:
            await transport.ice.iceGatherer.gather()
        finally:
            transport.gathered = True

    def _local_candidate(self, transport: PeerTransport, candidate: Candidate) -> None:
        text = "candidate:" + self._advertised(candidate).to_sdp()
        transport.candidates.append(text)
        # KMS emits every candidate once per m-line of a bundled transport (protocol.md 2.8).
        for line in transport.lines:
            self.listener.on_local_candidate(text, line.mid, line.index)

    def _advertised(self, candidate: Candidate) -> Candidate:
        external = self.config.external_ipv6 if ":" in candidate.host else self.config.external_ipv4
        if not external or candidate.type != "host":
            return candidate
        return Candidate(
            foundation=candidate.foundation,
            component=candidate.component,
            transport=candidate.transport,
            priority=candidate.priority,
            host=external,
            port=candidate.port,
            type=candidate.type,
            tcptype=candidate.tcptype,
        )

    async def add_ice_candidate(self, candidate: str, mid: str | None, index: int | None) -> None:
        """A remote candidate; buffered until the remote description is known.

        Raises:
            IceAddCandidateError: 40401 for a malformed candidate line.
        """
        if not candidate.strip():
            self.pending_candidates.append((None, mid, index))
        else:
            try:
                parsed = IceCandidateLine.parse(candidate)
            except ValueError as exc:
                raise IceAddCandidateError(
                    f"Error adding candidate: {candidate!r} is not an ICE candidate ({exc})"
                ) from exc
            self.pending_candidates.append((parsed, mid, index))
        if self.negotiation.remote_sdp is not None:
            self._flush_pending_candidates()

    def _flush_pending_candidates(self) -> None:
        pending, self.pending_candidates = self.pending_candidates, []
        for candidate, mid, index in pending:
            transport = self._transport_for(mid, index)
            if transport is None:
                logger.info(
                    "%s: candidate for unknown m-line mid=%s index=%s ignored",
                    self.name,
                    mid,
                    index,
                )
                continue
            self._spawn(self._add_remote(transport, candidate))

    async def _add_remote(
        self, transport: PeerTransport, candidate: IceCandidateLine | None
    ) -> None:
        if candidate is None:
            with contextlib.suppress(ValueError):
                await transport.connection.add_remote_candidate(None)
            return
        # TCP candidates too (RFC 6544): aioice pairs a transport with the same transport only,
        # and a local TCP candidate pairs by direction (aiortc_adapter.TcpCandidate).
        remote = Candidate(
            foundation=candidate.foundation,
            component=candidate.component,
            transport=candidate.transport,
            priority=candidate.priority,
            host=candidate.address,
            port=candidate.port,
            type=candidate.type,
            related_address=candidate.related_address,
            related_port=candidate.related_port,
            tcptype=candidate.tcptype,
        )
        with contextlib.suppress(ValueError):
            await transport.connection.add_remote_candidate(remote)

    def _transport_for(self, mid: str | None, index: int | None) -> PeerTransport | None:
        for transport in self.transports.values():
            for line in transport.lines:
                if (mid is not None and line.mid == mid) or (mid is None and line.index == index):
                    return transport
        return None

    # -- connection ----------------------------------------------------------------------------

    def _start_connections(self) -> None:
        for transport in self.transports.values():
            ready = transport.gathered and transport.remote_ice is not None
            if ready and transport.task is None:
                transport.task = self._spawn(self._connect(transport))

    async def _connect(self, transport: PeerTransport) -> None:
        assert transport.remote_ice is not None and transport.remote_dtls is not None
        await transport.ice.start(transport.remote_ice)
        if transport.ice.state != "completed":
            return
        await transport.dtls.start(transport.remote_dtls)
        if transport.dtls.state != "connected":
            return
        transport.connection.set_fast_path(functools.partial(self._fast_rtp, transport))
        if any(line.kind == "application" for line in transport.lines):
            await self._start_sctp(transport)
        if all(t.dtls.state == "connected" for t in self.transports.values()):
            self.listener.on_transport_ready()

    async def _start_sctp(self, transport: PeerTransport) -> None:
        sctp = RTCSctpTransport(transport.dtls)
        self.sctp = sctp
        sctp.on("datachannel", lambda channel: self._channel(channel, remote=True))
        remote_port = 5000
        await sctp.start(RTCSctpCapabilities(maxMessageSize=262144), remote_port)

    def _ice_state_changed(self, transport: PeerTransport) -> None:
        state = transport.ice.state
        if state == "checking":
            self.listener.on_ice_state("CONNECTING")
        elif state == "completed":
            self.listener.on_ice_state("CONNECTED")
            self._announce_pair(transport)
            self.listener.on_ice_state("READY")
        elif state == "failed":
            self.listener.on_ice_state("FAILED")

    def _nomination_changed(self, transport: PeerTransport) -> None:
        """The peer nominated another pair after ICE completed: aioice sends on it now, so it is
        the selected pair (before completion, completing announces the last one)."""
        if transport.ice.state == "completed":
            self._announce_pair(transport)
            if self.make_tap is not None:
                self._tap(transport)  # the capture names the new pair's addresses

    def _announce_pair(self, transport: PeerTransport) -> None:
        pair = transport.connection.selected_pair()
        if pair is not None:
            local, remote = pair
            self.listener.on_pair_selected(
                "candidate:" + self._advertised(local).to_sdp(), "candidate:" + remote.to_sdp()
            )

    def _dtls_state_changed(self, transport: PeerTransport) -> None:
        state = {
            "new": "NEW",
            "connecting": "CONNECTING",
            "connected": "CONNECTED",
            "closed": "CLOSED",
            "failed": "FAILED",
        }[transport.dtls.state]
        self.listener.on_dtls_state(state, str(transport.key))

    def _fast_rtp(self, transport: PeerTransport, data: bytes, _source: object) -> bool:
        """SRTP straight from the socket callback: unprotect and hand on, no queue, no task.
        SRTCP returns False and takes aiortc's path (RFC 5761 demultiplexing)."""
        if 192 <= data[1] <= 223:  # is_rtcp, inlined: this runs for every packet
            return False
        counter = transport.dtls.rx_counter
        if counter is None:
            return False
        try:
            plain = counter.session.unprotect(data)
        except UNPROTECT_ERRORS:
            counter.failed()
            return True
        counter.received.count(len(data))
        self._rtp(transport, plain)
        return True

    def _rtp(self, transport: PeerTransport, data: bytes) -> None:
        tap = transport.dtls.tap
        if tap is not None:
            tap(data, False)
        view = parse_rtp(data)
        if view is None:
            transport.malformed_rtp += 1
            return
        line = transport.line_of(view)
        if line is not None and line.receives:
            self.listener.on_rtp(line, view)

    def _rtcp(self, transport: PeerTransport, data: bytes) -> None:
        tap = transport.dtls.tap
        if tap is not None:
            tap(data, False)
        self.listener.on_rtcp(transport, data)

    def set_tap(self, make_tap: Callable[[Address, Address], PacketTap] | None) -> None:
        """Show every connected transport's plain packets to a tap made for its selected pair
        (local, remote), and for the pair selected after a later nomination; None removes the
        taps."""
        self.make_tap = make_tap
        for transport in self.transports.values():
            self._tap(transport)

    def _tap(self, transport: PeerTransport) -> None:
        pair = transport.connection.selected_pair()
        if self.make_tap is None or pair is None:
            transport.dtls.tap = None
        else:
            local, remote = pair
            transport.dtls.tap = self.make_tap((local.host, local.port), (remote.host, remote.port))

    # -- data channels -------------------------------------------------------------------------

    def create_data_channel(
        self,
        label: str,
        ordered: bool,
        max_packet_life_time: int | None,
        max_retransmits: int | None,
        protocol: str,
    ) -> RTCDataChannel:
        """Open a channel on the association (KMS createDataChannel)."""
        assert self.sctp is not None
        channel = RTCDataChannel(
            self.sctp,
            RTCDataChannelParameters(
                label=label,
                ordered=ordered,
                maxPacketLifeTime=max_packet_life_time,
                maxRetransmits=max_retransmits,
                protocol=protocol,
            ),
        )
        self._channel(channel, remote=False)
        return channel

    def _channel(self, channel: RTCDataChannel, remote: bool) -> None:
        self.listener.on_data_channel(channel, remote)

    # -- sending -------------------------------------------------------------------------------

    def send(self, line: MediaLine, data: bytes) -> bool:
        """Send an RTP or RTCP packet on the m-line's transport."""
        transport = self.transports.get(line.transport)
        return transport is not None and transport.dtls.send_now(data)

    # -- lifecycle -----------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self.closed:
            logger.warning("%s: background task failed", self.name, exc_info=task.exception())

    async def close(self) -> None:
        """Stop every transport and free its sockets."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for channel in list(self.channels.values()):
            channel.close()
        if self.sctp is not None:
            with contextlib.suppress(Exception):
                await self.sctp.stop()
        for transport in self.transports.values():
            with contextlib.suppress(Exception):
                await transport.dtls.stop()
            with contextlib.suppress(Exception):
                await transport.ice.stop()
            with contextlib.suppress(Exception):
                await transport.connection.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _dtls_role(remote_setup: str, answering: bool) -> str:
    """Our DTLS role from the remote ``a=setup`` (RFC 5763 section 5)."""
    if remote_setup == "active":
        return "server"
    if remote_setup == "passive":
        return "client"
    return "client" if answering else "server"


def parse_turn_url(url: str) -> TurnServer | None:
    """``user:password@address:port?transport=udp`` (KMS's turnURL), None when empty.

    Raises:
        ValueError: the URL does not have that shape.
    """
    if not url:
        return None
    credentials, sep, location = url.rpartition("@")
    if not sep or ":" not in credentials:
        raise ValueError(f"turnURL {url!r} should be user:password@address:port")
    username, _, password = credentials.partition(":")
    location, _, query = location.partition("?")
    host, _, port = location.rpartition(":")
    transport = "udp"
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        if key == "transport":
            transport = value.lower()
    if not host or not port.isdigit() or transport not in ("udp", "tcp", "tls"):
        raise ValueError(
            f"turnURL {url!r} should be user:password@address:port[?transport=udp|tcp|tls]"
        )
    return TurnServer(host.strip("[]"), int(port), username, password, transport)


CandidateCallback = Callable[[str, str, int], None]
