"""The media behind a WebRtcEndpoint: peer events, data channels, stats.

The Kurento object (``objects/webrtc_endpoint.py``) holds the KMD interface; this class does the
media work and reports through ``MediaOwner``. What it shares with a plain RTP endpoint (streams,
RTCP per leg, feedback, flows) is ``RtpSession``; the DTLS-SRTP transports are ``WebRtcPeer``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import pylibsrtp
from aiortc import RTCDataChannel

from emulator.media.codecs.transcoding import Transcoders
from emulator.media.fastpath import Forwarder
from emulator.media.flow import MediaLeg
from emulator.media.legs.ice import RangedConnection
from emulator.media.legs.peer import PeerConfig, PeerTransport, WebRtcPeer
from emulator.media.rtp.fragmentation import MAX_PAYLOAD
from emulator.media.rtp.packet import RtpView
from emulator.media.rtp.streams import OutboundStream, WireCounters
from emulator.media.sdp.negotiation import MediaLine
from emulator.media.session.datapath import FastEnd
from emulator.media.session.rtp import KINDS, MediaOwner, RtpSession, SessionTimeouts
from emulator.media.session.stats import ChannelCounters, ConnectionView, connection_stats

logger = logging.getLogger(__name__)


class WebRtcMedia(RtpSession):
    """Media state of one WebRtcEndpoint."""

    def __init__(
        self,
        config: PeerConfig,
        owner: MediaOwner,
        name: str,
        transcoders: Transcoders | None = None,
        timeouts: SessionTimeouts | None = None,
        mtu: int = MAX_PAYLOAD,
    ) -> None:
        super().__init__(owner, name, transcoders, timeouts, mtu)
        self.peer = WebRtcPeer(config, self, name)
        self.channels: dict[int, RTCDataChannel] = {}
        self.channels_opened = 0
        self.channels_closed = 0
        self.channel_counters: dict[int, ChannelCounters] = {}
        self.ice_states: list[str] = []
        self.dtls_state = "NEW"
        self.selected: tuple[str, str] | None = None

    # -- PeerListener ------------------------------------------------------------------------

    def on_local_candidate(self, candidate: str, mid: str, index: int) -> None:
        """Trickle a local candidate to the application."""
        self.owner.emit(
            "IceCandidateFound",
            candidate={
                "__module__": "kurento",
                "__type__": "IceCandidate",
                "candidate": candidate,
                "sdpMid": mid,
                "sdpMLineIndex": index,
            },
        )

    def on_gathering_done(self) -> None:
        """Every candidate was reported."""
        self.owner.emit("IceGatheringDone")

    def on_ice_state(self, state: str) -> None:
        """IceComponentStateChanged (stream 1, component 1: BUNDLE and rtcp-mux)."""
        self.ice_states.append(state)
        self.owner.emit("IceComponentStateChanged", streamId=1, componentId=1, state=state)
        if state == "FAILED":
            self.owner.set_state("connectionState", "DISCONNECTED")

    def on_pair_selected(self, local: str, remote: str) -> None:
        """NewCandidatePairSelected (the compiled routes used the previous pair)."""
        self.fast_drop()
        self.selected = (local, remote)
        self.owner.emit(
            "NewCandidatePairSelected",
            candidatePair={
                "__module__": "kurento",
                "__type__": "IceCandidatePair",
                "streamId": "1",
                "componentId": 1,
                "localCandidate": local,
                "remoteCandidate": remote,
            },
        )

    def on_dtls_state(self, state: str, connection_id: str) -> None:
        """DtlsConnectionStateChange."""
        if state != "CONNECTED":
            self.fast_drop()  # before the keys go
        self.dtls_state = state
        self.owner.emit(
            "DtlsConnectionStateChange",
            streamId="1",
            componentId="1",
            connectionId=connection_id,
            state=state,
        )
        if state in ("FAILED", "CLOSED"):
            self.owner.set_state("connectionState", "DISCONNECTED")

    def on_transport_ready(self) -> None:
        """DTLS is up: the connection is CONNECTED and reports start."""
        self.owner.set_state("connectionState", "CONNECTED")
        for line in self.peer.lines:
            if line.sends and line.kind in KINDS:
                clock = line.codecs[0].clock_rate if line.codecs else 90000
                self.outbound[line.kind] = self.outbound.get(line.kind) or OutboundStream(
                    line.local_ssrc, clock, line.kind
                )
        self.start_timer()
        if any(line.kind == "video" and line.receives for line in self.peer.lines):
            self.send_keyframe_request()
        if "video" in self.outbound:
            self.owner.video_sink_ready()  # what the source sent before now never reached us

    def on_rtp(self, line: MediaLine, view: RtpView) -> None:
        """A packet from the remote peer: through the session's receive door."""
        self.receive_rtp(line, view)

    def on_rtcp(self, transport: PeerTransport, data: bytes) -> None:
        """RTCP from the remote peer: reports, feedback, BYE."""
        self.rtcp_received(data)

    def on_data_channel(self, channel: RTCDataChannel, created_remotely: bool) -> None:
        """Track a channel: DataChannelOpened/Closed and messages."""

        def opened() -> None:
            assert channel.id is not None
            self.channels[channel.id] = channel
            self.channel_counters[channel.id] = ChannelCounters(channel.label, channel.protocol)
            self.channels_opened += 1
            # KMS 7.3.0 raises DataChannelOpened twice (duplicated code in WebRtcEndpointImpl).
            self.owner.emit("DataChannelOpened", channelId=channel.id)
            self.owner.emit("DataChannelOpened", channelId=channel.id)

        def closed() -> None:
            if channel.id is not None and self.channels.pop(channel.id, None) is not None:
                self.channels_closed += 1
                self.owner.emit("DataChannelClosed", channelId=channel.id)
                self.owner.emit("DataChannelClosed", channelId=channel.id)

        channel.on("open", opened)
        channel.on("close", closed)

        def message(message: str | bytes) -> None:
            counters = self.channel_counters.get(channel.id or 0)
            if counters is not None:
                counters.count(message, sent=False)
            self.owner.data_received(channel.label, message)

        channel.on("message", message)
        if channel.readyState == "open":
            opened()

    # -- RtpSession hooks ---------------------------------------------------------------------

    def send_packet(self, line: MediaLine, data: bytes, rtcp: bool) -> bool:
        """Protect and send on the line's (bundled) transport."""
        return self.peer.send(line, data)

    def leg_for(self, line: MediaLine) -> MediaLeg | None:
        """The line's DTLS-SRTP transport (bundled lines share one)."""
        transport = self.peer.transports.get(line.transport)
        return transport.dtls if transport is not None else None

    def report_lines(self) -> list[MediaLine]:
        """Accepted audio and video lines."""
        return [line for line in self.peer.lines if line.accepted and line.kind in KINDS]

    def sending_line(self, kind: str) -> MediaLine | None:
        """The m-line this endpoint sends that kind on (per packet: no list is built)."""
        for line in self.peer.lines:
            if line.kind == kind and line.sends:
                return line
        return None

    def media_line(self, index: int) -> MediaLine | None:
        """The negotiated m-line of that index (WebRTC lines never change)."""
        lines = self.peer.lines
        return lines[index] if 0 <= index < len(lines) else None

    def is_closed(self) -> bool:
        """Whether the peer is closed."""
        return self.peer.closed

    def fast_source(self, line: MediaLine) -> FastEnd | None:
        """The nominated host socket of the line's transport, unprotecting with its keys."""
        transport = self.peer.transports.get(line.transport)
        if transport is None or transport.dtls.tap is not None:
            return None
        counter = transport.dtls.rx_counter
        if counter is None:
            return None
        return _fast_end(transport.connection, counter.session, transport.dtls.received)

    def fast_sink(self, line: MediaLine) -> FastEnd | None:
        """The nominated host socket of the line's transport, protecting with its keys."""
        transport = self.peer.transports.get(line.transport)
        if transport is None or not transport.dtls.ready or transport.dtls.tap is not None:
            return None
        return _fast_end(transport.connection, transport.dtls.tx_session, transport.dtls.sent)

    def send_data(self, label: str, message: str | bytes) -> bool:
        """Send a data channel message on the channel with that label (else the first open)."""
        open_channels = [c for c in self.channels.values() if c.readyState == "open"]
        labelled = [c for c in open_channels if c.label == label]
        for channel in (labelled or open_channels)[:1]:
            channel.send(message)
            counters = self.channel_counters.get(channel.id or 0)
            if counters is not None:
                counters.count(message, sent=True)
            return True
        return False

    async def close(self) -> None:
        """Stop the timer and the peer (the compiled routes first: they use its keys)."""
        self.fast_drop()
        self.stop_timer()
        self.transcoding.stop()
        await self.peer.close()

    # -- stats -----------------------------------------------------------------------------

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication, on every transport."""
        return sum(t.dtls.srtp_failures for t in self.peer.transports.values())

    @property
    def drops(self) -> dict[str, int]:
        """Datagrams dropped on receipt, by reason (``kurento_media_dropped_total``)."""
        transports = list(self.peer.transports.values())
        counters = [t.connection.counters for t in transports]
        return {
            "unvalidated_source": sum(c.unvalidated_source for c in counters),
            "malformed_stun": sum(c.malformed_stun for c in counters),
            "receive_queue_full": sum(c.queue_overflow for c in counters),
            "srtp_auth": self.srtp_failures,
            "malformed_rtp": sum(t.malformed_rtp for t in transports),
            "malformed_rtcp": self.malformed_rtcp,
        }

    def stats(self, media_type: str | None) -> dict[str, Any]:
        """RTP stream entries of the media type, and the connection's when none is given."""
        entries = self.rtp_stats(media_type, self.srtp_failures)
        if not media_type:
            now_ms = int(time.time() * 1000)
            transports = [t.dtls for t in self.peer.transports.values()]
            sent, received = WireCounters(), WireCounters()
            for dtls in transports:
                sent.count(dtls.sent.octets, dtls.sent.packets)
                received.count(dtls.received.octets, dtls.received.packets)
            entries.update(connection_stats(self._connection_view(), sent, received, now_ms))
        return entries

    def _connection_view(self) -> ConnectionView:
        rtts = [s.round_trip for s in self.outbound.values() if s.reports]
        return ConnectionView(
            name=self.name,
            selected=self.selected,
            dtls_state=self.dtls_state,
            channels_opened=self.channels_opened,
            channels_closed=self.channels_closed,
            channels={
                channel_id: (self.channel_counters[channel_id], channel.readyState)
                for channel_id, channel in self.channels.items()
                if channel_id in self.channel_counters
            },
            round_trip=max(rtts, default=0.0),
            ice_state=self.ice_states[-1] if self.ice_states else "NEW",
            available_outgoing=float(sum(s.remb for s in self.outbound.values())),
            available_incoming=float(sum(s.remb for s in self.inbound.values())),
        )


def _fast_end(
    connection: RangedConnection, srtp: pylibsrtp.Session, counters: WireCounters
) -> FastEnd | None:
    """A compiled route's end on the connection's nominated host socket, when a forwarder
    reads it (``counters``: the DTLS transport's, of that direction)."""
    found = connection.polled_pair()
    if found is None:
        return None
    polled, remote = found
    poller = polled.poller
    if poller is None or poller.forwarder is None or polled.fd < 0:
        return None
    return FastEnd(cast(Forwarder, poller.forwarder), polled.fd, remote, srtp, counters)
