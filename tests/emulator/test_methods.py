"""The 13 JSON-RPC methods over a real WebSocket, with KMS's reply shapes (protocol.md 2.3-2.12)."""

from __future__ import annotations

import re

from emulator.app import App
from tests.wire import RawPeer

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
PIPELINE_ID = re.compile(rf"^{UUID}_kurento\.MediaPipeline$")


async def _pipeline(raw: RawPeer) -> str:
    result = await raw.result("create", {"type": "MediaPipeline", "properties": {}})
    return str(result["value"])


async def test_ping_answers_pong_without_session(raw: RawPeer) -> None:
    """A first ping is answered pong without sessionId."""
    reply = await raw.call("ping", {"interval": 5000})
    assert reply == {"id": reply["id"], "jsonrpc": "2.0", "result": {"value": "pong"}}


async def test_ping_echoes_bound_session(raw: RawPeer) -> None:
    """Once bound, the session is injected and echoed by ping."""
    await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    assert re.fullmatch(UUID, session)


async def test_create_pipeline_id_shape_and_session(raw: RawPeer) -> None:
    """create returns <uuid>_kurento.MediaPipeline and a new session id."""
    result = await raw.result("create", {"type": "MediaPipeline", "properties": {}})
    assert PIPELINE_ID.match(result["value"])
    assert re.fullmatch(UUID, result["sessionId"])


