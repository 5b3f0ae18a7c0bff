"""Routes of the compiled forwarding loop, learnt from what the Python path just did (issue 17).

The Python path stays the one that decides. When it has handled an RTP packet whose whole journey
was "rewrite and send to N endpoints" (``RtpSession.receive_rtp`` records the fan-out: every
element reached must be an RTP session that sent the packet once, with no impairment, keyframe
wait, split, transcoding, DTMF or tap on the way) and every transport involved is a host socket of
the same forwarder, the route of that (socket, SSRC) is pushed to the forwarder, which then
forwards the stream's next packets by itself. Anything that could change the journey drops the
routes first: a link added or removed anywhere (``invalidate_all``), a sink that waits for a
keyframe, a fault rule, a capture, a transport that changes its pair, closes or renegotiates
(``RtpSession.fast_drop``). A packet of a routed stream that the forwarder hands back (another
payload type, a packet over a sink's MTU, another source address) drops the route too, so that
Python handles it on up-to-date streams; the next packet learns the route again.

Figures: the forwarder continues the streams' counters from Python's at the time of the push; they
are copied back when a route is dropped and at every read (``sync``: the once-a-second reports and
flow checks, ``getStats``). What the forwarder counts since the push besides (the datagram bytes
it received and sent, each sink's receive-to-send latency) is added, by difference, to the
transports' counters (``FastEnd.counters``) and to the sinks' latency meters, so that getStats shows
the same figures whichever loop forwarded. A dropped route hands its sinks' retransmission history
to the Python streams, so that a NACK right after a route change is still answered.

A route holds the pylibsrtp sessions it uses, so that none is freed while the forwarder may use
its ``srtp_t``; routes are removed before a transport closes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import pylibsrtp

from emulator.media.codecs.served import is_dtmf
from emulator.media.fastpath import MAX_SINKS, Forwarder, Sink, apply_state, inbound_spec
from emulator.media.fastpath import srtp_pointer as _srtp_pointer
from emulator.media.rtp.packet import ExtensionMap, RtpView
from emulator.media.rtp.streams import (
    RETRANSMIT_BUFFER,
    InboundStream,
    OutboundStream,
    WireCounters,
)
from emulator.media.sdp.negotiation import MediaLine
from emulator.media.session.stats import LatencyMeter
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

KINDS = {"audio": "AUDIO", "video": "VIDEO"}


class FlowOwner(Protocol):
    """The element a session reports flows to (``rtp.MediaOwner``)."""

    def mark_flow(self, direction: str, media_type: str, flowing: bool) -> None:
        """Record a media flow change."""


class SendRoute(Protocol):
    """What the sink computed for the source (``rtp.SendRoute``)."""

    @property
    def payload_type(self) -> int | None:
        """The sink's payload type."""

    @property
    def extensions(self) -> ExtensionMap:
        """Source extension id -> sink extension id."""


class RtpSession(Protocol):
    """What a route needs of an endpoint's session (``rtp.RtpSession``)."""

    name: str
    max_payload: int
    fast_routes: dict[int, FastRoute]
    fast_feeds: list[FastRoute]
    latency: LatencyMeter

    @property
    def owner(self) -> FlowOwner:
        """The element."""

    def fast_source(self, line: MediaLine) -> FastEnd | None:
        """Where the forwarder reads that line's RTP."""

    def fast_sink(self, line: MediaLine) -> FastEnd | None:
        """Where the forwarder sends that line's RTP."""


@dataclass(frozen=True, slots=True)
class FastEnd:
    """One end of a route: a host socket read and written by a forwarder."""

    forwarder: Forwarder
    fd: int
    address: tuple[Any, ...]
    """The remote address: the only source forwarded from, or where the sink's packets go."""
    srtp: pylibsrtp.Session | None
    """Unprotects what arrives, or protects what leaves (None: plain RTP)."""
    counters: WireCounters | None = None
    """The transport's counters of that direction, which the forwarder's datagrams go to."""


