"""Port blocks for tests that run side by side (pytest-xdist): one allocator, disjoint blocks.

Servers listen on port 0, but some numbers must be written down before anything binds: a media
range (``min_port..max_port``), coturn's listening port and relay range, the port an ffmpeg
receiver is told to bind, a PBX address in an SDP, the ws:// port of a server a test restarts.
Each of them comes from ``free_port_range(n)``.

- The window: ports the emulator accepts (1..65535) from 10000 up to just below the kernel's
  ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``; above it when that gap is
  larger). The kernel hands out port 0 binds and outgoing connections (aiortc client peers,
  WebSocket clients, ffmpeg senders) from the ephemeral range only, so they never land in a block.
- Slabs: the window is cut into slabs of ``SLAB`` ports and each process leases one for its life,
  slab N for xdist worker ``gwN`` when it is free, else the next free one. The lease is an
  ``flock`` on a file in the temporary folder: two pytest runs on one machine (two checkouts)
  never share a slab, and the lease ends with the process however it ends.
- Blocks: within its slab a process hands out blocks with a cursor, wrapping around. A block
  never overlaps one still held by this process, starts on an even port (RTP/RTCP pairs), and is
  checked free by binding each of its ports (UDP on the IPv4 and IPv6 wildcards, TCP as a
  listener would), which skips whatever else on the machine holds one. The blocks taken during a
  test are given back when it ends (``tests/conftest.py``); blocks taken outside a test are kept
  for the process's life.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

WINDOW_FLOOR = 10000
"""Lowest port handed out: below it live well-known services (8888, 8890, 3478, 5432...)."""
SLAB = 1000
"""Ports leased to one process: a test holds up to about 400 at once (test_pool: four servers), and
the cursor wrapping around the slab leaves a gap."""
LEASES = Path(tempfile.gettempdir()) / "kurento-emulator-test-ports"


@dataclass(frozen=True, slots=True)
class PortBlock:
    """Ports ``low..high``, reserved for one test (or one process)."""

    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def __len__(self) -> int:
        return self.high - self.low + 1

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def overlaps(self, other: PortBlock) -> bool:
        """Whether the two blocks share a port."""
        return self.low <= other.high and other.low <= self.high


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> PortBlock:
    """The kernel's range for port-0 binds and outgoing connections (Linux's default if unknown)."""
    try:
        low, high = (int(text) for text in path.read_text().split())
    except (OSError, ValueError):
        return PortBlock(32768, 60999)
    return PortBlock(low, high)


def port_window(ephemeral: PortBlock, floor: int = WINDOW_FLOOR) -> PortBlock:
    """The larger gap of ``floor..65535`` outside the ephemeral range.

    Raises:
        RuntimeError: the ephemeral range leaves no gap of one slab.
    """
    gaps = [
        PortBlock(floor, ephemeral.low - 1),
        PortBlock(max(floor, ephemeral.high + 1), 65535),
    ]
    widest = max(gaps, key=lambda gap: gap.high - gap.low)
    if widest.high - widest.low + 1 < SLAB:
        raise RuntimeError(
            f"the ephemeral port range {ephemeral} leaves no {SLAB} ports in {floor}-65535 for "
            "test blocks: narrow net.ipv4.ip_local_port_range"
        )
    return widest


def worker_index(environ: Mapping[str, str] = os.environ) -> int:
    """N of pytest-xdist's ``gwN`` worker; 0 when the tests run in one process."""
    found = re.fullmatch(r"gw(\d+)", environ.get("PYTEST_XDIST_WORKER", ""))
    return int(found.group(1)) if found else 0


