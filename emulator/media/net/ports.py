"""PortRange: every socket the server opens for media is bound here, inside minPort..maxPort: the
UDP sockets, and the TCP sockets it connects from (a TURN server over TCP or TLS).

The operating system is the source of truth: a port is free when ``bind`` succeeds, and it returns
to the pool when its socket closes, whoever closes it (an endpoint released, a transport that
failed). The allocator remembers its own live sockets only to skip them without a system call and to
report usage.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass

from protocol.errors import NotEnoughResources

logger = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024  # performance.md B1: the 208 KiB default drops at 10-40k pkt/s


class PortRangeExhausted(NotEnoughResources):
    """40009: no free port is left in the range."""


@dataclass(frozen=True, slots=True)
class PortUsage:
    """How much of the range is in use by this server."""

    low: int
    high: int
    in_use: int

    @property
    def capacity(self) -> int:
        """Ports in the range."""
        return self.high - self.low + 1

    @property
    def free(self) -> int:
        """Ports of the range not held by this server (others may hold some)."""
        return self.capacity - self.in_use


class PortRange:
    """Binds sockets inside ``low..high``, round-robin so a port is not reused at once.

    UDP and TCP ports are separate spaces (a UDP and a TCP socket may share a number), each with
    its own book of live sockets; ``usage`` counts both.
    """

    def __init__(self, low: int, high: int, name: str = "media") -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"invalid port range {low}..{high}")
        self.low = low
        self.high = high
        self.name = name
        self._next = low
        self._held: dict[int, socket.socket] = {}
        self._held_tcp: dict[int, socket.socket] = {}

    def __repr__(self) -> str:
        return f"PortRange({self.low}..{self.high})"

    def usage(self) -> PortUsage:
        """Live sockets of this range."""
        return PortUsage(
            self.low, self.high, len(self._open_ports()) + len(self._open_ports(self._held_tcp))
        )

    def _open_ports(self, held: dict[int, socket.socket] | None = None) -> set[int]:
        held = self._held if held is None else held
        ports = set()
        for port, sock in list(held.items()):
            if sock.fileno() == -1:
                del held[port]
            else:
                ports.add(port)
        return ports

    def bind_udp(self, host: str) -> socket.socket:
        """A non-blocking UDP socket bound to ``host`` on a free port of the range.

        Raises:
            PortRangeExhausted: every port of the range is taken (40009, naming the range).
        """
        return self._bind(host, socket.SOCK_DGRAM, self._held, "a UDP port")

    def bind_tcp(self, host: str) -> socket.socket:
        """A non-blocking TCP socket bound to ``host`` on a free port of the range, to connect from.

        Without ``SO_REUSEADDR``: a port whose last connection is in TIME_WAIT is skipped, not
        reused (reconnecting the same four-tuple would fail at ``connect``).

        Raises:
            PortRangeExhausted: every port of the range is taken (40009, naming the range).
        """
        return self._bind(host, socket.SOCK_STREAM, self._held_tcp, "a TCP port")

    def bind_tcp_listener(self, host: str) -> socket.socket:
        """A TCP socket bound on a free port of the range, to listen on (a passive ICE-TCP
        candidate). With ``SO_REUSEADDR``, as servers listen: connections of that port still in
        TIME_WAIT do not keep a listener from it, a live listener does.

        Raises:
            PortRangeExhausted: every port of the range is taken (40009, naming the range).
        """
        return self._bind(host, socket.SOCK_STREAM, self._held_tcp, "a TCP port", reuse=True)

    def _bind(
        self,
        host: str,
        kind: socket.SocketKind,
        held: dict[int, socket.socket],
        what: str,
        reuse: bool = False,
    ) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        taken = self._open_ports(held)
        capacity = self.high - self.low + 1
        for _ in range(capacity):
            port = self._advance()
            if port in taken:
                continue
            sock = socket.socket(family, kind)
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            self._prepare(sock)
            held[port] = sock
            return sock
        raise PortRangeExhausted(self._exhausted_message(host, what, held))

    def bind_pair(self, host: str) -> tuple[socket.socket, socket.socket]:
        """An even RTP port and the odd RTCP port above it (RFC 3550 section 11).

        Raises:
            PortRangeExhausted: no adjacent even/odd pair is free.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        taken = self._open_ports()
        for _ in range((self.high - self.low + 1) // 2 + 1):
            port = self._advance()
            if port % 2:
                port = self._advance()
            if port + 1 > self.high or port in taken or port + 1 in taken:
                continue
            pair: list[socket.socket] = []
            try:
                for p in (port, port + 1):
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    pair.append(sock)
                    sock.bind((host, p))
            except OSError as exc:
                for sock in pair:
                    sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            for p, sock in zip((port, port + 1), pair, strict=True):
                self._prepare(sock)
                self._held[p] = sock
            return pair[0], pair[1]
        raise PortRangeExhausted(self._exhausted_message(host, "an RTP/RTCP port pair", self._held))

    def _advance(self) -> int:
        port = self._next
        self._next = self.low if port >= self.high else port + 1
        return port

    @staticmethod
    def _prepare(sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            logger.debug("could not raise SO_RCVBUF", exc_info=True)

    def _exhausted_message(self, host: str, what: str, held: dict[int, socket.socket]) -> str:
        # UDP and TCP numbers are separate spaces: count the one that ran out (the rest of the
        # range may be held by other programs, or by TCP connections in TIME_WAIT)
        kind = "TCP" if held is self._held_tcp else "UDP"
        return (
            f"No free port for {what} on {host} in the {self.name} port range "
            f"{self.low}-{self.high} ({len(self._open_ports(held))} of {self.high - self.low + 1} "
            f"{kind} ports held by this server): "
            "release endpoints or widen minPort/maxPort (KMS_MIN_PORT/KMS_MAX_PORT)"
        )
