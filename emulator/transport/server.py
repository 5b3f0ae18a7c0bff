"""The WebSocket listeners (ws:// and wss://) and the per-connection pump into ``protocol/``.

HTTP behaviour copies KMS (websocketpp) because tools depend on it: an upgrade request without
``Sec-WebSocket-Key`` (the Docker healthcheck) gets HTTP 500, a plain GET gets 426, a wrong path is
accepted and then closed with 1002 "Invalid path", and the query string is ignored.
Frames of one connection are handled one after another, in order; connections do not wait for each
other. The listener only pumps: the request handler (the RPC dispatcher) and the session bindings
(where each session's events go) are given to it.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.http11 import Response as HttpResponse

from emulator.settings import Settings
from emulator.transport.tls import TlsMaterial, load_tls
from protocol.jsonrpc import Request as RpcRequest
from protocol.server import ServerConnection as ProtocolConnection

logger = logging.getLogger(__name__)

SERVER_HEADER = "kurento-emulator (WebSocket++/0.8.1 compatible)"


class RequestHandler(Protocol):
    """Runs one JSON-RPC request and queues its reply on the connection (the RPC dispatcher)."""

    async def handle(self, request: RpcRequest, conn: ProtocolConnection) -> None:
        """Execute the request."""


UNREAD_CLOSE_TIMEOUT = 2.0
"""Seconds a connection closed for not reading gets to take the close frame before it is cut."""


@dataclass(eq=False)
class ClientLink:
    """One open WebSocket: its protocol state and its ordered outbox.

    The outbox holds at most ``max_unsent`` characters: a client that sends requests and never
    reads the replies would otherwise grow it without bound. Past it the link is ``overflowed``:
    nothing more is queued and the connection is closed with 1008.
    """

    websocket: ServerConnection
    protocol: ProtocolConnection
    peer: str
    max_unsent: int | None = None
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    unsent: int = 0
    overflowed: bool = False
    closer: asyncio.Task[None] | None = None

    def flush(self) -> None:
        """Move what the protocol produced into the outbox (the writer task sends it)."""
        for text in self.protocol.data_to_send():
            if self.overflowed:
                continue  # being closed for not reading: queue nothing more
            self.outbox.put_nowait(text)
            self.unsent += len(text)
            if self.max_unsent is not None and self.unsent > self.max_unsent:
                self._overflow()

    def sent(self, text: str) -> None:
        """The writer handed ``text`` to the socket."""
        self.unsent -= len(text)

    def _overflow(self) -> None:
        reason = (
            f"client does not read: over {self.max_unsent} characters unsent (max_unsent_bytes)"
        )
        logger.warning("! %s: %s; closing with 1008", self.peer, reason)
        self.overflowed = True
        while not self.outbox.empty():  # give the memory back now, not when the socket dies
            self.outbox.get_nowait()
        self.outbox.put_nowait(None)
        self.unsent = 0
        self.closer = asyncio.create_task(_close_unread(self.websocket, reason))


async def _close_unread(websocket: ServerConnection, reason: str) -> None:
    """Close with 1008; a client that does not read even the close frame is cut off (its
    socket buffers are full, so the closing handshake would wait for ever)."""
    try:
        async with asyncio.timeout(UNREAD_CLOSE_TIMEOUT):
            await websocket.close(1008, reason)
    except TimeoutError:
        websocket.transport.abort()


class SessionBindings:
    """Which connection each session's events go to: the last one that used the session."""

    def __init__(self) -> None:
        self._links: dict[str, ClientLink] = {}

    def bind(self, link: ClientLink) -> None:
        """Bind the connection's current session to it."""
        session_id = link.protocol.session_id
        if session_id is None or self._links.get(session_id) is link:
            return
        self._links[session_id] = link
        logger.debug("= session %s bound to %s", session_id, link.peer)

    def unbind(self, link: ClientLink) -> None:
        """A connection closed: its sessions have no connection any more."""
        for session_id, bound in list(self._links.items()):
            if bound is link:
                del self._links[session_id]

    def clear(self) -> None:
        """Forget every binding (a simulated restart)."""
        self._links.clear()

    def session_ids(self) -> list[str]:
        """Sessions that have a connection."""
        return list(self._links)

    def deliver(self, session_id: str, params: dict[str, Any]) -> None:
        """Send an ``onEvent`` to the session's connection; dropped when it has none."""
        link = self._links.get(session_id)
        if link is None:
            return
        link.protocol.send_event(params)
        link.flush()


