"""The compiled forwarding loop against the Python reference: same packets in, same bytes out.

Each lab has real UDP sockets on loopback: a sender, the forwarder's receiving socket, its sending
socket and the sink's receiver. The two forwarders get twin SRTP sessions (same keys), so that
their output, protected, must be equal byte for byte; hypothesis makes the packets (CSRCs,
one- and two-byte header extensions, reserved ids, truncations, padding, payload types, SSRCs
with and without a route, sizes over the sink's MTU, RTCP, STUN, garbage).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.media.fastpath import (
    Forwarder,
    PyForwarder,
    Sink,
    compiled_available,
    forget_session,
    inbound_spec,
    make_forwarder,
    register_session,
)
from emulator.media.rtp.packet import ExtensionMap
from emulator.media.rtp.streams import InboundStream, OutboundStream, SourceOffsets

pytestmark = pytest.mark.skipif(
    not compiled_available() and not os.environ.get("REQUIRE_COMPILED"),
    reason="the compiled loop is not built (python setup.py build_ext --inplace)",
)

KEY = bytes(range(30))
SINK_KEY = bytes(range(100, 130))
ROUTED_SSRC = 0x11223344
OTHER_SSRC = 0x55667788
IN_PT = 111
OUT_PT = 96
MTU = 1000


def compiled() -> Forwarder:
    """The compiled loop (never the fallback: REQUIRE_COMPILED makes its absence a failure)."""
    assert compiled_available(), "the compiled loop is not built"
    return make_forwarder("compiled")


def _session(key: bytes, direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(
        pylibsrtp.Policy(
            key=key,
            ssrc_type=direction,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
    )


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


@dataclass
class Lab:
    """One forwarder between a sender and a receiver, with one routed stream."""

    forwarder: Forwarder
    inbound: socket.socket
    outbound: socket.socket
    receiver: socket.socket
    sessions: list[pylibsrtp.Session]

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.receiver.recv(8192))
            except BlockingIOError:
                return got


@contextlib.contextmanager
def lab(
    forwarder: Forwarder,
    sender: socket.socket,
    srtp: bool,
    extensions: dict[int, int],
    first_sequence: int,
    keep_history: bool,
) -> Iterator[Lab]:
    inbound, outbound, receiver = _udp(), _udp(), _udp()
    rx = _session(KEY, pylibsrtp.Policy.SSRC_ANY_INBOUND) if srtp else None
    tx = _session(SINK_KEY, pylibsrtp.Policy.SSRC_ANY_OUTBOUND) if srtp else None
    sessions = [s for s in (rx, tx) if s is not None]
    for session in sessions:
        register_session(session)
    forwarder.add_socket(inbound.fileno())
    forwarder.set_source(inbound.fileno(), register_session(rx) if rx else 0, sender.getsockname())
    forwarder.add_socket(outbound.fileno())
    stream = OutboundStream(
        0xCAFEBABE, 48000, "video" if keep_history else "audio", sequence=first_sequence
    )
    stream.offsets = SourceOffsets(seq_offset=1000, ts_offset=123456)
    sink = Sink(
        outbound.fileno(),
        receiver.getsockname(),
        tx,
        stream,
        OUT_PT,
        ExtensionMap(extensions),
        MTU,
        keep_history,
    )
    forwarder.set_route(
        inbound.fileno(),
        ROUTED_SSRC,
        IN_PT,
        48000,
        inbound_spec(InboundStream(ROUTED_SSRC, 48000, "audio")),
        [sink.spec()],
    )
    try:
        yield Lab(forwarder, inbound, outbound, receiver, sessions)
    finally:
        forwarder.remove_socket(inbound.fileno())
        forwarder.remove_socket(outbound.fileno())
        for session in sessions:
            forget_session(session)
        for sock in (inbound, outbound, receiver):
            sock.close()


# -- packets ------------------------------------------------------------------------------------


@st.composite
def one_byte_extensions(draw: st.DrawFn) -> bytes:
    """A one-byte extension block (RFC 8285 4.2), sometimes with padding, id 15 or truncated."""
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        body += b"\x00" * draw(st.integers(0, 2))
        ext_id = draw(st.integers(1, 15))
        value = draw(st.binary(min_size=1, max_size=16))
        body += bytes([(ext_id << 4) | (len(value) - 1)]) + value
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # truncated
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


@st.composite
def two_byte_extensions(draw: st.DrawFn) -> bytes:
    body = b""
    for _ in range(draw(st.integers(1, 3))):
        value = draw(st.binary(min_size=0, max_size=20))
        body += struct.pack("!BB", draw(st.integers(1, 255)), len(value)) + value
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0x1000, len(body) // 4) + body


@st.composite
def rtp_packets(draw: st.DrawFn, sequence: int) -> bytes:
    csrcs = draw(st.integers(0, 3))
    extension = draw(st.one_of(st.just(b""), one_byte_extensions(), two_byte_extensions()))
    padding = draw(st.booleans())
    payload = draw(st.binary(min_size=0, max_size=1200))
    if padding:
        count = draw(st.integers(1, 20))
        payload += b"\x00" * (count - 1) + bytes([count])
    first = 0x80 | (0x10 if extension else 0) | (0x20 if padding else 0) | csrcs
    pt = draw(st.sampled_from([IN_PT, IN_PT, IN_PT, 0, 100]))
    marker = 0x80 if draw(st.booleans()) else 0
    ssrc = draw(st.sampled_from([ROUTED_SSRC, ROUTED_SSRC, ROUTED_SSRC, OTHER_SSRC]))
    timestamp = draw(st.integers(0, 0xFFFFFFFF))
    header = struct.pack("!BBHII", first, marker | pt, sequence & 0xFFFF, timestamp, ssrc)
    header += b"".join(struct.pack("!I", draw(st.integers(0, 0xFFFFFFFF))) for _ in range(csrcs))
    return header + extension + payload


@st.composite
def datagrams(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """("rtp", clear RTP to protect) or ("raw", bytes sent as they are)."""
    start = draw(st.integers(0, 0xFFFF))
    items: list[tuple[str, bytes]] = []
    sequence = start
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["rtp", "rtp", "rtp", "raw"]))
        if kind == "rtp":
            sequence += draw(st.integers(1, 3))
            items.append(("rtp", draw(rtp_packets(sequence))))
        else:
            raw = draw(
                st.one_of(
                    st.binary(min_size=0, max_size=64),
                    st.binary(min_size=12, max_size=40).map(lambda b: b"\x80\xc8" + b[2:]),
                    st.binary(min_size=20, max_size=40).map(lambda b: b"\x00\x01" + b[2:]),
                )
            )
            items.append(("raw", raw))
    return items


EXTENSION_MAPS = st.dictionaries(st.integers(1, 14), st.integers(1, 14), max_size=5)


def _run(
    forwarder: Forwarder,
    items: list[tuple[str, bytes]],
    srtp: bool,
    extensions: dict[int, int],
    first_sequence: int,
    keep_history: bool,
) -> tuple[list[Any], list[bytes], dict[str, Any] | None, Any]:
    sender = _udp()
    protect = _session(KEY, pylibsrtp.Policy.SSRC_ANY_OUTBOUND) if srtp else None
    try:
        with lab(forwarder, sender, srtp, extensions, first_sequence, keep_history) as bench:
            sent = 0
            for kind, data in items:
                if kind == "rtp" and protect is not None:
                    try:
                        data = bytes(protect.protect(data))
                    except pylibsrtp.Error:
                        continue
                sender.sendto(data, bench.inbound.getsockname())
                sent += 1
            back = bench.forwarder.forward([bench.inbound.fileno()], 1000)
            out = bench.drain()
            state = bench.forwarder.route_state(bench.inbound.fileno(), ROUTED_SSRC)
            history = None
            if state is not None and state["sinks"]:
                last = state["sinks"][0]["sequence"]
                history = bench.forwarder.history(bench.inbound.fileno(), ROUTED_SSRC, 0, last)
            removed = bench.forwarder.remove_route(bench.inbound.fileno(), ROUTED_SSRC)
            handed_history = [s["history"] for s in removed["sinks"]] if removed else None
            source = sender.getsockname()
            handed = [(data, addr == source or addr) for _, data, addr in back]
            return handed, out, state, (history, handed_history)
    finally:
        sender.close()


def _comparable(state: dict[str, Any] | None) -> Any:
    """Route figures but the clock's (arrival times, jitter: each loop reads its own clock)."""
    if state is None:
        return None
    kept = {
        k: v for k, v in state.items() if k not in ("jitter", "transit", "last_arrival", "sinks")
    }
    clocked = ("last_sent_at", "latency_sum")
    kept["sinks"] = [{k: v for k, v in s.items() if k not in clocked} for s in state["sinks"]]
    return kept


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=datagrams(),
    srtp=st.booleans(),
    extensions=EXTENSION_MAPS,
    first_sequence=st.integers(0, 0xFFFF),
    keep_history=st.booleans(),
)
def test_compiled_and_python_loops_forward_the_same_bytes(
    items: list[tuple[str, bytes]],
    srtp: bool,
    extensions: dict[int, int],
    first_sequence: int,
    keep_history: bool,
) -> None:
    """Byte for byte: what is sent to the sink, what is handed back, the stream's figures."""
    in_c = _run(compiled(), items, srtp, extensions, first_sequence, keep_history)
    in_python = _run(PyForwarder(), items, srtp, extensions, first_sequence, keep_history)
    assert in_c[0] == in_python[0]
    assert in_c[1] == in_python[1]
    assert _comparable(in_c[2]) == _comparable(in_python[2])
    assert in_c[3] == in_python[3]