class Fanout:
    """What the Python path did with one received packet: elements reached, sends made."""

    __slots__ = ("opaque", "reached", "sends")

    def __init__(self) -> None:
        self.reached = 0
        self.sends: list[tuple[RtpSession, MediaLine, OutboundStream, SendRoute, RtpView]] = []
        """Per send: the sink, its line, stream and route, and the packet it rewrote (the
        received one itself, or a piece a transform made of it)."""
        self.opaque = False
        """Something the forwarder does not do happened (impairment, keyframe wait...)."""


class Recording:
    """The fan-out being recorded now (set only while ``receive_rtp`` hands one packet on)."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: Fanout | None = None


RECORDING = Recording()


@dataclass(eq=False, slots=True)
class FastRoute:
    """A stream the forwarder forwards, and the Python state it continues."""

    source: RtpSession
    end: FastEnd
    ssrc: int
    kind: str
    inbound: InboundStream
    sinks: list[tuple[RtpSession, OutboundStream]]
    keep: list[pylibsrtp.Session] = field(default_factory=list)
    """The SRTP sessions whose ``srtp_t`` the forwarder uses: alive while the route is."""
    sink_ends: list[FastEnd] = field(default_factory=list)
    counted: Counted = field(default_factory=lambda: Counted(0, []))
    """The forwarder's since-the-push figures already added to the Python side."""


@dataclass(slots=True)
class Counted:
    """What ``_apply`` added so far: bytes received, and per sink (bytes sent, latency seconds,
    latency count)."""

    received: int
    sinks: list[tuple[int, float, int]]


ACTIVE: dict[int, FastRoute] = {}
"""Every route of this process, by ``id``: a link change anywhere drops them all."""


def learn(
    session: RtpSession,
    line: MediaLine,
    view: RtpView,
    inbound: InboundStream,
    codec: Codec,
    fanout: Fanout,
) -> None:
    """Push the route of the packet the Python path just handled, when the forwarder can do
    exactly what it did."""
    sends = fanout.sends
    if fanout.opaque or not sends or fanout.reached != len(sends) or len(sends) > MAX_SINKS:
        return
    if is_dtmf(codec) or view.ssrc in session.fast_routes:
        return
    source = session.fast_source(line)
    if source is None:
        return
    specs = []
    sinks: list[tuple[RtpSession, OutboundStream]] = []
    ends: list[FastEnd] = []
    keep = [source.srtp] if source.srtp is not None else []
    for sink_session, sink_line, stream, send_route, sent in sends:
        if sent is not view:
            return  # a piece of it (split, single NAL units...): a transform the loop lacks
        end = sink_session.fast_sink(sink_line)
        if end is None or end.forwarder is not source.forwarder or stream.source is not inbound:
            return
        assert send_route.payload_type is not None
        sink = Sink(
            end.fd,
            end.address,
            end.srtp,
            stream,
            send_route.payload_type,
            send_route.extensions,
            sink_session.max_payload,
            line.kind == "video",
        )
        if any(not 1 <= i <= 14 for pair in send_route.extensions.ids.items() for i in pair):
            return  # two-byte extension ids: the Python path
        specs.append(sink.spec())
        sinks.append((sink_session, stream))
        ends.append(end)
        if end.srtp is not None:
            keep.append(end.srtp)
    forwarder = source.forwarder
    try:
        forwarder.set_source(source.fd, _srtp_pointer(source.srtp), source.address[:2])
        forwarder.set_route(
            source.fd,
            view.ssrc,
            view.payload_type,
            inbound.clock_rate,
            inbound_spec(inbound),
            specs,
        )
    except (KeyError, ValueError, OverflowError, TypeError) as exc:
        logger.debug("no compiled route for %s ssrc %d: %s", session.name, view.ssrc, exc)
        return
    route = FastRoute(session, source, view.ssrc, line.kind, inbound, sinks, keep, ends)
    route.counted.sinks = [(0, 0.0, 0) for _ in sinks]
    ACTIVE[id(route)] = route
    session.fast_routes[view.ssrc] = route
    for sink_session, _ in sinks:
        sink_session.fast_feeds.append(route)


