"""One epoll for every media socket, read in batches (the seam between media sockets and asyncio).

With asyncio's own datagram transports every datagram costs an event-loop wakeup, a selector round
and a ``Handle``; at media rates those wakeups cost more than the packets (the benchmark's bare
asyncio relay pays about 60 us per packet at 10,000 packets/s spread over 200 sockets, most of it
waking up). ``MediaPoller`` watches one epoll descriptor that holds every media socket of one
server on the event loop (``MediaPollers``, owned by the server's ``MediaServices``, makes one per
loop with the server's ``media_batch_ms``). When it turns readable, every ready socket is read,
one datagram per socket. Under load (several datagrams expected per ``interval``) the poller reads
on, round after round, until no socket is ready, then looks away for ``interval`` seconds so that
what arrives meanwhile is read together in the next batch: the loop wakes at most once per
interval whatever the packet rate, at the price of at most ``interval`` added latency. A batch
stops at ``BATCH_LIMIT`` datagrams and the rest is read in the next callback, so that a backlog
never holds up timers, STUN and the control plane. Sparse packets are read as they come, and idle
costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Reader = Callable[[], None]
"""Reads one datagram from its socket (and must not raise when none is waiting)."""

RECEIVE_SIZE = 4096
"""Largest datagram read: RTP fits, and asyncio's 256 KiB default costs a page-fault round per
packet (performance.md B1: 17 us instead of 2 us per recvfrom)."""

BATCH_LIMIT = 128
"""Datagrams read in one batch at most (about 10 ms of work): a backlog is read in several
batches, so that timers, STUN and the control plane run in between."""

RATE_WINDOW = 0.1
"""Seconds over which the datagram rate is measured."""
WORTH_BATCHING = 4
"""Datagrams expected per interval from which the poller looks away after a batch."""


class BatchForwarder(Protocol):
    """The loop that reads a batch of ready sockets in one call and forwards by itself what it
    has routes for (``emulator.media.fastpath``; the compiled one is ``_forward.c``)."""

    read: int
    """Datagrams read so far (forwarded and handed back)."""

    def add_socket(self, fd: int) -> None:
        """Read ``fd`` from now on."""

    def remove_socket(self, fd: int) -> None:
        """Stop reading ``fd`` (and forget its routes)."""

    def forward(self, fds: Sequence[Any], limit: int = 128) -> list[tuple[int, bytes | None, Any]]:
        """Read the sockets; what it did not forward, as ``(fd, datagram, address)`` (or
        ``(fd, None, errno)`` when reading failed)."""


class Datagrams(Protocol):
    """Where a socket's datagrams go (``PolledSocket``)."""

    def on_datagram(self, data: bytes, addr: Any) -> None:
        """One datagram and its source."""

    def on_error(self, exc: OSError) -> None:
        """Reading failed (an ICMP error, reported as asyncio would)."""


class MediaPollers:
    """The pollers of one server (``MediaServices``): one per event loop it runs on, each looking
    away for the server's ``media_batch_ms`` after a batch.

    Args:
        forwarder: makes the batch forwarder of each poller (the server's ``datapath``); None:
            each socket's own reader reads it, one datagram per round.
    """

    def __init__(
        self, interval: float, forwarder: Callable[[], BatchForwarder] | None = None
    ) -> None:
        self.interval = max(0.0, interval)
        """Seconds a poller looks away after a batch under load."""
        self.make_forwarder = forwarder
        # Weak: a closed event loop must be able to go, and with it its poller (whose finalizer
        # closes the epoll descriptor).
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaPoller] = (
            weakref.WeakKeyDictionary()
        )

    def of(self, loop: asyncio.AbstractEventLoop) -> MediaPoller:
        """The poller of ``loop``, made on first use."""
        poller = self._by_loop.get(loop)
        if poller is None:
            forwarder = self.make_forwarder() if self.make_forwarder is not None else None
            poller = self._by_loop[loop] = MediaPoller(loop, self.interval, forwarder)
        return poller


