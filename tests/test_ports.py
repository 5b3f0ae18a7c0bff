"""The tests' port allocator (tests/ports.py): disjoint blocks across processes and within one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import (
    SLAB,
    PortAllocator,
    PortBlock,
    allocator,
    ephemeral_range,
    free_port_range,
    port_window,
    worker_index,
)


@pytest.fixture
def own_slab() -> Iterator[PortAllocator]:
    """A second allocator in this process, on a slab of its own (leased as any other)."""
    leased = PortAllocator.lease(port_window(ephemeral_range()), worker_index() + 1)
    yield leased
    leased.close()


def test_ports_window_lies_outside_the_ephemeral_range() -> None:
    """The window is the wider gap of 10000..65535 beside the kernel's ephemeral range."""
    assert port_window(PortBlock(32768, 60999)) == PortBlock(10000, 32767)
    assert port_window(PortBlock(10000, 50000)) == PortBlock(50001, 65535)
    with pytest.raises(RuntimeError, match=f"leaves no {SLAB} ports"):
        port_window(PortBlock(1024, 65535))
    window = port_window(ephemeral_range())
    assert not window.overlaps(ephemeral_range())
    assert window.low >= 10000 and window.high <= 65535


def test_ports_worker_index_from_xdist() -> None:
    """gwN is worker N; a run without xdist is worker 0."""
    assert worker_index({"PYTEST_XDIST_WORKER": "gw3"}) == 3
    assert worker_index({}) == 0
    assert worker_index({"PYTEST_XDIST_WORKER": "master"}) == 0


def test_ports_slab_leases_are_exclusive(tmp_path: Path) -> None:
    """Two processes asking for the same slab get different ones; a closed lease frees it."""
    window = PortBlock(20000, 20000 + 3 * SLAB - 1)
    first = PortAllocator.lease(window, 1, tmp_path)
    second = PortAllocator.lease(window, 1, tmp_path)  # another open file: flock refuses it
    third = PortAllocator.lease(window, 1, tmp_path)
    assert [first.slab.low, second.slab.low, third.slab.low] == [
        20000 + SLAB,
        20000 + 2 * SLAB,
        20000,
    ]
    with pytest.raises(RuntimeError, match="all 3 slabs"):
        PortAllocator.lease(window, 1, tmp_path)
    second.close()
    fourth = PortAllocator.lease(window, 1, tmp_path)
    assert fourth.slab == second.slab
    for leased in (first, third, fourth):
        leased.close()


def test_ports_blocks_are_disjoint_even_and_inside_the_slab(own_slab: PortAllocator) -> None:
    """Blocks never overlap while held, start on even ports and stay in the slab."""
    blocks = [own_slab.allocate(size) for size in (1, 3, 100, 2, 50)]
    assert all(block.low % 2 == 0 for block in blocks)
    assert [len(block) for block in blocks] == [1, 3, 100, 2, 50]
    assert all(own_slab.slab.low <= b.low and b.high <= own_slab.slab.high for b in blocks)
    for index, block in enumerate(blocks):
        assert not any(block.overlaps(other) for other in blocks[index + 1 :])


def test_ports_released_blocks_come_back_after_a_wrap(own_slab: PortAllocator) -> None:
    """Blocks taken inside ``releasing()`` are given back at its end; the cursor goes on and
    wraps around to them, skipping the blocks still held."""
    size = SLAB // 5
    kept = own_slab.allocate(size)
    with own_slab.releasing():
        taken = [own_slab.allocate(size) for _ in range(3)]
    assert own_slab.held == [kept]
    again = [own_slab.allocate(size) for _ in range(4)]
    assert again[0].low == taken[-1].high + 1
    assert again[1].low == own_slab.slab.low + size  # wrapped, past the kept block
    assert not any(block.overlaps(kept) for block in again)
    with pytest.raises(RuntimeError, match=f"no {size} free ports"):
        own_slab.allocate(size)


def test_ports_skip_a_port_held_by_anyone(own_slab: PortAllocator) -> None:
    """A port bound outside the allocator (UDP, or a TCP listener) is never inside a block."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        sock = socket.socket(socket.AF_INET, kind)
        with sock:
            port = own_slab.allocate(10).high + 2
            sock.bind(("127.0.0.1", port))
            if kind == socket.SOCK_STREAM:
                sock.listen()
            block = own_slab.allocate(10)
            assert port not in block and block.low > port


def _leave_in_time_wait(port: int) -> None:
    """A loopback connection to ``port`` that the listening side closes first: the TIME_WAIT it
    leaves names ``port`` as its local port."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            client.recv(1)  # the FIN has arrived: close now answers it, TIME_WAIT stays at port


def test_ports_connectable_blocks_skip_a_port_in_time_wait(own_slab: PortAllocator) -> None:
    """A port whose last connection is in TIME_WAIT is in an ordinary block (a listener can take
    it) and never in a ``connectable_tcp`` one (a socket connecting out from it cannot)."""
    first = own_slab.allocate(10).high + 2  # where the next block starts
    _leave_in_time_wait(first)
    ordinary = own_slab.allocate(10)
    assert first in ordinary
    second = ordinary.high + 2
    _leave_in_time_wait(second)
    connectable = own_slab.allocate(10, connectable_tcp=True)
    assert second not in connectable and connectable.low > second


def test_ports_free_port_range_is_this_process_slab() -> None:
    """free_port_range hands out blocks of this process's slab, outside the ephemeral range."""
    block = free_port_range(10)
    assert allocator().slab.low <= block.low and block.high <= allocator().slab.high
    assert not block.overlaps(ephemeral_range())
    assert block in allocator().held
