"""media_workers: pipelines spread over worker processes behind one control plane.

Real worker processes, real WebSockets, aiortc peers and the official JS client, as without workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulator.app import App, running_emulator
from emulator.routing import RoutingRpcDispatcher
from emulator.transport.client import KurentoClient, RemoteObject
from emulator.workers import worker_settings
from protocol.errors import MediaObjectNotFound, NotEnoughResources
from protocol.sdp import SessionDescription
from tests.conftest import make_settings
from tests.interop.node_client import NodeScenario
from tests.interop.test_js_client import js_transactions
from tests.media.peers import ClientPeer, client_peer, negotiate
from tests.observability.admin_http import http, metric


def _both(peer: ClientPeer) -> bool:
    return peer.frames.get("audio", 0) > 3 and peer.frames.get("video", 0) > 3


@pytest.fixture
async def two_workers() -> AsyncIterator[App]:
    """A server with two media workers, its media range (from the allocator) split between them."""
    settings = make_settings(media_workers=2, network_interfaces="lo")
    async with running_emulator(settings) as running:
        yield running


@pytest.fixture
async def client(two_workers: App) -> AsyncIterator[KurentoClient]:
    """The project's client on the server with workers."""
    async with await KurentoClient.connect(two_workers.urls["ws"], reconnect=False) as connected:
        yield connected


def test_each_worker_gets_a_slice_of_every_port_range() -> None:
    """Each worker's ranges are its even-sized slice of the server's; the last takes the rest
    (arithmetic only: nothing binds these ports)."""
    settings = make_settings(min_port=40000, max_port=40099, rtp_min_port=50000, rtp_max_port=50099)
    slices = [worker_settings(settings, index, 3) for index in range(3)]
    assert [(s.min_port, s.max_port) for s in slices] == [
        (40000, 40031),
        (40032, 40063),
        (40064, 40099),
    ]
    assert [(s.rtp_min_port, s.rtp_max_port) for s in slices][1] == (50032, 50063)
    assert all(s.host == "127.0.0.1" and s.admin_host == "127.0.0.1" for s in slices)
    assert all(s.admin_port == 0 and s.faults == [] for s in slices)  # faults: synced at start
    assert all(s.media_workers == 1 for s in slices)


async def _loopback_call(pipeline: RemoteObject) -> tuple[RemoteObject, ClientPeer, int]:
    """A Hello World endpoint on the pipeline, its peer connected; the server's media port."""
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    peer = ClientPeer()
    await negotiate(endpoint, peer)
    await peer.wait_for(_both)
    local = SessionDescription.parse(await endpoint.invoke("getLocalSessionDescriptor"))
    return endpoint, peer, local.media[0].port


async def test_pipelines_alternate_between_workers_and_media_flows(
    two_workers: App, client: KurentoClient
) -> None:
    """Two pipelines land on the two workers (their media ports tell) and both calls carry
    media; the trickled candidates reach the peers as events relayed by the control plane."""
    first, second = [await client.create("MediaPipeline") for _ in range(2)]
    peers: list[ClientPeer] = []
    try:
        ports = []
        for pipeline in (first, second):
            endpoint, peer, port = await _loopback_call(pipeline)
            peers.append(peer)
            ports.append(port)
            assert await endpoint.invoke("isMediaFlowingIn", mediaType="AUDIO") is True
        for index, port in enumerate(ports):
            own = worker_settings(two_workers.settings, index, 2)
            assert own.min_port <= port <= own.max_port
    finally:
        for peer in peers:
            await peer.close()


async def test_server_manager_sees_every_worker(client: KurentoClient) -> None:
    manager = await client.server_manager()
    created = await manager.subscribe("ObjectCreated")
    pipelines = [await client.create("MediaPipeline") for _ in range(2)]
    seen = {(await created.get())["object"] for _ in range(2)}
    assert seen == {p.id for p in pipelines}
    assert sorted(await manager.invoke("getPipelines")) == sorted(p.id for p in pipelines)
    assert await manager.invoke("getUsedMemory") > 0
    await created.close()
    await pipelines[0].release()
    assert await manager.invoke("getPipelines") == [pipelines[1].id]


