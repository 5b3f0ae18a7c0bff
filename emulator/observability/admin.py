"""The admin HTTP listener: health, readiness, Prometheus metrics and, if enabled, fault injection.

A minimal HTTP/1.1 server on asyncio streams (one request per connection, ``Connection: close``), so
that no web framework is needed:

- ``GET /healthz``: 200 while the process runs;
- ``GET /readyz``: 200 while the WebSocket listeners accept (and every media worker runs), 503
  before start, while stopping, and when a media worker died;
- ``GET /metrics``: the Prometheus text format (``metrics.py``);
- with ``fault_injection`` only: ``GET|POST|DELETE /faults``, ``DELETE /faults/<id>`` and
  ``POST /restart`` (drop every object and session and take a new server id, as a KMS restart);
  ``PUT /faults`` replaces every rule, ids included (how a server gives its media workers its
  media rules).

With media workers, ``/metrics`` adds the workers' figures and the media fault rules are synced to
them after every change (``WorkerPool``).

With ``fault_injection`` the listener binds to loopback unless ``admin_host`` says otherwise: the
fault API lets anyone who reaches it break the server. Even then it answers 403 to clients outside
loopback unless ``fault_api_remote`` is set (``/metrics`` may be scraped from another host while
the faults stay local).
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import json
import logging
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from emulator.faults import FaultController, merged_with_workers
from emulator.observability.metrics import ServerMetrics
from emulator.settings import Settings
from emulator.workers import WorkerPool

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

Reply = tuple[int, str, bytes]


def admin_host(settings: Settings) -> str:
    """The bind address: as configured, else loopback with the fault API, else every interface."""
    if settings.admin_host:
        return settings.admin_host
    return "127.0.0.1" if settings.fault_injection else "0.0.0.0"


def is_loopback(peer: Any) -> bool:
    """Whether an asyncio ``peername`` is a loopback address (IPv4-mapped IPv6 included)."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class ServerControl(Protocol):
    """What the admin API asks of the server it serves (``emulator.app.App``)."""

    @property
    def server_id(self) -> str:
        """The current ``serverId``."""

    def not_ready(self) -> str | None:
        """Why the server is not ready for clients, or None when it is."""

    async def restart(self) -> None:
        """Drop every object and session and take a new server id."""


class AdminListener:
    """The admin HTTP listener of one emulator server: health, readiness, metrics, faults.

    Args:
        faults: the server's fault rules, changed through ``/faults`` (with ``fault_injection``).
    """

    def __init__(
        self,
        settings: Settings,
        server: ServerControl,
        metrics: ServerMetrics,
        faults: FaultController | None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.settings = settings
        self.server = server
        self.metrics = metrics
        self.faults = faults
        self.pool = pool
        """The media workers: their figures join /metrics, the media fault rules go to them."""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Open the listener on ``admin_port``."""
        assert self.settings.admin_port is not None, "the admin listener is off"
        host = admin_host(self.settings)
        self._server = await asyncio.start_server(self._handle, host, self.settings.admin_port)
        api = " and the fault API" if self.settings.fault_injection else ""
        logger.info("admin: health, readiness, metrics%s on %s", api, self.url)
        if self.settings.fault_injection and host not in ("127.0.0.1", "::1", "localhost"):
            logger.warning("! the fault API listens on %s: anyone who reaches it can break", host)

    async def stop(self) -> None:
        """Close the listener."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "the admin listener is off"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = admin_host(self.settings)
        shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return f"http://{shown}:{self.port}"

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                method, path, body = await _read_request(reader)
            peer = writer.get_extra_info("peername")
            status, content_type, payload = await self._route(method, path, body, peer)
        except _HttpError as exc:
            status, content_type, payload = exc.status, JSON, _json({"error": exc.message})
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            return
        reason = http.HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else payload))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
        if path not in ("/healthz", "/readyz", "/metrics"):
            logger.info("admin: %s %s -> %d", method, path, status)

    async def _route(self, method: str, path: str, body: bytes, peer: Any) -> Reply:
        if path == "/healthz":
            _allow(method, "GET", "HEAD")
            return 200, TEXT, b"ok\n"
        if path == "/readyz":
            _allow(method, "GET", "HEAD")
            reason = self.server.not_ready()
            if reason is not None:
                return 503, TEXT, f"{reason}\n".encode()
            return 200, TEXT, b"ready\n"
        if path == "/metrics":
            _allow(method, "GET", "HEAD")
            workers = await self.pool.metrics() if self.pool is not None else None
            return 200, CONTENT_TYPE_LATEST, self.metrics.exposition(workers)
        if path == "/restart" or path == "/faults" or path.startswith("/faults/"):
            if not (self.settings.fault_api_remote or is_loopback(peer)):
                raise _HttpError(
                    403,
                    "the fault API answers loopback clients only "
                    "(set fault_api_remote to serve other addresses)",
                )
            return await self._fault_api(method, path, body)
        raise _HttpError(404, f"no such path {path!r}: /healthz, /readyz, /metrics, /faults")

    async def _fault_api(self, method: str, path: str, body: bytes) -> Reply:
        faults = self.faults
        if not self.settings.fault_injection or faults is None:
            raise _HttpError(
                404,
                "the fault API is off: start with --fault-injection "
                "(KURENTO_EMULATOR_FAULT_INJECTION=true)",
            )
        if path == "/restart":
            _allow(method, "POST")
            old = self.server.server_id
            await self.server.restart()
            return 200, JSON, _json({"oldServerId": old, "serverId": self.server.server_id})
        if path == "/faults":
            _allow(method, "GET", "POST", "PUT", "DELETE")
            if method in ("POST", "PUT"):
                try:
                    data = json.loads(body or b"null")
                    if method == "PUT":
                        faults.replace(data)
                    else:
                        added = faults.add(data)
                except ValueError as exc:  # FaultError, or JSON that does not parse
                    raise _HttpError(400, str(exc)) from exc
                await self._sync_workers(faults)
                if method == "POST":
                    rules = [r.to_json() for r in added]
                    return 201, JSON, _json({"added": rules, **faults.to_json()})
            if method == "DELETE":
                faults.clear()
                await self._sync_workers(faults)
            return 200, JSON, _json(await self._fault_report(faults))
        _allow(method, "DELETE")
        ident = path.removeprefix("/faults/")
        if not ident.isdigit() or not faults.remove(int(ident)):
            raise _HttpError(404, f"no fault rule {ident!r}")
        await self._sync_workers(faults)
        return 200, JSON, _json(await self._fault_report(faults))

    async def _sync_workers(self, faults: FaultController) -> None:
        if self.pool is not None:
            await self.pool.sync_faults(faults.media_rules())

    async def _fault_report(self, faults: FaultController) -> dict[str, Any]:
        if self.pool is None:
            return faults.to_json()
        return merged_with_workers(faults.to_json(), await self.pool.fault_reports())


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _HttpError(405, f"method {method} not allowed here: use {', '.join(allowed)}")


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1) + "\n").encode()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """Method, path (without query) and body of one HTTP/1.1 request.

    Raises:
        _HttpError: a malformed request line or a body over MAX_BODY.
    """
    line = (await reader.readline()).decode("latin-1").strip()
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _HttpError(400, "malformed request line")
    method, target = parts[0].upper(), parts[1]
    length = 0
    while True:
        header = (await reader.readline()).decode("latin-1")
        if header in ("\r\n", "\n", ""):
            break
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise _HttpError(400, "Content-Length should be a number")
            length = int(value.strip())
    if length > MAX_BODY:
        raise _HttpError(413, f"body over {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    return method, target.split("?", 1)[0], body
