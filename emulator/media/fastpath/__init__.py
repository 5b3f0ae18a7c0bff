"""The per-packet forwarding loop, compiled (``_forward.c``) or in Python (``PyForwarder``).

A forwarder reads the ready media sockets of one event loop in one call (``forward``) and forwards
by itself the RTP packets of the streams Python gave it a route for (``set_route``: the receiving
socket and SSRC, its SRTP session, and for each sink the socket, address, SRTP session and the
rewrite of SSRC, payload type, numbering and header-extension ids). Everything else is handed back
as ``(fd, datagram, address)`` for the Python path to handle as before: STUN, DTLS, RTCP, unknown
SSRCs, other sources, SRTP failures, and any header the loop does not rewrite exactly as
``emulator.media.rtp.packet.rewrite_rtp`` does.

``PyForwarder`` is the reference: the same contract, written with the Python path's own functions
(``parse_rtp``, ``rewrite_rtp``, ``InboundStream.received``, ``OutboundStream.next_numbers``). The
differential tests (tests/media/test_fastpath.py) hold the two byte for byte equal. The compiled
one is used where it was built (``setup.py``, ``make build``), unless ``datapath`` says
``python``; which one runs is logged at start.

SRTP: both share the ``srtp_t`` sessions pylibsrtp made, so the C loop and Python unprotect and
protect with one state; the C loop calls libsrtp through the function addresses pylibsrtp's cffi
module exports, the same library build as Python's.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pylibsrtp
from pylibsrtp._binding import ffi, lib

from emulator.media.rtp.packet import ExtensionMap, RtpView, parse_rtp, rewrite_rtp
from emulator.media.rtp.streams import (
    RETRANSMIT_BUFFER,
    InboundStream,
    OutboundStream,
    SourceOffsets,
)

try:
    from emulator.media.fastpath import _forward
except ImportError as exc:  # not built: no compiler where it was installed
    _forward = None  # type: ignore[assignment]
    IMPORT_ERROR = str(exc)
else:
    IMPORT_ERROR = ""
    _forward.set_srtp_functions(
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
    )

logger = logging.getLogger(__name__)

RECEIVE_SIZE = 4096
"""Largest datagram read (as emulator/media/net/poller.py and _forward.c)."""
MAX_SINKS = 32
"""Sinks of one route at most (a larger fan-out stays on the Python path)."""
FIXED_HEADER = 12

Address = tuple[Any, ...]
HandedBack = tuple[int, bytes | None, Any]
"""(fd, datagram, source address), or (fd, None, errno) when reading the socket failed."""

DATAPATHS = ("compiled", "python")


def compiled_available() -> bool:
    """Whether the compiled loop was built and imports."""
    return _forward is not None


def srtp_pointer(session: pylibsrtp.Session | None) -> int:
    """The address of the ``srtp_t`` inside a pylibsrtp session (0 for none): what the compiled
    loop protects or unprotects with, sharing the session's state with Python."""
    if session is None:
        return 0
    # pylibsrtp keeps its srtp_t* in Session._srtp (cffi); the C loop takes the srtp_t itself.
    return int(ffi.cast("uintptr_t", session._srtp[0]))


@dataclass(slots=True)
class Sink:
    """Where a routed stream goes, and how it is rewritten there."""

    fd: int
    address: Address
    srtp: pylibsrtp.Session | None
    stream: OutboundStream
    """The sink's numbering and counters; its ``offsets`` must be set (Python sent the first
    packet of this source to this sink)."""
    payload_type: int
    extensions: ExtensionMap
    max_payload: int
    keep_history: bool

    def spec(self) -> tuple[Any, ...]:
        """The arguments of one sink of ``_forward.Forwarder.set_route``."""
        offsets = self.stream.offsets
        assert offsets is not None, "the first packet of a source to a sink goes through Python"
        stream = self.stream
        return (
            self.fd,
            self.address[:2],
            srtp_pointer(self.srtp),
            stream.ssrc,
            self.payload_type,
            offsets.seq_offset,
            offsets.ts_offset,
            dict(self.extensions.ids),
            self.max_payload,
            int(self.keep_history),
            stream.sequence,
            stream.last_timestamp,
            stream.last_sent_at,
            stream.packets,
            stream.octets,
        )


def inbound_spec(stream: InboundStream) -> tuple[Any, ...]:
    """The ``inbound`` argument of ``set_route``: the stream's figures so far."""
    return (
        stream.packets,
        stream.octets,
        stream.base_seq,
        stream.max_seq,
        stream.cycles,
        stream.jitter,
        stream.transit or 0.0,
        stream.transit is not None,
        stream.last_arrival,
    )


