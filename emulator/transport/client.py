"""An asyncio Kurento client over websockets, pumping ``protocol/client.py``.

    async with await KurentoClient.connect("ws://127.0.0.1:8888/kurento") as client:
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        candidates = await endpoint.subscribe("IceCandidateFound")
        answer = await endpoint.invoke("processOffer", offer=sdp)
        event = await candidates.get(timeout=5)

When the socket drops it reconnects with backoff and resumes the session with ``connect``, as
kurento-client does; ``reconnections`` reports each resume (``same_session`` False after a server
restart, when the objects are gone).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection as WsConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from protocol.client import ClientConnection, EventReceived, ReplyReceived
from protocol.errors import InvalidSession, RpcError

logger = logging.getLogger(__name__)


class ConnectionLost(ConnectionError):
    """The request was sent but the connection closed before its reply."""


@dataclass(frozen=True, slots=True)
class Reconnection:
    """A completed reconnection: whether the server still knew our session."""

    same_session: bool
    session_id: str | None
    server_id: str | None


class EventStream:
    """Events of one (object, type) subscription, as an async iterator."""

    def __init__(self, client: KurentoClient, object_id: str, event_type: str) -> None:
        self.client = client
        self.object_id = object_id
        self.type = event_type
        self.subscription: str | None = None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next event's data, waiting at most ``timeout`` seconds."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        """Unsubscribe on the server and stop collecting."""
        self.client.streams.discard(self)
        if self.subscription is not None and not self.client.closed:
            await self.client.call(
                "unsubscribe", {"object": self.object_id, "subscription": self.subscription}
            )


class RemoteObject:
    """A Kurento object on the server, by id."""

    def __init__(self, client: KurentoClient, object_id: str, type_name: str) -> None:
        self.client = client
        self.id = object_id
        self.type = type_name

    async def invoke(self, operation: str, **params: Any) -> Any:
        """Invoke an operation (KMD name) with KMD-named parameters; returns ``value``."""
        message: dict[str, Any] = {"object": self.id, "operation": operation}
        if params:
            message["operationParams"] = {k: _ids(v) for k, v in params.items()}
        result = await self.client.call("invoke", message)
        return result.get("value") if isinstance(result, dict) else None

    async def create(self, type_name: str, **params: Any) -> RemoteObject:
        """Create a child: an element of this pipeline, or a HubPort of this hub."""
        key = "hub" if type_name == "HubPort" else "mediaPipeline"
        return await self.client.create(type_name, **{key: self.id, **params})

    async def connect(self, sink: RemoteObject, media_type: str | None = None) -> None:
        """``connect(sink[, mediaType])``."""
        extra = {"mediaType": media_type} if media_type else {}
        await self.invoke("connect", sink=sink, **extra)

    async def subscribe(self, event_type: str) -> EventStream:
        """Subscribe to an event; returns its stream."""
        return await self.client.subscribe(self.id, event_type)

    async def release(self) -> None:
        """Release the object."""
        await self.client.call("release", {"object": self.id})


class KurentoClient:
    """A connection to a Kurento server with session resume."""

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None, reconnect: bool) -> None:
        self.url = url
        self.ssl_context = ssl_context
        self.reconnect = reconnect
        self.protocol = ClientConnection()
        self.server_id: str | None = None
        self.closed = False
        self.streams: set[EventStream] = set()
        self.reconnections: asyncio.Queue[Reconnection] = asyncio.Queue()
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._ws: WsConnection | None = None
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.on_event: Callable[[EventReceived], None] | None = None
        """Sees every event, whatever the streams (a relay to another connection)."""

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reconnect: bool = True,
        timeout: float = 10.0,
    ) -> KurentoClient:
        """Open a connection (kurento-client's first ``ping``, without the module check)."""
        client = cls(url, ssl_context=ssl_context, reconnect=reconnect)
        try:
            await asyncio.wait_for(client._open(), timeout)
        except BaseException:
            # A server that accepted the socket but never answered the ping: do not leak it.
            await client.close()
            raise
        return client

    async def __aenter__(self) -> KurentoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session_id(self) -> str | None:
        """The session this client works in."""
        return self.protocol.session_id

    @property
    def connected(self) -> bool:
        """Whether the socket is open now (False while reconnecting, and after a drop)."""
        return self._connected.is_set()

    async def wait_closed(self) -> None:
        """Wait until the current socket closes (for good when ``reconnect`` is off)."""
        if self._reader is not None:
            await asyncio.shield(self._reader)

    # -- requests ------------------------------------------------------------------------------

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0
    ) -> Any:
        """Send a request and wait for its result; an error reply raises its typed RpcError."""
        if self.closed:
            raise ConnectionLost("client is closed")
        if not self.reconnect and self._reader is not None and self._reader.done():
            raise ConnectionLost("connection closed (reconnect is off)")
        await asyncio.wait_for(self._connected.wait(), timeout)
        request_id = self.protocol.send_request(method, params)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        await self._flush()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.pop(request_id, None)

    async def ping(self) -> Any:
        """``ping``."""
        return await self.call("ping", {"interval": 5000})

    async def create(self, type_name: str, **constructor_params: Any) -> RemoteObject:
        """Create an object; object-valued parameters may be RemoteObjects."""
        params: dict[str, Any] = {"type": type_name, "properties": {}}
        if constructor_params:
            params["constructorParams"] = {k: _ids(v) for k, v in constructor_params.items()}
        result = await self.call("create", params)
        return RemoteObject(self, result["value"], type_name)

    async def subscribe(self, object_id: str, event_type: str) -> EventStream:
        """Subscribe to an event and collect it into a stream."""
        stream = EventStream(self, object_id, event_type)
        self.streams.add(stream)
        result = await self.call("subscribe", {"object": object_id, "type": event_type})
        stream.subscription = result["value"]
        return stream

    async def server_manager(self) -> RemoteObject:
        """The ``manager_ServerManager`` object."""
        return RemoteObject(self, "manager_ServerManager", "ServerManager")

    # -- connection ------------------------------------------------------------------------------

    async def _open(self) -> None:
        self._ws = await ws_connect(
            self.url, ssl=self.ssl_context, compression=None, ping_interval=None, max_size=None
        )
        self._reader = asyncio.create_task(self._read(self._ws), name=f"kurento-client {self.url}")
        self._connected.set()
        await self.call("ping", {"interval": 5000})

    async def _flush(self) -> None:
        ws = self._ws
        for text in self.protocol.data_to_send():
            if ws is None:
                raise ConnectionLost("not connected")
            try:
                await ws.send(text)
            except ConnectionClosed as exc:
                raise ConnectionLost(str(exc)) from exc

    async def _read(self, ws: WsConnection) -> None:
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.protocol.receive_text(text)
                for event in self.protocol.events_received():
                    self._dispatch(event)
        except ConnectionClosed:
            pass
        finally:
            self._connected.clear()
            self._fail_pending(ConnectionLost("connection closed before the reply"))
            if self.reconnect and not self.closed:
                asyncio.get_running_loop().create_task(self._reconnect())

    def _dispatch(self, event: ReplyReceived | EventReceived) -> None:
        if isinstance(event, EventReceived):
            if self.on_event is not None:
                self.on_event(event)
            for stream in list(self.streams):
                if stream.object_id == event.object and stream.type == event.type:
                    stream.queue.put_nowait(event.data)
            return
        future = self._waiters.get(event.id)
        if future is None or future.done():
            return
        if event.error is not None:
            future.set_exception(event.error)
        else:
            future.set_result(event.result)

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(exc)

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self.closed:
            try:
                self._ws = await ws_connect(
                    self.url, ssl=self.ssl_context, compression=None, ping_interval=None
                )
            except (TimeoutError, OSError, WebSocketException):
                await asyncio.sleep(delay)
                delay = min(delay * 1.6, 10.0)
                continue
            self._reader = asyncio.create_task(self._read(self._ws))
            self._connected.set()
            await self._resume()
            return

    async def _resume(self) -> None:
        session_id = self.protocol.session_id
        try:
            await self.call("ping")
            result = await self.call("connect", {"sessionId": session_id} if session_id else None)
            same = True
        except InvalidSession:
            logger.info("session %s unknown after reconnect: starting a new one", session_id)
            self.protocol.session_id = None
            result = await self.call("connect")
            same = False
        except (TimeoutError, RpcError, ConnectionLost) as exc:
            logger.info("resume failed: %s", exc)
            return
        self.server_id = result.get("serverId")
        self.reconnections.put_nowait(Reconnection(same, self.session_id, self.server_id))

    async def close(self) -> None:
        """Close the socket (no release, like kurento-client's ``close()``)."""
        self.closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            # asyncio.wait, not suppress(CancelledError): the reader may end cancelled, but a
            # cancellation of the caller must go on (ServerPool.close() waits for its tasks)
            await asyncio.wait([self._reader])
            if not self._reader.cancelled():
                self._reader.result()
        self._fail_pending(ConnectionLost("client closed"))


def _ids(value: Any) -> Any:
    """RemoteObjects become ids, recursively."""
    if isinstance(value, RemoteObject):
        return value.id
    if isinstance(value, list):
        return [_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: _ids(v) for k, v in value.items()}
    return value
