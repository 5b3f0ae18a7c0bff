"""MediaPoller: media sockets read in batches through one epoll, on real loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from emulator.media.net.poller import BATCH_LIMIT, MediaPoller, MediaPollers


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking receiver and a sender on loopback."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield receiver, sender
    receiver.close()
    sender.close()


def _collecting(
    sock: socket.socket, into: list[bytes], done: asyncio.Event, count: int
) -> Callable[[], None]:
    def read() -> None:
        try:
            into.append(sock.recv(2048))
        except BlockingIOError:
            return
        if len(into) >= count:
            done.set()

    return read


async def test_sparse_datagrams_are_read_as_they_come(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = pair
    poller = MediaPoller(asyncio.get_running_loop(), interval=0.2)
    got: list[bytes] = []
    done = asyncio.Event()
    poller.add(receiver.fileno(), _collecting(receiver, got, done, 3))
    for index in range(3):
        sender.sendto(b"%d" % index, receiver.getsockname())
    await asyncio.wait_for(done.wait(), 5)
    assert got == [b"0", b"1", b"2"]
    assert poller.batches == 3  # no load measured yet: one datagram per wakeup, no look-away


async def test_under_load_a_burst_is_one_batch_and_later_datagrams_the_next(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = pair
    poller = MediaPoller(asyncio.get_running_loop(), interval=0.2)
    poller.rate = 10_000.0  # as measured under load: 2,000 datagrams expected per interval
    got: list[bytes] = []
    first, second = asyncio.Event(), asyncio.Event()
    reader = _collecting(receiver, got, first, 20)
    poller.add(receiver.fileno(), reader)
    for index in range(20):
        sender.sendto(b"%d" % index, receiver.getsockname())
    await asyncio.wait_for(first.wait(), 5)
    assert got == [b"%d" % index for index in range(20)]
    assert poller.batches == 1  # twenty datagrams, one wakeup
    for payload in (b"b", b"c", b"d"):  # the poller looks away: these queue in the socket
        sender.sendto(payload, receiver.getsockname())
    poller.remove(receiver.fileno(), reader)
    poller.add(receiver.fileno(), _collecting(receiver, got, second, 23))
    await asyncio.wait_for(second.wait(), 5)
    assert got[20:] == [b"b", b"c", b"d"]
    assert poller.batches == 2


async def test_a_removed_socket_is_not_read_and_a_failing_reader_stops_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = pair
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.setblocking(False)
    poller = MediaPoller(asyncio.get_running_loop(), interval=0)
    removed: list[bytes] = []
    poller.add(receiver.fileno(), _collecting(receiver, removed, asyncio.Event(), 1))
    poller.remove(receiver.fileno(), poller._readers[receiver.fileno()])

    def broken() -> None:
        other.recv(2048)
        raise RuntimeError("a bug in one handler")

    got: list[bytes] = []
    done = asyncio.Event()
    third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    third.bind(("127.0.0.1", 0))
    third.setblocking(False)
    poller.add(other.fileno(), broken)
    poller.add(third.fileno(), _collecting(third, got, done, 2))
    sender.sendto(b"x", receiver.getsockname())
    sender.sendto(b"y", other.getsockname())
    sender.sendto(b"1", third.getsockname())
    sender.sendto(b"2", third.getsockname())
    await asyncio.wait_for(done.wait(), 5)
    assert got == [b"1", b"2"] and removed == []
    assert receiver.recv(2048) == b"x"  # still queued: nobody read it
    other.close()
    third.close()


async def test_pollers_are_one_per_loop_and_keep_their_owner_interval() -> None:
    """Each MediaPollers (one per server) makes one poller per event loop, with its own interval;
    two of them in one loop never share a poller. Per server through the settings:
    tests/media/test_media_services.py."""
    loop = asyncio.get_running_loop()
    first, second = MediaPollers(0.0025), MediaPollers(-1)
    assert first.of(loop) is first.of(loop)
    assert first.of(loop) is not second.of(loop)
    assert (first.of(loop).interval, second.of(loop).interval) == (0.0025, 0)


async def test_a_backlog_is_read_in_bounded_batches_with_the_loop_running_between(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Datagrams queued faster than they are read never hold the event loop for long: timers,
    STUN and the control plane run between batches of at most BATCH_LIMIT datagrams."""
    receiver, sender = pair
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    total = 2 * BATCH_LIMIT + 10
    for index in range(total):
        sender.sendto(b"%d" % index, receiver.getsockname())
    poller = MediaPoller(asyncio.get_running_loop(), interval=0.2)
    poller.rate = 10_000.0
    got: list[bytes] = []
    done = asyncio.Event()
    poller.add(receiver.fileno(), _collecting(receiver, got, done, total))
    seen_between: set[int] = set()
    while not done.is_set():
        seen_between.add(len(got))
        await asyncio.sleep(0)
    assert len(got) == total
    assert {BATCH_LIMIT, 2 * BATCH_LIMIT} <= seen_between


def test_a_closed_event_loop_takes_its_poller_and_epoll_descriptor_with_it() -> None:
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    pollers = MediaPollers(0.001)

    async def use_poller() -> None:
        pollers.of(asyncio.get_running_loop())

    before = open_descriptors()
    for _ in range(5):
        asyncio.run(use_poller())
    gc.collect()
    assert open_descriptors() <= before  # an earlier test's loop may go too