def apply_state(state: dict[str, Any], inbound: InboundStream, sinks: list[OutboundStream]) -> None:
    """Copy a route's figures (``route_state``/``remove_route``) back into the Python streams."""
    inbound.packets = state["packets"]
    inbound.octets = state["octets"]
    inbound.base_seq = state["base_seq"]
    inbound.max_seq = state["max_seq"]
    inbound.cycles = state["cycles"]
    inbound.jitter = state["jitter"]
    inbound.transit = state["transit"] if state["has_transit"] else None
    inbound.last_arrival = state["last_arrival"]
    for stream, figures in zip(sinks, state["sinks"], strict=False):
        stream.sequence = figures["sequence"]
        stream.last_timestamp = figures["last_timestamp"]
        stream.last_sent_at = figures["last_sent_at"]
        stream.packets = figures["packets"]
        stream.octets = figures["octets"]


class Forwarder(Protocol):
    """What both loops offer (``_forward.Forwarder`` and ``PyForwarder``)."""

    def add_socket(self, fd: int) -> None:
        """Read ``fd`` from now on, handing everything back (a reused number forgets all)."""

    def set_source(self, fd: int, srtp: int, source: Address | None) -> None:
        """Unprotect what ``fd`` reads with ``srtp``; forward only what comes from ``source``."""

    def remove_socket(self, fd: int) -> None:
        """Forget ``fd``, its routes and every route that sends on it."""

    def set_route(
        self,
        fd: int,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        inbound: tuple[Any, ...],
        sinks: list[tuple[Any, ...]],
    ) -> None:
        """Forward that stream to those sinks (``Sink.spec``)."""

    def remove_route(self, fd: int, ssrc: int) -> dict[str, Any] | None:
        """Stop forwarding it; its last figures, each sink's ``history`` included (the clear
        packets a NACK may still ask for, oldest first)."""

    def route_state(self, fd: int, ssrc: int) -> dict[str, Any] | None:
        """Its figures now: the streams' (continued from the push), and since the push the
        datagram bytes received (``wire_octets``) and per sink the protected bytes sent
        (``wire_octets``) and the receive-to-send latency (``latency_sum``, ``latency_count``)."""

    def history(self, fd: int, ssrc: int, sink: int, sequence: int) -> bytes | None:
        """The clear packet sent to that sink with that number (video NACKs)."""

    read: int
    """Datagrams read so far."""

    def forward(self, fds: Sequence[Any], limit: int = 128) -> list[HandedBack]:
        """Read the sockets, forward what is routed, hand back the rest (``fds``: descriptors,
        or epoll's (descriptor, events) pairs)."""

    def counters(self) -> dict[str, int]:
        """Totals: forwarded, handed_back, sent, srtp_failures."""


def make_forwarder(datapath: str) -> Forwarder:
    """The compiled loop when asked for and built, else the Python one."""
    if datapath == "compiled" and _forward is not None:
        forwarder: Forwarder = _forward.Forwarder()
        return forwarder
    return PyForwarder()


def describe(datapath: str) -> str:
    """What ``make_forwarder(datapath)`` gives, for the start-up log."""
    if datapath == "python":
        return "media data path: Python (datapath=python)"
    if _forward is not None:
        return "media data path: compiled (emulator/media/fastpath/_forward.c)"
    return f"media data path: Python (the compiled loop is not built: {IMPORT_ERROR})"


# -- the reference ------------------------------------------------------------------------------


def forwardable(data: bytes) -> RtpView | None:
    """The header, when the compiled loop forwards such a packet: RTP version 2 whose header
    extension, if any, is in the one-byte form, without id 15 or a truncated element."""
    view = parse_rtp(data)
    if view is None or view.ext_start < 0:
        return view
    if data[view.ext_start : view.ext_start + 2] != b"\xbe\xde":
        return None
    position = view.ext_start + 4
    while position < view.header_end:
        byte = data[position]
        if byte == 0:
            position += 1
            continue
        if byte >> 4 == 15 or position + 2 + (byte & 0x0F) > view.header_end:
            return None
        position += 2 + (byte & 0x0F)
    return view


@dataclass(slots=True)
class _PySink:
    fd: int
    address: Address
    srtp: pylibsrtp.Session | None
    stream: OutboundStream
    payload_type: int
    extensions: ExtensionMap
    max_payload: int
    history: dict[int, bytes] | None
    send_errors: int = 0
    wire_octets: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0

    def state(self, with_history: bool) -> dict[str, Any]:
        """The sink's part of ``route_state`` (``remove_route``: its history too)."""
        stream = self.stream
        state: dict[str, Any] = {
            "sequence": stream.sequence,
            "last_timestamp": stream.last_timestamp,
            "last_sent_at": stream.last_sent_at,
            "packets": stream.packets,
            "octets": stream.octets,
            "send_errors": self.send_errors,
            "wire_octets": self.wire_octets,
            "latency_sum": self.latency_sum,
            "latency_count": self.latency_count,
        }
        if with_history:
            state["history"] = self.kept_history()
        return state

    def kept_history(self) -> list[bytes]:
        """The packets a NACK may still ask for, oldest first (as ``_forward.c``)."""
        kept = self.history
        if not kept or not self.stream.packets:
            return []
        latest = self.stream.sequence
        numbers = ((latest - back) & 0xFFFF for back in range(RETRANSMIT_BUFFER - 1, -1, -1))
        return [kept[number] for number in numbers if number in kept]