async def test_unknown_objects_and_closed_sessions_answer_as_without_workers(
    client: KurentoClient,
) -> None:
    with pytest.raises(MediaObjectNotFound):
        await client.call("invoke", {"object": "nope_kurento.MediaPipeline", "operation": "x"})
    await client.call("release", {"object": "nope_kurento.MediaPipeline"})  # succeeds, as KMS
    described = await client.call("describe", {"object": "manager_ServerManager"})
    assert described["type"] == "ServerManager"
    await client.call("ref", {"object": "manager_ServerManager"})
    assert (await client.server_manager()).id == "manager_ServerManager"
    assert "version" in await (await client.server_manager()).invoke("getInfo")
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await client.call("closeSession", {"release": True})
    with pytest.raises(MediaObjectNotFound):
        await endpoint.invoke("getName")


async def test_official_client_transactions_through_workers(
    two_workers: App, tmp_path: Path
) -> None:
    """kurento-client 7.3.0's transactions through the control plane: each operation reaches
    the worker of its object (a transaction that creates a pipeline and then its elements)."""
    await js_transactions(two_workers.urls["ws"], tmp_path)


async def test_official_client_through_workers(two_workers: App) -> None:
    """kurento-client 7.3.0 and an aiortc peer, through the control plane to a worker."""
    async with (
        NodeScenario.run(two_workers.urls["ws"], "webrtc") as node,
        client_peer() as peer,
    ):
        await node.step("ready")
        await node.command("offer " + json.dumps({"sdp": await peer.offer()}))
        answer = await node.step("answer")
        await peer.accept_answer(answer["sdp"])
        while (report := await node.step_any(("candidate", "gathering-done")))["step"] != (
            "gathering-done"
        ):
            await peer.add_candidate({"candidate": report["candidate"]})
        await peer.wait_for(_both)
        assert (await node.step("flow-in"))["state"] == "FLOWING"
        await node.command("quit")
        assert await node.finish() == 0


async def test_a_dead_worker_fails_its_pipelines_only_and_is_restarted(
    two_workers: App, client: KurentoClient
) -> None:
    """A worker killed: its pipeline raises Error and then answers 40101 naming the worker; the
    other worker goes on and takes the new pipelines; the dead worker is started again (empty)
    and takes pipelines again."""
    doomed, survivor = [await client.create("MediaPipeline") for _ in range(2)]
    errors = await doomed.subscribe("Error")
    pool = two_workers.pool
    assert pool is not None and pool.ready
    process = pool.workers[0].process
    assert process is not None
    process.kill()
    await process.wait()
    assert "media worker 0" in (await errors.get(timeout=10))["description"]
    with pytest.raises(MediaObjectNotFound, match="media worker 0"):
        await doomed.invoke("getName")
    assert await survivor.invoke("getName") == survivor.id
    third = await client.create("MediaPipeline")  # new pipelines go to a live worker
    assert await third.invoke("getName") == third.id
    await pool.wait_ready(timeout=30)
    assert pool.workers[0].process is not process
    later = [await client.create("MediaPipeline") for _ in range(2)]
    routing = two_workers.dispatcher
    assert isinstance(routing, RoutingRpcDispatcher)
    assert sorted(routing.pipelines[p.id] for p in later) == [0, 1]
    for pipeline in later:
        assert await pipeline.invoke("getName") == pipeline.id


