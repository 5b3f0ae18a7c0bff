"""The media behind a WebRtcEndpoint: peer events, RTP in and out, RTCP per leg, flow and stats.

The Kurento object (``objects/webrtc_endpoint.py``) holds the KMD interface; this class does the
media work and reports through ``MediaOwner``. RTCP is terminated here on each leg: receiver and
sender reports are generated per endpoint, and feedback that concerns the other leg (PLI, FIR) is
translated into a keyframe request towards the source.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCDataChannel
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from emulator.media.codecs import is_dtmf
from emulator.media.fragmentation import sized_for_leg
from emulator.media.impairment import Impairment
from emulator.media.negotiation import MediaLine
from emulator.media.peer import PeerConfig, PeerTransport, WebRtcPeer
from emulator.media.rtp import ExtensionMap, RtpView, rewrite_rtp
from emulator.media.streams import InboundStream, OutboundStream, middle_ntp, ntp_now
from emulator.media.transcoding import SinkTranscoding, TranscodedPacket, Transcoders
from emulator.media.webrtc_stats import (
    ChannelCounters,
    ConnectionView,
    LatencyMeter,
    connection_stats,
    inbound_stats,
    outbound_stats,
    stats_id,
)
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

FLOW_TIMEOUT = 2.0
"""Seconds without packets before a flow is NOT_FLOWING."""
RTCP_TIMEOUT = 5.0
"""Seconds without RTCP before MediaState goes back to DISCONNECTED (BaseRtpEndpoint KMD doc)."""
REPORT_INTERVAL = 1.0
KINDS = {"audio": "AUDIO", "video": "VIDEO"}


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """An RTP packet travelling through the pipeline, with what a sink needs to send it on."""

    kind: str
    view: RtpView
    codec: Codec
    source: InboundStream
    extensions: dict[int, str]
    """Source extension id -> URI."""


class MediaOwner(Protocol):
    """The Kurento object the media reports to."""

    def emit(self, event: str, **fields: Any) -> None:
        """Raise a Kurento event."""

    def forward(self, media_type: str, packet: Any) -> None:
        """Send a received packet to the element's sinks."""

    def mark_flow(self, direction: str, media_type: str, flowing: bool) -> None:
        """Record a media flow change."""

    def keyframe_wanted(self, media_type: str) -> None:
        """The remote peer asked for a keyframe of what this element sends."""

    def set_state(self, name: str, value: str) -> None:
        """Change mediaState/connectionState (raising its event)."""

    def data_received(self, label: str, message: str | bytes) -> None:
        """A data channel message from the remote peer."""

    def transcoding_changed(
        self, media_type: str, active: bool, bin_name: str, reason: str
    ) -> None:
        """What this endpoint receives is now (or no longer) transcoded for it."""

    def video_receive_target(self) -> int | None:
        """The REMB (bps) to send the remote sender of our video, None for none."""