@dataclass(slots=True)
class _PyRoute:
    payload_type: int
    inbound: InboundStream
    sinks: list[_PySink] = field(default_factory=list)
    wire_octets: int = 0


SESSIONS: dict[int, pylibsrtp.Session] = {}
"""pylibsrtp sessions by ``srtp_pointer``, for ``PyForwarder``, which takes the same arguments
as the compiled loop (``register_session`` fills it)."""


def register_session(session: pylibsrtp.Session) -> int:
    """Make a session known to ``PyForwarder`` by its pointer; the pointer."""
    pointer = srtp_pointer(session)
    SESSIONS[pointer] = session
    return pointer


def forget_session(session: pylibsrtp.Session) -> None:
    """The session closes."""
    SESSIONS.pop(srtp_pointer(session), None)


class PyForwarder:
    """The forwarding loop in Python: the reference of ``_forward.Forwarder`` and its fallback."""

    def __init__(self) -> None:
        self._sockets: dict[int, tuple[socket.socket, pylibsrtp.Session | None, Address | None]]
        self._sockets = {}
        self._routes: dict[tuple[int, int], _PyRoute] = {}
        self._counters = dict.fromkeys(("forwarded", "handed_back", "sent", "srtp_failures"), 0)
        self.read = 0

    def add_socket(self, fd: int) -> None:
        """See ``Forwarder``."""
        self.remove_socket(fd)
        sock = socket.socket(fileno=os.dup(fd))  # the caller keeps (and closes) its own
        sock.setblocking(False)
        self._sockets[fd] = (sock, None, None)

    def set_source(self, fd: int, srtp: int, source: Address | None) -> None:
        """See ``Forwarder``."""
        sock = self._sockets[fd][0]
        self._sockets[fd] = (sock, SESSIONS[srtp] if srtp else None, source)

    def remove_socket(self, fd: int) -> None:
        """See ``Forwarder``."""
        for key in [key for key in self._routes if key[0] == fd]:
            del self._routes[key]
        for route in self._routes.values():
            if any(sink.fd == fd for sink in route.sinks):
                route.sinks = []
        entry = self._sockets.pop(fd, None)
        if entry is not None:
            entry[0].close()

    def set_route(
        self,
        fd: int,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        inbound: tuple[Any, ...],
        sinks: list[tuple[Any, ...]],
    ) -> None:
        """See ``Forwarder``."""
        if fd not in self._sockets:
            raise KeyError("add_socket first")
        if len(sinks) > MAX_SINKS:
            raise ValueError("too many sinks")
        stream = InboundStream(ssrc, clock_rate, "")
        (
            stream.packets,
            stream.octets,
            stream.base_seq,
            stream.max_seq,
            stream.cycles,
            stream.jitter,
            transit,
            has_transit,
            stream.last_arrival,
        ) = inbound
        stream.transit = transit if has_transit else None
        self._routes[(fd, ssrc)] = _PyRoute(payload_type, stream, [_py_sink(s) for s in sinks])

    def remove_route(self, fd: int, ssrc: int) -> dict[str, Any] | None:
        """See ``Forwarder``."""
        state = self._state(fd, ssrc, with_history=True)
        self._routes.pop((fd, ssrc), None)
        return state

    def route_state(self, fd: int, ssrc: int) -> dict[str, Any] | None:
        """See ``Forwarder``."""
        return self._state(fd, ssrc, with_history=False)

    def _state(self, fd: int, ssrc: int, with_history: bool) -> dict[str, Any] | None:
        route = self._routes.get((fd, ssrc))
        if route is None:
            return None
        inbound = route.inbound
        return {
            "packets": inbound.packets,
            "octets": inbound.octets,
            "base_seq": inbound.base_seq,
            "max_seq": inbound.max_seq,
            "cycles": inbound.cycles,
            "jitter": inbound.jitter,
            "transit": inbound.transit or 0.0,
            "has_transit": inbound.transit is not None,
            "last_arrival": inbound.last_arrival,
            "wire_octets": route.wire_octets,
            "sinks": [sink.state(with_history) for sink in route.sinks],
        }

    def history(self, fd: int, ssrc: int, sink: int, sequence: int) -> bytes | None:
        """See ``Forwarder``."""
        route = self._routes.get((fd, ssrc))
        if route is None or not 0 <= sink < len(route.sinks):
            return None
        kept = route.sinks[sink].history
        return kept.get(sequence & 0xFFFF) if kept is not None else None

    def counters(self) -> dict[str, int]:
        """See ``Forwarder``."""
        return dict(self._counters)

    def forward(self, fds: Sequence[Any], limit: int = 128) -> list[HandedBack]:
        """See ``Forwarder``."""
        back: list[HandedBack] = []
        pending: list[tuple[socket.socket, bytes, Address]] = []
        for item in fds:
            fd = item[0] if isinstance(item, tuple) else item
            entry = self._sockets.get(fd)
            if entry is None:
                continue
            sock, srtp, source = entry
            for _ in range(limit):
                try:
                    data, address = sock.recvfrom(RECEIVE_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    back.append((fd, None, exc.errno or errno.EIO))
                    break
                self.read += 1
                if not self._forward_one(fd, srtp, source, data, address, pending):
                    self._counters["handed_back"] += 1
                    back.append((fd, data, address))
        for sock, data, address in pending:
            try:
                sock.sendto(data, address)
            except OSError:
                continue
            self._counters["sent"] += 1
        return back

    def _forward_one(
        self,
        fd: int,
        srtp: pylibsrtp.Session | None,
        source: Address | None,
        data: bytes,
        address: Address,
        pending: list[tuple[socket.socket, bytes, Address]],
    ) -> bool:
        if len(data) < FIXED_HEADER or not 128 <= data[0] <= 191 or 192 <= data[1] <= 223:
            return False
        if source is None or address[:2] != tuple(source[:2]):
            return False
        route = self._routes.get((fd, int.from_bytes(data[8:12], "big")))
        if route is None or not route.sinks or data[1] & 0x7F != route.payload_type:
            return False
        header = forwardable(data)
        if header is None:
            return False
        if any(len(data) - header.header_end > sink.max_payload for sink in route.sinks):
            return False
        received = len(data)
        if srtp is not None:
            try:
                data = bytes(srtp.unprotect(data))
            except pylibsrtp.Error:
                self._counters["srtp_failures"] += 1
                return False
        view = parse_rtp(data)
        if view is None:
            return True
        now = time.monotonic()
        route.wire_octets += received
        route.inbound.received(view, now)
        for sink in route.sinks:
            self._send(sink, view, now, pending)
        self._counters["forwarded"] += 1
        return True

    def _send(
        self,
        sink: _PySink,
        view: RtpView,
        now: float,
        pending: list[tuple[socket.socket, bytes, Address]],
    ) -> None:
        stream = sink.stream
        sequence, timestamp = stream.next_numbers(stream.source, view, now)
        data = rewrite_rtp(
            view,
            payload_type=sink.payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=stream.ssrc,
            extensions=sink.extensions,
        )
        if sink.history is not None:
            sink.history[sequence] = data
            if len(sink.history) > RETRANSMIT_BUFFER:
                del sink.history[next(iter(sink.history))]
        if sink.srtp is not None:
            try:
                data = bytes(sink.srtp.protect(data))
            except pylibsrtp.Error:
                sink.send_errors += 1
                return
        stream.packets += 1
        stream.octets += len(view.data) - view.header_end
        stream.last_sent_at = now
        sink.wire_octets += len(data)
        sink.latency_sum += time.monotonic() - now
        sink.latency_count += 1
        pending.append((self._sockets[sink.fd][0], data, sink.address))


def _py_sink(spec: tuple[Any, ...]) -> _PySink:
    (
        fd,
        address,
        srtp,
        ssrc,
        payload_type,
        seq_offset,
        ts_offset,
        ids,
        max_payload,
        keep_history,
        sequence,
        last_timestamp,
        last_sent_at,
        packets,
        octets,
    ) = spec
    if any(not 1 <= key <= 14 or not 1 <= value <= 14 for key, value in ids.items()):
        raise ValueError("extension ids 1..14 only (one-byte form)")
    stream = OutboundStream(ssrc, 1, "video" if keep_history else "audio", sequence=sequence)
    stream.last_timestamp = last_timestamp
    stream.last_sent_at = last_sent_at
    stream.packets = packets
    stream.octets = octets
    stream.source = ROUTED
    stream.offsets = SourceOffsets(seq_offset, ts_offset)
    return _PySink(
        fd,
        tuple(address),
        SESSIONS[srtp] if srtp else None,
        stream,
        payload_type,
        ExtensionMap(dict(ids)),
        max_payload,
        {} if keep_history else None,
    )


ROUTED = object()
"""The source of every packet a route forwards (its offsets were set when it was pushed)."""
