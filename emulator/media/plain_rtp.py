"""The media behind an RtpEndpoint: UDP port pairs, SDES-SRTP, symmetric RTP, RTCP, flow and stats.

The Kurento object (``objects/rtp_endpoint.py``) holds the KMD interface; this class does the media
work and reports through the same ``MediaOwner`` protocol as ``WebRtcMedia``, so that a
WebRtcEndpoint and an RtpEndpoint connected to each other forward ``MediaPacket``s both ways, each
sink choosing its own payload type for the source codec (RFC 4733 telephone-event included).
Receiving, the send path and transcoding are ``RtpSession``'s, as for a WebRtcEndpoint; what is
this module's is the leg: a UDP port pair (``RtpLeg``, a ``MediaLeg``), its keys and its guard.

Symmetric RTP (RFC 4961): media leaves from the port it is received on, towards the address in the
remote SDP. Packets from any other source are dropped and counted (RTP-bleed protection) unless
latching (RFC 7362) is on: then the first source after each negotiation becomes the target.
A re-offer (re-INVITE) keeps the local ports, increments the ``o=`` version and moves the target,
codecs, direction (hold) and keys to what the new SDP says.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import pylibsrtp
from aiortc.rtp import RtcpByePacket

from emulator.media.codecs.transcoding import Transcoders
from emulator.media.fastpath import Forwarder
from emulator.media.net.poller import MediaPollers, PolledSocket, limit_reads
from emulator.media.net.ports import PortRange
from emulator.media.rtp.fragmentation import MAX_PAYLOAD
from emulator.media.rtp.packet import RtpView, is_rtcp, parse_rtp
from emulator.media.rtp.streams import OutboundStream
from emulator.media.sdp import plain as plain_sdp
from emulator.media.sdp.negotiation import (
    LocalPolicy,
    MediaLine,
    new_session_id,
    parse_description,
    warn_if_all_refused,
)
from emulator.media.sdp.offer_answer import OfferAnswer
from emulator.media.sdp.plain import LocalPorts, PlainLine
from emulator.media.sdp.sdes import SdesConfig, SrtpPair
from emulator.media.session.datapath import FastEnd
from emulator.media.session.rtp import MediaOwner, RtpSession, SessionTimeouts

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PlainRtpConfig:
    """What an RtpEndpoint's media needs from the server and its constructor."""

    ports: PortRange
    bind_address: str
    advertised_address: str
    """``c=`` address (``externalIPv4`` when set, else the bound one)."""
    sdes: SdesConfig | None = None
    latching: bool = False
    policy: LocalPolicy = field(default_factory=LocalPolicy)
    pollers: MediaPollers | None = field(default=None, compare=False)
    """The server's pollers, which read the legs' sockets; None: asyncio reads them."""


class LegTap(Protocol):
    """Sees every clear RTP/RTCP packet of an endpoint, with the addresses of its leg
    (``emulator.media.lab.capture.PcapWriter`` is one)."""

    def packet(self, outgoing: bool, data: bytes, local: Address, remote: Address) -> None:
        """One packet, in the clear, with the real addresses it travelled between."""


@dataclass
class SourceGuard:
    """Symmetric RTP bookkeeping of one leg: latching and what was dropped."""

    latched_rtp: bool = False
    latched_rtcp: bool = False
    dropped: int = 0
    sources: set[Address] = field(default_factory=set)


