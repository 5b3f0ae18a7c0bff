"""The client side of a Kurento connection, without sockets.

Requests go in with ``send_request`` (text comes out of ``data_to_send``); server text goes in with
``receive_text`` and replies and events come out of ``events_received``. Like kurento-client, it
remembers the last ``result.sessionId`` and sends it with every later request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import RpcError, error_class_for_code
from protocol.jsonrpc import (
    ErrorResponse,
    Notification,
    Request,
    Response,
    dumps,
    parse_server_message,
)


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The reply to request ``id``: a result, or an error."""

    id: int
    result: Any = None
    error: RpcError | None = None


@dataclass(frozen=True, slots=True)
class EventReceived:
    """An ``onEvent``: ``object`` and ``type`` route it, ``data`` is the event itself."""

    object: str
    type: str
    data: dict[str, Any]


def error_from_wire(error: dict[str, Any]) -> RpcError:
    """A typed exception for a wire error object (unknown codes keep their code)."""
    code = int(error.get("code", 0))
    message = str(error.get("message", ""))
    cls = error_class_for_code(code)
    if cls is None:
        exc = RpcError(message)
        exc.code = code  # type: ignore[misc]
        return exc
    return cls(message)


class ClientConnection:
    """State of one client connection: request ids, pending requests, the session id."""

    def __init__(self, session_id: str | None = None, first_id: int = 0) -> None:
        self.session_id = session_id
        self._next_id = first_id
        self.pending: dict[int, str] = {}
        self._outgoing: list[str] = []
        self._events: list[ReplyReceived | EventReceived] = []

    def send_request(
        self, method: str, params: dict[str, Any] | None = None, *, with_session: bool = True
    ) -> int:
        """Queue a request; returns its id."""
        request_id = self._next_id
        self._next_id += 1
        # kurento-client never adds the session to ping: a pong must not bind a new socket.
        if with_session and method != "ping" and self.session_id is not None:
            params = dict(params or {})
            params.setdefault("sessionId", self.session_id)
        self.pending[request_id] = method
        self._outgoing.append(dumps(Request(method, params, request_id)))
        return request_id

    def receive_text(self, text: str) -> None:
        """Take one text frame from the server."""
        message = parse_server_message(text)
        if isinstance(message, Notification):
            if message.method == "onEvent":
                value = message.params.get("value", {})
                self._events.append(
                    EventReceived(
                        str(value.get("object")),
                        str(value.get("type")),
                        dict(value.get("data") or {}),
                    )
                )
            return
        if isinstance(message, Response):
            request_id = _as_id(message.id)
            method = self.pending.pop(request_id, None) if request_id is not None else None
            result = message.result
            if method != "ping" and isinstance(result, dict):
                session_id = result.get("sessionId")
                if isinstance(session_id, str) and session_id:
                    self.session_id = session_id
            if request_id is not None:
                self._events.append(ReplyReceived(request_id, result=result))
        elif isinstance(message, ErrorResponse):
            request_id = _as_id(message.id)
            if request_id is not None:
                self.pending.pop(request_id, None)
                self._events.append(ReplyReceived(request_id, error=error_from_wire(message.error)))

    def events_received(self) -> list[ReplyReceived | EventReceived]:
        """Replies and events received since the last call."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Text frames to write, in order."""
        out, self._outgoing = self._outgoing, []
        return out


def _as_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
