"""The RTP session both endpoint kinds keep: streams in and out, RTCP per leg, flows, stats.

``WebRtcMedia`` (DTLS-SRTP towards a browser) and ``PlainRtpMedia`` (RTP or SDES-SRTP towards a
PBX) differ in transports and negotiation; what they do with RTP and RTCP is the same and lives
here. RTCP is terminated on each leg: receiver and sender reports are generated per endpoint,
feedback that concerns the other leg (PLI, FIR) becomes a keyframe request towards the source (or
towards our own encoder when we transcode), NACKs are answered from the sent history, REMB is
kept per sent stream and our own REMB follows the pipeline's bitrate policy.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

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

from emulator.media.negotiation import MediaLine
from emulator.media.rtp import RtpView
from emulator.media.rtp_stats import inbound_stats, outbound_stats
from emulator.media.streams import InboundStream, OutboundStream, middle_ntp, ntp_now
from emulator.media.transcoding import SinkTranscoding, TranscodedPacket, Transcoders
from protocol.sdp import Codec

FLOW_TIMEOUT = 2.0
"""Seconds without packets before a flow is NOT_FLOWING."""
RTCP_TIMEOUT = 5.0
"""Seconds without RTCP before MediaState goes back to DISCONNECTED (BaseRtpEndpoint KMD doc)."""
REPORT_INTERVAL = 1.0
KINDS = {"audio": "AUDIO", "video": "VIDEO"}


@dataclass(slots=True)
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


class RtpSession:
    """RTP/RTCP state of one endpoint; subclasses provide the transport through five hooks:
    ``send_packet``, ``report_lines``, ``media_line``, ``is_closed`` and ``transcoded``."""

    def __init__(self, owner: MediaOwner, name: str, transcoders: Transcoders | None) -> None:
        self.owner = owner
        self.name = name
        self.inbound: dict[int, InboundStream] = {}
        self.outbound: dict[str, OutboundStream] = {}
        self.line_of_ssrc: dict[int, int] = {}
        """Received SSRC -> index of its m-line."""
        self.last_rtcp = 0.0
        self.media_connected = False
        self.transcoding = SinkTranscoding(transcoders or Transcoders(), self, name)
        self._timer: asyncio.Task[None] | None = None

    # -- transport hooks -------------------------------------------------------------------------

    def send_packet(self, line: MediaLine, data: bytes, rtcp: bool) -> bool:
        """Send a plain RTP or RTCP packet on the line's transport."""
        raise NotImplementedError

    def report_lines(self) -> list[MediaLine]:
        """The m-lines that get RTCP reports now."""
        raise NotImplementedError

    def media_line(self, index: int) -> MediaLine | None:
        """The current m-line of that index."""
        raise NotImplementedError

    def is_closed(self) -> bool:
        """Whether the transports are gone."""
        raise NotImplementedError

    def transcoded(self, kind: str, packet: TranscodedPacket) -> None:
        """A packet from the transcoder feeding this endpoint, to send as a forwarded one."""
        raise NotImplementedError

    # -- receiving -------------------------------------------------------------------------------

    def inbound_stream(self, line: MediaLine, view: RtpView, codec: Codec) -> InboundStream:
        """Account a received RTP packet on its SSRC's stream and mark the flow in."""
        stream = self.inbound.get(view.ssrc)
        if stream is None:
            stream = InboundStream(view.ssrc, codec.clock_rate, line.kind)
            self.inbound[view.ssrc] = stream
            self.line_of_ssrc[view.ssrc] = line.index
        stream.received(view, time.monotonic())
        self.owner.mark_flow("in", KINDS[line.kind], True)
        return stream

    def rtcp_received(self, data: bytes) -> None:
        """A plain RTCP compound packet from the remote peer: reports, feedback, BYE."""
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
        if packet.fmt == RTCP_PSFB_APP:
            if packet.fci[:4] == b"REMB":
                bitrate, _ = unpack_remb_fci(packet.fci)
                for out in self.outbound.values():
                    if out.kind == "video":
                        out.remb = bitrate
                self.transcoding.bitrate("video", bitrate)  # our encoder, when we transcode
            return
        if packet.fmt == RTCP_PSFB_PLI:
            stream = self._outbound_by_ssrc(packet.media_ssrc) or self.outbound.get("video")
        elif packet.fmt == RTCP_PSFB_FIR:
            stream = self.outbound.get("video")
        else:
            return
        if stream is None:
            return
        if packet.fmt == RTCP_PSFB_PLI:
            stream.pli_received += 1
        else:
            stream.fir_received += 1
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
        line = self.sending_line(stream.kind) if stream else None
        if stream is None or line is None:
            return
        stream.nack_received += 1
        for sequence in lost:
            packet = stream.history.get(sequence)
            if packet is not None:
                self.send_packet(line, packet, rtcp=False)

    def sending_line(self, kind: str) -> MediaLine | None:
        """The m-line this endpoint sends that kind on."""
        for line in self.report_lines():
            if line.kind == kind and line.sends:
                return line
        return None

    # -- feedback we send --------------------------------------------------------------------------

    def send_keyframe_request(self) -> None:
        """PLI to the remote peer for the video it sends us."""
        for ssrc, stream in self.inbound.items():
            line = self.media_line(self.line_of_ssrc.get(ssrc, -1))
            if stream.kind != "video" or line is None:
                continue
            stream.pli_sent += 1
            pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=line.local_ssrc or 1, media_ssrc=ssrc)
            self.send_packet(line, bytes(pli), rtcp=True)

    def remote_video_remb(self) -> int | None:
        """The remote receiver's last REMB for our video (0 before any), None if we send none."""
        stream = self.outbound.get("video")
        return stream.remb if stream is not None else None

    # -- timers ------------------------------------------------------------------------------------

    def start_timer(self) -> None:
        """Start the once-a-second work (reports, flows, media state), if not yet running."""
        if self._timer is None:
            self._timer = asyncio.ensure_future(self._tick())

    def stop_timer(self) -> None:
        """Stop it (on close)."""
        if self._timer is not None:
            self._timer.cancel()

    async def _tick(self) -> None:
        """Once a second (with jitter, RFC 3550 6.2): reports, flow and media-state timeouts."""
        while not self.is_closed():
            await asyncio.sleep(REPORT_INTERVAL * (0.5 + random.random()))
            now = time.monotonic()
            self._send_reports(now)
            self._check_flows(now)
            if self.media_connected and now - self.last_rtcp > RTCP_TIMEOUT:
                self.media_connected = False
                self.owner.set_state("mediaState", "DISCONNECTED")

    def _send_reports(self, now: float) -> None:
        for line in self.report_lines():
            received = [s for ssrc, s in self.inbound.items() if self._on_line(ssrc, line)]
            blocks = [s.report_block(now) for s in received][:31]
            stream = self.outbound.get(line.kind)
            if stream is not None and stream.packets:
                elapsed = int((now - stream.last_sent_at) * stream.clock_rate)
                info = RtcpSenderInfo(
                    ntp_timestamp=ntp_now(),
                    rtp_timestamp=(stream.last_timestamp + elapsed) & 0xFFFFFFFF,
                    packet_count=stream.packets,
                    octet_count=stream.octets,
                )
                report: Any = RtcpSrPacket(ssrc=line.local_ssrc, sender_info=info, reports=blocks)
            else:
                report = RtcpRrPacket(ssrc=line.local_ssrc or 1, reports=blocks)
            self.send_packet(line, bytes(report) + self._remb(line, received), rtcp=True)

    def _on_line(self, ssrc: int, line: MediaLine) -> bool:
        return self.line_of_ssrc.get(ssrc) == line.index

    def _remb(self, line: MediaLine, streams: list[InboundStream]) -> bytes:
        """A REMB for the video we receive on the line, when the pipeline limits its bitrate."""
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

    # -- TranscodingListener -----------------------------------------------------------------------

    def transcoding_changed(self, kind: str, active: bool, bin_name: str, reason: str) -> None:
        """Report to the element (MediaTranscodingStateChanged)."""
        self.owner.transcoding_changed(KINDS[kind], active, bin_name, reason)

    def keyframe_needed(self, kind: str) -> None:
        """The transcoder's decoder needs a keyframe: ask the source as a PLI would."""
        self.owner.keyframe_wanted(KINDS[kind])

    # -- stats -------------------------------------------------------------------------------------

    def rtp_stats(
        self, media_type: str | None, srtp_failures: int, **inbound_extra: Any
    ) -> dict[str, Any]:
        """Inbound, outbound and remote-inbound entries of the media type (all without one)."""
        now_ms = int(time.time() * 1000)
        entries: dict[str, Any] = {}
        for stream in self.inbound.values():
            if not media_type or KINDS.get(stream.kind) == media_type:
                entry = inbound_stats(self.name, stream, srtp_failures, now_ms)
                entry.update(inbound_extra)
                entries[entry["id"]] = entry
        for out in self.outbound.values():
            if not media_type or KINDS.get(out.kind) == media_type:
                entries.update(outbound_stats(self.name, out, now_ms))
        return entries