class RtpLeg:
    """One m-line's UDP port pair and keys: the ``MediaLeg`` of an RtpEndpoint's m-line."""

    def __init__(
        self, rtp: socket.socket, rtcp: socket.socket, line: PlainLine, tap: LegTap | None
    ) -> None:
        self.rtp_socket = rtp
        self.rtcp_socket = rtcp
        self.ports = LocalPorts(rtp.getsockname()[1], rtcp.getsockname()[1])
        self.local_address: str = rtp.getsockname()[0]
        self.line = line
        self.rtp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.srtp: SrtpPair | None = None
        self.guard = SourceGuard()
        self.tap = tap
        self.polled: list[PolledSocket] = []

    def send_rtp(self, data: bytes) -> bool:
        """Protect (SDES-SRTP, where keyed) and send an RTP packet to the remote RTP address."""
        return self.send(data, rtcp=False)

    def send(self, data: bytes, rtcp: bool) -> bool:
        """Protect and send RTP or RTCP (on the RTCP port unless rtcp-mux); False while the
        remote address is unknown or the leg is closed."""
        remote = self.line.remote
        target = remote.rtcp if rtcp else remote.rtp
        use_rtcp_port = rtcp and not self.line.mux
        transport = self.rtcp_transport if use_rtcp_port else self.rtp_transport
        if target is None or transport is None or transport.is_closing():
            return False
        if self.tap is not None:
            port = self.ports.rtcp if use_rtcp_port else self.ports.rtp
            self.tap.packet(True, data, (self.local_address, port), target)
        if self.srtp is not None:
            data = self.srtp.protect(data, rtcp)
        transport.sendto(data, target)
        return True

    def close(self) -> None:
        """Close both sockets (the ports return to the range)."""
        for polled in self.polled:
            polled.stop()
        for transport in (self.rtp_transport, self.rtcp_transport):
            if transport is not None:
                transport.close()
        self.rtp_socket.close()
        self.rtcp_socket.close()


class _LegProtocol(asyncio.DatagramProtocol):
    def __init__(self, media: PlainRtpMedia, leg: RtpLeg, rtcp_port: bool) -> None:
        self.media = media
        self.leg = leg
        self.rtcp_port = rtcp_port

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.media.datagram(self.leg, data, (addr[0], addr[1]), self.rtcp_port)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is not listening yet: RTP carries on.
        logger.debug("RTP socket error on port %s: %s", self.leg.ports.rtp, exc)