def _is_free(port: int, connectable_tcp: bool = False) -> bool:
    """Whether nothing on this machine holds ``port`` (UDP, or a TCP listener; any address).
    ``connectable_tcp``: nor a TCP connection in TIME_WAIT, which keeps a socket that connects
    from the port (``PortRange.bind_tcp``, without ``SO_REUSEADDR``) off it for a minute."""
    for family, kind, host in (
        (socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0"),
        (socket.AF_INET6, socket.SOCK_DGRAM, "::"),
        (socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0"),
    ):
        try:
            sock = socket.socket(family, kind)
        except OSError as exc:  # no IPv6 on this host: nothing can hold an IPv6 port
            if exc.errno == errno.EAFNOSUPPORT:
                continue
            raise
        with sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM and not connectable_tcp:
                # as asyncio's servers do: a closed server's connections in TIME_WAIT do not
                # keep the next one from listening there, only a live listener does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
    return True


@dataclass
class PortAllocator:
    """Hands out disjoint blocks of one leased slab."""

    slab: PortBlock
    lock: IO[bytes] | None = None
    """The open lock file whose ``flock`` is this process's lease on ``slab``."""
    held: list[PortBlock] = field(default_factory=list)
    _cursor: int = 0

    def __post_init__(self) -> None:
        self._cursor = self.slab.low

    @classmethod
    def lease(cls, window: PortBlock, first: int, leases: Path = LEASES) -> PortAllocator:
        """An allocator on the first slab of ``window`` that no other process holds, trying slab
        ``first`` first.

        Raises:
            RuntimeError: every slab of the window is leased by other processes.
        """
        count = len(window) // SLAB
        leases.mkdir(parents=True, exist_ok=True)
        for step in range(count):
            low = window.low + (first + step) % count * SLAB
            slab = PortBlock(low, low + SLAB - 1)
            try:
                lock = (leases / f"{slab}.lock").open("wb")
            except PermissionError:  # another user's lock file: theirs
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            return cls(slab, lock)
        raise RuntimeError(
            f"all {count} slabs of {SLAB} ports in {window} are leased by other test processes "
            f"(lock files in {leases}): run fewer pytest workers"
        )

    def close(self) -> None:
        """End the lease (the process's exit ends it too)."""
        if self.lock is not None:
            self.lock.close()

    def allocate(self, size: int, connectable_tcp: bool = False) -> PortBlock:
        """A block of ``size`` ports, starting on an even port, free now, held until released
        (``connectable_tcp``: see ``_is_free``).

        Raises:
            ValueError: ``size`` does not fit in a slab.
            RuntimeError: no such block is free in the slab.
        """
        if not 1 <= size <= len(self.slab) - 1:
            raise ValueError(f"a block of {size} ports does not fit in a slab of {len(self.slab)}")
        port = self._cursor
        wrapped = False
        while True:
            port += port % 2
            if port + size - 1 > self.slab.high:
                if wrapped:
                    raise RuntimeError(
                        f"no {size} free ports left in slab {self.slab}; held: {self.held}"
                    )
                wrapped, port = True, self.slab.low
                continue
            candidate = PortBlock(port, port + size - 1)
            clash = next((block for block in self.held if block.overlaps(candidate)), None)
            if clash is not None:
                port = clash.high + 1
                continue
            busy = next(
                (p for p in range(port, candidate.high + 1) if not _is_free(p, connectable_tcp)),
                None,
            )
            if busy is not None:
                port = busy + 1
                continue
            self.held.append(candidate)
            self._cursor = candidate.high + 1
            return candidate

    @contextlib.contextmanager
    def releasing(self) -> Iterator[None]:
        """Give back, on exit, the blocks allocated inside."""
        before = list(self.held)
        try:
            yield
        finally:
            self.held = [block for block in self.held if block in before]


@functools.cache
def allocator() -> PortAllocator:
    """This process's allocator, made on first use (after xdist has named the worker)."""
    return PortAllocator.lease(port_window(ephemeral_range()), worker_index())


def free_port_range(size: int, *, connectable_tcp: bool = False) -> PortBlock:
    """A block of ``size`` free ports that no other test or test process is given meanwhile;
    ``connectable_tcp`` for a test that connects out from every one of them (an earlier test's
    TCP connections in TIME_WAIT on a port of the block would leave it short)."""
    return allocator().allocate(size, connectable_tcp)
