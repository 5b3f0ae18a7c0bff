"""Bad input gets KMS's code and a clear message; the connection and other sessions carry on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulator.app import App, running_emulator
from tests.conftest import make_settings
from tests.wire import RawPeer

FRAMES: list[tuple[str, str, dict[str, Any]]] = [
    ("not json", "{nope", {"code": -32700, "message": "Parse error."}),
    (
        "json array",
        '[{"jsonrpc":"2.0","method":"ping","id":1}]',
        {"code": -32600, "message": "Invalid JSON-RPC request."},
    ),
    (
        "missing jsonrpc",
        '{"method":"ping","id":1}',
        {"code": -32600, "message": "Invalid JSON-RPC request."},
    ),
    (
        "missing method",
        '{"jsonrpc":"2.0","id":1}',
        {"code": -32600, "message": "Invalid JSON-RPC request."},
    ),
    (
        "method not a string",
        '{"jsonrpc":"2.0","method":7,"id":1}',
        {"code": -32600, "message": "Invalid JSON-RPC request."},
    ),
    (
        "missing id",
        '{"jsonrpc":"2.0","method":"ping"}',
        {"code": -32000, "message": "Ignoring response because of a notification request"},
    ),
]


@pytest.mark.parametrize(("case", "frame", "error"), FRAMES, ids=[f[0] for f in FRAMES])
async def test_bad_frame_answered_and_connection_kept(
    raw: RawPeer, case: str, frame: str, error: dict[str, Any]
) -> None:
    """Each malformed frame gets its JSON-RPC error; the next request still works."""
    await raw.send_text(frame)
    reply = await raw.reply()
    assert reply["error"] == error
    assert reply["id"] is None
    assert (await raw.result("ping"))["value"] == "pong"


REQUESTS: list[tuple[str, str, dict[str, Any] | None, int, str | None, str | None]] = [
    # (case, method, params, code, data.type, message)
    ("unknown method", "frobnicate", {}, -32601, None, "Method not found."),
    ("no params", "create", None, -32602, "INVALID_PARAMS", "'params' is required"),
    ("missing type", "create", {}, -32000, None, "'type' parameter is required"),
    (
        "type not a string",
        "create",
        {"type": 5},
        -32000,
        None,
        "'type' parameter should be a string",
    ),
    (
        "unknown type",
        "create",
        {"type": "Nope"},
        40108,
        "MEDIA_OBJECT_NOT_AVAILABLE",
        "Factory 'Nope' not found",
    ),
    (
        "abstract type",
        "create",
        {"type": "MediaElement"},
        40108,
        "MEDIA_OBJECT_NOT_AVAILABLE",
        "Factory 'MediaElement' not found",
    ),
    (
        "unknown object",
        "invoke",
        {"object": "x", "operation": "getName"},
        40101,
        "MEDIA_OBJECT_NOT_FOUND",
        "Object 'x' not found",
    ),
    (
        "missing object",
        "invoke",
        {"operation": "getName"},
        -32000,
        None,
        "'object' parameter is required",
    ),
    (
        "missing constructor params",
        "create",
        {"type": "PassThrough"},
        40001,
        "MARSHALL_ERROR",
        "'constructorParams' is required",
    ),
    (
        "constructor params not object",
        "create",
        {"type": "PassThrough", "constructorParams": [1]},
        40001,
        "MARSHALL_ERROR",
        "'constructorParams' should be an object",
    ),
    (
        "wrong constructor param type",
        "create",
        {"type": "PassThrough", "constructorParams": {"mediaPipeline": 5}},
        40001,
        "MARSHALL_ERROR",
        "'mediaPipeline' parameter should be a string",
    ),
    (
        "constructor param unknown object",
        "create",
        {"type": "PassThrough", "constructorParams": {"mediaPipeline": "gone"}},
        40101,
        "MEDIA_OBJECT_NOT_FOUND",
        "Object 'gone' not found",
    ),
    (
        "subscribe unknown event",
        "subscribe",
        {"object": "manager_ServerManager", "type": "OnIceCandidate"},
        40106,
        "MEDIA_OBJECT_EVENT_NOT_SUPPORTED",
        "Event 'OnIceCandidate' not supported",
    ),
    (
        "unknown operation",
        "invoke",
        {
            "object": "manager_ServerManager",
            "operation": "frobnicate",
            "operationParams": {"a": 1, "b": 2},
        },
        40008,
        "MALFORMED_TRANSACTION",
        "Method 'frobnicate' with 2 parameters not found",
    ),
    (
        "missing operation params",
        "invoke",
        {"object": "manager_ServerManager", "operation": "getKmd"},
        40001,
        "MARSHALL_ERROR",
        "'operationParams' is required",
    ),
    (
        "wrong operation param type",
        "invoke",
        {
            "object": "manager_ServerManager",
            "operation": "getKmd",
            "operationParams": {"moduleName": 3},
        },
        40001,
        "MARSHALL_ERROR",
        "'moduleName' parameter should be a string",
    ),
    (
        "setter wrong type",
        "invoke",
        {
            "object": "manager_ServerManager",
            "operation": "setName",
            "operationParams": {"name": True},
        },
        40001,
        "MARSHALL_ERROR",
        "'name' parameter should be a string",
    ),
    (
        "transaction operations not array",
        "transaction",
        {"operations": {}},
        -32000,
        None,
        "'operations' parameter should be an array",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "params", "code", "data_type", "message"),
    REQUESTS,
    ids=[r[0] for r in REQUESTS],
)
async def test_bad_request_answered_with_kms_error(
    raw: RawPeer,
    case: str,
    method: str,
    params: dict[str, Any] | None,
    code: int,
    data_type: str | None,
    message: str,
) -> None:
    """Each bad request gets KMS's code, data.type and message."""
    reply = await raw.call(method, params)
    expected: dict[str, Any] = {"code": code, "message": message}
    if data_type is not None:
        expected["data"] = {"type": data_type}
    assert reply["error"] == expected


