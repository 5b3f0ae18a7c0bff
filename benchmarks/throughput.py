"""Media throughput benchmark: forwarded SRTP packets/s, loss, added latency, CPU and memory per
call, for the emulator and for baselines on the same load.

    python -m benchmarks.throughput [--quick] [--out benchmarks/results]

Load: N concurrent calls made by lightweight load peers (``benchmarks/load_peers.py``: real ICE
and DTLS-SRTP, then pre-encoded Opus and VP8 sent with synchronous SRTP) in worker processes.
Opus is 50 packets/s per stream; VP8 640x480 at 30 fps is about 1 Mbit/s, several packets per
frame. Topologies: one-to-one (two WebRtcEndpoints connected both ways: 2 streams per call) and
one-to-many (one source endpoint connected to several sinks). Each system's N is swept upwards
until loss exceeds 1 %, the plan's cap, or the load generator falls behind its own schedule
(``generator_bound``: then the capacity found is a lower bound). The load peers' per-packet work
runs in C (``benchmarks/_loadgen.c``, ``--generator compiled``, the default where it was built):
on this project's 2-core machine one generator core offers and receives about 50,000 packets/s,
against 15,000 for the Python generator (``--generator python``).

Systems, each on the same load and in the same run:

- ``emulator``: ``python -m emulator`` on loopback, its compiled forwarding loop on
  (``--datapath compiled``, ``emulator/media/fastpath/_forward.c``);
- ``emulator-python``: the same with ``--datapath python`` (every packet through Python);
- ``direct``: the load peers talk to each other without a server (the latency baseline that is
  subtracted to give *added* latency);
- ``udp-relay``: a bare asyncio UDP relay (the ceiling of a Python process);
- ``c-relay``: the emulator's compiled loop with nothing around it, relaying each leg's packets
  unchanged and without SRTP crypto (the floor: ``benchmarks/baselines.py``, ``CompiledRelay``);
- ``aiortc-relay``: RTCPeerConnection per leg and MediaRelay: decode and re-encode (what a user
  would write); its output carries no send-time trailer, so only rate, loss and CPU are measured
  (loss from arrivals counted in the same window as the sends). Profiled here, about half of its
  event-loop time is aiortc's sender computing the audio level of every decoded frame in pure
  Python (``rtp.compute_audio_level_dbov``, done whether or not the extension is negotiated);
  encoding and decoding run in its executor threads;
- ``janus``: Janus 1.1 (Debian's ``janus``, ``make bench-deps``), EchoTest plugin: one call is
  two echo sessions, the same forwarded packets as a two-way call.

The system under test runs on the last CPU and the load workers on the others (``--no-pin`` to
turn that off; ``--server-cpus`` and ``--generator-cpus`` choose them, e.g. ``--server-cpus 8-15
--generator-cpus 0-7 --media-workers 8`` on a 16-core machine), so that they do not share its
core budget. Each level is measured ``--repeat`` times (default 3) and reported as the median of
each figure. Server CPU is the sum of its threads'
on-CPU time from ``/proc/<pid>/task/*/schedstat`` (the same utime+stime as ``/proc/<pid>/stat``,
in nanoseconds instead of 10 ms ticks); memory is VmRSS. ``--profile`` records py-spy stacks of
the emulator during each window.
Results: ``benchmarks/results/throughput-<date>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.baselines import janus_config
from benchmarks.control_plane import SERVER_READY, PreconditionFailed, machine
from benchmarks.load_peers import GENERATORS, LOADGEN_IMPORT_ERROR, worker_main

console = Console(width=max(shutil.get_terminal_size().columns, 150))

LOSS_STOP = 0.01
SYSTEMS = ("direct", "emulator", "emulator-python", "c-relay", "udp-relay", "janus", "aiortc-relay")
EMULATORS = {"emulator": "compiled", "emulator-python": "python"}
"""The emulator's systems, by the ``--datapath`` they run with."""


@dataclass(frozen=True)
class Scenario:
    """One sweep: a system, a topology, a media mix and the call counts to try."""

    system: str
    topology: str
    media: str
    levels: tuple[int, ...]
    sinks: int = 1

    @property
    def key(self) -> str:
        """``topology/media``: the scenarios that compare with each other."""
        return f"{self.topology}/{self.media}"


