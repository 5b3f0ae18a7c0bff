"""The server side of one Kurento WebSocket connection, without sockets.

Text goes in with ``receive_text``; requests come out of ``events_received``; replies and events go
in with ``send_result``/``send_error``/``send_event``; text comes out of ``data_to_send``.

Session rules reproduced here (protocol.md 2.2, ``WebSocketTransport.cpp``,
``ServerMethods::process``): the connection is bound to the session named by the last successful
reply's ``result.sessionId``, and a request without ``params.sessionId`` gets the bound session
injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import InvalidRequest, RpcError, ServerError
from protocol.jsonrpc import ErrorResponse, Notification, Request, Response, dumps, parse_request

NOTIFICATION_WITH_RESULT = "Ignoring response because of a notification request"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A well-formed request, with the bound session already injected."""

    request: Request
    size: int


class ServerConnection:
    """State of one client connection: its bound session and its outgoing text."""

    def __init__(self, max_message_size: int | None = None) -> None:
        self.session_id: str | None = None
        self.max_message_size = max_message_size
        self._events: list[RequestReceived] = []
        self._outgoing: list[str] = []

    def receive_text(self, text: str) -> None:
        """Take one WebSocket text frame."""
        if self.max_message_size is not None and len(text) > self.max_message_size:
            self._send_error_reply(
                None,
                InvalidRequest(
                    f"Message of {len(text)} characters exceeds the limit of "
                    f"{self.max_message_size} (setting max_message_size)"
                ),
            )
            return
        try:
            request = parse_request(text)
        except RpcError as exc:
            self._send_error_reply(None, exc)
            return
        self._events.append(RequestReceived(self._inject_session(request), len(text)))

    def _inject_session(self, request: Request) -> Request:
        if self.session_id is None:
            return request
        params = dict(request.params) if request.params is not None else {}
        if "sessionId" in params:
            return request
        params["sessionId"] = self.session_id
        return request.with_params(params)

    def events_received(self) -> list[RequestReceived]:
        """Requests received since the last call."""
        events, self._events = self._events, []
        return events

    def send_result(self, request: Request, result: Any) -> str | None:
        """Answer a request with a result; returns the reply text (None for notifications)."""
        if not request.has_id:
            if result is None:
                return None
            return self._send_error_reply(None, ServerError(NOTIFICATION_WITH_RESULT))
        text = dumps(Response(request.id, result))
        self._bind_from_result(result)
        self._outgoing.append(text)
        return text

    def send_error(self, request: Request, error: RpcError) -> str | None:
        """Answer a request with an error; returns the reply text (None for notifications)."""
        if not request.has_id:
            return None
        return self._send_error_reply(request.id, error)

    def send_cached(self, text: str, result: Any) -> None:
        """Send a reply replayed from the request cache."""
        self._bind_from_result(result)
        self._outgoing.append(text)

    def send_event(self, params: dict[str, Any]) -> None:
        """Push an ``onEvent`` notification."""
        self._outgoing.append(dumps(Notification("onEvent", params)))

    def _send_error_reply(self, request_id: Any, error: RpcError) -> str:
        text = dumps(ErrorResponse.from_error(request_id, error))
        self._outgoing.append(text)
        return text

    def _bind_from_result(self, result: Any) -> None:
        if isinstance(result, dict):
            session_id = result.get("sessionId")
            if isinstance(session_id, str) and session_id:
                self.session_id = session_id

    def data_to_send(self) -> list[str]:
        """Text frames to write, in order."""
        out, self._outgoing = self._outgoing, []
        return out
