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
import uuid
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
    unpack_remb_fci,
)

from emulator.media.negotiation import MediaLine
from emulator.media.peer import PeerConfig, PeerTransport, WebRtcPeer
from emulator.media.rtp import ExtensionMap, RtpView, rewrite_rtp
from emulator.media.streams import InboundStream, OutboundStream, middle_ntp, ntp_now
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


class WebRtcMedia:
    """Media state of one WebRtcEndpoint."""

    def __init__(self, config: PeerConfig, owner: MediaOwner, name: str) -> None:
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
        self.ice_states: list[str] = []
        self.dtls_state = "NEW"
        self.selected: tuple[str, str] | None = None
        self._timer: asyncio.Task[None] | None = None
        # Per-route work done once, not per packet: the reverse extension map of each receiving
        # m-line, and (payload type, extension map) per sending line, source map and codec.
        self._source_extensions: dict[int, tuple[dict[str, int], dict[int, str]]] = {}
        self._routes: dict[tuple[int, int, int], _Route] = {}

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
        channel.on("message", lambda message: self.owner.data_received(channel.label, message))
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
            self.peer.send(line, bytes(report))

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
        """Send a pipeline packet to the remote peer, rewritten for this leg."""
        line = self._line_sending(packet.kind)
        stream = self.outbound.get(packet.kind)
        if line is None or stream is None:
            return False
        route = self._route(line, packet)
        if route.payload_type is None:
            return False
        now = time.monotonic()
        sequence, timestamp = stream.next_numbers(packet.source, packet.view, now)
        data = rewrite_rtp(
            packet.view,
            payload_type=route.payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=stream.ssrc,
            extensions=route.extensions,
        )
        if not self.peer.send(line, data):
            return False
        stream.sent(sequence, data, len(data) - packet.view.header_end, now)
        return True

    def _route(self, line: MediaLine, packet: MediaPacket) -> _Route:
        """Payload type and extension map for this line, source and codec (cached by identity)."""
        key = (id(line), id(packet.extensions), id(packet.codec))
        route = self._routes.get(key)
        if (
            route is None
            or route.line is not line
            or route.source_extensions is not packet.extensions
            or route.codec is not packet.codec
        ):
            if len(self._routes) > 64:
                self._routes.clear()  # sources come and go; stale routes are cheap to rebuild
            route = _Route(
                line,
                packet.extensions,
                packet.codec,
                _matching_payload_type(line, packet.codec),
                _extension_map(packet.extensions, line),
            )
            self._routes[key] = route
        return route

    def send_data(self, label: str, message: str | bytes) -> bool:
        """Send a data channel message on the channel with that label (else the first open)."""
        open_channels = [c for c in self.channels.values() if c.readyState == "open"]
        for channel in open_channels:
            if channel.label == label:
                channel.send(message)
                return True
        if open_channels:
            open_channels[0].send(message)
            return True
        return False

    async def close(self) -> None:
        """Stop the timer and the peer."""
        if self._timer is not None:
            self._timer.cancel()
        await self.peer.close()

    # -- stats -----------------------------------------------------------------------------

    def stats(self, media_type: str | None) -> dict[str, Any]:
        """RTCInbound/OutboundRTPStreamStats entries keyed by stable ids."""
        now_ms = int(time.time() * 1000)
        entries: dict[str, Any] = {}
        srtp_failures = sum(t.dtls.srtp_failures for t in self.peer.transports.values())
        for stream in self.inbound.values():
            if media_type and KINDS.get(stream.kind) != media_type:
                continue
            key = _stats_id(self.name, "in", stream.ssrc)
            entries[key] = {
                "__module__": "kurento",
                "__type__": "RTCInboundRTPStreamStats",
                "id": key,
                "type": "inboundrtp",
                "timestampMillis": now_ms,
                "ssrc": str(stream.ssrc),
                "associateStatsId": "",
                "isRemote": False,
                "mediaTrackId": "",
                "transportId": "",
                "codecId": "",
                "firCount": stream.fir_sent,
                "pliCount": stream.pli_sent,
                "nackCount": stream.nack_sent,
                "sliCount": 0,
                "remb": stream.remb,
                "packetsLost": stream.lost,
                "fractionLost": 0.0,
                "packetsReceived": stream.packets,
                "bytesReceived": stream.octets,
                "jitter": stream.jitter_seconds,
                "srtpFailures": srtp_failures,
            }
        for out in self.outbound.values():
            if media_type and KINDS.get(out.kind) != media_type:
                continue
            key = _stats_id(self.name, "out", out.ssrc)
            entries[key] = {
                "__module__": "kurento",
                "__type__": "RTCOutboundRTPStreamStats",
                "id": key,
                "type": "outboundrtp",
                "timestampMillis": now_ms,
                "ssrc": str(out.ssrc),
                "associateStatsId": "",
                "isRemote": False,
                "mediaTrackId": "",
                "transportId": "",
                "codecId": "",
                "firCount": out.fir_received,
                "pliCount": out.pli_received,
                "nackCount": out.nack_received,
                "sliCount": 0,
                "remb": out.remb,
                "packetsLost": out.packets_lost,
                "fractionLost": out.fraction_lost,
                "packetsSent": out.packets,
                "bytesSent": out.octets,
                "targetBitrate": float(out.remb),
                "roundTripTime": out.round_trip,
            }
        return entries


@dataclass(frozen=True, slots=True)
class _Route:
    """What ``send_media`` computes once per (sending line, source extension map, codec)."""

    line: MediaLine
    source_extensions: dict[int, str]
    codec: Codec
    payload_type: int | None
    extensions: ExtensionMap


def _stats_id(name: str, direction: str, ssrc: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{direction}/{ssrc}"))


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