async def test_sigkill_of_a_worker_ends_its_calls_with_error_and_spares_the_others(
    two_workers: App, client: KurentoClient
) -> None:
    """SIGKILL of a media worker while two calls run, one on each worker: the subscribers of the
    killed worker's pipeline and endpoint get ``Error`` (UNEXPECTED_PIPELINE_ERROR /
    UNEXPECTED_ELEMENT_ERROR naming the worker), its objects answer 40101, the call on the other
    worker keeps its audio and video flowing to its peer, a new call lands on the survivor and
    carries media, and once the killed worker is started again calls land on it and carry
    media."""
    doomed, kept = [await client.create("MediaPipeline") for _ in range(2)]
    pipeline_errors = await doomed.subscribe("Error")
    peers: list[ClientPeer] = []
    try:
        doomed_endpoint, doomed_peer, _ = await _loopback_call(doomed)
        endpoint_errors = await doomed_endpoint.subscribe("Error")
        _, kept_peer, _ = await _loopback_call(kept)
        peers += [doomed_peer, kept_peer]
        assert two_workers.pool is not None
        process = two_workers.pool.workers[0].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        await process.wait()

        error = await pipeline_errors.get(timeout=10)
        assert error["type"] == "UNEXPECTED_PIPELINE_ERROR"
        assert "media worker 0" in error["description"]
        error = await endpoint_errors.get(timeout=10)
        assert error["type"] == "UNEXPECTED_ELEMENT_ERROR"
        assert error["source"] == doomed_endpoint.id
        with pytest.raises(MediaObjectNotFound, match="media worker 0"):
            await doomed_endpoint.invoke("getName")

        after_kill = dict(kept_peer.frames)
        await kept_peer.wait_for(
            lambda peer: all(
                peer.frames.get(kind, 0) > after_kill[kind] + 10 for kind in after_kill
            )
        )
        newcomer = await client.create("MediaPipeline")
        _, new_peer, port = await _loopback_call(newcomer)
        peers.append(new_peer)
        survivor = worker_settings(two_workers.settings, 1, 2)
        assert survivor.min_port <= port <= survivor.max_port

        await two_workers.pool.wait_ready(timeout=30)  # the killed worker, started again
        restarted = worker_settings(two_workers.settings, 0, 2)
        for _ in range(2):  # the next pipeline in turn may be the survivor's
            _, new_peer, port = await _loopback_call(await client.create("MediaPipeline"))
            peers.append(new_peer)
            if restarted.min_port <= port <= restarted.max_port:
                break
        else:
            pytest.fail("no new call landed on the restarted worker")
    finally:
        for peer in peers:
            await peer.close()


async def test_restart_drops_every_workers_objects(two_workers: App) -> None:
    """The admin /restart (fault injection) restarts the workers: old ids are gone, new work
    goes on."""
    async with await KurentoClient.connect(two_workers.urls["ws"], reconnect=False) as before:
        old = await before.create("MediaPipeline")
        await two_workers.restart()
    assert two_workers.pool is not None and two_workers.pool.ready
    async with await KurentoClient.connect(two_workers.urls["ws"], reconnect=False) as after:
        with pytest.raises(MediaObjectNotFound):
            await after.call("invoke", {"object": old.id, "operation": "getName"})
        new = await after.create("MediaPipeline")
        assert await new.invoke("getName") == new.id


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


async def _wait_gone(pids: list[int], timeout: float = 20) -> None:
    """Wait until every process in ``pids`` has exited: they are not this test's children, so a
    pidfd (readable once the process exits) stands for wait()."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # already gone
            exited = asyncio.Event()
            loop.add_reader(pidfd, exited.set)
            try:
                await exited.wait()
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)


async def test_a_listener_that_cannot_open_stops_the_started_workers() -> None:
    """Workers start before the listener: when its port is taken, start() fails and no worker
    is left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = make_settings(media_workers=2, port=taken.getsockname()[1])
        app = App(settings)
        with pytest.raises(OSError):
            await app.start()
    assert app.pool is not None
    assert all(worker.process is not None for worker in app.pool.workers)
    assert not any(worker.alive for worker in app.pool.workers)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_a_server_stopped_while_starting_leaves_no_worker(sig: signal.Signals) -> None:
    """SIGTERM while the workers start cancels the start, which stops them; SIGKILL (no chance
    to clean up) makes the kernel stop them (PR_SET_PDEATHSIG)."""
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-wss",
        "--no-admin",
        "--media-workers",
        "2",
        "--log-level",
        "INFO",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert server.stdout is not None
    async with asyncio.timeout(60):
        while not (line := (await server.stdout.readline()).decode()).startswith("[worker"):
            assert line, "the server exited before its workers logged"
    workers = _children(server.pid)
    assert len(workers) == 2
    server.send_signal(sig)
    async with asyncio.timeout(30):
        while await server.stdout.readline():
            pass
        await server.wait()
    await _wait_gone(workers)


