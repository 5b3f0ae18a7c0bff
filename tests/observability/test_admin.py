"""The admin listener: health, readiness, metrics, the fault API and its switches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from emulator.__main__ import parse_args
from emulator.app import App
from emulator.config import load_settings
from emulator.observability.admin import AdminListener, admin_host
from emulator.transport.client import KurentoClient
from protocol.errors import (
    InvalidSession,
    MediaObjectNotFound,
    NotEnoughResources,
    SdpParseError,
)
from tests.conftest import make_settings, server_and_client
from tests.observability.admin_http import http, metric, server_with_admin
from tests.ports import free_port_range
from tests.wire import RawPeer


@contextlib.asynccontextmanager
async def admin_lab(
    **overrides: Any,
) -> AsyncIterator[tuple[App, AdminListener, KurentoClient]]:
    """A server, its admin listener on an ephemeral loopback port, and a connected client."""
    settings = make_settings(admin_port=0, admin_host="127.0.0.1", **overrides)
    async with server_with_admin(settings) as lab:
        yield lab


async def test_admin_health_and_readiness_follow_the_listeners() -> None:
    """healthz is 200 throughout; readyz is 200 while serving and 503 once stopping."""
    server = App(make_settings(admin_port=0, admin_host="127.0.0.1"))
    admin = server.admin
    assert admin is not None
    await server.open_admin()
    try:
        assert (await http(admin.url, "/readyz"))[0] == 503
        await server.serve()
        assert await http(admin.url, "/healthz") == (200, "ok\n")
        assert await http(admin.url, "/readyz") == (200, "ready\n")
        await server.stop()
        status, text = await http(admin.url, "/readyz")
        assert (status, text) == (503, "not accepting: starting or shutting down\n")
        assert (await http(admin.url, "/healthz"))[0] == 200
        assert (await http(admin.url, "/nowhere"))[0] == 404
        assert (await http(admin.url, "/healthz", method="POST"))[0] == 405
    finally:
        await server.stop()
        await server.close()


async def test_admin_metrics_count_objects_sessions_rpc_and_events() -> None:
    """/metrics reports sessions, pipelines, elements by type, ports, RPC latency and events."""
    ports = free_port_range(50)
    async with admin_lab(min_port=ports.low, max_port=ports.high) as (_, admin, client):
        pipeline = await client.create("MediaPipeline")
        first = await pipeline.create("PassThrough")
        second = await pipeline.create("PassThrough")
        connected = await first.subscribe("ElementConnected")
        await first.connect(second, "AUDIO")
        await connected.get(timeout=5)
        status, text = await http(admin.url, "/metrics")
        assert status == 200
        assert metric(text, "kurento_sessions") == 1
        assert metric(text, "kurento_pipelines") == 1
        assert metric(text, "kurento_elements", type="PassThrough") == 2
        assert metric(text, "kurento_elements", type="MediaPipeline") == 1
        assert metric(text, "kurento_media_ports", state="in_use") == 0
        assert metric(text, "kurento_media_ports", state="free") == len(ports)
        assert metric(text, "kurento_rpc_duration_seconds_count", method="create") == 3
        assert metric(text, "kurento_rpc_duration_seconds_count", method="invoke") == 1
        assert metric(text, "kurento_events_sent_total") >= 1
        assert metric(text, "kurento_rtp_packets_total", direction="in", kind="audio") == 0
        assert metric(text, "kurento_srtp_failures_total") == 0
        await pipeline.release()
        with pytest.raises(MediaObjectNotFound):
            await first.invoke("getName")
        _, text = await http(admin.url, "/metrics")
        assert metric(text, "kurento_pipelines") == 0
        assert metric(text, "kurento_rpc_errors_total", method="invoke", code="40101") == 1


async def test_admin_fault_api_is_off_unless_enabled() -> None:
    """Without fault_injection, /faults and /restart are 404 and say how to turn them on."""
    async with admin_lab() as (_, admin, _client):
        status, text = await http(admin.url, "/faults")
        assert status == 404
        assert "--fault-injection" in text
        assert (await http(admin.url, "/restart", method="POST"))[0] == 404
        assert "kurento_faults_injected_total" not in (await http(admin.url, "/metrics"))[1]


def test_admin_binds_loopback_only_with_the_fault_api() -> None:
    """Every interface by default; loopback when the fault API is on, unless configured."""
    assert admin_host(make_settings()) == "0.0.0.0"
    assert admin_host(make_settings(fault_injection=True)) == "127.0.0.1"
    assert admin_host(make_settings(fault_injection=True, admin_host="10.0.0.1")) == "10.0.0.1"


async def test_admin_listener_can_be_turned_off() -> None:
    """admin_port None opens nothing; the metrics still count requests."""
    async with server_and_client(make_settings(admin_port=None)) as (server, client):
        assert server.admin is None

        def pings() -> float:
            text = server.metrics.exposition().decode()
            return metric(text, "kurento_rpc_duration_seconds_count", method="ping")

        before = pings()
        await client.ping()
        assert pings() == before + 1


def test_admin_options_from_command_line_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags and KURENTO_EMULATOR_* variables set the admin and fault options, with origins."""
    overrides, _, _ = parse_args(
        ["--no-admin", "--fault-injection", "--faults", '[{"kind": "rpc_delay", "delay": 1}]']
    )
    assert overrides == {
        "admin_port": None,
        "fault_injection": True,
        "faults": [{"kind": "rpc_delay", "delay": 1}],
    }
    monkeypatch.setenv("KURENTO_EMULATOR_ADMIN_PORT", "9990")
    monkeypatch.setenv("KURENTO_EMULATOR_FAULT_SEED", "7")
    monkeypatch.setenv("KURENTO_EMULATOR_SHUTDOWN_TIMEOUT", "3.5")
    loaded = load_settings({}, environ={}, conf_file=Path("/nonexistent"))
    assert loaded.settings.admin_port == 9990
    assert loaded.settings.fault_seed == 7
    assert loaded.settings.shutdown_timeout == 3.5
    assert parse_args(["--shutdown-timeout", "2"])[0] == {"shutdown_timeout": 2.0}


