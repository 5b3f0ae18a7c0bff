"""The HTTP endpoint listener: where clients POST media to HttpPostEndpoints (KMS's
``KmsHttpEPServer`` on ``HttpEndpoint.conf.ini``'s ``serverAddress``:``serverPort``, 9091).

As KMS, it opens at the first registration (a server without HttpPostEndpoints never takes the
port) and answers, per path ``/<uuid>``:

- an unknown path: 404 "Http end point not found";
- ``OPTIONS``: 200 with ``Allow: POST`` and CORS headers; other methods than POST: 405;
- the first request gets a ``HttpEPCookie``; a later one without it: 400 "Invalid cookie" (a
  second client cannot take over an endpoint; the first one may come back within the endpoint's
  ``disconnectionTimeout``);
- ``POST``: a ``multipart/form-data`` body gives the first part with a filename (as
  ``KmsHttpPost``), any other ``Content-Type`` is the media itself; ``Content-Length`` or chunked.
  The body streams to the endpoint's ``UploadSink`` and the answer comes when it is complete:
  200, or what the media said (415 for a body that is not a media container).

The listener knows nothing of Kurento objects: a registered path maps to an ``UploadTarget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import logging
import random
import re
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from emulator.media.http_post import UploadRefused, UploadResult, UploadTarget
from emulator.settings import Settings

logger = logging.getLogger(__name__)

COOKIE_NAME = "HttpEPCookie"
HEADER_LIMIT = 64 * 1024
HEADER_TIMEOUT = 30.0
"""Seconds a client may take to send its request line and headers."""
CHUNK = 64 * 1024
CORS = (
    ("Allow", "POST"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "Content-Type"),
)


class HttpError(Exception):
    """Answer the request with ``status`` and ``reason`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class _Registration:
    target: UploadTarget
    cookie: str | None = None


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ``, ``."""


class HttpEndpointListener:
    """Serves the upload URLs of this server's HttpPostEndpoints (``HttpEndpoints``).

    Args:
        local_addresses: this host's addresses, for a URL when neither the announced nor the bound
            address names one (KMS takes the first non-loopback IPv4 address).
    """

    def __init__(self, settings: Settings, local_addresses: Callable[[], list[str]]) -> None:
        self.settings = settings
        self._local_addresses = local_addresses
        self._paths: dict[str, _Registration] = {}
        self._socket: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._host = ""

    # -- HttpEndpoints ---------------------------------------------------------------------------

    def register(self, target: UploadTarget) -> str:
        """A new ``/<uuid>`` served by ``target``; its full URL.

        Raises:
            OSError: the listener's address and port cannot be bound.
        """
        self._open()
        path = f"/{uuid.uuid4()}"
        self._paths[path] = _Registration(target)
        return f"http://{self._host}:{self.port}{path}"

    def unregister(self, url: str) -> None:
        """Forget the URL's path: requests for it get 404."""
        self._paths.pop(urllib.parse.urlsplit(url).path, None)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the listener is open)."""
        assert self._socket is not None, "the HTTP endpoint listener is not open"
        return int(self._socket.getsockname()[1])

    @property
    def is_open(self) -> bool:
        """Whether the listener has been opened (by a first registration)."""
        return self._socket is not None

    def _open(self) -> None:
        if self._socket is not None:
            return
        address = self.settings.http_endpoint_address
        # Bound now, synchronously, so that the URL is known when the create returns; the
        # server starts accepting on the next loop turn (connections wait in the backlog).
        sock = socket.create_server((address, self.settings.http_endpoint_port), backlog=128)
        sock.setblocking(False)
        self._socket = sock
        self._host = self._announced_host(address)
        self._starting = asyncio.get_running_loop().create_task(self._serve(sock))
        logger.info(
            "HTTP endpoint listener on %s:%d (URLs name %s)", address or "*", self.port, self._host
        )

    def _announced_host(self, address: str) -> str:
        announced = self.settings.http_endpoint_announced_address or address
        if announced and announced not in ("0.0.0.0", "::"):
            return f"[{announced}]" if ":" in announced else announced
        for candidate in self._local_addresses():
            with contextlib.suppress(ValueError):
                ip = ipaddress.ip_address(candidate)
                if ip.version == 4 and not ip.is_loopback:
                    return candidate
        return "127.0.0.1"

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._accepted, sock=sock)

    async def stop(self) -> None:
        """Close the listener and every connection; forget every path."""
        self._paths.clear()
        if self._starting is not None:
            await self._starting
            self._starting = None
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._socket = None

    # -- one connection --------------------------------------------------------------------------

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve_request(reader, writer, f"{peer[0]}:{peer[1]}" if peer else "?")
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                request = await _read_head(reader)
            headers, result = await self._route(request, reader, writer, peer)
        except HttpError as exc:
            headers, result = [], UploadResult(exc.status, exc.reason)
        level = logging.INFO if result.status < 400 else logging.WARNING
        logger.log(
            level,
            "%s %s: %d %s",
            "<" if result.status < 400 else "!",
            peer,
            result.status,
            result.reason,
        )
        await _respond(writer, result, headers)

    async def _route(
        self,
        request: _Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> tuple[list[tuple[str, str]], UploadResult]:
        registration = self._paths.get(request.path)
        if registration is None:
            raise HttpError(404, "Http end point not found")
        if request.method == "OPTIONS":
            return list(CORS), UploadResult(200, "OK")
        headers: list[tuple[str, str]] = []
        if registration.cookie is None:
            registration.cookie = str(random.getrandbits(63))
            headers.append(
                ("Set-Cookie", f"{COOKIE_NAME}={registration.cookie}; Path={request.path}")
            )
        elif _cookie(request.headers.get("cookie", "")) != registration.cookie:
            raise HttpError(400, "Invalid cookie")
        if request.method != "POST":
            raise HttpError(405, "Not allowed")
        content_type = request.headers.get("content-type", "")
        if not content_type:
            raise HttpError(400, "POST needs a Content-Type: multipart/form-data or the media's")
        try:
            sink = registration.target.open_upload()
        except UploadRefused as exc:
            raise HttpError(exc.status, exc.reason) from exc
        logger.info("< %s POST %s (%s)", peer, request.path, content_type)
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        chunks = _body(reader, request.headers)
        boundary = _boundary(content_type)
        media = _multipart_file(chunks, boundary) if boundary is not None else chunks
        taken = True
        try:
            async for data in media:
                # Once the media refuses (not a container, or ended), the rest is read and
                # dropped: closing with unread bytes would reset the connection and lose the
                # answer.
                taken = taken and await sink.write(data)
        except HttpError as exc:
            sink.abort(exc.reason)
            return headers, UploadResult(exc.status, exc.reason)
        except BaseException:
            sink.abort("the connection was lost")
            raise
        result = await sink.finish()
        return headers, result


# -- HTTP/1.1 bits ---------------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431, "request head too large") from exc
    if len(head) > HEADER_LIMIT:
        raise HttpError(431, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, f"malformed header line {line[:40]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    path = urllib.parse.urlsplit(parts[1]).path
    return _Request(parts[0].upper(), path, headers)


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The request body as it arrives: chunked or ``Content-Length``."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise HttpError(400, "malformed chunk size") from exc
            if size == 0:
                with contextlib.suppress(asyncio.IncompleteReadError):
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                return
            while size > 0:
                data = await reader.read(min(size, CHUNK))
                if not data:
                    raise asyncio.IncompleteReadError(b"", size)
                size -= len(data)
                yield data
            await reader.readexactly(2)
        return
    try:
        remaining = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise HttpError(400, "malformed Content-Length") from exc
    while remaining > 0:
        data = await reader.read(min(remaining, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(data)
        yield data


def _boundary(content_type: str) -> bytes | None:
    """The multipart boundary, None when the body is the media itself.

    Raises:
        HttpError: 400 for multipart without a boundary.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    found = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if found is None:
        raise HttpError(400, "multipart/form-data without a boundary")
    return (found.group(1) or found.group(2)).encode("latin-1")


async def _multipart_file(chunks: AsyncIterator[bytes], boundary: bytes) -> AsyncIterator[bytes]:
    """The content of the first part with a filename (RFC 7578), streamed.

    Raises:
        HttpError: 400 when no part carries a filename or the body ends inside a part.
    """
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # the first delimiter has no CRLF before it
    chunk_iter = chunks.__aiter__()

    async def more() -> bool:
        nonlocal buffer
        try:
            buffer += await chunk_iter.__anext__()
        except StopAsyncIteration:
            return False
        return True

    while True:
        # the next delimiter, then the part's headers
        while (start := buffer.find(delimiter)) < 0:
            buffer = buffer[-len(delimiter) :]
            if not await more():
                raise HttpError(400, "multipart body without a part holding a file (filename=)")
        buffer = buffer[start + len(delimiter) :]
        while len(buffer) < 2 and await more():
            pass
        if buffer.startswith(b"--"):
            raise HttpError(400, "multipart body without a part holding a file (filename=)")
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > HEADER_LIMIT or not await more():
                raise HttpError(400, "malformed multipart part headers")
        part_head = buffer[:end].decode("latin-1").lower()
        buffer = buffer[end + 4 :]
        if not re.search(r"content-disposition:[^\r\n]*filename", part_head):
            continue  # its content ends at the next delimiter
        # the file: stream everything before the next delimiter
        while True:
            cut = buffer.find(delimiter)
            if cut >= 0:
                if cut:
                    yield buffer[:cut]
                return
            keep = len(delimiter) - 1
            if len(buffer) > keep:
                yield buffer[:-keep]
                buffer = buffer[-keep:]
            if not await more():
                raise HttpError(400, "multipart body ends inside the file part")


def _cookie(header: str) -> str | None:
    for item in header.split(";"):
        name, _, value = item.strip().partition("=")
        if name == COOKIE_NAME:
            return value
    return None


async def _respond(
    writer: asyncio.StreamWriter, result: UploadResult, headers: list[tuple[str, str]]
) -> None:
    body = (result.reason + "\n").encode("utf-8")
    phrase = http.HTTPStatus(result.status).phrase
    lines = [f"HTTP/1.1 {result.status} {phrase}", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    with contextlib.suppress(ConnectionError):
        writer.write("\r\n".join(lines).encode("latin-1") + body)
        await writer.drain()
