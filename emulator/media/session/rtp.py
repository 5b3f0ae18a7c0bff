"""The RTP session both endpoint kinds keep: streams in and out, RTCP per leg, flows, stats.

``WebRtcMedia`` (DTLS-SRTP towards a browser) and ``PlainRtpMedia`` (RTP or SDES-SRTP towards a
PBX) differ in transports and negotiation; what they do with RTP and RTCP is the same and lives
here. RTCP is terminated on each leg: receiver and sender reports are generated per endpoint,
feedback that concerns the other leg (PLI, FIR) becomes a keyframe request towards the source (or
towards our own encoder when we transcode), NACKs are answered from the sent history, REMB is
kept per sent stream and our own REMB follows the pipeline's bitrate policy.

Keyframes: a sink that starts sending video mid-stream (a new source, a switched one, its own
transport coming up, a transcoder starting) waits for a keyframe (``KeyframeWait``): it asks its
source at once and again every ``KEYFRAME_RETRY`` seconds until a keyframe has been sent to it,
as KMS does. Our own requests towards the remote sender are queued while there is no stream to
name or no transport to carry them, and sent as soon as there is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
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

from emulator.media.codecs.coders import EncoderBitrates
from emulator.media.codecs.served import h264_mode, is_dtmf
from emulator.media.codecs.transcoding import SinkTranscoding, TranscodedPacket, Transcoders
from emulator.media.flow import MediaLeg, MediaPacket
from emulator.media.lab.impairment import Impairment
from emulator.media.rtp.fragmentation import MAX_PAYLOAD, sized_for_leg
from emulator.media.rtp.keyframes import keyframe_detector
from emulator.media.rtp.packet import ExtensionMap, RtpView, rewrite_rtp
from emulator.media.rtp.single_nal import SingleNalUnits
from emulator.media.rtp.streams import InboundStream, OutboundStream, middle_ntp, ntp_now
from emulator.media.sdp.h264 import carries as h264_carries
from emulator.media.sdp.h264 import same_profile as h264_same_profile
from emulator.media.sdp.negotiation import MediaLine
from emulator.media.session import datapath as fast
from emulator.media.session.stats import LatencyMeter, inbound_stats, outbound_stats
from emulator.settings import Settings
from protocol.sdp import Codec

REPORT_INTERVAL = 1.0
KEYFRAME_RETRY = 0.5
"""Seconds between two keyframe requests of a sink that video reaches without a keyframe."""
KEYFRAME_IDLE_RETRY = 4.0
"""The longest gap between two requests while no video reaches the waiting sink at all."""
KEYFRAME_WAIT_WARNING = 1.0
"""A sink that has received video without a keyframe for this long is logged."""
KEYFRAME_REQUEST_GAP = 0.1
"""Requests for one received stream closer than this are one request (a fan-out's new sinks)."""
KINDS = {"audio": "AUDIO", "video": "VIDEO"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionTimeouts:
    """When flows and the media state time out (settings ``media_flow_timeout`` and
    ``media_state_timeout``)."""

    flow: float = Settings.model_fields["media_flow_timeout"].default
    """Seconds without packets before a flow is NOT_FLOWING."""
    rtcp: float = Settings.model_fields["media_state_timeout"].default
    """Seconds without RTCP before MediaState goes back to DISCONNECTED (BaseRtpEndpoint KMD)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionTimeouts:
        """The timeouts the server is configured with."""
        return cls(settings.media_flow_timeout, settings.media_state_timeout)


@dataclass(slots=True)
class KeyframeWait:
    """A sink waiting for its first video keyframe from a new source."""

    reason: str
    started: float
    requests: int = 0
    last_request: float = 0.0
    video_since: float = 0.0
    """When video first reached the sink while waiting (0: none yet)."""
    warned: bool = False
    timer: asyncio.TimerHandle | None = None


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

    def video_sink_ready(self) -> None:
        """The media can send video now: what it sends must start with a keyframe."""

    def set_state(self, name: str, value: str) -> None:
        """Change mediaState/connectionState (raising its event)."""

    def data_received(self, label: str, message: str | bytes) -> None:
        """A data channel message from the remote peer."""

    def transcoding_changed(
        self, media_type: str, active: bool, bin_name: str, reason: str
    ) -> None:
        """What this endpoint receives is now (or no longer) transcoded for it."""

    def transcoding_refused(self, media_type: str, reason: str) -> None:
        """What this endpoint receives cannot be transcoded into what its peer negotiated."""

    def decode_failed(self, media_type: str, reason: str) -> None:
        """The transcoder feeding this endpoint cannot decode what its source sends."""

    def transcoding_bitrates(self, media_type: str) -> EncoderBitrates:
        """The encoderBitrate bounds video transcoded for this endpoint is encoded within."""

    def video_receive_target(self) -> int | None:
        """The REMB (bps) to send the remote sender of our video, None for none."""


class RtpSession:
    """RTP/RTCP state of one endpoint, with its one receive door (``receive_rtp``) and its one
    send path (``send_media`` and ``transcoded``: route, rewrite, protect, send).

    Subclasses provide the transport through six hooks: ``send_packet`` (RTCP, retransmissions),
    ``leg_for`` (the ``MediaLeg`` media leaves by), ``sending_line``, ``report_lines``,
    ``media_line`` and ``is_closed``.
    """

    def __init__(
        self,
        owner: MediaOwner,
        name: str,
        transcoders: Transcoders | None,
        timeouts: SessionTimeouts | None = None,
        mtu: int = MAX_PAYLOAD,
    ) -> None:
        self.owner = owner
        self.name = name
        self.timeouts = timeouts or SessionTimeouts()
        self.max_payload = mtu
        """The endpoint's ``mtu``: larger video payloads are split for this leg."""
        self.inbound: dict[int, InboundStream] = {}
        self.outbound: dict[str, OutboundStream] = {}
        self.line_of_ssrc: dict[int, int] = {}
        """Received SSRC -> index of its m-line."""
        self.last_rtcp = 0.0
        self.malformed_rtcp = 0
        """RTCP compounds that did not parse (lying lengths...): dropped, counted for /metrics."""
        self.media_connected = False
        self.transcoding = SinkTranscoding(transcoders or Transcoders(), self, name)
        self.keyframe_wait: KeyframeWait | None = None
        """Set while the video we send waits for a keyframe (read per sent packet)."""
        self.keyframe_request_pending = False
        """A request for the remote's video that could not be sent yet."""
        self.latency = LatencyMeter()
        self._impairments: dict[str, Impairment] | None = None
        self.fast_routes: dict[int, fast.FastRoute] = {}
        """Received SSRC -> its route in the compiled forwarder (``session/datapath.py``)."""
        self.fast_feeds: list[fast.FastRoute] = []
        """Routes of the compiled forwarder that send to this session's peer."""
        # Per-route work done once, not per packet: the reverse extension map of each receiving
        # m-line, and (payload type, extension map, leg) per sending line, source map and codec.
        self._source_extensions: dict[int, tuple[dict[str, int], dict[int, str]]] = {}
        self._routes: dict[tuple[int, int, int], SendRoute] = {}
        self._single_nal: dict[str, tuple[object, SingleNalUnits]] = {}
        """H264 repacketisers towards a packetization-mode 0 peer, by kind, with their source."""
        self._timer: asyncio.Task[None] | None = None

    @property
    def impairments(self) -> dict[str, Impairment] | None:
        """Fault injection by media kind (``audio``, ``video``); None on the normal path."""
        return self._impairments

    @impairments.setter
    def impairments(self, impairments: dict[str, Impairment] | None) -> None:
        self.fast_drop()  # impaired packets take the Python path
        self._impairments = impairments

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

    def leg_for(self, line: MediaLine) -> MediaLeg | None:
        """The leg RTP of that m-line leaves by, None before there is one."""
        raise NotImplementedError

    def fast_source(self, line: MediaLine) -> fast.FastEnd | None:
        """Where the compiled forwarder reads that m-line's RTP (None: the Python path only)."""
        return None

    def fast_sink(self, line: MediaLine) -> fast.FastEnd | None:
        """Where the compiled forwarder sends that m-line's RTP (None: the Python path only)."""
        return None

    # -- the compiled forwarder's routes (session/datapath.py) -------------------------------------

    def fast_drop(self) -> None:
        """Every route from or to this session goes back to the Python path (something that
        changes the packets' journey: call it before the change, and before a transport
        closes)."""
        for route in [*self.fast_routes.values(), *self.fast_feeds]:
            fast.unroute(route)

    def fast_sync(self) -> None:
        """The forwarder's figures of the routes from or to this session, into the streams."""
        for route in [*self.fast_routes.values(), *self.fast_feeds]:
            fast.sync(route)

    # -- receiving -------------------------------------------------------------------------------

    def receive_rtp(self, line: MediaLine, view: RtpView) -> None:
        """The one receive door: a clear RTP packet from the remote peer on an m-line; count it,
        mark the flow and send it down the pipeline."""
        routed = self.fast_routes.get(view.ssrc)
        if routed is not None:  # the forwarder handed it back: Python takes over the stream
            fast.unroute(routed)
        codec = line.codec_for(view.payload_type)
        if codec is None:
            return
        stream = self.inbound_stream(line, view, codec)
        negotiated = line.extensions
        cached = self._source_extensions.get(id(line))
        if cached is None or cached[0] is not negotiated:
            cached = (negotiated, {ext_id: uri for uri, ext_id in negotiated.items()})
            self._source_extensions[id(line)] = cached
        packet = MediaPacket(line.kind, view, codec, stream, cached[1], stream.last_arrival)
        if self.fast_source(line) is None:
            self.owner.forward(KINDS[line.kind], packet)
            return
        recording = fast.RECORDING
        outer, fanout = recording.current, fast.Fanout()
        recording.current = fanout
        try:
            self.owner.forward(KINDS[line.kind], packet)
        finally:
            recording.current = outer
        fast.learn(self, line, view, stream, codec, fanout)

    def inbound_stream(self, line: MediaLine, view: RtpView, codec: Codec) -> InboundStream:
        """Account a received RTP packet on its SSRC's stream and mark the flow in."""
        stream = self.inbound.get(view.ssrc)
        if stream is None:
            stream = InboundStream(view.ssrc, codec.clock_rate, line.kind)
            self.inbound[view.ssrc] = stream
            self.line_of_ssrc[view.ssrc] = line.index
            if line.kind == "video" and self.keyframe_request_pending:
                self.send_keyframe_request()  # queued until we knew which stream to ask for
        stream.received(view, time.monotonic())
        self.owner.mark_flow("in", KINDS[line.kind], True)
        return stream

    def rtcp_received(self, data: bytes) -> None:
        """A plain RTCP compound packet from the remote peer: reports, feedback, BYE."""
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            self.malformed_rtcp += 1
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
                try:
                    bitrate, _ = unpack_remb_fci(packet.fci)
                except ValueError:  # a REMB cut short: aiortc parses only the common header
                    self.malformed_rtcp += 1
                    return
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
            if packet is None and self.fast_feeds:
                packet = fast.history(self, stream, sequence)
            if packet is not None:
                self.send_packet(line, packet, rtcp=False)

    def sending_line(self, kind: str) -> MediaLine | None:
        """The m-line this endpoint sends that kind on."""
        for line in self.report_lines():
            if line.kind == kind and line.sends:
                return line
        return None

    # -- the send path -----------------------------------------------------------------------------

    def send_media(self, packet: MediaPacket) -> bool:
        """Send a pipeline packet to the remote peer, rewritten for this leg; transcoded when
        the peer did not negotiate its codec (``emulator/media/codecs/transcoding.py``)."""
        line = self.sending_line(packet.kind)
        stream = self.outbound.get(packet.kind)
        if line is None or stream is None:
            return False
        route = self._route(line, packet.extensions, packet.codec)
        if route is None:
            return False
        if route.payload_type is None or self.transcoding.active(packet.kind):
            if route.payload_type is None or is_dtmf(packet.codec):
                self.transcoding.feed(
                    packet.kind, packet.view, packet.codec, packet.source, line.codecs
                )
                return False
            self.transcoding.stop(packet.kind)  # the source now sends a codec the peer takes
        view, source = packet.view, packet.source
        if route.single_nal:
            return self._send_single_nal(stream, view, source, route, packet.arrival)
        max_payload = self.max_payload
        if len(view.data) - view.header_end <= max_payload:  # the common case, without a list
            return self._send(stream, view, source, route, packet.arrival)
        sent = False
        pieces = sized_for_leg(view, packet.codec.name, self.name, max_payload)
        for index, piece in enumerate(pieces):
            if index:
                stream.split_packet()
            sent = self._send(stream, piece, source, route, packet.arrival) or sent
        return sent

    def transcoded(self, kind: str, packet: TranscodedPacket) -> None:
        """A packet from the transcoder feeding this endpoint: send it as a forwarded one."""
        line = self.sending_line(kind)
        stream = self.outbound.get(kind)
        if line is None or stream is None:
            return
        route = self._route(line, NO_EXTENSIONS, packet.codec)
        if route is None or route.payload_type is None:
            return  # no leg yet, or telephone-event the peer did not negotiate at that clock
        if route.single_nal:  # our encoder's packetiser writes FU-A and STAP-A
            sent = self._send_single_nal(stream, packet.view, packet.source, route, packet.arrival)
        else:
            sent = self._send(stream, packet.view, packet.source, route, packet.arrival)
        if sent:
            self.owner.mark_flow("out", KINDS[kind], True)

    def _send_single_nal(
        self,
        stream: OutboundStream,
        view: RtpView,
        source: object,
        route: SendRoute,
        arrival: float,
    ) -> bool:
        """H264 to a packetization-mode 0 peer: one NAL unit per packet (``single_nal.py``)."""
        held = self._single_nal.get(stream.kind)
        if held is None or held[0] is not source:
            held = self._single_nal[stream.kind] = (
                source,
                SingleNalUnits(self.name, self.max_payload),
            )
        pieces = held[1].take(view)
        if not pieces:
            stream.skip_packet()
            return False
        sent = False
        for index, piece in enumerate(pieces):
            if index:
                stream.split_packet()
            sent = self._send(stream, piece, source, route, arrival) or sent
        return sent

    def _route(self, line: MediaLine, extensions: dict[int, str], codec: Codec) -> SendRoute | None:
        """Payload type, extension map and leg for this line, source and codec (cached by
        identity); None while the line has no leg."""
        key = (id(line), id(extensions), id(codec))
        route = self._routes.get(key)
        if (
            route is not None
            and route.line is line
            and route.source_extensions is extensions
            and route.codec is codec
        ):
            return route
        leg = self.leg_for(line)
        if leg is None:
            return None  # not cached: the leg appears with the transport
        if len(self._routes) > 64:
            self._routes.clear()  # sources come and go; stale routes are cheap to rebuild
        payload_type = matching_payload_type(line, codec)
        sink_codec = line.codec_for(payload_type) if payload_type is not None else None
        route = SendRoute(
            line,
            extensions,
            codec,
            payload_type,
            _extension_map(extensions, line),
            leg.send_rtp,
            single_nal=sink_codec is not None
            and sink_codec.name.lower() == "h264"
            and h264_mode(sink_codec) == "0",
        )
        self._routes[key] = route
        return route

    def _send(
        self,
        stream: OutboundStream,
        view: RtpView,
        source: object,
        route: SendRoute,
        arrival: float,
    ) -> bool:
        """Rewrite one packet for this sink (SSRC, payload type, numbering, extensions), protect
        and send it, and account it."""
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
        line = route.line
        impairments = self._impairments
        impairment = impairments.get(line.kind) if impairments is not None else None
        fanout = fast.RECORDING.current
        if fanout is not None:
            waits = self.keyframe_wait is not None and line.kind == "video"
            if impairment is not None or waits or route.single_nal:
                fanout.opaque = True  # the compiled forwarder does none of these
            else:
                fanout.sends.append((self, line, stream, route, view))
        if impairment is None:
            if not route.send(data):
                return False
        elif not impairment.send(self._send_late, line, data):
            return False
        # the payload as the source carried it: the rewrite changed the header's extensions only
        stream.sent(sequence, data, len(view.data) - view.header_end, now)
        self.latency.add(line.kind, now - arrival)
        if self.keyframe_wait is not None and line.kind == "video":
            self.keyframe_sent(route.codec, view)
        return True

    def _send_late(self, line: MediaLine, data: bytes) -> bool:
        """Send a packet that fault injection delayed (its leg may have gone meanwhile)."""
        leg = self.leg_for(line)
        return leg is not None and leg.send_rtp(data)

    # -- feedback we send --------------------------------------------------------------------------

    def send_keyframe_request(self) -> None:
        """PLI (FIR where the line negotiated only that) to the remote peer for the video it
        sends us; queued while there is no video stream to name or no transport to carry it."""
        now = time.monotonic()
        asked = False
        for ssrc, stream in self.inbound.items():
            line = self.media_line(self.line_of_ssrc.get(ssrc, -1))
            if stream.kind != "video" or line is None:
                continue
            if now - stream.last_keyframe_request < KEYFRAME_REQUEST_GAP:
                asked = True  # one keyframe answers every request of this burst
                continue
            fir = _wants_fir(line)
            if self.send_packet(line, _keyframe_request(line, stream, fir), rtcp=True):
                stream.keyframe_requested(fir, now)
                asked = True
        self.keyframe_request_pending = not asked

    # -- keyframes for the video we send -----------------------------------------------------------

    def await_keyframe(self, reason: str) -> None:
        """What we send next must start with a keyframe: ask for one now and keep asking,
        throttled, until one has been sent (``keyframe_sent``)."""
        if self.is_closed() or self.sending_line("video") is None:
            return
        self.fast_drop()  # the wait is checked per packet, by the Python path
        wait = self.keyframe_wait
        if wait is None:
            wait = self.keyframe_wait = KeyframeWait(reason, time.monotonic())
            logger.info("= %s waits for a video keyframe (%s)", self.name, reason)
        self._request_keyframe(wait)

    def stop_keyframe_wait(self) -> None:
        """No more video from the source (link removed, media closed): stop asking."""
        wait, self.keyframe_wait = self.keyframe_wait, None
        if wait is not None and wait.timer is not None:
            wait.timer.cancel()

    def _request_keyframe(self, wait: KeyframeWait) -> None:
        """Ask whoever makes our video (our transcoder, else the source) and schedule the next."""
        if wait.timer is not None:
            wait.timer.cancel()
        if self.is_closed():
            self.keyframe_wait = None
            return
        now = time.monotonic()
        if wait.video_since and not wait.warned and now - wait.video_since > KEYFRAME_WAIT_WARNING:
            wait.warned = True
            logger.warning(
                "! %s has sent video for %.1f s without a keyframe (%s); %d requests so far",
                self.name,
                now - wait.video_since,
                wait.reason,
                wait.requests,
            )
        wait.requests += 1
        wait.last_request = now
        transcoder = self.transcoding.transcoder("video")
        if transcoder is not None:
            transcoder.request_keyframe()  # our encoder makes it; the transcoder asks upstream
        else:
            self.owner.keyframe_wanted("VIDEO")
        delay = KEYFRAME_RETRY if wait.video_since else _idle_retry(wait.requests)
        wait.timer = asyncio.get_running_loop().call_later(delay, self._retry_keyframe, wait)

    def _retry_keyframe(self, wait: KeyframeWait) -> None:
        if self.keyframe_wait is wait:
            wait.timer = None
            self._request_keyframe(wait)

    def keyframe_sent(self, codec: Codec, view: RtpView) -> None:
        """A video packet went to the remote peer while we wait: is it the keyframe?"""
        wait = self.keyframe_wait
        if wait is None:
            return
        now = time.monotonic()
        if keyframe_detector(codec.name)(view.data[view.header_end :]):
            self.stop_keyframe_wait()
            logger.info(
                "= %s sent its first video keyframe %.2f s after %s (%d requests)",
                self.name,
                now - wait.started,
                wait.reason,
                wait.requests,
            )
        elif not wait.video_since:
            wait.video_since = now  # video flows but cannot be decoded: ask at the fast pace
            if now - wait.last_request >= KEYFRAME_RETRY:
                self._request_keyframe(wait)

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
        """Stop it and any keyframe wait (on close)."""
        self.stop_keyframe_wait()
        if self._timer is not None:
            self._timer.cancel()

    async def _tick(self) -> None:
        """Once a second (with jitter, RFC 3550 6.2): reports, flow and media-state timeouts."""
        while not self.is_closed():
            await asyncio.sleep(REPORT_INTERVAL * (0.5 + random.random()))
            self.fast_sync()
            now = time.monotonic()
            self._send_reports(now)
            self._check_flows(now)
            if self.media_connected and now - self.last_rtcp > self.timeouts.rtcp:
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
        timeout = self.timeouts.flow
        for kind, media_type in KINDS.items():
            last_in = max(
                (s.last_arrival for s in self.inbound.values() if s.kind == kind), default=0.0
            )
            if last_in and now - last_in > timeout:
                self.owner.mark_flow("in", media_type, False)
            stream = self.outbound.get(kind)
            if stream is not None and stream.packets and now - stream.last_sent_at > timeout:
                self.owner.mark_flow("out", media_type, False)

    # -- TranscodingListener -----------------------------------------------------------------------

    def transcoding_changed(self, kind: str, active: bool, bin_name: str, reason: str) -> None:
        """Report to the element (MediaTranscodingStateChanged); transcoded video starts with
        our encoder's keyframe."""
        self.owner.transcoding_changed(KINDS[kind], active, bin_name, reason)
        if kind == "video" and active:
            self.await_keyframe("transcoding started")

    def transcoding_refused(self, kind: str, reason: str) -> None:
        """Report to the element (KMS's ``Error``, raised where its agnosticbin would)."""
        self.owner.transcoding_refused(KINDS[kind], reason)

    def decode_failed(self, kind: str, reason: str) -> None:
        """Report to the element (KMS's ``Error`` STREAM_ERROR_DECODE)."""
        self.owner.decode_failed(KINDS[kind], reason)

    def keyframe_needed(self, kind: str) -> None:
        """The transcoder's decoder needs a keyframe: ask the source as a PLI would."""
        self.owner.keyframe_wanted(KINDS[kind])

    def encoder_bitrates(self, kind: str) -> EncoderBitrates:
        """The encoderBitrate bounds of the element feeding this endpoint."""
        return self.owner.transcoding_bitrates(KINDS[kind])

    # -- stats -------------------------------------------------------------------------------------

    def rtp_stats(
        self, media_type: str | None, srtp_failures: int, **inbound_extra: Any
    ) -> dict[str, Any]:
        """Inbound, outbound and remote-inbound entries of the media type (all without one)."""
        self.fast_sync()
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


@dataclass(frozen=True, slots=True)
class SendRoute:
    """What ``send_media`` computes once per (sending line, source extension map, codec)."""

    line: MediaLine
    source_extensions: dict[int, str]
    codec: Codec
    payload_type: int | None
    extensions: ExtensionMap
    send: Callable[[bytes], bool]
    """The line's ``MediaLeg.send_rtp``, bound once: protects and sends an RTP packet."""
    single_nal: bool = False
    """The payload type is H264 in packetization-mode 0: single NAL unit packets only."""


NO_EXTENSIONS: dict[int, str] = {}
"""The source extension map of transcoded packets (one object, so that routes cache)."""


def matching_payload_type(line: MediaLine, codec: Codec) -> int | None:
    """This line's payload type for the source's codec (telephone-event included), or None.

    An H264 sink that negotiated several payload types gets one in the source's packetization
    mode (FU-A and STAP-A are mode 1 only), among those one of the source's profile, else one
    whose profile carries the source's (``sdp/h264.py``: rtph264pay's rule), else the first in
    the sink's order."""
    candidates = [c for c in [*line.codecs, *([line.dtmf] if line.dtmf else [])]]
    same = [c for c in candidates if c.key == codec.key]
    if len(same) > 1 and codec.name.lower() == "h264":
        mode = h264_mode(codec)
        same.sort(
            key=lambda c: (
                h264_mode(c) != mode,
                not h264_same_profile(c, codec),
                not h264_carries(c, codec),
            )
        )
    return same[0].payload_type if same else None


def _extension_map(source: dict[int, str], line: MediaLine) -> ExtensionMap:
    # The MID extension names the source's m-line; the sink's SSRCs are signalled instead. A PBX
    # negotiates no extensions, so every WebRTC extension is stripped towards it.
    return ExtensionMap(
        {
            ext_id: line.extensions[uri]
            for ext_id, uri in source.items()
            if uri in line.extensions and not uri.endswith("sdes:mid")
        }
    )


def _wants_fir(line: MediaLine) -> bool:
    """FIR only where the line's codecs negotiated ``ccm fir`` and not ``nack pli``."""
    feedback = {fb for codec in line.codecs for fb in codec.rtcp_fb}
    return "ccm fir" in feedback and "nack pli" not in feedback


def _keyframe_request(line: MediaLine, stream: InboundStream, fir: bool) -> bytes:
    """A PLI (RFC 4585 6.3.1) or a FIR (RFC 5104 4.3.1, media SSRC 0) for the stream."""
    sender = line.local_ssrc or 1
    if fir:
        fci = struct.pack("!IB3x", stream.ssrc, (stream.fir_sent + 1) & 0xFF)
        return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=sender, media_ssrc=0, fci=fci))
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender, media_ssrc=stream.ssrc))


def _idle_retry(requests: int) -> float:
    """Back off while no video reaches the sink (a source that sends none, or not yet)."""
    return float(min(KEYFRAME_RETRY * 2 ** (requests - 1), KEYFRAME_IDLE_RETRY))