async def test_fault_next_process_offer_fails_with_the_chosen_code() -> None:
    """An rpc_error rule with count 1 fails the next processOffer only, then goes away."""
    async with admin_lab(fault_injection=True) as (_, admin, client):
        rule = {"kind": "rpc_error", "operation": "processOffer", "code": 40009, "count": 1}
        status, text = await http(admin.url, "/faults", method="POST", body=rule)
        assert status == 201, text
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        assert await endpoint.invoke("getName")  # other operations are untouched
        with pytest.raises(NotEnoughResources, match=r"Fault injected by kurento-emulator"):
            await endpoint.invoke("processOffer", offer="v=0")
        with pytest.raises(SdpParseError):  # the real answer to this SDP again
            await endpoint.invoke("processOffer", offer="not sdp")
        status, text = await http(admin.url, "/faults")
        assert status == 200
        assert '"rules": []' in text
        assert '"rpc_error": 1' in text


async def test_fault_rpc_error_hits_an_operation_inside_a_transaction() -> None:
    """kurento-client batches operations in ``transaction``: a rule on processOffer fails that
    operation there too (the transaction answers it as the operation's error)."""
    async with admin_lab(
        fault_injection=True,
        faults=[{"kind": "rpc_error", "operation": "processOffer", "code": 40009, "count": 1}],
    ) as (_server, _admin, client):
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        operation = {"object": endpoint.id, "operation": "processOffer"}
        operation["operationParams"] = {"offer": "v=0"}
        result = await client.call(
            "transaction",
            {"operations": [{"jsonrpc": "2.0", "id": 0, "method": "invoke", "params": operation}]},
        )
        assert result["value"][0]["error"]["code"] == 40009


async def test_fault_rpc_delay_holds_the_reply() -> None:
    """An rpc_delay rule on ping answers no sooner than the delay; other methods are prompt."""
    async with admin_lab(
        fault_injection=True, faults=[{"kind": "rpc_delay", "method": "ping", "delay": 0.3}]
    ) as (server, _admin, client):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.ping()
        assert loop.time() - started >= 0.3
        await client.create("MediaPipeline")
        assert server.faults is not None


async def test_fault_rules_are_validated() -> None:
    """Invalid rules are refused with 400 and a message naming the field; nothing is added."""
    async with admin_lab(fault_injection=True) as (_, admin, _client):
        bad = [
            ({"kind": "rtp", "loss": 2}, "'loss' is a fraction"),
            ({"kind": "rpc_error", "code": 12345}, "'code' 12345"),
            ({"kind": "rtp", "los": 0.1}, "unknown field(s): los"),
            ([{"kind": "rtp", "loss": 0.1}, {"kind": "x"}], "'kind' 'x' is unknown"),
        ]
        for body, message in bad:
            status, text = await http(admin.url, "/faults", method="POST", body=body)
            assert status == 400
            assert message in text
        assert '"rules": []' in (await http(admin.url, "/faults"))[1]
        status, _ = await http(admin.url, "/faults/99", method="DELETE")
        assert status == 404


async def test_fault_restart_drops_state_and_old_sessions_get_40007() -> None:
    """POST /restart: new serverId, connections closed, the old session answers 40007."""
    async with admin_lab(fault_injection=True) as (server, admin, client):
        await client.create("MediaPipeline")
        old_session = client.session_id
        old_server = server.server_id
        status, text = await http(admin.url, "/restart", method="POST")
        assert status == 200
        assert old_server in text
        assert server.server_id != old_server
        assert server.media_set.pipelines() == []
        async with RawPeer.open(server.urls["ws"]) as raw:
            reply = await raw.call("connect", {"sessionId": old_session})
            assert reply["error"]["code"] == InvalidSession.code
            fresh = await raw.call("connect")
            assert fresh["result"]["serverId"] == server.server_id