class MediaPoller:
    """Media sockets of one server on one event loop, read in batches."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        forwarder: BatchForwarder | None = None,
    ) -> None:
        # Weak: ``MediaPollers`` is keyed by loop, and a closed test loop must be able to go (with
        # it the poller, whose finalizer closes the epoll descriptor).
        self._loop = weakref.ref(loop)
        self.interval = interval
        self.batches = 0
        self.datagrams = 0
        self._epoll = select.epoll()
        self._readers: dict[int, Reader] = {}
        self.forwarder = forwarder
        """Reads the sockets that have a ``Datagrams`` target, a batch per call (None: every
        socket is read by its reader)."""
        self._targets: dict[int, Datagrams] = {}
        self._watching = False
        self._timer: asyncio.TimerHandle | None = None
        self.rate = 0.0
        """Datagrams per second over the last ``RATE_WINDOW``."""
        self._window_start = loop.time()
        self._window_count = 0
        weakref.finalize(self, self._epoll.close)

    def add(self, fd: int, reader: Reader, target: Datagrams | None = None) -> None:
        """Read ``fd`` from the next batch on: with the forwarder, handing ``target`` what it
        does not forward, when there is a target; else with ``reader``."""
        try:
            self._epoll.register(fd, select.EPOLLIN)
        except FileExistsError:  # a descriptor number reused before its old owner left
            self._epoll.modify(fd, select.EPOLLIN)
        self._readers[fd] = reader
        self._targets.pop(fd, None)
        if self.forwarder is not None and target is not None:
            self.forwarder.add_socket(fd)
            self._targets[fd] = target
        if not self._watching and self._timer is None:
            self._watch()

    def remove(self, fd: int, reader: Reader) -> None:
        """Stop reading ``fd`` (if ``reader`` still owns it: descriptors are reused)."""
        if self._readers.get(fd) is not reader:
            return
        del self._readers[fd]
        if self._targets.pop(fd, None) is not None and self.forwarder is not None:
            self.forwarder.remove_socket(fd)
        with contextlib.suppress(OSError, ValueError):  # already closed: epoll dropped it
            self._epoll.unregister(fd)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop whose sockets this poller reads."""
        loop = self._loop()
        if loop is None:
            raise RuntimeError("the poller's event loop is gone")
        return loop

    def _watch(self) -> None:
        self._timer = None
        if not self._epoll.closed:
            self.loop.add_reader(self._epoll.fileno(), self._batch)
            self._watching = True

    def _batch(self) -> None:
        self.batches += 1
        count = self._read(self._epoll.poll(0, BATCH_LIMIT))
        if self.rate * self.interval < WORTH_BATCHING:
            self._measure(count)
            return  # sparse packets: stay watched; asyncio calls again while any socket has data
        while count < BATCH_LIMIT:
            ready = self._epoll.poll(0, BATCH_LIMIT)
            if not ready:
                break
            count += self._read(ready)
        else:
            self._measure(count)
            return  # a backlog: stay watched, so that the loop does its other work in between
        self._measure(count)
        self.loop.remove_reader(self._epoll.fileno())
        self._watching = False
        self._timer = self.loop.call_later(self.interval, self._watch)

    def _read(self, ready: list[tuple[int, int]]) -> int:
        if self._targets:
            return self._read_forwarded(ready)
        readers = self._readers
        for fd, _ in ready:
            reader = readers.get(fd)
            if reader is None:
                continue
            try:
                reader()
            except Exception:  # a bug in one socket's handler must not stop every socket
                logger.exception("! media socket %d: handler failed", fd)
        self.datagrams += len(ready)
        return len(ready)

    def _read_forwarded(self, ready: list[tuple[int, int]]) -> int:
        """The sockets with a target through the forwarder, in one call, then what it handed
        back to their targets; the others by their readers."""
        forwarder = self.forwarder
        assert forwarder is not None
        targets, readers = self._targets, self._readers
        before = forwarder.read
        others = [fd for fd, _ in ready if fd not in targets]
        back = forwarder.forward(ready, max(4, BATCH_LIMIT // len(ready)))
        for fd, data, addr in back:
            target = targets.get(fd)
            if target is None:
                continue
            try:
                if data is None:
                    target.on_error(OSError(addr, os.strerror(addr)))
                else:
                    target.on_datagram(data, addr)
            except Exception:  # a bug in one socket's handler must not stop every socket
                logger.exception("! media socket %d: handler failed", fd)
        for fd in others:
            reader = readers.get(fd)
            if reader is None:
                continue
            try:
                reader()
            except Exception:
                logger.exception("! media socket %d: handler failed", fd)
        count = forwarder.read - before + len(others)
        self.datagrams += count
        return count

    def _measure(self, count: int) -> None:
        """Update ``rate``: looking away after a batch costs two epoll changes and a timer, which
        pays only when the next batch holds several datagrams."""
        self._window_count += count
        now = self.loop.time()
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW:
            self.rate = self._window_count / elapsed
            self._window_start, self._window_count = now, 0


def limit_reads(transport: asyncio.BaseTransport) -> None:
    """What asyncio itself still reads on a media socket is read ``RECEIVE_SIZE`` at a time."""
    if hasattr(transport, "max_size"):
        transport.max_size = RECEIVE_SIZE


class PolledSocket:
    """A media socket read by a ``MediaPoller`` while asyncio's datagram transport, paused for
    reading, keeps sending on it: the one receive door of every media socket (ICE host sockets
    and plain RTP legs alike)."""

    def __init__(
        self,
        sock: socket.socket,
        on_datagram: Callable[[bytes, Any], None],
        on_error: Callable[[OSError], None],
    ) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self.on_error = on_error
        self._poller: MediaPoller | None = None
        self._fd = -1

    def start(self, transport: asyncio.BaseTransport, poller: MediaPoller) -> bool:
        """Let ``poller`` read the socket instead of ``transport``; False when the event loop's
        datagram transports cannot pause (asyncio keeps reading then)."""
        limit_reads(transport)
        pause = getattr(transport, "pause_reading", None)
        if pause is None:
            return False
        pause()
        self._fd = self.sock.fileno()
        poller.add(self._fd, self.read, self)
        self._poller = poller
        return True

    @property
    def poller(self) -> MediaPoller | None:
        """The poller reading the socket (None: asyncio reads it)."""
        return self._poller

    @property
    def fd(self) -> int:
        """The socket's descriptor while a poller reads it (-1 before)."""
        return self._fd

    def read(self) -> None:
        """Read one datagram (the poller calls this when the socket is readable)."""
        try:
            data, addr = self.sock.recvfrom(RECEIVE_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # e.g. ICMP port unreachable, reported as asyncio would
            self.on_error(exc)
            return
        self.on_datagram(data, addr)

    def stop(self) -> None:
        """The poller stops reading the socket (its transport closed)."""
        if self._poller is not None:
            self._poller.remove(self._fd, self.read)
            self._poller = None