@dataclass
class Point:
    """One measured load level."""

    system: str
    topology: str
    media: str
    calls: int
    endpoints: int
    seconds: float
    offered_pps: float
    forwarded_pps: float
    loss: float
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    added_latency_ms_p50: float | None
    added_latency_ms_p99: float | None
    server_cores: float | None
    cpu_us_per_packet: float | None
    cpu_ms_per_call_second: float | None
    rss_mb: float | None
    rss_mb_per_call: float | None
    threads: int | None
    generator_cores: float
    generator_late_frames: int
    srtp_errors: int
    generator_send_errors: int = 0
    generator_bound: bool = False
    """The load generator fell behind its schedule: figures at this level say little."""
    repeats: int = 1
    """Windows measured at this level; every figure is their median."""


def plan(quick: bool, janus: bool) -> list[Scenario]:
    """What to run: short sweeps for ``--quick``, long ones otherwise."""
    systems = [s for s in SYSTEMS if janus or s != "janus"]
    audio: dict[str, tuple[int, ...]]
    video: dict[str, tuple[int, ...]]
    if quick:
        audio = {"direct": (20,), "emulator": (5, 20), "emulator-python": (20,), "c-relay": (20,)}
        audio |= {"udp-relay": (20,), "janus": (20,)}
        video = {s: (4,) for s in SYSTEMS}
        naive_audio: tuple[int, ...] = (5,)
        many_audio: tuple[int, ...] = (2,)
        many_video: tuple[int, ...] = (1,)
    else:
        steps = (5, 10, 25, 50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 1000)
        vsteps = (2, 5, 10, 20, 30, 40, 60, 80, 100, 140, 180, 240)
        same = ("direct", "emulator", "emulator-python", "c-relay", "udp-relay", "janus")
        audio = {s: steps for s in same}
        video = {s: vsteps for s in same}
        naive_audio = (1, 2, 5, 10, 25, 50, 100)
        many_audio, many_video = (2, 5, 10, 20, 40, 60, 80, 100), (1, 2, 4, 8, 12, 16, 24, 32)
    scenarios: list[Scenario] = []
    for system in systems:
        if system == "aiortc-relay":
            scenarios.append(Scenario(system, "one-to-one", "audio", naive_audio))
            continue
        scenarios.append(Scenario(system, "one-to-one", "audio", audio[system]))
        scenarios.append(Scenario(system, "one-to-one", "audio+video", video[system]))
    scenarios.append(Scenario("emulator", "one-to-many", "audio", many_audio, sinks=5))
    scenarios.append(Scenario("emulator", "one-to-many", "audio+video", many_video, sinks=5))
    return scenarios


