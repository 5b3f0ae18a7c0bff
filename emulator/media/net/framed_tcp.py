"""A datagram transport over TCP connections, one record per datagram (RFC 4571 framing), for ICE
over TCP (RFC 6544).

Each record is a two-byte big-endian length and that many bytes. The transport is keyed by the
peer's address, as a UDP socket is: ``sendto(data, addr)`` writes a record on the connection to
``addr``, and each record read from a connection reaches the protocol as
``datagram_received(record, peer address)``. A passive transport accepts connections on a
listener (bound inside the port range by its owner; accepted connections keep its port); an
active one connects from a socket its owner binds (in the range) the first time it sends to an
address. Either holds at most ``max_connections`` connections; more are refused or not opened.
Closing the transport closes every connection and the listener. The server's end resets its
connections (``SO_LINGER`` 0) rather than closing them first: a port in TIME_WAIT could not be
connected from again for a minute (``PortRange.bind_tcp`` does not reuse one; a listener,
``bind_tcp_listener``, may), and the range is small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

MAX_RECORD = 0xFFFF
"""RFC 4571: the length field is 16 bits."""
WRITE_BUFFER = 1024 * 1024
"""Bytes a connection may hold unsent before further records are dropped, as UDP would lose
them: media late by more than that is no use to anyone."""
PENDING_RECORDS = 32
"""Records kept for a connection still being opened (an active candidate's first checks)."""
CONNECT_TIMEOUT = 5.0
"""Seconds an active connection may take to open."""

Address = tuple[str, int]


def _reset(transport: asyncio.Transport) -> None:
    """Close a connection with a reset: no TIME_WAIT holds its port of the range."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Connection(asyncio.Protocol):
    """One TCP connection of a framed transport: splits the stream into records."""

    def __init__(self, owner: FramedTcpTransport, peer: Address | None) -> None:
        self.owner = owner
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer is None:
            name = transport.get_extra_info("peername")
            self.peer = (name[0], name[1])
        if not self.owner.adopt(self):
            _reset(transport)
            return
        pending, self.pending = self.pending, []
        for record in pending:
            self.write(record)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        deliver = self.owner.protocol.datagram_received
        while len(buffer) >= 2:
            size = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + size:
                break
            record = bytes(buffer[2 : 2 + size])
            del buffer[: 2 + size]
            assert self.peer is not None
            deliver(record, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.forget(self)

    def write(self, data: bytes) -> None:
        """Write one record, or drop it when the connection is this far behind."""
        transport = self.transport
        if transport is None:
            if len(self.pending) < PENDING_RECORDS:
                self.pending.append(data)
            return
        if transport.is_closing() or transport.get_write_buffer_size() > WRITE_BUFFER:
            self.owner.dropped += 1
            return
        transport.write(len(data).to_bytes(2, "big") + data)


class FramedTcpTransport(asyncio.DatagramTransport):
    """RFC 4571 records over the TCP connections of one ICE TCP candidate, keyed by peer address.

    Args:
        protocol: receives ``connection_made(self)``, each record, and ``connection_lost``.
        listener: a bound TCP socket to listen on (a passive candidate), or None.
        connect_from: makes a bound socket to connect from (an active candidate), or None.
        max_connections: connections held at once; more are refused (passive) or not opened.
    """

    def __init__(
        self,
        protocol: asyncio.DatagramProtocol,
        *,
        listener: socket.socket | None = None,
        connect_from: Callable[[], socket.socket] | None = None,
        max_connections: int = 16,
    ) -> None:
        super().__init__()
        self.protocol = protocol
        self.listener = listener
        self.connect_from = connect_from
        self.max_connections = max_connections
        self.connections: dict[Address, _Connection] = {}
        self.dropped = 0
        """Records not sent: no connection to the address, or one too far behind."""
        self.refused = 0
        """Connections refused or not opened because ``max_connections`` were held."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop = asyncio.get_running_loop()

    async def start(self) -> None:
        """Listen (passive), then tell the protocol the transport exists."""
        if self.listener is not None:
            self.listener.listen(self.max_connections)
            self._server = await self._loop.create_server(
                lambda: _Connection(self, None), sock=self.listener
            )
        self.protocol.connection_made(self)

    # -- connections -----------------------------------------------------------------------------

    def adopt(self, connection: _Connection) -> bool:
        """Take a connection that is now open; False when closing or full (it is then closed)."""
        assert connection.peer is not None
        full = len(self.connections) >= self.max_connections
        if self._closing or (self.connections.get(connection.peer) is not connection and full):
            self.refused += 1
            return False
        self.connections[connection.peer] = connection
        return True

    def forget(self, connection: _Connection) -> None:
        """A connection closed: its address has none until the peer (or a send) opens another."""
        if connection.peer is not None and self.connections.get(connection.peer) is connection:
            del self.connections[connection.peer]

    async def _connect(self, connection: _Connection) -> None:
        assert self.connect_from is not None and connection.peer is not None
        peer = connection.peer
        try:
            sock = self.connect_from()
        except Exception as exc:  # the range is full: this candidate cannot connect now
            logger.info("! no TCP connection to %s:%s: %s", *peer, exc)
            self.forget(connection)
            return
        try:
            await asyncio.wait_for(self._loop.sock_connect(sock, peer), CONNECT_TIMEOUT)
            await self._loop.create_connection(lambda: connection, sock=sock)
        except (OSError, TimeoutError) as exc:
            sock.close()
            logger.info("! TCP connection to %s:%s failed: %s", *peer, exc)
            self.forget(connection)
        except BaseException:
            sock.close()
            self.forget(connection)
            raise

    # -- DatagramTransport ---------------------------------------------------------------------

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Write ``data`` as one record on the connection to ``addr``; an active transport
        opens one first; anything else is dropped, as a datagram to nowhere."""
        if self._closing or addr is None or len(data) > MAX_RECORD:
            self.dropped += 1
            return
        peer = (addr[0], addr[1])
        connection = self.connections.get(peer)
        if connection is None:
            if self.connect_from is None or len(self.connections) >= self.max_connections:
                self.dropped += 1
                if self.connect_from is not None:
                    self.refused += 1
                return
            connection = self.connections[peer] = _Connection(self, peer)
            task = self._loop.create_task(self._connect(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        connection.write(bytes(data))

    def close(self) -> None:
        """Close the listener and every connection; the protocol then hears ``connection_lost``."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        elif self.listener is not None:
            self.listener.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                _reset(connection.transport)
        self.connections.clear()
        self._loop.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        """As ``close``: records are datagrams, nothing waits to be flushed."""
        self.close()

    def is_closing(self) -> bool:
        """Whether ``close`` was called."""
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``sockname``: the listener's address (a passive transport)."""
        if name == "sockname" and self.listener is not None:
            with contextlib.suppress(OSError):
                return self.listener.getsockname()
        return default