async def test_create_element_id_prefixed_by_pipeline(raw: RawPeer) -> None:
    """Elements are <pipeline id>/<uuid>_kurento.<Type>; qualified type names work too."""
    pipeline = await _pipeline(raw)
    result = await raw.result(
        "create", {"type": "kurento.PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
    )
    assert re.fullmatch(rf"{re.escape(pipeline)}/{UUID}_kurento\.PassThrough", result["value"])


async def test_create_hub_port_is_child_of_hub(raw: RawPeer) -> None:
    """HubPort ids are prefixed by their hub's id."""
    pipeline = await _pipeline(raw)
    hub = (
        await raw.result(
            "create", {"type": "Composite", "constructorParams": {"mediaPipeline": pipeline}}
        )
    )["value"]
    port = await raw.result("create", {"type": "HubPort", "constructorParams": {"hub": hub}})
    assert port["value"].startswith(f"{hub}/")
    assert port["value"].endswith("_kurento.HubPort")


async def test_describe_server_manager(raw: RawPeer) -> None:
    """describe of manager_ServerManager, as the JS client's second request."""
    result = await raw.result("describe", {"object": "manager_ServerManager"})
    assert result["hierarchy"] == ["kurento.MediaObject"]
    assert result["qualifiedType"] == "kurento.ServerManager"
    assert result["type"] == "ServerManager"
    assert re.fullmatch(UUID, result["sessionId"])


async def test_invoke_void_returns_value_null(raw: RawPeer) -> None:
    """Void methods answer "value": null."""
    pipeline = await _pipeline(raw)
    reply = await raw.call(
        "invoke",
        {"object": pipeline, "operation": "addTag", "operationParams": {"key": "k", "value": "v"}},
    )
    assert reply["result"]["value"] is None
    assert "value" in reply["result"]


async def test_subscribe_unsubscribe_shapes(raw: RawPeer) -> None:
    """subscribe returns a subscription UUID; unsubscribe returns only sessionId."""
    pipeline = await _pipeline(raw)
    result = await raw.result("subscribe", {"object": pipeline, "type": "Error"})
    assert re.fullmatch(UUID, result["value"])
    reply = await raw.result("unsubscribe", {"object": pipeline, "subscription": result["value"]})
    assert set(reply) == {"sessionId"}


async def test_unsubscribe_unknown_subscription_succeeds(raw: RawPeer) -> None:
    """unsubscribe never fails for unknown ids."""
    reply = await raw.call(
        "unsubscribe", {"object": "nope", "subscription": "nope", "sessionId": "x"}
    )
    assert reply["result"] == {"sessionId": "x"}


async def test_release_unknown_object_succeeds(raw: RawPeer) -> None:
    """Releasing an unknown id succeeds, as KMS swallows the error."""
    reply = await raw.call("release", {"object": "does-not-exist"})
    assert "sessionId" in reply["result"]


async def test_release_then_invoke_is_not_found(raw: RawPeer) -> None:
    """After release, invoking on the object answers 40101."""
    pipeline = await _pipeline(raw)
    await raw.result("release", {"object": pipeline})
    reply = await raw.call("invoke", {"object": pipeline, "operation": "getName"})
    assert reply["error"] == {
        "code": 40101,
        "data": {"type": "MEDIA_OBJECT_NOT_FOUND"},
        "message": f"Object '{pipeline}' not found",
    }


async def test_ref_unref_last_reference_releases(raw: RawPeer) -> None:
    """unref of the last session reference releases the object."""
    pipeline = await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    assert (await raw.result("ref", {"object": pipeline, "sessionId": session})) == {
        "sessionId": session
    }
    await raw.result("unref", {"object": pipeline, "sessionId": session})
    reply = await raw.call("describe", {"object": pipeline})
    assert reply["error"]["code"] == 40101


async def test_ref_requires_session_id(raw: RawPeer) -> None:
    """ref without a session answers -32000 'sessionId' parameter is required."""
    reply = await raw.call("ref", {"object": "x"})
    assert reply["error"] == {"code": -32000, "message": "'sessionId' parameter is required"}


async def test_keep_alive_known_and_unknown_session(raw: RawPeer) -> None:
    """keepAlive answers the session, or 40007 for an unknown one."""
    await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    assert await raw.result("keepAlive", {"sessionId": session}) == {"sessionId": session}
    reply = await raw.call("keepAlive", {"sessionId": "unknown"})
    assert reply["error"] == {
        "code": 40007,
        "data": {"type": "INVALID_SESSION"},
        "message": "Invalid session",
    }


async def test_connect_resume_known_session(server: App, raw: RawPeer) -> None:
    """connect with a known session returns it with this process's serverId."""
    await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    result = await raw.result("connect", {"sessionId": session})
    assert result == {"serverId": server.server_id, "sessionId": session}


async def test_connect_without_params_creates_session(server: App, raw: RawPeer) -> None:
    """connect without params starts a new session."""
    result = await raw.result("connect")
    assert result["serverId"] == server.server_id
    assert re.fullmatch(UUID, result["sessionId"])


async def test_connect_unknown_session_is_invalid(raw: RawPeer) -> None:
    """connect with an unknown session answers 40007 INVALID_SESSION."""
    reply = await raw.call("connect", {"sessionId": "4b1c7e0a-0000-4000-8000-000000000000"})
    assert reply["error"]["code"] == 40007
    assert reply["error"]["data"] == {"type": "INVALID_SESSION"}


async def test_close_session_release_releases_objects(raw: RawPeer) -> None:
    """closeSession with release answers null and releases every object of the session."""
    pipeline = await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    reply = await raw.call("closeSession", {"sessionId": session, "release": True})
    assert reply["result"] is None
    assert (await raw.call("describe", {"object": pipeline}))["error"]["code"] == 40101


async def test_close_session_without_release_unrefs(raw: RawPeer) -> None:
    """closeSession without release drops objects only this session referenced."""
    pipeline = await _pipeline(raw)
    session = (await raw.result("ping"))["sessionId"]
    await raw.call("closeSession", {"sessionId": session})
    assert (await raw.call("describe", {"object": pipeline}))["error"]["code"] == 40101


async def test_transaction_resolves_newrefs(raw: RawPeer) -> None:
    """Operations run in order; newref:N is replaced by result N's value."""
    operations = [
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "create",
            "params": {"type": "MediaPipeline", "constructorParams": {}},
        },
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "create",
            "params": {"type": "PassThrough", "constructorParams": {"mediaPipeline": "newref:0"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "invoke",
            "params": {
                "object": "newref:1",
                "operation": "connect",
                "operationParams": {"sink": "newref:1"},
            },
        },
    ]
    result = await raw.result("transaction", {"operations": operations})
    session = result["sessionId"]
    first, second, third = result["value"]
    assert first["id"] == 0 and PIPELINE_ID.match(first["result"]["value"])
    assert first["result"]["sessionId"] == session
    assert second["result"]["value"].startswith(first["result"]["value"] + "/")
    assert third == {"id": 2, "jsonrpc": "2.0", "result": {"sessionId": session, "value": None}}


async def test_transaction_stops_at_first_error(raw: RawPeer) -> None:
    """The failing operation's error is the last response; the outer call succeeds."""
    operations = [
        {"jsonrpc": "2.0", "id": 0, "method": "create", "params": {"type": "MediaPipeline"}},
        {"jsonrpc": "2.0", "id": 1, "method": "create", "params": {"type": "Nope"}},
        {"jsonrpc": "2.0", "id": 2, "method": "create", "params": {"type": "MediaPipeline"}},
    ]
    result = await raw.result("transaction", {"operations": operations})
    assert len(result["value"]) == 2
    assert result["value"][1]["error"]["code"] == 40108
    assert result["value"][1]["id"] == 1


async def test_transaction_wrong_id_is_malformed(raw: RawPeer) -> None:
    """An operation whose id is not its index fails the whole call with 40008."""
    operations = [{"jsonrpc": "2.0", "id": 5, "method": "ping"}]
    reply = await raw.call("transaction", {"operations": operations})
    assert reply["error"] == {
        "code": 40008,
        "data": {"type": "MALFORMED_TRANSACTION"},
        "message": "Id of request '0' should be '0'",
    }


async def test_transaction_missing_result_for_newref(raw: RawPeer) -> None:
    """A newref to a result that does not exist is 40008 Result not found."""
    operations = [
        {"jsonrpc": "2.0", "id": 0, "method": "describe", "params": {"object": "newref:3"}},
    ]
    reply = await raw.call("transaction", {"operations": operations})
    assert reply["error"]["message"] == "Result not found on request 3"


async def test_newref_outside_transaction_is_40109(raw: RawPeer) -> None:
    """A newref id used outside a transaction answers 40109."""
    reply = await raw.call("describe", {"object": "newref:0"})
    assert reply["error"]["code"] == 40109