class WebRtcMedia:
    """Media state of one WebRtcEndpoint."""

    def __init__(
        self,
        config: PeerConfig,
        owner: MediaOwner,
        name: str,
        transcoders: Transcoders | None = None,
    ) -> None:
        self.owner = owner
        self.peer = WebRtcPeer(config, self, name)
        self.name = name
        self.inbound: dict[int, InboundStream] = {}
        self.outbound: dict[str, OutboundStream] = {}
        self.line_of_ssrc: dict[int, MediaLine] = {}
        self.last_rtcp = 0.0
        self.media_connected = False
        self.channels: dict[int, RTCDataChannel] = {}
        self.channels_opened = 0
        self.channels_closed = 0
        self.channel_counters: dict[int, ChannelCounters] = {}
        self.latency = LatencyMeter()
        self.ice_states: list[str] = []
        self.dtls_state = "NEW"
        self.selected: tuple[str, str] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.transcoding = SinkTranscoding(transcoders or Transcoders(), self, name)
        # Per-route work done once, not per packet: the reverse extension map of each receiving
        # m-line, and (payload type, extension map) per sending line, source map and codec.
        self._source_extensions: dict[int, tuple[dict[str, int], dict[int, str]]] = {}
        self._routes: dict[tuple[int, int, int], _Route] = {}
        self.impairments: dict[str, Impairment] | None = None
        """Fault injection by media kind (``audio``, ``video``); None on the normal path."""

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
        """NewCandidatePairSelected."""
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
        if self._timer is None:
            self._timer = asyncio.ensure_future(self._tick())
        if any(line.kind == "video" and line.receives for line in self.peer.lines):
            self.send_keyframe_request()

    def on_rtp(self, line: MediaLine, view: RtpView) -> None:
        """A packet from the remote peer: count it, mark the flow, send it down the pipeline."""
        codec = line.codec_for(view.payload_type)
        if codec is None:
            return
        stream = self.inbound.get(view.ssrc)
        if stream is None:
            stream = InboundStream(view.ssrc, codec.clock_rate, line.kind)
            self.inbound[view.ssrc] = stream
            self.line_of_ssrc[view.ssrc] = line
        now = time.monotonic()
        stream.received(view, now)
        media_type = KINDS[line.kind]
        self.owner.mark_flow("in", media_type, True)
        negotiated = line.extensions
        cached = self._source_extensions.get(id(line))
        if cached is None or cached[0] is not negotiated:
            cached = (negotiated, {ext_id: uri for uri, ext_id in negotiated.items()})
            self._source_extensions[id(line)] = cached
        self.owner.forward(media_type, MediaPacket(line.kind, view, codec, stream, cached[1]))

    def on_rtcp(self, transport: PeerTransport, data: bytes) -> None:
        """RTCP from the remote peer: reports, feedback, BYE."""
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            return
        self.last_rtcp = time.monotonic()
        if not self.media_connected:
            self.media_connected = True
            self.owner.set_state("mediaState", "CONNECTED")
        for packet in packets:
            self._handle_rtcp(packet)

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

    # -- RTCP ----------------------------------------------------------------------------------

    def _handle_rtcp(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            stream = self.inbound.get(packet.ssrc)
            if stream is not None:
                stream.last_sr_ntp = packet.sender_info.ntp_timestamp
                stream.last_sr_arrival = time.monotonic()
            self._apply_reports(packet.reports)
        elif isinstance(packet, RtcpRrPacket):
            self._apply_reports(packet.reports)
        elif isinstance(packet, RtcpPsfbPacket):
            self._handle_psfb(packet)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self._retransmit(packet.media_ssrc, packet.lost)
        elif isinstance(packet, RtcpByePacket):
            self.media_connected = False
            self.owner.set_state("mediaState", "DISCONNECTED")

    def _apply_reports(self, reports: list[Any]) -> None:
        now_middle = middle_ntp(ntp_now())
        for block in reports:
            for stream in self.outbound.values():
                if stream.ssrc == block.ssrc:
                    stream.apply_report(block, now_middle)

    def _handle_psfb(self, packet: RtcpPsfbPacket) -> None:
        stream = self._outbound_by_ssrc(packet.media_ssrc)
        if packet.fmt == RTCP_PSFB_APP:
            if packet.fci[:4] == b"REMB":
                bitrate, _ = unpack_remb_fci(packet.fci)
                for out in self.outbound.values():
                    if out.kind == "video":
                        out.remb = bitrate
                self.transcoding.bitrate("video", bitrate)  # our encoder, when we transcode
            return
        if packet.fmt == RTCP_PSFB_FIR:
            stream = self.outbound.get("video")
        if stream is None:
            return
        if packet.fmt == RTCP_PSFB_PLI:
            stream.pli_received += 1
        elif packet.fmt == RTCP_PSFB_FIR:
            stream.fir_received += 1
        else:
            return
        transcoder = self.transcoding.transcoder(stream.kind)
        if transcoder is not None:
            transcoder.request_keyframe()  # our encoder makes the keyframe, not the source
            return
        self.owner.keyframe_wanted(KINDS[stream.kind])

    def _outbound_by_ssrc(self, ssrc: int) -> OutboundStream | None:
        for stream in self.outbound.values():
            if stream.ssrc == ssrc:
                return stream
        return None

    def _retransmit(self, media_ssrc: int, lost: list[int]) -> None:
        stream = self._outbound_by_ssrc(media_ssrc)
        line = self._line_sending(stream.kind) if stream else None
        if stream is None or line is None:
            return
        stream.nack_received += 1
        for sequence in lost:
            packet = stream.history.get(sequence)
            if packet is not None:
                self.peer.send(line, packet)

    def send_keyframe_request(self) -> None:
        """PLI to the remote peer for the video it sends us."""
        for ssrc, stream in self.inbound.items():
            line = self.line_of_ssrc.get(ssrc)
            if stream.kind != "video" or line is None:
                continue
            stream.pli_sent += 1
            pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=line.local_ssrc or 1, media_ssrc=ssrc)
            self.peer.send(line, bytes(pli))

    async def _tick(self) -> None:
        """Once a second (with jitter, RFC 3550 6.2): reports, flow and media-state timeouts."""
        while not self.peer.closed:
            await asyncio.sleep(REPORT_INTERVAL * (0.5 + random.random()))
            now = time.monotonic()
            self._send_reports(now)
            self._check_flows(now)
            if self.media_connected and now - self.last_rtcp > RTCP_TIMEOUT:
                self.media_connected = False
                self.owner.set_state("mediaState", "DISCONNECTED")

    def _send_reports(self, now: float) -> None:
        for line in self.peer.lines:
            if not line.accepted or line.kind not in KINDS:
                continue
            blocks = [
                s.report_block(now)
                for ssrc, s in self.inbound.items()
                if self.line_of_ssrc.get(ssrc) is line
            ][:31]
            stream = self.outbound.get(line.kind)
            if stream is not None and stream.packets:
                info = RtcpSenderInfo(
                    ntp_timestamp=ntp_now(),
                    rtp_timestamp=stream.last_timestamp
                    + int((now - stream.last_sent_at) * stream.clock_rate),
                    packet_count=stream.packets,
                    octet_count=stream.octets,
                )
                report: Any = RtcpSrPacket(ssrc=line.local_ssrc, sender_info=info, reports=blocks)
            else:
                report = RtcpRrPacket(ssrc=line.local_ssrc or 1, reports=blocks)
            self.peer.send(line, bytes(report) + self._remb(line))

    def _remb(self, line: MediaLine) -> bytes:
        """A REMB for the video we receive on the line, when the pipeline limits its bitrate."""
        streams = [s for ssrc, s in self.inbound.items() if self.line_of_ssrc.get(ssrc) is line]
        if line.kind != "video" or not streams:
            return b""
        bitrate = self.owner.video_receive_target()
        if bitrate is None:
            return b""
        for stream in streams:
            stream.remb = bitrate
        fci = pack_remb_fci(bitrate, [s.ssrc for s in streams])
        return bytes(
            RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=line.local_ssrc or 1, media_ssrc=0, fci=fci)
        )

    def remote_video_remb(self) -> int | None:
        """The remote receiver's last REMB for our video (0 before any), None if we send none."""
        stream = self.outbound.get("video")
        return stream.remb if stream is not None else None

    def _check_flows(self, now: float) -> None:
        for kind, media_type in KINDS.items():
            last_in = max(
                (s.last_arrival for s in self.inbound.values() if s.kind == kind), default=0.0
            )
            if last_in and now - last_in > FLOW_TIMEOUT:
                self.owner.mark_flow("in", media_type, False)
            stream = self.outbound.get(kind)
            if stream is not None and stream.packets and now - stream.last_sent_at > FLOW_TIMEOUT:
                self.owner.mark_flow("out", media_type, False)

    # -- sending ---------------------------------------------------------------------------------

    def _line_sending(self, kind: str) -> MediaLine | None:
        for line in self.peer.lines:
            if line.kind == kind and line.sends:
                return line
        return None

    def send_media(self, packet: MediaPacket) -> bool:
        """Send a pipeline packet to the remote peer, rewritten for this leg (transcoded when
        the peer did not negotiate its codec)."""
        line = self._line_sending(packet.kind)
        stream = self.outbound.get(packet.kind)
        if line is None or stream is None:
            return False
        route = self._route(line, packet.extensions, packet.codec)
        payload_type = route.payload_type
        if payload_type is None or self.transcoding.active(packet.kind):
            if payload_type is None or is_dtmf(packet.codec):
                self.transcoding.feed(
                    packet.kind, packet.view, packet.codec, packet.source, line.codecs
                )
                return False
            self.transcoding.stop(packet.kind)  # the source now sends a codec the peer takes
        views = sized_for_leg(packet.view, packet.codec.name, self.name)
        arrival = packet.source.last_arrival
        sent = False
        for index, view in enumerate(views):
            if index:
                stream.split_packet()
            sent = self._send(line, stream, view, packet.source, route, arrival) or sent
        return sent

    def _route(self, line: MediaLine, extensions: dict[int, str], codec: Codec) -> _Route:
        """Payload type and extension map for this line, source and codec (cached by identity)."""
        key = (id(line), id(extensions), id(codec))
        route = self._routes.get(key)
        if (
            route is None
            or route.line is not line
            or route.source_extensions is not extensions
            or route.codec is not codec
        ):
            if len(self._routes) > 64:
                self._routes.clear()  # sources come and go; stale routes are cheap to rebuild
            route = _Route(
                line,
                extensions,
                codec,
                _matching_payload_type(line, codec),
                _extension_map(extensions, line),
            )
            self._routes[key] = route
        return route

    def _send(
        self,
        line: MediaLine,
        stream: OutboundStream,
        view: RtpView,
        source: object,
        route: _Route,
        arrival: float,
    ) -> bool:
        assert route.payload_type is not None
        now = time.monotonic()
        sequence, timestamp = stream.next_numbers(source, view, now)
        data = rewrite_rtp(
            view,
            payload_type=route.payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=stream.ssrc,
            extensions=route.extensions,
        )
        impairments = self.impairments
        impairment = impairments.get(line.kind) if impairments is not None else None
        if impairment is None:
            if not self.peer.send(line, data):
                return False
        elif not impairment.send(self.peer.send, line, data):
            return False
        stream.sent(sequence, data, len(data) - view.header_end, now)
        self.latency.add(line.kind, time.monotonic() - arrival)
        return True

    # -- TranscodingListener -----------------------------------------------------------------------

    def transcoded(self, kind: str, packet: TranscodedPacket) -> None:
        """A packet from the transcoder feeding this endpoint: send it as a forwarded one."""
        line = self._line_sending(kind)
        stream = self.outbound.get(kind)
        if line is None or stream is None:
            return
        route = self._route(line, NO_EXTENSIONS, packet.codec)
        if route.payload_type is None:
            return  # telephone-event the peer did not negotiate at the target clock
        if self._send(line, stream, packet.view, packet.source, route, packet.arrival):
            self.owner.mark_flow("out", KINDS[kind], True)

    def transcoding_changed(self, kind: str, active: bool, bin_name: str, reason: str) -> None:
        """Report to the element (MediaTranscodingStateChanged)."""
        self.owner.transcoding_changed(KINDS[kind], active, bin_name, reason)

    def keyframe_needed(self, kind: str) -> None:
        """The transcoder's decoder needs a keyframe: ask the source as a PLI would."""
        self.owner.keyframe_wanted(KINDS[kind])

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
        """Stop the timer and the peer."""
        if self._timer is not None:
            self._timer.cancel()
        self.transcoding.stop()
        await self.peer.close()

    # -- stats -----------------------------------------------------------------------------

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication, on every transport."""
        return sum(t.dtls.srtp_failures for t in self.peer.transports.values())

    def stats(self, media_type: str | None) -> dict[str, Any]:
        """RTP stream entries of the media type, and the connection's when none is given."""
        now_ms = int(time.time() * 1000)
        entries: dict[str, Any] = {}
        srtp_failures = self.srtp_failures
        for stream in self.inbound.values():
            if not media_type or KINDS.get(stream.kind) == media_type:
                key = stats_id(self.name, "in", stream.ssrc)
                entries[key] = inbound_stats(self.name, stream, srtp_failures, now_ms)
        for out in self.outbound.values():
            if not media_type or KINDS.get(out.kind) == media_type:
                entries.update(outbound_stats(self.name, out, now_ms))
        if not media_type:
            sent = sum(s.octets for s in self.outbound.values())
            received = sum(s.octets for s in self.inbound.values())
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
        )


@dataclass(frozen=True, slots=True)
class _Route:
    """What ``send_media`` computes once per (sending line, source extension map, codec)."""

    line: MediaLine
    source_extensions: dict[int, str]
    codec: Codec
    payload_type: int | None
    extensions: ExtensionMap


NO_EXTENSIONS: dict[int, str] = {}
"""The source extension map of transcoded packets (one object, so that routes cache)."""


def _matching_payload_type(line: MediaLine, codec: Codec) -> int | None:
    for candidate in [*line.codecs, *([line.dtmf] if line.dtmf else [])]:
        if candidate.key == codec.key:
            return candidate.payload_type
    return None


def _extension_map(source: dict[int, str], line: MediaLine) -> ExtensionMap:
    # The MID extension names the source's m-line; the sink's SSRCs are signalled instead.
    return ExtensionMap(
        {
            ext_id: line.extensions[uri]
            for ext_id, uri in source.items()
            if uri in line.extensions and not uri.endswith("sdes:mid")
        }
    )
