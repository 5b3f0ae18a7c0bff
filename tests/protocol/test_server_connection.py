"""The server connection state machine: session injection, binding, notifications, framing."""

from __future__ import annotations

import json

from protocol.errors import MediaObjectNotFound
from protocol.server import ServerConnection


def _one(conn: ServerConnection, text: str) -> object:
    conn.receive_text(text)
    (event,) = conn.events_received()
    return event.request


def test_server_connection_injects_bound_session() -> None:
    """Once a reply carried sessionId, requests without one get it injected."""
    conn = ServerConnection()
    request = _one(conn, '{"jsonrpc":"2.0","method":"describe","params":{"object":"x"},"id":1}')
    conn.send_result(request, {"sessionId": "S", "type": "T"})  # type: ignore[arg-type]
    ping = _one(conn, '{"jsonrpc":"2.0","method":"ping","id":2}')
    assert ping.params == {"sessionId": "S"}  # type: ignore[attr-defined]


def test_server_connection_keeps_explicit_session() -> None:
    """An explicit sessionId is used as is, not replaced by the bound one."""
    conn = ServerConnection()
    conn.session_id = "S"
    req = _one(conn, '{"jsonrpc":"2.0","method":"ping","params":{"sessionId":"X"},"id":2}')
    assert req.params == {"sessionId": "X"}  # type: ignore[attr-defined]


def test_server_connection_rebinds_from_each_reply() -> None:
    """Each successful reply's sessionId rebinds the connection; errors do not."""
    conn = ServerConnection()
    req = _one(conn, '{"jsonrpc":"2.0","method":"connect","params":{"sessionId":"A"},"id":1}')
    conn.send_result(req, {"sessionId": "A", "serverId": "x"})  # type: ignore[arg-type]
    conn.send_error(req, MediaObjectNotFound("gone"))  # type: ignore[arg-type]
    assert conn.session_id == "A"
    conn.send_result(req, {"sessionId": "B"})  # type: ignore[arg-type]
    assert conn.session_id == "B"


def test_server_connection_answers_bad_frames_without_events() -> None:
    """Unparsable text is answered with -32700 and produces no request."""
    conn = ServerConnection()
    conn.receive_text("nope")
    assert conn.events_received() == []
    (reply,) = conn.data_to_send()
    assert json.loads(reply) == {
        "error": {"code": -32700, "message": "Parse error."},
        "id": None,
        "jsonrpc": "2.0",
    }


def test_server_connection_notification_with_result_is_an_error() -> None:
    """KMS answers a notification whose method returns a result with -32000."""
    conn = ServerConnection()
    req = _one(conn, '{"jsonrpc":"2.0","method":"ping"}')
    conn.send_result(req, {"value": "pong"})  # type: ignore[arg-type]
    (reply,) = conn.data_to_send()
    assert json.loads(reply)["error"] == {
        "code": -32000,
        "message": "Ignoring response because of a notification request",
    }


def test_server_connection_notification_without_result_is_silent() -> None:
    """A notification whose method returns nothing gets no reply."""
    conn = ServerConnection()
    req = _one(conn, '{"jsonrpc":"2.0","method":"closeSession","params":{"sessionId":"s"}}')
    conn.send_result(req, None)  # type: ignore[arg-type]
    assert conn.data_to_send() == []


def test_server_connection_rejects_oversized_messages() -> None:
    """A message over the size limit is answered -32600 with the limit in the message."""
    conn = ServerConnection(max_message_size=10)
    conn.receive_text('{"jsonrpc":"2.0","method":"ping","id":1}')
    assert conn.events_received() == []
    (reply,) = conn.data_to_send()
    error = json.loads(reply)["error"]
    assert error["code"] == -32600
    assert "limit of 10" in error["message"]
