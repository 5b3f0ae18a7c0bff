"""The throughput benchmark's comparison systems measure what they claim to."""

from __future__ import annotations

import asyncio
import socket

from benchmarks.baselines import RECEIVE_SIZE, udp_relay_legs


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
