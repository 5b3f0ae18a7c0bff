"""Property tests of the JSON-RPC codec and the server connection (issue 18, fuzzing).

What goes in is anything a client could send: text, bytes (invalid UTF-8 included), JSON of any
shape and depth. What may come out: a message, or one of our ``RpcError``s. Messages the codec
writes read back equal (round trip), and every text the server would write is valid UTF-8 (a
WebSocket text frame must be).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import RpcError
from protocol.jsonrpc import (
    ErrorResponse,
    Notification,
    Request,
    Response,
    dumps,
    parse_request,
    parse_server_message,
)
from protocol.server import ServerConnection

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
request_ids = st.integers() | st.text(max_size=20)


@given(st.text(min_size=1, max_size=30), json_objects | st.none(), request_ids)
def test_fuzz_request_round_trip(method: str, params: dict[str, Any] | None, rid: Any) -> None:
    """A request written by ``dumps`` parses back equal."""
    request = Request(method, params, rid)
    assert parse_request(dumps(request)) == request


@given(st.text(min_size=1, max_size=30), json_objects | st.none())
def test_fuzz_notification_request_round_trip(method: str, params: dict[str, Any] | None) -> None:
    """A request without id (a notification) parses back as one."""
    request = Request(method, params, None, has_id=False)
    assert parse_request(dumps(request)) == request


@given(request_ids, json_values)
def test_fuzz_response_round_trip(rid: Any, result: Any) -> None:
    """A result reply parses back equal on the client side."""
    response = Response(rid, result)
    assert parse_server_message(dumps(response)) == response


@given(request_ids | st.none(), st.integers(-32768, 49999), st.text(max_size=40))
def test_fuzz_error_response_round_trip(rid: Any, code: int, message: str) -> None:
    """An error reply parses back equal, code and message included."""
    reply = ErrorResponse(rid, {"code": code, "message": message, "data": {"type": "X"}})
    parsed = parse_server_message(dumps(reply))
    assert parsed == reply
    assert isinstance(parsed, ErrorResponse)
    assert (parsed.code, parsed.message, parsed.data_type) == (code, message, "X")


@given(json_objects)
def test_fuzz_event_notification_round_trip(params: dict[str, Any]) -> None:
    """An ``onEvent`` notification parses back equal."""
    event = Notification("onEvent", params)
    assert parse_server_message(dumps(event)) == event


@given(st.binary(max_size=200))
def test_fuzz_bytes_raise_only_rpc_errors(data: bytes) -> None:
    """Any bytes, invalid UTF-8 included, parse or raise one of our RpcErrors."""
    with contextlib.suppress(RpcError):
        parse_request(data)
    with contextlib.suppress(RpcError):
        parse_server_message(data)


@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":', '{"jsonrpc":"2.0","params":']))
def test_fuzz_deep_nesting_is_a_parse_error_or_a_request(depth: int, opener: str) -> None:
    """JSON nested deeper than the interpreter's recursion limit is a parse error, not a crash."""
    with contextlib.suppress(RpcError):
        parse_request(opener * depth)


@given(st.lists(st.text(max_size=120) | json_values.map(json.dumps), max_size=5))
def test_fuzz_server_connection_answers_in_utf8(frames: list[str]) -> None:
    """Whatever frames arrive, the connection raises nothing and every text it writes is valid
    UTF-8 (lone surrogates from ``\\ud800`` escapes included)."""
    connection = ServerConnection(max_message_size=100)
    for frame in frames:
        connection.receive_text(frame)
    for event in connection.events_received():
        connection.send_error(event.request, RpcError(f"echo {event.request.method}"))
    for text in connection.data_to_send():
        text.encode("utf-8")
        assert isinstance(json.loads(text), dict)


@given(st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1))
def test_fuzz_lone_surrogates_in_replies_are_escaped(method: str) -> None:
    """A reply naming a method that holds lone surrogates is still a valid UTF-8 frame."""
    connection = ServerConnection()
    connection.receive_text(json.dumps({"jsonrpc": "2.0", "method": method, "id": 1}))
    (event,) = connection.events_received()
    connection.send_error(event.request, RpcError(f"method {event.request.method!s} unknown"))
    (text,) = connection.data_to_send()
    text.encode("utf-8")