async def _audio_lost(peer: ClientPeer) -> int:
    report = await peer.pc.getStats()
    return sum(
        s.packetsLost for s in report.values() if s.type == "inbound-rtp" and s.kind == "audio"
    )


async def test_metrics_and_fault_rules_cover_every_worker() -> None:
    """/metrics counts the workers' pipelines, ports and RTP; an rtp fault rule given at start
    impairs the media of both workers (each peer sees loss); a rule added at run time reaches
    the workers with the control plane's id, and goes when it is deleted."""
    settings = make_settings(
        media_workers=2,
        network_interfaces="lo",
        admin_port=0,
        fault_injection=True,
        fault_seed=5,
        faults=[{"kind": "rtp", "media": "AUDIO", "loss": 0.3}],
    )
    async with running_emulator(settings) as app:
        assert app.admin is not None and app.pool is not None
        base = app.admin.url
        async with await KurentoClient.connect(app.urls["ws"], reconnect=False) as client:
            peers: list[ClientPeer] = []
            try:
                for _ in range(2):
                    _endpoint, peer, _port = await _loopback_call(
                        await client.create("MediaPipeline")
                    )
                    peers.append(peer)
                for peer in peers:
                    await peer.wait_for(lambda p: p.frames.get("audio", 0) > 60, timeout=30)
                    assert await _audio_lost(peer) > 0
                status, text = await http(base, "/metrics")
                assert status == 200
                assert metric(text, "kurento_pipelines") == 2
                assert metric(text, "kurento_elements", type="WebRtcEndpoint") == 2
                assert metric(text, "kurento_media_ports", state="in_use") >= 2
                assert metric(text, "kurento_rtp_packets_total", direction="in", kind="video") > 0
                assert metric(text, "kurento_fault_rtp_packets_total", action="dropped") > 0
                assert metric(text, "kurento_faults_injected_total", kind="rtp") == 2
                status, body = await http(base, "/faults")
                report = json.loads(body)
                assert report["rtpDropped"] > 0 and report["injected"]["rtp"] == 2
                assert report["rules"][0]["applied"] == 2  # one endpoint on each worker
                status, body = await http(
                    base, "/faults", "POST", {"kind": "rtp", "media": "VIDEO", "delay": 0.01}
                )
                assert status == 201
                added = json.loads(body)["added"][0]["id"]
                on_workers = await app.pool.fault_reports()
                assert len(on_workers) == 2
                for worker in on_workers:
                    assert isinstance(worker, dict)
                    assert [r["id"] for r in worker["rules"]] == [1, added]
                status, _ = await http(base, f"/faults/{added}", "DELETE")
                assert status == 200
                for worker in await app.pool.fault_reports():
                    assert isinstance(worker, dict)
                    assert [r["id"] for r in worker["rules"]] == [1]
            finally:
                for peer in peers:
                    await peer.close()


async def test_object_and_session_limits_hold_across_workers() -> None:
    """max_objects_per_session counts a session's objects on every worker; max_sessions counts
    the sessions of the whole server."""
    settings = make_settings(media_workers=2, max_objects_per_session=3, max_sessions=1)
    async with (
        running_emulator(settings) as app,
        await KurentoClient.connect(app.urls["ws"], reconnect=False) as client,
    ):
        first, second = [await client.create("MediaPipeline") for _ in range(2)]
        element = await first.create("PassThrough")
        with pytest.raises(NotEnoughResources, match="max_objects_per_session"):
            await second.create("PassThrough")  # on the other worker: 3 objects already
        await element.release()
        await second.create("PassThrough")
        await first.release()  # the pipeline and nothing else of this session on worker 0
        await second.create("PassThrough")
        async with await KurentoClient.connect(app.urls["ws"], reconnect=False) as other:
            with pytest.raises(NotEnoughResources, match="max_sessions"):
                await other.create("MediaPipeline")
