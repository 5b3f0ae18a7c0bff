"""The server pool against real servers: round-robin, failover, re-inclusion after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from emulator.app import App, running_emulator
from emulator.transport.client import KurentoClient
from emulator.transport.pool import NoServerAvailable, ServerPool
from protocol.errors import InvalidSession, MediaObjectNotFound
from tests.conftest import make_settings, restart_port

FAST = {
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "connect_timeout": 1.0,
    "call_timeout": 2.0,
    "retry_max": 0.5,
}
DECISIONS = "emulator.transport.pool"


@contextlib.asynccontextmanager
async def three_servers() -> AsyncIterator[list[App]]:
    """Three servers on ports reserved for the test (one of them restarts); whichever are running
    at the end are stopped."""
    servers = [App(make_settings(port=restart_port())) for _ in range(3)]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            if server.listener.accepting:
                await server.stop()


async def test_pool_fails_over_and_takes_a_restarted_server_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No call goes to a stopped server; once it is back (new serverId) it gets calls again."""
    caplog.set_level(logging.INFO, logger=DECISIONS)
    async with three_servers() as servers:
        urls = [server.urls["ws"] for server in servers]
        async with ServerPool([{"url": url} for url in urls], **FAST) as pool:
            before = [(await pool.place_call()).server.url for _ in range(6)]
            assert before == urls + urls
            assert [len(s.media_set.pipelines()) for s in servers] == [2, 2, 2]

            dead = servers[1]
            port, old_server_id = dead.port("ws"), dead.server_id
            await dead.stop()
            during = [(await pool.place_call()).server.url for _ in range(6)]
            assert urls[1] not in during
            assert sorted(during) == sorted([urls[0], urls[2]] * 3)
            await pool.wait_until(urls[1], up=False, timeout=5)
            assert f"= pool: server {urls[1]} down (" in caplog.text

            servers[1] = App(make_settings(port=port))
            await servers[1].start()
            await pool.wait_until(urls[1], up=True, timeout=10)
            assert pool.server_ids[urls[1]] == servers[1].server_id != old_server_id
            after = [(await pool.place_call()).server.url for _ in range(6)]
            assert sorted(after) == sorted(urls * 2)
            assert len(servers[1].media_set.pipelines()) == 2
    assert "restarted: its old sessions are gone" in caplog.text


async def test_pool_skips_a_server_that_accepts_but_never_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A WebSocket server that never answers ping is down; every call goes to the live one."""
    caplog.set_level(logging.INFO, logger=DECISIONS)

    async def mute(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    async with (
        serve(mute, "127.0.0.1", 0) as hung,
        three_servers() as servers,
    ):
        hung_url = f"ws://127.0.0.1:{next(iter(hung.sockets)).getsockname()[1]}/kurento"
        live = servers[0].urls["ws"]
        async with ServerPool([{"url": hung_url}, {"url": live}], **FAST) as pool:
            assert not pool.is_up(hung_url)
            calls = [await pool.place_call() for _ in range(3)]
            assert {call.server.url for call in calls} == {live}
            for call in calls:
                await call.release()
            assert servers[0].media_set.pipelines() == []
    assert f"server {hung_url} down (no answer within 1 s)" in caplog.text


async def test_pool_backs_off_from_a_server_that_refuses_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that answers ping but fails ``connect`` is down, and is retried with backoff
    (not in a tight loop), while calls go to the live one."""
    caplog.set_level(logging.INFO, logger=DECISIONS)
    requests: list[str] = []

    async def no_sessions(websocket: ServerConnection) -> None:
        async for text in websocket:
            request = json.loads(text)
            requests.append(request["method"])
            if request["method"] == "ping":
                reply: dict[str, Any] = {"result": {"value": "pong"}}
            else:
                reply = {"error": {"code": 40009, "message": "no more sessions"}}
            await websocket.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], **reply}))

    async with serve(no_sessions, "127.0.0.1", 0) as refusing, three_servers() as servers:
        url = f"ws://127.0.0.1:{next(iter(refusing.sockets)).getsockname()[1]}/kurento"
        live = servers[0].urls["ws"]
        async with ServerPool([{"url": url}, {"url": live}], **FAST) as pool:
            assert not pool.is_up(url)
            assert {(await pool.place_call()).server.url for _ in range(3)} == {live}
            assert pool.plan.health(url).failures >= 1
            assert pool.plan.retry_delay(url, asyncio.get_running_loop().time()) > 0
        assert requests.count("connect") <= 10, "retried in a tight loop"
    assert f"server {url} down (" in caplog.text