class PlainRtpMedia(RtpSession):
    """Media state of one RtpEndpoint."""

    def __init__(
        self,
        config: PlainRtpConfig,
        owner: MediaOwner,
        name: str,
        transcoders: Transcoders | None = None,
        timeouts: SessionTimeouts | None = None,
        mtu: int = MAX_PAYLOAD,
    ) -> None:
        super().__init__(owner, name, transcoders, timeouts, mtu)
        self.config = config
        self.lines: list[PlainLine] = []
        self.legs: dict[int, RtpLeg] = {}
        self.negotiation = OfferAnswer(renegotiates=True)
        self.session_id = new_session_id()
        self.session_version = 0
        self.cname = secrets.token_hex(8)
        self.local_ssrcs: dict[str, int] = {}
        self._tap: LegTap | None = None
        self.closed = False
        self.malformed_rtp = 0
        """Datagrams from the remote that are neither RTCP nor valid RTP: dropped, counted."""

    @property
    def tap(self) -> LegTap | None:
        """Who sees every clear packet of the legs (pcap capture), None for nobody."""
        return self._tap

    @tap.setter
    def tap(self, tap: LegTap | None) -> None:
        self.fast_drop()  # tapped packets take the Python path
        self._tap = tap
        for leg in self.legs.values():
            leg.tap = tap

    # -- negotiation ---------------------------------------------------------------------------

    async def process_offer(self, text: str) -> str:
        """Answer a remote offer; a later offer is a re-offer (re-INVITE) on the same ports.

        Raises:
            SdpEndPointAlreadyNegotiated: 40208 while a local offer waits for its answer.
            SdpParseError: 40201 for an empty or invalid offer.
        """
        self.negotiation.check_new_offer()
        offer = parse_description(text, "offer")
        lines = plain_sdp.plan_answer(offer, self.config.policy, self.config.sdes)
        warn_if_all_refused(self.name, [line.media for line in lines])
        await self._install(lines)
        answer = self._describe()
        self.negotiation.offer_answered(text, answer)
        self._negotiated()
        return answer

    async def generate_offer(self, audio: bool = True, video: bool = True) -> str:
        """A local offer (or re-offer: same ports, next ``o=`` version).

        Raises:
            SdpEndPointAlreadyNegotiated: 40208 while a previous offer waits for its answer.
        """
        self.negotiation.check_new_offer()
        lines = plain_sdp.plan_local_offer(self.config.policy, audio, video, self.config.sdes)
        for line in lines:
            old = self.lines[line.media.index] if line.media.index < len(self.lines) else None
            if old is not None and old.media.kind == line.media.kind:
                line.remote = old.remote  # media keeps flowing until the answer moves it
        await self._install(lines)
        offer = self._describe()
        self.negotiation.offer_made(offer)
        return offer

    async def process_answer(self, text: str) -> str:
        """Apply the remote answer to the local offer; returns the local SDP.

        Raises:
            SdpEndPointNotOfferGenerated: 40209 without generateOffer.
            SdpEndPointAnswerAlreadyProccesed: 40210 for a second answer.
        """
        self.negotiation.check_answer()
        answer = parse_description(text, "answer")
        plain_sdp.apply_answer(self.lines, answer, self.config.sdes)
        await self._install(self.lines)
        self.negotiation.answer_taken(text)
        self._negotiated()
        return self.negotiation.local()

    @property
    def negotiated(self) -> bool:
        """Whether an offer/answer completed (the legs have their ports and remote)."""
        return self.negotiation.remote_sdp is not None

    async def _install(self, lines: list[PlainLine]) -> None:
        """Bind ports for new accepted m-lines, keep them for known ones, set keys and SSRCs."""
        self.fast_drop()  # a new negotiation: new addresses, keys or payload types
        if self.negotiation.local_sdp is not None and lines is not self.lines:
            self.session_version += 1
        loop = asyncio.get_running_loop()
        for line in lines:
            media = line.media
            if not media.accepted:
                continue
            media.local_ssrc = self.local_ssrcs.setdefault(media.kind, random.getrandbits(32) or 1)
            leg = self.legs.get(media.index)
            if leg is None:
                rtp, rtcp = self.config.ports.bind_pair(self.config.bind_address)
                leg = RtpLeg(rtp, rtcp, line, self._tap)
                self.legs[media.index] = leg
                leg.rtp_transport = await self._open(loop, leg, rtp, rtcp_port=False)
                leg.rtcp_transport = await self._open(loop, leg, rtcp, rtcp_port=True)
                logger.info(
                    "= %s m-line %d (%s) on ports %d/%d",
                    self.name,
                    media.index,
                    media.kind,
                    leg.ports.rtp,
                    leg.ports.rtcp,
                )
            elif leg.line.remote.rtp != line.remote.rtp and line.remote.rtp is not None:
                logger.info(
                    "= %s m-line %d: remote %s -> %s",
                    self.name,
                    media.index,
                    leg.line.remote.rtp,
                    line.remote.rtp,
                )
            leg.line = line
            leg.guard.latched_rtp = leg.guard.latched_rtcp = False
            sdes = self.config.sdes
            rekeyed = leg.srtp is None or leg.srtp.remote_key != line.remote_key
            if sdes is not None and line.remote_key is not None and rekeyed:
                leg.srtp = SrtpPair(sdes, line.remote_key)
            clock = media.codecs[0].clock_rate if media.codecs else 8000
            stream = self.outbound.get(media.kind)
            if stream is None or stream.clock_rate != clock:
                self.outbound[media.kind] = OutboundStream(media.local_ssrc, clock, media.kind)
        self.lines = lines

    async def _open(
        self, loop: asyncio.AbstractEventLoop, leg: RtpLeg, sock: socket.socket, rtcp_port: bool
    ) -> asyncio.DatagramTransport:
        """asyncio's transport sends on the socket; the server's poller reads it, as it reads
        every WebRTC socket (``PolledSocket``)."""
        transport, protocol = await loop.create_datagram_endpoint(
            functools.partial(_LegProtocol, self, leg, rtcp_port), sock=sock
        )
        limit_reads(transport)
        pollers = self.config.pollers
        if pollers is not None:
            polled = PolledSocket(sock, protocol.datagram_received, protocol.error_received)
            if polled.start(transport, pollers.of(loop)):
                leg.polled.append(polled)
        return transport

    def _describe(self) -> str:
        ports = {index: leg.ports for index, leg in self.legs.items()}
        return plain_sdp.write_description(
            self.lines,
            ports,
            address=self.config.advertised_address,
            session_id=self.session_id,
            session_version=self.session_version,
            cname=self.cname,
        )

    def _negotiated(self) -> None:
        for line in self.lines:
            if line.media.accepted:
                logger.info(
                    "= %s m-line %d %s %s to %s%s",
                    self.name,
                    line.media.index,
                    line.media.direction,
                    ",".join(c.name for c in line.media.codecs),
                    line.remote.rtp,
                    " (rtcp-mux)" if line.mux else "",
                )
        if any(line.media.accepted and line.remote.rtp for line in self.lines):
            self.owner.set_state("connectionState", "CONNECTED")
        self.start_timer()
        if self.sending_line("video") is not None:
            self.owner.video_sink_ready()  # a new negotiation: the PBX's decoder starts afresh

    # -- receiving -----------------------------------------------------------------------------

    def datagram(self, leg: RtpLeg, data: bytes, source: Address, rtcp_port: bool) -> None:
        """A datagram on one of the leg's ports: source check, SRTP, then RTP or RTCP."""
        rtcp = is_rtcp(data)
        if not self._accept_source(leg, source, rtcp):
            return
        if leg.srtp is not None:
            clear = leg.srtp.unprotect(data, rtcp)
            if clear is None:
                return
            data = clear
        if self.tap is not None:
            port = leg.ports.rtcp if rtcp_port else leg.ports.rtp
            self.tap.packet(False, data, (leg.local_address, port), source)
        if rtcp:
            self.rtcp_received(data)
            return
        view = parse_rtp(data)
        if view is None:
            self.malformed_rtp += 1
            return
        self._on_rtp(leg, view)

    def _accept_source(self, leg: RtpLeg, source: Address, rtcp: bool) -> bool:
        remote = leg.line.remote
        if source == remote.rtp or (rtcp and source == remote.rtcp):
            return True
        guard = leg.guard
        if self.config.latching:
            if not rtcp and not guard.latched_rtp:
                guard.latched_rtp = True
                self.fast_drop()
                logger.info("= %s latched RTP onto %s (SDP said %s)", self.name, source, remote.rtp)
                remote.rtp = source
                if remote.mux or remote.rtcp is None:
                    remote.rtcp = source
                return True
            if rtcp and not guard.latched_rtcp:
                guard.latched_rtcp = True
                logger.info("= %s latched RTCP onto %s", self.name, source)
                remote.rtcp = source
                return True
        guard.dropped += 1
        if source not in guard.sources and len(guard.sources) < 16:
            guard.sources.add(source)
            logger.warning(
                "! %s dropped a packet from %s:%d: the SDP names %s (symmetric RTP, latching off)",
                self.name,
                source[0],
                source[1],
                remote.rtp,
            )
        return False

    def _on_rtp(self, leg: RtpLeg, view: RtpView) -> None:
        media = leg.line.media
        if media.receives:  # else on hold towards us (we answered sendonly/inactive)
            self.receive_rtp(media, view)

    # -- RtpSession hooks ---------------------------------------------------------------------

    def send_packet(self, line: MediaLine, data: bytes, rtcp: bool) -> bool:
        """Send on the line's leg (its RTCP port unless rtcp-mux)."""
        leg = self.legs.get(line.index)
        return leg is not None and leg.send(data, rtcp)

    def leg_for(self, line: MediaLine) -> RtpLeg | None:
        """The line's UDP leg (kept across re-offers; it reads the current remote per packet)."""
        return self.legs.get(line.index)

    def sending_line(self, kind: str) -> MediaLine | None:
        """The m-line we send that kind on: accepted, not on hold, with a known remote."""
        for line in self.lines:
            media = line.media
            if (
                media.kind == kind
                and media.sends
                and media.index in self.legs
                and line.remote.rtp is not None
            ):
                return media
        return None

    def report_lines(self) -> list[MediaLine]:
        """Accepted lines with a leg, not inactive (on hold both ways, no reports)."""
        return [
            line.media
            for line in self.lines
            if line.media.accepted
            and line.media.index in self.legs
            and line.media.direction != "inactive"
        ]

    def media_line(self, index: int) -> MediaLine | None:
        """The m-line of that index in the current negotiation (re-offers replace them)."""
        return self.lines[index].media if 0 <= index < len(self.lines) else None

    def is_closed(self) -> bool:
        """Whether the endpoint was closed."""
        return self.closed

    def fast_source(self, line: MediaLine) -> FastEnd | None:
        """The leg's RTP socket, from the remote RTP address only, unprotecting with its keys."""
        leg = self.legs.get(line.index)
        if leg is None or self._tap is not None or self.closed or leg.line.remote.rtp is None:
            return None
        return _fast_end(leg, leg.line.remote.rtp, leg.srtp.rx if leg.srtp else None)

    def fast_sink(self, line: MediaLine) -> FastEnd | None:
        """The leg's RTP socket, to the remote RTP address, protecting with its keys."""
        leg = self.legs.get(line.index)
        target = leg.line.remote.rtp if leg is not None else None
        transport = leg.rtp_transport if leg is not None else None
        if leg is None or target is None or transport is None or transport.is_closing():
            return None
        if self._tap is not None or self.closed:
            return None
        return _fast_end(leg, target, leg.srtp.tx if leg.srtp else None)

    async def close(self) -> None:
        """RTCP BYE to the peer, then stop the timer and free the ports."""
        if self.closed:
            return
        self.fast_drop()  # the compiled routes use the legs' sockets and keys
        self.closed = True
        for line in self.lines:
            leg = self.legs.get(line.media.index)
            if leg is not None and line.media.accepted:
                leg.send(bytes(RtcpByePacket(sources=[line.media.local_ssrc])), rtcp=True)
        self.stop_timer()
        self.transcoding.stop()
        for leg in self.legs.values():
            leg.close()

    # -- stats ------------------------------------------------------------------------------------

    @property
    def dropped_foreign(self) -> int:
        """Packets dropped because they came from an address the SDP does not name."""
        return sum(leg.guard.dropped for leg in self.legs.values())

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication."""
        return sum(leg.srtp.failures for leg in self.legs.values() if leg.srtp is not None)

    @property
    def drops(self) -> dict[str, int]:
        """Datagrams dropped on receipt, by reason (``kurento_media_dropped_total``)."""
        return {
            "foreign_source": self.dropped_foreign,
            "srtp_auth": self.srtp_failures,
            "malformed_rtp": self.malformed_rtp,
            "malformed_rtcp": self.malformed_rtcp,
        }

    def stats(self, media_type: str | None) -> dict[str, Any]:
        """RTP stream entries; inbound ones also count the foreign-source drops."""
        return self.rtp_stats(
            media_type, self.srtp_failures, foreignSourceDrops=self.dropped_foreign
        )


def _fast_end(leg: RtpLeg, remote: Address, srtp: pylibsrtp.Session | None) -> FastEnd | None:
    """A compiled route's end on the leg's RTP socket, when a forwarder reads it."""
    for polled in leg.polled:
        poller = polled.poller
        if polled.sock is leg.rtp_socket and poller is not None and poller.forwarder is not None:
            return FastEnd(cast(Forwarder, poller.forwarder), polled.fd, remote, srtp)
    return None
