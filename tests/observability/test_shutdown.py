"""SIGTERM/SIGINT: stop accepting, answer what is in flight, release everything, exit 0 in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from emulator.app import running_emulator
from emulator.transport.client import KurentoClient, RemoteObject
from tests.conftest import make_settings
from tests.observability.admin_http import http, metric
from tests.ports import free_port_range

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Process:
    """The emulator as a child process, its URLs and every line it logged."""

    process: asyncio.subprocess.Process
    ws_url: str = ""
    admin_url: str = ""
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read_until_started(self) -> None:
        """Read the log until both listeners are announced, then keep draining it."""
        assert self.process.stdout is not None
        async with asyncio.timeout(20):
            while not (self.ws_url and self.admin_url):
                line = (await self.process.stdout.readline()).decode()
                assert line, "the server exited before listening:\n" + "".join(self.lines)
                self.lines.append(line)
                if found := re.search(r"listening on (ws://\S+) \(ws\)", line):
                    self.ws_url = found.group(1)
                if found := re.search(r"admin: .* on (http://\S+)", line):
                    self.admin_url = found.group(1)
        self.reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode():
            self.lines.append(line)


@contextlib.asynccontextmanager
async def emulator_process(*args: str) -> AsyncIterator[Process]:
    """``python -m emulator`` on ephemeral ports, killed at the end if it is still running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMS_", "KURENTO_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--host=127.0.0.1",
        "--port=0",
        "--no-wss",
        "--admin-port=0",
        "--network-interfaces=lo",
        "--conf-file=/nonexistent/kurento.conf.json",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Process(process)
    try:
        await running.read_until_started()
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if running.reader is not None:
            await running.reader


async def gathered_endpoint(client: KurentoClient) -> RemoteObject:
    """A WebRtcEndpoint with an offer and its candidates: UDP sockets bound in the range."""
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    done = await endpoint.subscribe("IceGatheringDone")
    await endpoint.invoke("generateOffer")
    await endpoint.invoke("gatherCandidates")
    await done.get(timeout=10)
    return endpoint


async def wait_for_fault_use(admin_url: str, kind: str) -> None:
    """Until the admin API says one fault of ``kind`` was applied (each poll is a round trip)."""
    async with asyncio.timeout(5):
        while f'"{kind}": 1' not in (await http(admin_url, "/faults"))[1]:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_shutdown_signal_answers_in_flight_releases_and_exits_zero(
    sig: signal.Signals,
) -> None:
    """A signal turns readyz 503, the request in flight still gets its answer, every object is
    released and the process exits 0 well within shutdown_timeout."""
    ports = free_port_range(100)
    async with emulator_process(
        f"--min-port={ports.low}",
        f"--max-port={ports.high}",
        "--fault-injection",
        "--shutdown-timeout=8",
    ) as server:
        client = await KurentoClient.connect(server.ws_url, reconnect=False)
        await gathered_endpoint(client)
        _, text = await http(server.admin_url, "/metrics")
        assert metric(text, "kurento_media_ports", state="in_use") > 0
        rule = {"kind": "rpc_delay", "method": "ping", "delay": 1.0, "count": 1}
        assert (await http(server.admin_url, "/faults", method="POST", body=rule))[0] == 201
        in_flight = asyncio.create_task(client.ping())
        await wait_for_fault_use(server.admin_url, "rpc_delay")
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        server.process.send_signal(sig)
        status, _ = await http(server.admin_url, "/readyz")
        assert status == 503
        assert (await asyncio.wait_for(in_flight, 5))["value"] == "pong"
        assert await asyncio.wait_for(server.process.wait(), 8) == 0
        assert loop.time() - signalled < 8
        await client.close()
    log = "".join(server.lines)
    assert re.search(r"WebRtcEndpoint \S+ x released", log), log
    assert re.search(r"MediaPipeline \S+ x released", log), log
    assert "Kurento emulator stopped" in log
    assert "exiting anyway" not in log


async def test_shutdown_stop_closes_every_media_socket() -> None:
    """After stop(), no socket of the port range is held and no connection is open."""
    settings = make_settings(network_interfaces="lo")
    async with running_emulator(settings) as server:
        client = await KurentoClient.connect(server.urls["ws"], reconnect=False)
        await gathered_endpoint(client)
        ports = server.media_services.ports
        assert ports.usage().in_use > 0
        await server.stop()
        assert ports.usage().in_use == 0
        assert server.listener.links == set()
        assert server.media_set.pipelines() == []
        await client.close()


async def test_shutdown_invalid_fault_rule_stops_the_start_with_status_2() -> None:
    """An invalid rule in --faults is named in the log and the process exits 2 at once."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port=0",
        "--no-wss",
        "--no-admin",
        "--conf-file=/nonexistent/kurento.conf.json",
        '--faults=[{"kind": "rtp", "loss": 7}]',
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert "invalid fault rule in 'faults': rtp fault: 'loss' is a fraction" in output.decode()