def test_a_routed_stream_is_forwarded_and_the_rest_handed_back() -> None:
    """The plain cases, spelled out: a routed SRTP packet comes out rewritten and protected for
    the sink; STUN, RTCP and an unknown SSRC come back to Python untouched."""
    header = struct.pack("!BBHII", 0x80, IN_PT, 7, 1000, ROUTED_SSRC)
    items = [
        ("rtp", header + b"opus" * 20),
        ("raw", b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"x" * 12),
        ("raw", b"\x80\xc8\x00\x06" + b"r" * 24),
        ("rtp", struct.pack("!BBHII", 0x80, IN_PT, 8, 1960, OTHER_SSRC) + b"p" * 40),
    ]
    forwarder = compiled()
    handed, out, state, _ = _run(forwarder, items, True, {}, 500, False)
    assert len(out) == 1
    assert len(handed) == 3
    assert handed[0][0].startswith(b"\x00\x01") and handed[1][0].startswith(b"\x80\xc8")
    assert state is not None and state["packets"] == 1 and state["sinks"][0]["packets"] == 1
    clear = bytes(_session(SINK_KEY, pylibsrtp.Policy.SSRC_ANY_INBOUND).unprotect(out[0]))
    pt, sequence, timestamp, ssrc = struct.unpack_from("!xBHII", clear)
    assert (pt, sequence, timestamp, ssrc) == (OUT_PT, 1007, 1000 + 123456, 0xCAFEBABE)
    assert clear[12:] == b"opus" * 20
    assert forwarder.counters()["forwarded"] == 1


def test_removing_a_socket_removes_the_routes_through_it() -> None:
    """A route whose sink socket goes is emptied (its packets go back to Python): no packet is
    ever sent with a session or on a socket that has closed."""
    forwarder = compiled()
    sender = _udp()
    header = struct.pack("!BBHII", 0x80, IN_PT, 7, 1000, ROUTED_SSRC)
    try:
        with lab(forwarder, sender, False, {}, 1, False) as bench:
            forwarder.remove_socket(bench.outbound.fileno())
            sender.sendto(header + b"x" * 10, bench.inbound.getsockname())
            back = forwarder.forward([bench.inbound.fileno()])
            assert [data for _, data, _ in back] == [header + b"x" * 10]
            assert bench.drain() == []
    finally:
        sender.close()