class WebSocketListener:
    """The ws:// and wss:// listeners: pump each connection's frames through ``protocol/`` into
    the request handler, in order, and its replies and events back out.

    Args:
        handler: runs the requests (the RPC dispatcher).
        bindings: where each session's events go; this listener binds sessions to connections.
    """

    def __init__(
        self, settings: Settings, handler: RequestHandler, bindings: SessionBindings
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.bindings = bindings
        self.links: set[ClientLink] = set()
        self.tls: TlsMaterial | None = None
        self._servers: dict[str, Server] = {}
        self.accepting = False
        self.stopping = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the configured listeners."""
        settings = self.settings
        common: dict[str, Any] = {
            "process_request": self._process_request,
            "compression": None,
            "ping_interval": None,
            "max_size": max(2 * settings.max_message_size, 1 << 20),
            "server_header": SERVER_HEADER,
        }
        if settings.port is not None:
            self._servers["ws"] = await serve(self._handle, settings.host, settings.port, **common)
        if settings.secure_port is not None:
            self.tls = load_tls(
                settings.certificate, settings.certificate_password, ["localhost", "127.0.0.1"]
            )
            logger.info(
                "wss certificate: %s, SHA-256 fingerprint %s", self.tls.origin, self.tls.fingerprint
            )
            self._servers["wss"] = await serve(
                self._handle, settings.host, settings.secure_port, ssl=self.tls.context, **common
            )
        self.accepting = True
        for scheme, url in self.urls.items():
            logger.info("listening on %s (%s)", url, scheme)

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop accepting, answer the requests in flight, close connections (1001). Requests
        that arrive meanwhile are not run; ``drain_timeout`` bounds the wait."""
        self.accepting = False
        self.stopping = True
        for server in self._servers.values():
            server.server.close()  # no new connections; open ones get their answers first
        try:
            async with asyncio.timeout(drain_timeout):
                await self._idle.wait()
                for link in list(self.links):
                    link.outbox.put_nowait(None)
                    if link.writer is not None:
                        await link.writer
        except TimeoutError:
            logger.warning(
                "! %d request(s) still running after %.1f s: closing anyway",
                self._in_flight,
                drain_timeout,
            )
        for server in self._servers.values():
            server.close(reason="server shutting down")
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()

    async def drop_sessions(self) -> None:
        """Close every connection with 1001 and forget which session each one used (a
        simulated restart: clients must connect again, and their old sessions are gone)."""
        self.bindings.clear()
        for link in list(self.links):
            link.protocol.session_id = None
            await link.websocket.close(1001, "server restarted")

    def port(self, scheme: str) -> int:
        """The bound port of a listener (``ws`` or ``wss``)."""
        server = self._servers[scheme]
        return int(next(iter(server.sockets)).getsockname()[1])

    @property
    def urls(self) -> dict[str, str]:
        """``{"ws": "ws://host:port/kurento", "wss": ...}`` for the open listeners."""
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return {
            scheme: f"{scheme}://{shown}:{self.port(scheme)}/{self.settings.path}"
            for scheme in self._servers
        }

    # -- HTTP ------------------------------------------------------------------------------------

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> HttpResponse | None:
        upgrade = request.headers.get("Upgrade", "")
        if "websocket" not in upgrade.lower():
            return connection.respond(http.HTTPStatus.UPGRADE_REQUIRED, "Upgrade Required\n")
        if "Sec-WebSocket-Key" not in request.headers:
            # KMS's Docker healthcheck sends exactly this and expects 500 (protocol.md 1).
            return connection.respond(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, "Missing Sec-WebSocket-Key header\n"
            )
        return self._refusal(connection, request)

    def _refusal(self, connection: ServerConnection, request: Request) -> HttpResponse | None:
        """Access control (off by default, as KMS has none): Origin allow-list, access_token."""
        origins = request.headers.get_all("Origin")
        origin = origins[0] if len(origins) == 1 else None if not origins else ",".join(origins)
        refusal = access_refusal(self.settings, request.path, origin)
        if refusal is None:
            return None
        status, reason = refusal
        logger.warning("! %s refused (HTTP %d): %s", _peer(connection), status, reason)
        return connection.respond(status, reason + "\n")

    # -- connections -----------------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        peer = _peer(websocket)
        path = (websocket.request.path if websocket.request else "/").split("?", 1)[0]
        if path.strip("/") != self.settings.path:
            logger.info("! %s asked for path %r: closing with 1002 Invalid path", peer, path)
            await websocket.close(1002, "Invalid path")
            return
        link = ClientLink(
            websocket,
            ProtocolConnection(self.settings.max_message_size),
            peer,
            self.settings.max_unsent_bytes,
        )
        self.links.add(link)
        writer = asyncio.create_task(self._writer(link), name=f"writer {peer}")
        link.writer = writer
        logger.info("< connection from %s", peer)
        try:
            async for message in websocket:
                await self._receive(link, message)
                if link.overflowed:
                    break  # read no more: the library stops reading the socket (max_queue)
        except ConnectionClosed:
            pass
        finally:
            self.links.discard(link)
            self.bindings.unbind(link)
            link.outbox.put_nowait(None)
            await writer
            if link.closer is not None:
                await link.closer
            code = websocket.close_code
            logger.info("x connection from %s closed (code %s)", peer, code)

    async def _receive(self, link: ClientLink, message: str | bytes) -> None:
        if self.stopping:
            logger.info("! %s: message ignored, the server is shutting down", link.peer)
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._receive_text(link, message)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _receive_text(self, link: ClientLink, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        link.protocol.receive_text(text)
        for event in link.protocol.events_received():
            logger.debug("< %s %s", link.peer, event.request.method)
            await self.handler.handle(event.request, link.protocol)
            self.bindings.bind(link)
            link.flush()
        link.flush()

    async def _writer(self, link: ClientLink) -> None:
        while True:
            text = await link.outbox.get()
            if text is None:
                return
            try:
                await link.websocket.send(text)
            except ConnectionClosed:
                return
            link.sent(text)


def access_refusal(
    settings: Settings, path: str, origin: str | None
) -> tuple[http.HTTPStatus, str] | None:
    """Why a handshake is refused (status and reason), or None to accept it.

    A request without Origin is not a browser's, so the allow-list lets it through: the token is
    what stops other programs. kurento-client sends the token as ``?access_token=`` (ecosystem.md
    4.1), which KMS ignores.
    """
    allowed = [o.strip().lower() for o in settings.allowed_origins.split(",") if o.strip()]
    if allowed and origin is not None and origin.strip().lower() not in allowed:
        return http.HTTPStatus.FORBIDDEN, f"Origin {origin!r} is not in allowed_origins"
    if settings.access_token:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        given = query.get("access_token", [""])[-1]
        if not given:
            return http.HTTPStatus.UNAUTHORIZED, "access_token required: add ?access_token=..."
        if not hmac.compare_digest(given.encode(), settings.access_token.encode()):
            return http.HTTPStatus.UNAUTHORIZED, "access_token is wrong"
    return None


def _peer(websocket: ServerConnection) -> str:
    address = websocket.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