# -- processes ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def subprocess_until(
    argv: list[str], pattern: str | None, cpu: str | None
) -> AsyncIterator[tuple[int, str]]:
    """Start a process (pinned with taskset to the CPU list ``cpu``), wait for a line matching
    ``pattern`` (if any)."""
    prefix = ["taskset", "-c", cpu] if cpu is not None else []
    process = await asyncio.create_subprocess_exec(
        *prefix,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    found = None
    try:
        while found is None and pattern is not None:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            if not line:
                raise RuntimeError(f"{argv[0]} exited before it was ready")
            found = re.search(pattern, line)
        drain = asyncio.create_task(_drain(process.stdout))
        yield process.pid, found.group(1) if found else ""
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(UnboundLocalError):
            drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def system_running(
    name: str, cpu: str | None, media_workers: int = 1
) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    """The system under test: its pid (None for ``direct``) and what workers need to reach it."""
    if name == "direct":
        yield None, {}
    elif name in EMULATORS:
        argv = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--no-wss", "--network-interfaces", "lo", "--log-level", "INFO"]
        argv += ["--media-workers", str(media_workers), "--datapath", EMULATORS[name]]
        async with subprocess_until(argv, SERVER_READY.pattern, cpu) as (pid, url):
            yield pid, {"url": url}
    elif name in ("udp-relay", "c-relay", "aiortc-relay"):
        argv = [sys.executable, "-m", "benchmarks.baselines", name]
        async with subprocess_until(argv, r"control (\d+)", cpu) as (pid, port):
            yield pid, {"control": ("127.0.0.1", int(port))}
    elif name == "janus":
        folder = Path(tempfile.mkdtemp(prefix="bench-janus-"))
        http_port = _free_tcp_port()
        config = janus_config(folder, http_port, (42000, 52000))
        argv = ["janus", "-C", str(config), "-F", str(folder)]
        try:
            async with subprocess_until(argv, None, cpu) as (pid, _):
                base = f"http://127.0.0.1:{http_port}/janus"
                await _wait_http(base + "/info")
                # Janus never offers loopback candidates: the peers use this machine's own
                # address, which the kernel still delivers locally.
                yield pid, {"url": base, "address": _local_ipv4()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        raise ValueError(name)


def _local_ipv4() -> str:
    import ifaddr

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                return ip.ip
    return "127.0.0.1"


def _free_tcp_port() -> int:
    # Janus takes its HTTP port from the config file, so a free one is picked just before.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_http(url: str) -> None:
    for _ in range(100):
        with contextlib.suppress(OSError):
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (the emulator's media workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    return tree


def process_cpu(pid: int) -> float:
    """CPU seconds of every thread of a process and its descendants, from schedstat (ns;
    utime+stime in /proc/stat counts 10 ms ticks, too coarse for a 2 s window)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(OSError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def rss_and_threads(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and thread count of a process and its descendants."""
    rss, threads = 0.0, 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
    return rss, threads


class Workers:
    """The load-generator processes and their pipes."""

    def __init__(self, count: int, cpus: list[int] | None, generator: str = "python") -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.processes: list[Any] = []
        for index in range(count):
            parent, child = context.Pipe()
            config = {"worker": index, "cpus": cpus, "generator": generator}
            process = context.Process(target=worker_main, args=(child, config), daemon=True)
            process.start()
            # the worker's end closed here: a dead worker is then an EOF or a broken pipe
            child.close()
            self.conns.append(parent)
            self.processes.append(process)

    async def ready(self) -> None:
        """Wait for every worker to have encoded its clips."""
        await asyncio.gather(*(self._reply(index) for index in range(len(self.conns))))

    async def _reply(self, index: int) -> Any:
        try:
            status, value = await asyncio.to_thread(self.conns[index].recv)
        except (EOFError, OSError) as exc:
            raise RuntimeError(self.death(index)) from exc
        if status == "error":
            raise RuntimeError(f"load worker: {value}")
        return value

    def death(self, index: int) -> str:
        """What became of a worker whose pipe closed: its exit code or the signal that ended it."""
        process = self.processes[index]
        process.join(5)
        code = process.exitcode
        if code is None:
            return f"load worker {index} closed its pipe but still runs"
        if code < 0:
            return f"load worker {index} died of {signal.Signals(-code).name}"
        return f"load worker {index} exited with code {code}"

    async def call(self, command: str, arguments: list[Any]) -> list[Any]:
        """Send each worker its own argument; gather the replies."""
        if len(arguments) != len(self.conns):
            raise ValueError(f"{len(arguments)} arguments for {len(self.conns)} workers")
        for index, argument in enumerate(arguments):
            try:
                self.conns[index].send((command, argument))
            except OSError as exc:
                raise RuntimeError(self.death(index)) from exc
        return list(await asyncio.gather(*(self._reply(index) for index in range(len(self.conns)))))

    async def stop(self) -> None:
        """Stop every worker process."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("stop", [None] * len(self.conns)), 30)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()


# -- measuring ------------------------------------------------------------------------------------


async def sweep(
    scenario: Scenario,
    workers: Workers,
    server_cpu: str | None,
    timing: dict[str, Any],
    direct: dict[tuple[str, str, int], Point],
    progress: Progress,
    task: Any,
) -> list[Point]:
    """Raise the call count through the scenario's levels until loss exceeds 1 %."""
    points: list[Point] = []
    media_workers = int(timing.get("media_workers", 1))
    async with system_running(scenario.system, server_cpu, media_workers) as (pid, reach):
        config = {
            "system": scenario.system,
            "topology": scenario.topology,
            "video": scenario.media == "audio+video",
            "sinks": scenario.sinks,
            "extensions": timing.get("extensions", True),
            "address": "127.0.0.1",
            **reach,
        }
        await workers.call("configure", [config] * len(workers.conns))
        idle_rss = rss_and_threads(pid)[0] if pid else 0.0
        calls = 0
        try:
            for level in scenario.levels:
                progress.update(task, description=f"{scenario.system} {scenario.key} x{level}")
                shares = _shares(level - calls, len(workers.conns), offset=calls)
                await workers.call("add", shares)
                calls = level
                point = await measure_repeated(
                    scenario, workers, pid, calls, idle_rss, timing, direct
                )
                points.append(point)
                progress.advance(task)
                if point.loss > LOSS_STOP or point.generator_bound:
                    break
        finally:
            progress.advance(task, len(scenario.levels) - len(points))
            await workers.call("close", [None] * len(workers.conns))
    return points


def _shares(total: int, count: int, offset: int) -> list[int]:
    """Spread ``total`` new calls over workers, continuing the round robin at ``offset``."""
    shares = [0] * count
    for index in range(total):
        shares[(offset + index) % count] += 1
    return shares


async def measure_repeated(
    scenario: Scenario,
    workers: Workers,
    pid: int | None,
    calls: int,
    idle_rss: float,
    timing: dict[str, Any],
    direct: dict[tuple[str, str, int], Point],
) -> Point:
    """``timing["repeat"]`` windows at the current call count: each figure their median (the
    generator counts as bound when it was in any window)."""
    runs = [
        await measure(scenario, workers, pid, calls, idle_rss, timing, direct)
        for _ in range(max(1, int(timing.get("repeat", 1))))
    ]
    return median_point(runs)


def median_point(runs: list[Point]) -> Point:
    """Per field, the median of the runs' numbers (None where any run has none)."""
    values: dict[str, Any] = {}
    for name, first in asdict(runs[0]).items():
        column = [getattr(run, name) for run in runs]
        if isinstance(first, bool):
            values[name] = any(column)
        elif isinstance(first, int | float) and all(v is not None for v in column):
            middle = statistics.median(column)
            values[name] = type(first)(middle) if isinstance(first, int) else round(middle, 5)
        else:
            values[name] = first if all(v is not None for v in column) else None
    values["repeats"] = len(runs)
    return Point(**values)


async def measure(
    scenario: Scenario,
    workers: Workers,
    pid: int | None,
    calls: int,
    idle_rss: float,
    timing: dict[str, Any],
    direct: dict[tuple[str, str, int], Point],
) -> Point:
    """One window at the current call count."""
    await asyncio.sleep(timing["warmup"])
    start = time.perf_counter() + 0.2
    end = start + timing["window"]
    replies_task = asyncio.ensure_future(
        workers.call("measure", [(start, end, timing["grace"])] * len(workers.conns))
    )
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu_start = process_cpu(pid) if pid else 0.0
    profiler = None
    if pid and timing.get("profile") and scenario.system == "emulator":
        profiler = await _profile(pid, scenario, calls, timing["window"], Path(timing["out"]))
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    cpu = process_cpu(pid) - cpu_start if pid else 0.0
    rss, threads = rss_and_threads(pid) if pid else (0.0, 0)
    replies = await replies_task
    if profiler is not None:
        await profiler.wait()
    window = end - start
    sent = sum(r["sent"] for r in replies)
    tagged = scenario.system != "aiortc-relay"
    received = sum(r["received"] if tagged else r["arrivals"] for r in replies)
    latencies = np.concatenate([r["latencies"] for r in replies]) if tagged else np.array([])
    p50 = p99 = None
    if latencies.size:
        p50 = float(np.percentile(latencies, 50) * 1000)
        p99 = float(np.percentile(latencies, 99) * 1000)
    base = _nearest_direct(direct, scenario, calls)
    added50 = added99 = None
    if p50 is not None and p99 is not None and base is not None and scenario.system != "direct":
        assert base.latency_ms_p50 is not None and base.latency_ms_p99 is not None
        added50 = max(0.0, p50 - base.latency_ms_p50)
        added99 = max(0.0, p99 - base.latency_ms_p99)
    check_level(scenario.system, sent, received)
    forwarded = received / window
    endpoints = calls * (scenario.sinks + 1 if scenario.topology == "one-to-many" else 2)
    return Point(
        system=scenario.system,
        topology=scenario.topology,
        media=scenario.media,
        calls=calls,
        endpoints=endpoints,
        seconds=round(window, 3),
        offered_pps=round(sent / window, 1),
        forwarded_pps=round(forwarded, 1),
        loss=round(max(0.0, 1 - received / sent), 5) if sent else 1.0,
        latency_ms_p50=_round(p50),
        latency_ms_p99=_round(p99),
        added_latency_ms_p50=_round(added50),
        added_latency_ms_p99=_round(added99),
        server_cores=round(cpu / window, 4) if pid else None,
        cpu_us_per_packet=round(cpu / received * 1e6, 2) if pid and received else None,
        cpu_ms_per_call_second=round(cpu / window / calls * 1000, 3) if pid else None,
        rss_mb=round(rss, 1) if pid else None,
        rss_mb_per_call=round((rss - idle_rss) / calls, 3) if pid else None,
        threads=threads if pid else None,
        generator_cores=round(sum(r["cpu_seconds"] for r in replies) / window, 3),
        generator_late_frames=sum(r["late_frames"] for r in replies),
        srtp_errors=sum(r["srtp_errors"] for r in replies),
        generator_send_errors=sum(r["send_errors"] for r in replies),
        generator_bound=_generator_bound(replies, sent, window),
    )


async def _profile(
    pid: int, scenario: Scenario, calls: int, seconds: float, out: Path
) -> asyncio.subprocess.Process:
    """py-spy samples the server during the window (the CPU it takes is not the server's)."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    name = f"profile-{scenario.topology}-{scenario.media.replace('+', '-')}-{calls}.txt"
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out / name),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _generator_bound(replies: list[dict[str, Any]], sent: int, window: float) -> bool:
    """Whether the load generator, not the system, set the pace: frames late by more than an
    interval for 5 % of the packets (a few scheduling stalls on a shared machine stay under it),
    failed sends, or its processes busy 90 % of the window."""
    late = int(sum(r["late_frames"] for r in replies))
    failed = int(sum(r["send_errors"] for r in replies))
    busy = float(max(r["cpu_seconds"] for r in replies)) / window
    return late > 0.05 * max(sent, 1) or failed > 0.005 * max(sent, 1) or busy > 0.9


def check_level(system: str, sent: int, received: int) -> None:
    """A window where nothing was sent, or nothing came back, is a broken set-up (a baseline
    that never relayed, a generator that never started), not a measurement.

    Raises:
        PreconditionFailed: saying which.
    """
    if sent == 0:
        raise PreconditionFailed(f"{system}: the generator sent nothing in the window")
    if received == 0:
        raise PreconditionFailed(f"{system}: nothing came back of {sent} packets sent")


def choose_generator(asked: str) -> tuple[str, str]:
    """The generator to use and, when it is not the one asked for, why."""
    if asked == "compiled" and LOADGEN_IMPORT_ERROR:
        return "python", LOADGEN_IMPORT_ERROR
    return asked, ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _nearest_direct(
    direct: dict[tuple[str, str, int], Point], scenario: Scenario, calls: int
) -> Point | None:
    # The direct path at the same offered load: the same streams without a server in between.
    offered = calls * (scenario.sinks if scenario.topology == "one-to-many" else 2)
    same = [p for (topology, media, _), p in direct.items() if media == scenario.media]
    if not same:
        return None
    return min(same, key=lambda p: abs(p.calls * 2 - offered))


# -- the report -----------------------------------------------------------------------------------


def summarize(points: list[Point]) -> dict[str, Any]:
    """Per system and scenario: capacity figures, then the emulator's ratios and the targets."""
    systems: dict[str, dict[str, Any]] = {}
    key: tuple[str, str, str]
    for key in sorted({(p.system, p.topology, p.media) for p in points}):
        mine = [p for p in points if (p.system, p.topology, p.media) == key]
        ok1 = [p for p in mine if p.loss <= LOSS_STOP and not p.generator_bound]
        ok01 = [p for p in mine if p.loss <= 0.001 and not p.generator_bound]
        costs = [p.cpu_us_per_packet for p in mine if p.cpu_us_per_packet and p.loss <= LOSS_STOP]
        cpu_us = statistics.median(costs) if costs else None
        systems["/".join(key)] = {
            "loss_limit_reached": any(p.loss > LOSS_STOP for p in mine),
            "generator_bound": any(p.generator_bound for p in mine),
            "max_calls_loss_under_1pct": max((p.calls for p in ok1), default=0),
            "max_forwarded_pps_loss_under_0.1pct": max((p.forwarded_pps for p in ok01), default=0),
            "median_cpu_us_per_packet": _round(cpu_us),
            "packets_per_core_at_that_cost": round(1e6 / cpu_us) if cpu_us else None,
            "median_rss_mb_per_call": _round(
                statistics.median([p.rss_mb_per_call for p in ok1 if p.rss_mb_per_call is not None])
                if any(p.rss_mb_per_call is not None for p in ok1)
                else None
            ),
        }
    ratios: dict[str, Any] = {}
    for name, figures in systems.items():
        system, scenario = name.split("/", 1)
        ours = systems.get(f"emulator/{scenario}")
        if system in ("emulator", "direct") or ours is None:
            continue
        ratios[name] = {
            "calls_ratio_is_exact": ours["loss_limit_reached"] and figures["loss_limit_reached"],
            "cpu_per_packet_ratio_at_same_calls": _matched_cpu_ratio(points, system, scenario),
            "calls_ratio": _ratio(
                ours["max_calls_loss_under_1pct"], figures["max_calls_loss_under_1pct"]
            ),
            "cpu_per_packet_ratio": _ratio(
                ours["median_cpu_us_per_packet"], figures["median_cpu_us_per_packet"]
            ),
            "loss_free_pps_ratio": _ratio(
                ours["max_forwarded_pps_loss_under_0.1pct"],
                figures["max_forwarded_pps_loss_under_0.1pct"],
            ),
        }
    return {
        "systems": systems,
        "emulator_ratios": ratios,
        "targets": targets(points, systems, ratios),
    }


def _matched_cpu_ratio(points: list[Point], system: str, scenario: str) -> float | None:
    """Median over the call counts both ran (loss <= 1 %) of emulator / other CPU per packet:
    per-packet cost falls as the rate rises, so only equal loads compare."""

    def costs(name: str) -> dict[int, float]:
        return {
            p.calls: p.cpu_us_per_packet
            for p in points
            if p.system == name
            and f"{p.topology}/{p.media}" == scenario
            and p.cpu_us_per_packet
            and p.loss <= LOSS_STOP
        }

    ours, theirs = costs("emulator"), costs(system)
    common = sorted(set(ours) & set(theirs))
    if not common:
        return None
    return round(statistics.median(ours[c] / theirs[c] for c in common), 3)


def cpu_list(text: str) -> list[int]:
    """``0-3,6`` -> [0, 1, 2, 3, 6] (taskset's list syntax)."""
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus += range(int(low), int(high or low) + 1)
    return cpus


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def targets(points: list[Point], systems: dict[str, Any], ratios: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, reported and not asserted."""
    emulator = systems.get("emulator/one-to-one/audio", {})
    naive = systems.get("aiortc-relay/one-to-one/audio", {})
    opus = [
        p
        for p in points
        if (p.system, p.topology, p.media) == ("emulator", "one-to-one", "audio") and p.calls >= 600
    ]
    six_hundred = min(opus, key=lambda p: p.calls) if opus else None
    pps = emulator.get("max_forwarded_pps_loss_under_0.1pct")
    per_packet = emulator.get("median_cpu_us_per_packet")
    c_floor = ratios.get("c-relay/one-to-one/audio", {}).get("cpu_per_packet_ratio_at_same_calls")
    return {
        "pps_per_core_at_under_0.1pct_loss >= 30000": {
            "value": pps,
            "per_core_at_its_cpu_cost": round(1e6 / per_packet) if per_packet else None,
            "met": bool(pps and pps >= 30000),
            "note": "one server process = at most one core; a level the generator could not "
            "offer is not counted (see generator_bound)",
        },
        "cpu_per_packet_below_janus": {
            media: {
                "emulator_over_janus_at_same_calls": (
                    ratio := ratios.get(f"janus/one-to-one/{media}", {}).get(
                        "cpu_per_packet_ratio_at_same_calls"
                    )
                ),
                "met": None if ratio is None else ratio < 1,
            }
            for media in ("audio", "audio+video")
        },
        "cpu_per_packet_within_1.5x_of_c_relay": {
            "emulator_over_c_relay_at_same_calls": c_floor,
            "met": None if c_floor is None else c_floor <= 1.5,
        },
        "compiled_over_python_cpu_per_packet": {
            media: ratios.get(f"emulator-python/one-to-one/{media}", {}).get(
                "cpu_per_packet_ratio_at_same_calls"
            )
            for media in ("audio", "audio+video")
        },
        "calls_vs_naive_relay >= 20x": _ratio(
            emulator.get("max_calls_loss_under_1pct"), naive.get("max_calls_loss_under_1pct")
        ),
        "600_opus_calls_loss_under_0.5pct_p99_under_10ms": (
            {
                "calls": six_hundred.calls,
                "loss": six_hundred.loss,
                "added_p99_ms": six_hundred.added_latency_ms_p99,
                "met": six_hundred.loss < 0.005 and (six_hundred.added_latency_ms_p99 or 1e9) < 10,
            }
            if six_hundred
            else "not reached in this run"
        ),
    }


def plot(points: list[Point], target: Path) -> None:
    """Loss, added p99 latency and CPU per packet against offered load, per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    scenarios = sorted(
        {(p.topology, p.media) for p in points}, key=lambda k: (k[0] != "one-to-one", k)
    )
    figure, axes = plt.subplots(
        len(scenarios), 3, figsize=(15, 3.6 * len(scenarios)), squeeze=False
    )
    metrics = [
        ("loss", "loss (%)", 100.0),
        ("added_latency_ms_p99", "added p99 latency (ms)", 1.0),
        ("cpu_us_per_packet", "server CPU per packet (µs, log)", 1.0),
    ]
    colors = {system: f"C{index}" for index, system in enumerate(SYSTEMS)}
    for row, (topology, media) in enumerate(scenarios):
        for column, (attribute, label, scale) in enumerate(metrics):
            axis = axes[row][column]
            for system in SYSTEMS:
                mine = [
                    p
                    for p in points
                    if (p.system, p.topology, p.media) == (system, topology, media)
                ]
                values = [
                    (p.offered_pps, getattr(p, attribute) * scale)
                    for p in mine
                    if getattr(p, attribute) is not None
                ]
                if values:
                    xs, ys = zip(*values, strict=True)
                    axis.plot(xs, ys, marker="o", label=system, color=colors[system])
            axis.set_title(f"{topology}, {media}: {label}", fontsize=9)
            axis.set_xlabel("offered packets/s (deliveries)")
            axis.set_xscale("log")
            axis.xaxis.set_major_formatter(ScalarFormatter())
            low, high = axis.get_xlim()
            # Within one decade a log axis has no major tick: label the minor ones then.
            narrow = axis.has_data() and high < 10 * low
            axis.xaxis.set_minor_formatter(ScalarFormatter() if narrow else NullFormatter())
            if attribute == "cpu_us_per_packet" and axis.has_data():
                axis.set_yscale("log")
            axis.grid(alpha=0.3)
            if column == 0:
                axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)


def show(report: dict[str, Any]) -> None:
    """Print every point, then the summary."""
    table = Table(title="media throughput")
    columns = [
        ("system", "system"),
        ("scenario", None),
        ("calls", "calls"),
        ("offered pps", "offered_pps"),
        ("fwd pps", "forwarded_pps"),
        ("loss %", None),
        ("+p50 ms", "added_latency_ms_p50"),
        ("+p99 ms", "added_latency_ms_p99"),
        ("cores", "server_cores"),
        ("µs/pkt", "cpu_us_per_packet"),
        ("MB/call", "rss_mb_per_call"),
        ("gen cores", "generator_cores"),
    ]
    for title, _ in columns:
        table.add_column(title)
    for p in report["points"]:
        cells = []
        for _, attribute in columns:
            if attribute is None:
                continue
            cells.append(str(p[attribute]))
        cells.insert(1, f"{p['topology']}/{p['media']}")
        cells.insert(5, f"{p['loss'] * 100:.2f}")
        table.add_row(*cells)
    console.print(table)
    console.print_json(json.dumps(report["summary"]))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario with a progress bar."""
    timing = (
        {"warmup": 0.5, "window": 2.0, "grace": 0.3}
        if args.quick
        else {"warmup": 2.0, "window": 8.0, "grace": 0.5}
    )
    cores = os.cpu_count() or 1
    pin = args.pin and cores >= 2
    server_cpu = args.server_cpus or (str(cores - 1) if pin else None)
    worker_cpus = cpu_list(args.generator_cpus) if args.generator_cpus else None
    if worker_cpus is None and pin:
        worker_cpus = list(range(cores - 1))
    count = args.workers or (len(worker_cpus) if worker_cpus else cores)
    has_janus = shutil.which("janus") is not None and not args.no_janus
    scenarios = [
        s
        for s in plan(args.quick, has_janus)
        if (not args.only or s.system in args.only)
        and (not args.scenario or s.key in args.scenario)
        and (s.system not in EMULATORS or EMULATORS[s.system] in args.datapath)
    ]
    if args.levels:
        scenarios = [replace(s, levels=tuple(args.levels)) for s in scenarios]
    if args.profile:
        timing = {**timing, "profile": 1.0}
    timing = {**timing, "repeat": args.repeat}
    timing_out: dict[str, Any] = {
        **timing,
        "out": str(args.out),
        "extensions": args.extensions,
        "media_workers": args.media_workers,
    }
    generator, fallback = choose_generator(args.generator)
    if fallback:
        console.print(f"[yellow]the Python load generator instead of the compiled one: {fallback}")
    points: list[Point] = []
    failures: dict[str, str] = {}
    direct: dict[tuple[str, str, int], Point] = {}
    workers = Workers(count, worker_cpus, generator)
    try:
        await workers.ready()
        with Progress(console=console) as progress:
            task = progress.add_task("throughput", total=sum(len(s.levels) for s in scenarios))
            for scenario in scenarios:
                try:
                    found = await sweep(
                        scenario, workers, server_cpu, timing_out, direct, progress, task
                    )
                except Exception as exc:
                    console.print(f"[red]{scenario.system} {scenario.key} failed: {exc!r}")
                    console.print_exception()
                    failures[f"{scenario.system}/{scenario.key}"] = f"{type(exc).__name__}: {exc}"
                    continue
                points += found
                if scenario.system == "direct":
                    for p in found:
                        direct[(p.topology, p.media, p.calls)] = p
    finally:
        await workers.stop()
    return {
        "benchmark": "throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "quick": args.quick,
        "setup": {
            "server_cpu": server_cpu,
            "worker_cpus": worker_cpus,
            "workers": count,
            "generator": generator,
            "generator_fallback_reason": fallback or None,
            **timing,
            "janus": has_janus,
            "audio": "Opus 20 ms, 50 packets/s per stream, aiortc's encoder",
            "video": "VP8 640x480 30 fps about 1 Mbit/s, aiortc's encoder and packetiser",
            "extensions": (
                "ssrc-audio-level (audio), abs-send-time (video) on every packet"
                if args.extensions
                else "none"
            ),
            "trailer": "17-byte RTP padding: send time, stream id, index",
        },
        "points": [asdict(p) for p in points],
        "failures": failures,
        "summary": summarize(points),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one or two levels each, < 1 minute")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workers", type=int, help="load processes (default: one per free core)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    parser.add_argument("--no-janus", action="store_true", help="skip Janus even if installed")
    parser.add_argument("--only", nargs="*", help="systems to run (default: all)")
    parser.add_argument(
        "--scenario", nargs="*", help="e.g. one-to-one/audio one-to-many/audio+video (default: all)"
    )
    parser.add_argument("--levels", nargs="*", type=int, help="call counts instead of the plan's")
    parser.add_argument(
        "--media-workers",
        type=int,
        default=1,
        help="the emulator's media worker processes (default 1; with more, also --no-pin)",
    )
    parser.add_argument(
        "--no-extensions",
        dest="extensions",
        action="store_false",
        help="offer no RTP header extensions (by default audio-level and abs-send-time, as "
        "browsers do, so that the emulator's extension mapping is on the measured path)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the emulator in each window (raw stacks)"
    )
    parser.add_argument(
        "--datapath",
        nargs="*",
        choices=sorted(set(EMULATORS.values())),
        default=sorted(set(EMULATORS.values())),
        help="the emulator's forwarding loops to run: compiled (system 'emulator'), python "
        "(system 'emulator-python'); default both, so that their ratio is of one run",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="windows per level; figures are their medians"
    )
    parser.add_argument(
        "--generator",
        choices=GENERATORS,
        default="compiled",
        help="the load peers' per-packet work: compiled (benchmarks/_loadgen.c, the default "
        "where it was built; else python, with the reason printed) or python",
    )
    parser.add_argument(
        "--suffix", default="", help="appended to the results' file names, e.g. -generator"
    )
    parser.add_argument("--server-cpus", help="taskset CPU list of the system under test")
    parser.add_argument(
        "--generator-cpus", help="CPU list of the load processes, e.g. 0-7 (one process each)"
    )
    args = parser.parse_args()
    report = asyncio.run(run(args))
    show(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"throughput-{report['date'][:10]}{args.suffix}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    if report["points"]:
        plot([Point(**p) for p in report["points"]], stem.with_suffix(".png"))
    console.print(f"wrote {stem}.json and .png")
    if report["failures"]:
        console.print(f"[red]failed: {report['failures']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