async def test_wrong_object_type_for_parameter(raw: RawPeer) -> None:
    """An id of the wrong class for an object parameter is a MARSHALL_ERROR naming both."""
    created = await raw.result("create", {"type": "MediaPipeline"})
    pipeline = created["value"]
    element = (
        await raw.result(
            "create", {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
        )
    )["value"]
    reply = await raw.call(
        "invoke", {"object": element, "operation": "connect", "operationParams": {"sink": pipeline}}
    )
    assert reply["error"]["code"] == 40001
    assert "should be a MediaElement" in reply["error"]["message"]


async def test_invalid_enum_value_is_marshall_error(raw: RawPeer) -> None:
    """An enum value outside the KMD list is rejected with the accepted values."""
    pipeline = (await raw.result("create", {"type": "MediaPipeline"}))["value"]
    element = (
        await raw.result(
            "create", {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
        )
    )["value"]
    reply = await raw.call(
        "invoke",
        {
            "object": element,
            "operation": "getSourceConnections",
            "operationParams": {"mediaType": "SMELL"},
        },
    )
    assert reply["error"]["code"] == 40001
    assert "AUDIO, DATA, VIDEO" in reply["error"]["message"]


async def test_oversized_message_rejected_connection_kept() -> None:
    """A message over the configured limit is answered with -32600 and the limit."""
    async with (
        running_emulator(make_settings(max_message_size=200)) as server,
        RawPeer.open(server.urls["ws"]) as raw,
    ):
        await raw.send("ping", {"padding": "x" * 500})
        reply = await raw.reply()
        assert reply["error"]["code"] == -32600
        assert "limit of 200" in reply["error"]["message"]
        assert (await raw.result("ping"))["value"] == "pong"


async def test_bad_input_leaves_other_sessions_untouched(server: App) -> None:
    """Garbage on one connection does not disturb another session's objects and events."""
    url = server.urls["ws"]
    async with RawPeer.open(url) as good, RawPeer.open(url) as bad:
        pipeline = (await good.result("create", {"type": "MediaPipeline"}))["value"]
        for frame in ["{", "[]", '{"jsonrpc":"2.0","method":"x","id":1}', "null", '"x"']:
            await bad.send_text(frame)
            await bad.reply()
        assert (await good.result("describe", {"object": pipeline}))["type"] == "MediaPipeline"


async def test_client_disconnecting_mid_request_loses_nothing(server: App) -> None:
    """A client that leaves while its request runs does not disturb the server."""
    url = server.urls["ws"]
    async with RawPeer.open(url) as leaving:
        await leaving.send(
            "invoke",
            {
                "object": "manager_ServerManager",
                "operation": "getUsedCpu",
                "operationParams": {"interval": 300},
            },
        )
    async with RawPeer.open(url) as staying:
        assert (await staying.result("ping"))["value"] == "pong"
        assert (await staying.result("create", {"type": "MediaPipeline"}))["value"]


async def test_thousand_pipelines_in_one_session_and_release(raw: RawPeer) -> None:
    """1,000 pipelines in one session are listed and all released."""
    for _ in range(1000):
        await raw.send("create", {"type": "MediaPipeline"})
    pipelines = []
    while len(pipelines) < 1000:
        reply = await raw.reply()
        pipelines.append(reply["result"]["value"])
    listed = await raw.result(
        "invoke", {"object": "manager_ServerManager", "operation": "getPipelines"}
    )
    assert sorted(listed["value"]) == sorted(pipelines)
    for pipeline in pipelines:
        await raw.send("release", {"object": pipeline})
    for _ in pipelines:
        assert "result" in await raw.reply()
    listed = await raw.result(
        "invoke", {"object": "manager_ServerManager", "operation": "getPipelines"}
    )
    assert listed["value"] == []


async def test_deeply_nested_json_is_a_parse_error(raw: RawPeer) -> None:
    """JSON nested 100,000 deep (past the interpreter's recursion limit) gets -32700; the
    connection carries on."""
    await raw.send_text("[" * 100_000)
    assert (await raw.reply())["error"]["code"] == -32700
    await raw.send_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    assert (await raw.reply())["error"]["code"] == -32700
    assert (await raw.result("ping"))["value"] == "pong"


async def test_invalid_utf8_binary_frame_is_a_parse_error(raw: RawPeer) -> None:
    """A binary frame of invalid UTF-8 is read with replacement characters: inside a string it
    is a request like another, elsewhere -32700; the connection carries on."""
    await raw.ws.send(b'{"jsonrpc":"2.0","method":"ping","id":1,"x":"\xff\xfe\xc3"}')
    assert (await raw.reply())["result"]["value"] == "pong"
    await raw.ws.send(b'{"jsonrpc":"2.0",\xff"method":"ping","id":2}')
    assert (await raw.reply())["error"]["code"] == -32700
    assert (await raw.result("ping"))["value"] == "pong"


async def test_invalid_utf8_text_frame_closes_only_that_connection(server: App) -> None:
    """A text frame that is not UTF-8 breaks RFC 6455: that connection is closed with 1007;
    another session is untouched."""
    url = server.urls["ws"]
    async with RawPeer.open(url) as good, RawPeer.open(url) as bad:
        pipeline = (await good.result("create", {"type": "MediaPipeline"}))["value"]
        await bad.ws.send(b'{"jsonrpc":"2.0","method":"ping","id":1,"x":"\xff"}', text=True)
        await asyncio.wait_for(bad.ws.wait_closed(), timeout=5)
        assert bad.ws.close_code == 1007
        assert (await good.result("describe", {"object": pipeline}))["type"] == "MediaPipeline"


async def test_lone_surrogate_escape_gets_an_answer(raw: RawPeer) -> None:
    """An object id holding a lone surrogate (``\\ud800``, valid JSON) is answered with 40101
    naming it (escaped) and the connection keeps working. Before the fix the reply could not be
    encoded as UTF-8: the connection's writer died and every later reply was lost."""
    await raw.send_text(
        '{"jsonrpc":"2.0","method":"describe","params":{"object":"x\\ud800"},"id":1}'
    )
    reply = await raw.reply()
    assert reply["error"]["code"] == 40101 and "x\ud800" in reply["error"]["message"]
    assert (await raw.result("ping"))["value"] == "pong"
