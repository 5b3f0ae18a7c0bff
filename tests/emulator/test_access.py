"""Access control, off by default as in KMS: access_token, Origin allow-list, limits."""

from __future__ import annotations

import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from emulator.__main__ import parse_args
from emulator.app import App, running_emulator
from emulator.config import load_settings
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings
from tests.emulator.test_transport import _http
from tests.wire import RawPeer


async def _refused(url: str, origin: str | None = None) -> tuple[int, str]:
    """The HTTP status and body a refused handshake gets."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, origin=origin):
            pass
    response = info.value.response
    return response.status_code, response.body.decode() if response.body else ""


async def test_access_token_required_when_set(caplog: pytest.LogCaptureFixture) -> None:
    """Without the token, or with a wrong one, the handshake gets 401 with the reason, logged."""
    caplog.set_level(logging.WARNING, logger="emulator.transport.server")
    async with running_emulator(make_settings(access_token="s3cret")) as server:
        url = server.urls["ws"]
        assert await _refused(url) == (401, "access_token required: add ?access_token=...\n")
        assert await _refused(url + "?access_token=nope") == (401, "access_token is wrong\n")
        assert "refused (HTTP 401): access_token is wrong" in caplog.text
        async with await KurentoClient.connect(url + "?access_token=s3cret") as client:
            assert await client.ping() == {"value": "pong"}
        # The KMS image's healthchecker.sh still gets its 500 (it cannot send a token).
        status = await _http(
            server.port("ws"),
            b"GET /kurento HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n",
        )
        assert status.startswith("HTTP/1.1 500")


async def test_no_access_control_by_default(server: App) -> None:
    """As KMS: any Origin, any query string."""
    url = server.urls["ws"] + "?access_token=whatever"
    async with RawPeer.open(url, origin="http://anywhere.example") as peer:
        assert (await peer.result("ping"))["value"] == "pong"


async def test_origin_allow_list() -> None:
    """A listed Origin (any case) or none passes; any other Origin gets 403."""
    settings = make_settings(allowed_origins="http://lab.example:3000, localhost:8443")
    async with running_emulator(settings) as server:
        url = server.urls["ws"]
        status, body = await _refused(url, origin="http://evil.example")
        assert (status, body) == (403, "Origin 'http://evil.example' is not in allowed_origins\n")
        for origin in ("http://LAB.example:3000", "localhost:8443", None):
            async with RawPeer.open(url, origin=origin) as peer:
                assert (await peer.result("ping"))["value"] == "pong"


async def test_max_objects_per_session_answers_40009() -> None:
    """Past the limit, create answers NOT_ENOUGH_RESOURCES naming the setting."""
    async with (
        running_emulator(make_settings(max_objects_per_session=2)) as server,
        RawPeer.open(server.urls["ws"]) as peer,
    ):
        created = await peer.result("create", {"type": "MediaPipeline"})
        session = created["sessionId"]
        pipeline = created["value"]
        params = {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
        await peer.result("create", {**params, "sessionId": session})
        reply = await peer.call("create", {**params, "sessionId": session})
        assert reply["error"]["code"] == 40009
        assert reply["error"]["data"]["type"] == "NOT_ENOUGH_RESOURCES"
        assert (
            "already references 2 objects (setting max_objects_per_session)"
            in (reply["error"]["message"])
        )


async def test_max_sessions_answers_40009_for_a_new_session() -> None:
    """A create that would open a session past the limit gets 40009; the open one goes on."""
    async with (
        running_emulator(make_settings(max_sessions=1)) as server,
        RawPeer.open(server.urls["ws"]) as first,
        RawPeer.open(server.urls["ws"]) as second,
    ):
        session = (await first.result("create", {"type": "MediaPipeline"}))["sessionId"]
        reply = await second.call("create", {"type": "MediaPipeline"})
        assert reply["error"]["code"] == 40009
        assert reply["error"]["message"].startswith("Too many sessions: 1 are open")
        await first.result("create", {"type": "MediaPipeline", "sessionId": session})


def test_access_options_from_flags_and_environment() -> None:
    """Flags and KURENTO_EMULATOR_* variables set the options; the report hides the token."""
    overrides, _, _ = parse_args(
        ["--access-token", "t", "--allowed-origins", "a,b", "--max-sessions", "3"]
    )
    env = {"KURENTO_EMULATOR_MAX_OBJECTS_PER_SESSION": "50", "KURENTO_EMULATOR_ACCESS_TOKEN": "e"}
    loaded = load_settings(overrides, environ=env, conf_file=None)
    settings = loaded.settings
    assert (settings.access_token, settings.allowed_origins) == ("t", "a,b")
    assert (settings.max_sessions, settings.max_objects_per_session) == (3, 50)
    assert loaded.origins["max_objects_per_session"] == "environment"
    assert "access_token = '***' (command line)" in loaded.report()
    with pytest.raises(ValueError, match="max_sessions must be at least 1"):
        make_settings(max_sessions=0)
