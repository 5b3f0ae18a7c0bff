"""JSON-RPC framing: parsing, KMS's serialisation, and fuzzing that only our errors come out."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import InvalidRequest, ParseError, RpcError
from protocol.jsonrpc import ErrorResponse, Request, Response, dumps, parse_request


def test_dumps_compact_sorted_keys() -> None:
    """Replies are compact with keys in alphabetical order, as jsoncpp writes them."""
    text = dumps(Response(3, {"value": "x", "sessionId": "s"}))
    assert text == '{"id":3,"jsonrpc":"2.0","result":{"sessionId":"s","value":"x"}}'


def test_parse_request_reads_method_params_id() -> None:
    """A well-formed request keeps its method, params and id."""
    req = parse_request('{"jsonrpc":"2.0","method":"ping","params":{"interval":5000},"id":0}')
    assert req == Request("ping", {"interval": 5000}, 0)


def test_parse_request_without_id_is_notification() -> None:
    """A request without id is a notification."""
    req = parse_request('{"jsonrpc":"2.0","method":"ping"}')
    assert not req.has_id


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '[{"jsonrpc":"2.0","method":"ping","id":1}]',
        '{"method":"ping","id":1}',
        '{"jsonrpc":"1.0","method":"ping","id":1}',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"2.0","method":5,"id":1}',
        '{"jsonrpc":"2.0","method":"ping","params":[1],"id":1}',
        '"ping"',
    ],
)
def test_parse_request_rejects_non_requests(text: str) -> None:
    """Arrays (batches), wrong versions and missing methods are -32600."""
    with pytest.raises(InvalidRequest) as info:
        parse_request(text)
    assert info.value.to_wire() == {"code": -32600, "message": "Invalid JSON-RPC request."}


def test_parse_request_rejects_non_json() -> None:
    """Text that is not JSON is -32700 Parse error."""
    with pytest.raises(ParseError) as info:
        parse_request("{not json")
    assert info.value.to_wire() == {"code": -32700, "message": "Parse error."}


def test_error_response_shape() -> None:
    """Kurento errors carry data.type; errors never carry sessionId."""
    from protocol.errors import MediaObjectNotFound

    reply = ErrorResponse.from_error(5, MediaObjectNotFound("Object '1234567890' not found"))
    assert json.loads(dumps(reply)) == {
        "error": {
            "code": 40101,
            "data": {"type": "MEDIA_OBJECT_NOT_FOUND"},
            "message": "Object '1234567890' not found",
        },
        "id": 5,
        "jsonrpc": "2.0",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.text())
def test_parse_request_fuzz_text_raises_only_rpc_errors(text: str) -> None:
    """Arbitrary text either parses or raises one of our RpcErrors."""
    with contextlib.suppress(RpcError):
        parse_request(text)


@given(json_values)
def test_parse_request_fuzz_json_raises_only_rpc_errors(value: object) -> None:
    """Arbitrary JSON either parses or raises one of our RpcErrors."""
    with contextlib.suppress(RpcError):
        parse_request(json.dumps(value))


@given(st.dictionaries(st.sampled_from(["jsonrpc", "method", "id", "params"]), json_values))
def test_parse_request_fuzz_request_like_objects(value: dict[str, object]) -> None:
    """Request-like objects either parse or raise one of our RpcErrors."""
    with contextlib.suppress(RpcError):
        parse_request(json.dumps(value))