def unroute(route: FastRoute) -> None:
    """Stop forwarding the stream in the forwarder; its figures go back to the Python streams."""
    if ACTIVE.pop(id(route), None) is None:
        return
    state = route.end.forwarder.remove_route(route.end.fd, route.ssrc)
    if state is not None:
        _apply(route, state)
        _take_history(route, state)
    if route.source.fast_routes.get(route.ssrc) is route:
        del route.source.fast_routes[route.ssrc]
    for sink_session, _ in route.sinks:
        feeds = sink_session.fast_feeds
        if route in feeds:
            feeds.remove(route)


def sync(route: FastRoute) -> None:
    """Copy the forwarder's figures of a live route into the Python streams (flows included)."""
    state = route.end.forwarder.route_state(route.end.fd, route.ssrc)
    if state is None:  # its socket closed under it: nothing more to copy
        unroute(route)
        return
    _apply(route, state)


def _apply(route: FastRoute, state: dict[str, Any]) -> None:
    received = route.inbound.packets
    sent = [stream.packets for _, stream in route.sinks]
    apply_state(state, route.inbound, [stream for _, stream in route.sinks])
    _count(route, state, received, sent)
    media_type = KINDS[route.kind]
    if route.inbound.packets > received:
        route.source.owner.mark_flow("in", media_type, True)
    for (sink_session, stream), before in zip(route.sinks, sent, strict=True):
        if stream.packets > before:
            sink_session.owner.mark_flow("out", media_type, True)


def _count(route: FastRoute, state: dict[str, Any], received: int, sent: list[int]) -> None:
    """Add what the forwarder counted since the last sync to the transports and latency
    meters (``received``/``sent``: the streams' packet counts before this sync)."""
    counted = route.counted
    source_counters = route.end.counters
    if source_counters is not None:
        source_counters.count(
            state["wire_octets"] - counted.received, route.inbound.packets - received
        )
    counted.received = state["wire_octets"]
    figures = zip(route.sinks, route.sink_ends, state["sinks"], sent, strict=False)
    for index, ((sink_session, stream), end, sink, before) in enumerate(figures):
        octets, seconds, count = counted.sinks[index]
        if end.counters is not None:
            end.counters.count(sink["wire_octets"] - octets, stream.packets - before)
        if sink["latency_count"] > count:
            sink_session.latency.add_many(
                route.kind, sink["latency_sum"] - seconds, sink["latency_count"] - count
            )
        counted.sinks[index] = (sink["wire_octets"], sink["latency_sum"], sink["latency_count"])


def _take_history(route: FastRoute, state: dict[str, Any]) -> None:
    """The packets the forwarder sent and kept for NACKs go to the Python streams' history
    (after what Python sent before the push, which is older), newest kept."""
    for (_, stream), sink in zip(route.sinks, state["sinks"], strict=False):
        packets = sink.get("history")
        if not packets or stream.kind != "video":
            continue
        kept = stream.history
        for packet in packets:
            sequence = int.from_bytes(packet[2:4], "big")
            kept[sequence] = packet
            kept.move_to_end(sequence)
        while len(kept) > RETRANSMIT_BUFFER:
            kept.popitem(last=False)


def history(session: RtpSession, stream: OutboundStream, sequence: int) -> bytes | None:
    """A packet the forwarder sent on ``stream`` (a NACK for it reached ``session``)."""
    for route in session.fast_feeds:
        for index, (sink_session, sink_stream) in enumerate(route.sinks):
            if sink_session is session and sink_stream is stream:
                return route.end.forwarder.history(route.end.fd, route.ssrc, index, sequence)
    return None


def invalidate_all() -> None:
    """Drop every route (a link was added or removed: journeys may have changed)."""
    for route in list(ACTIVE.values()):
        unroute(route)