@contextlib.asynccontextmanager
async def cuttable_link(target_port: int) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP relay to a local port; once the event is set it drops every byte both ways and
    closes nothing, as a host that lost its network (no FIN, no RST, no answer)."""
    cut = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not cut.is_set():
                writer.write(data)
                await writer.drain()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        writers.extend((client_w, server_w))
        with contextlib.suppress(ConnectionError):
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
        for writer in (client_w, server_w):
            writer.close()

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield relay_server.sockets[0].getsockname()[1], cut
    finally:
        relay_server.close()
        # Both ends see the relay go: the server's shutdown need not wait for a close handshake.
        for writer in writers:
            writer.close()


async def test_a_call_leaves_a_lost_host_when_its_ping_fails_not_at_call_timeout() -> None:
    """A server whose host vanishes (its link cut: nothing closes, nothing answers) while a
    create waits on it: the call moves on to a live server once the watch's ping goes
    unanswered, not after ``call_timeout`` or the WebSocket's close handshake timeout."""
    async with three_servers() as servers, cuttable_link(servers[1].port("ws")) as (port, cut):
        lost_url = f"ws://127.0.0.1:{port}/kurento"
        live = servers[0].urls["ws"]
        options = {**FAST, "call_timeout": 30.0}
        async with ServerPool([{"url": lost_url}, {"url": live}], **options) as pool:
            assert pool.is_up(lost_url)
            cut.set()
            loop = asyncio.get_running_loop()
            started = loop.time()
            call = await pool.place_call()
            took = loop.time() - started
            assert call.server.url == live
            assert took < 5, f"{took:.1f} s: the call waited for a timeout, not the ping"
            assert not pool.is_up(lost_url)
            await call.release()


async def test_pool_raises_when_every_server_is_down(tmp_path: Path) -> None:
    """With nothing up, place_call says why for each server; the flags come from the file."""
    async with three_servers() as servers:
        url = servers[0].urls["ws"]
        listing = [{"url": url, "candkillipv6": 1, "candkilltcp": 1, "candonlyturn": 0}]
        path = tmp_path / "kurentoservers.json"
        path.write_text(json.dumps(listing), encoding="utf-8")
        async with ServerPool.from_file(path, **FAST) as pool:
            call = await pool.place_call()
            assert call.server.candkillipv6 and call.server.candkilltcp
            assert not call.accepts_candidate("candidate:2 1 UDP 1 2001:db8::2 5 typ host")
            await servers[0].stop()
            await pool.wait_until(url, up=False, timeout=5)
            with pytest.raises(NoServerAvailable, match=f"{url}: connection"):
                await pool.place_call()


async def test_pool_marks_a_server_down_when_pings_go_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that hangs while up is dropped on ping timeout, and taken back once it answers."""
    caplog.set_level(logging.INFO, logger=DECISIONS)
    async with three_servers() as servers:
        stuck, live = servers[0], servers[1]
        urls = [stuck.urls["ws"], live.urls["ws"]]
        async with ServerPool([{"url": url} for url in urls], **FAST) as pool:
            release = asyncio.Event()
            handle = stuck.dispatcher.handle

            async def hang(*args: Any) -> None:
                await release.wait()
                await handle(*args)

            stuck.dispatcher.handle = hang  # type: ignore[method-assign]
            try:
                await pool.wait_until(urls[0], up=False, timeout=5)
                assert f"server {urls[0]} down (no answer to ping within 0.5 s)" in caplog.text
                calls = [await pool.place_call() for _ in range(3)]
                assert {call.server.url for call in calls} == {urls[1]}
            finally:
                stuck.dispatcher.handle = handle  # type: ignore[method-assign]
                release.set()
            await pool.wait_until(urls[0], up=True, timeout=10)
            assert {(await pool.place_call()).server.url for _ in range(2)} == set(urls)


async def test_pool_demo_prints_failover_and_return() -> None:
    """``python -m emulator.transport.pool --demo`` shows round-robin, failover and the return."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator.transport.pool",
        "--demo",
        "--interval",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 40)
    text = out.decode()
    assert process.returncode == 0, text
    assert text.count("= pool: call ") == 18
    assert re.search(r"= pool: server ws://\S+ down \(connection closed\), placing on ws://", text)
    assert "restarted: its old sessions are gone" in text


async def test_client_rebuilds_after_a_server_restart() -> None:
    """After a restart (new serverId) the old session answers 40007 and the client rebuilds."""
    first = App(make_settings(port=restart_port()))
    await first.start()
    port = first.port("ws")
    async with await KurentoClient.connect(first.urls["ws"]) as client:
        try:
            old_pipeline = await client.create("MediaPipeline")
            old_session = client.session_id
        finally:
            await first.stop()
        async with running_emulator(make_settings(port=port)) as second:
            resumed = await asyncio.wait_for(client.reconnections.get(), 10)
            assert (resumed.same_session, resumed.server_id) == (False, second.server_id)
            with pytest.raises(InvalidSession):
                await client.call("keepAlive", {"sessionId": old_session})
            with pytest.raises(MediaObjectNotFound):
                await old_pipeline.invoke("getName")
            rebuilt = await client.create("MediaPipeline")
            assert [p.id for p in second.media_set.pipelines()] == [rebuilt.id]


async def test_pool_close_ends_a_watch_that_lost_its_cancellation(
    server: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() returns even when a watch task's cancellation is lost on the way, as Python
    3.11's wait_for loses one when the awaited future completes in the same turn (gh-86296)."""
    monitor = ServerPool._monitor
    lost: list[str] = []

    async def deaf(self: ServerPool, client: KurentoClient) -> str:
        try:
            return await monitor(self, client)
        except asyncio.CancelledError:
            lost.append("cancellation")
            return "the cancellation was dropped"

    monkeypatch.setattr(ServerPool, "_monitor", deaf)
    pool = ServerPool([{"url": server.urls["ws"]}], **FAST)
    await pool.start()
    assert pool.is_up(server.urls["ws"])
    await asyncio.wait_for(pool.close(), 5)
    assert lost == ["cancellation"]
