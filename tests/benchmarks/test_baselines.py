"""The throughput benchmark's comparison systems measure what they claim to."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from benchmarks.baselines import RECEIVE_SIZE, CompiledRelay, udp_relay_legs
from emulator.media.fastpath import compiled_available


async def test_udp_relay_reads_with_a_small_buffer_and_relays() -> None:
    """The bare relay's sockets read at most RECEIVE_SIZE bytes (asyncio's 256 KiB default costs
    an mmap per datagram and made the 'Python ceiling' twice as slow), and what A sends B hears."""
    loop = asyncio.get_running_loop()
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for peer in peers:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
    legs = []
    try:
        legs = await udp_relay_legs({"a": peers[0].getsockname(), "b": peers[1].getsockname()})
        for leg in legs:
            assert leg.transport is not None
            assert leg.transport.max_size == RECEIVE_SIZE  # type: ignore[attr-defined]
        assert legs[0].transport is not None
        port_a = legs[0].transport.get_extra_info("sockname")[1]
        peers[0].sendto(b"x" * 1200, ("127.0.0.1", port_a))
        data, _ = await asyncio.wait_for(loop.sock_recvfrom(peers[1], 4096), 5)
        assert data == b"x" * 1200
    finally:
        for leg in legs:
            if leg.transport is not None:
                leg.transport.close()
        for peer in peers:
            peer.close()


@pytest.mark.skipif(not compiled_available(), reason="the compiled loop is not built")
async def test_compiled_relay_relays_unchanged_and_forwards_in_c() -> None:
    """The C floor relays every datagram unchanged: the first of each SSRC (and anything not
    RTP) through Python, the rest in the compiled loop."""
    loop = asyncio.get_running_loop()
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for peer in peers:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
    relay = CompiledRelay()
    try:
        reply = await relay.call({"a": peers[0].getsockname(), "b": peers[1].getsockname()})
        sent = [b"\x00\x01\x00\x00stun-like"]
        sent += [
            struct.pack("!BBHII", 0x90, 111, n, n * 960, 0xABCDEF)
            + b"\xbe\xde\x00\x01\x10\x7f\x00\x00"
            + bytes([n]) * 50
            for n in range(20)
        ]
        for data in sent:
            peers[0].sendto(data, ("127.0.0.1", reply["port_a"]))
            got, _ = await asyncio.wait_for(loop.sock_recvfrom(peers[1], 4096), 5)
            assert got == data
        assert relay.forwarder.counters()["forwarded"] == 19
    finally:
        for sock in relay.sockets + peers:
            sock.close()
