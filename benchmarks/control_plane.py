"""Control-plane benchmark: JSON-RPC round trips per second against a real server process.

    python -m benchmarks.control_plane [--quick] [--out benchmarks/results]

Measures, with 1 and 50 concurrent clients (each its own WebSocket, requests one after another):
``ping`` round trips, and create/release of a pipeline with 10 PassThrough elements (12 requests per
cycle). The server runs in its own process, as in production; the clients share this process.

Also what the media benchmarks (``media_elements.py``, ``composite.py``) share on the server
side: a fresh server process per level (``server_running``, ``Server``), the server's cost over a
measuring window (``usage_window``), the sweep over levels until one does not hold
(``sweep_levels``), the CPU split between server and load generator (``pin_server``), and the
results' JSON and plot (``write_results``, ``plot_levels``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

from emulator.transport.client import KurentoClient

console = Console()


@dataclass
class Result:
    """One measured scenario."""

    scenario: str
    clients: int
    seconds: float
    operations: int
    requests: int
    ops_per_second: float
    requests_per_second: float
    latency_ms_p50: float
    latency_ms_p99: float
    server_cpu_seconds: float


class Rpc:
    """A minimal sequential JSON-RPC client (kept lean so the load generator stays cheap)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.session: str | None = None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            if self.session:
                params = {**params, "sessionId": self.session}
            message["params"] = params
        await self.ws.send(json.dumps(message))
        reply = json.loads(await self.ws.recv())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result = reply["result"]
        if isinstance(result, dict) and result.get("sessionId"):
            self.session = result["sessionId"]
        return result


async def ping_cycle(rpc: Rpc) -> int:
    """One ping round trip."""
    await rpc.call("ping")
    return 1


async def pipeline_cycle(rpc: Rpc) -> int:
    """Create a pipeline with 10 elements, then release it: 12 requests."""
    pipeline = (await rpc.call("create", {"type": "MediaPipeline"}))["value"]
    for _ in range(10):
        await rpc.call(
            "create", {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
        )
    await rpc.call("release", {"object": pipeline})
    return 12


SERVER_READY = re.compile(r"^(?!\[worker ).*listening on (ws://\S+/kurento) \(ws\)")
"""The server's own "listening on ws://... (ws)" line: not a media worker's (relayed as
"[worker N] ...") nor the control plane's "media worker N: pid P, ws://..." (issue 17: matching
any ws:// URL sent every call of ``--media-workers N`` to worker 0)."""


def server_url(line: str) -> str | None:
    """The URL clients connect to, when ``line`` is the server's ready line."""
    found = SERVER_READY.search(line)
    return found.group(1) if found else None


async def launch_emulator(
    extra: list[str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 20,
    log: list[str] | None = None,
) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``python -m emulator`` on an ephemeral port (after ``prefix``, e.g. ``taskset``);
    the process, its log on stdout, and the ``ws://`` URL it listens on (the lines read until
    then are added to ``log``). Its admin listener takes an ephemeral port too, unless ``extra``
    names one: two servers at once (side-by-side tests, a ``make run`` beside a benchmark) must
    not fight over 8890.

    Raises:
        RuntimeError: the server exited before it listened.
    """
    process = await asyncio.create_subprocess_exec(
        *(prefix or []),
        sys.executable,
        "-m",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-wss",
        "--log-level",
        "INFO",
        *_ephemeral_admin(extra or []),
        *(extra or []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url = None
    while url is None:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout)).decode()
        if not line:
            raise RuntimeError("the server exited before listening")
        if log is not None:
            log.append(line)
        url = server_url(line)
    return process, url


def _ephemeral_admin(extra: list[str]) -> list[str]:
    """``--admin-port 0`` unless ``extra`` chooses the admin listener's port or turns it off."""
    chosen = any(arg.startswith(("--admin-port", "--no-admin")) for arg in extra)
    return [] if chosen else ["--admin-port", "0"]


@contextlib.asynccontextmanager
async def server_process(extra: list[str] | None = None) -> AsyncIterator[tuple[str, int]]:
    """Start ``python -m emulator`` on an ephemeral port; yield its URL and pid."""
    process, url = await launch_emulator(extra)
    assert process.stdout is not None
    # Keep reading the server's log so that a full pipe never blocks it.
    drain = asyncio.create_task(_drain(process.stdout))
    try:
        yield url, process.pid
    finally:
        process.terminate()
        await process.wait()
        drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    url: str,
    pid: int,
    name: str,
    cycle: Callable[[Rpc], Awaitable[int]],
    clients: int,
    seconds: float,
) -> Result:
    """Run ``cycle`` in a loop on ``clients`` connections for ``seconds``."""
    latencies: list[float] = []
    counts = {"ops": 0, "requests": 0}
    sockets = [await connect(url, compression=None, ping_interval=None) for _ in range(clients)]
    rpcs = [Rpc(ws) for ws in sockets]
    for rpc in rpcs:
        await rpc.call("ping")
    deadline = time.perf_counter() + seconds

    async def worker(rpc: Rpc) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            requests = await cycle(rpc)
            counts["requests"] += requests
            latencies.append(time.perf_counter() - started)
            counts["ops"] += 1

    cpu_before, wall_before = process_cpu(pid), time.perf_counter()
    await asyncio.gather(*(worker(rpc) for rpc in rpcs))
    elapsed = time.perf_counter() - wall_before
    cpu = process_cpu(pid) - cpu_before
    for ws in sockets:
        await ws.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Result(
        scenario=name,
        clients=clients,
        seconds=round(elapsed, 3),
        operations=counts["ops"],
        requests=counts["requests"],
        ops_per_second=round(counts["ops"] / elapsed, 1),
        requests_per_second=round(counts["requests"] / elapsed, 1),
        latency_ms_p50=round(statistics.median(latencies) * 1000, 3) if latencies else 0.0,
        latency_ms_p99=round(p99 * 1000, 3),
        server_cpu_seconds=round(cpu, 3),
    )


# -- a server per level: what the media benchmarks share ------------------------------------------


class PreconditionFailed(RuntimeError):
    """The run did not run as intended: its figures would mean nothing."""


@dataclass
class Server:
    """A server in its own process, its log's warnings and errors kept."""

    process: asyncio.subprocess.Process
    url: str
    warnings: list[str] = field(default_factory=list)
    idle_rss: float = 0.0
    """RSS (MB) of the fresh server, before any stream."""

    @property
    def pid(self) -> int:
        """The server's pid."""
        return self.process.pid

    def check_alive(self) -> None:
        """Raise when the server process has exited."""
        stat = Path(f"/proc/{self.pid}/stat")
        state = stat.read_text().rsplit(")", 1)[1].split()[0] if stat.exists() else "gone"
        if self.process.returncode is not None or state in ("Z", "X", "gone"):
            tail = "\n".join(self.warnings[-5:])
            raise PreconditionFailed(f"the server exited ({self.process.returncode}): {tail}")


@contextlib.asynccontextmanager
async def server_running(cpu: int | None, extra: Sequence[str] = ()) -> AsyncIterator[Server]:
    """``python -m emulator`` on an ephemeral port, gathering on loopback, pinned to ``cpu``
    with taskset; ``extra`` options are added to its command line."""
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    try:
        process, url = await launch_emulator(
            ["--network-interfaces", "lo", *extra], prefix, timeout=30
        )
    except RuntimeError as exc:
        raise PreconditionFailed(str(exc)) from exc
    assert process.stdout is not None
    server = Server(process, url)
    # Keep reading the log (a full pipe would block the server) and keep what went wrong.
    drain = asyncio.create_task(_keep_warnings(process.stdout, server.warnings))
    try:
        yield server
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        drain.cancel()


async def _keep_warnings(stream: asyncio.StreamReader, warnings: list[str]) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        if " ! " in text or "WARNING" in text or "ERROR" in text or "Traceback" in text:
            warnings.append(text)


Usage = tuple[float, tuple[float, float], float]
"""Server cores, (idle, now) server RSS in MB, and the load generator's own cores."""


async def usage_window(server: Server, seconds: float) -> Usage:
    """Server cores used (its media workers included) and (idle, now) RSS over a window of
    ``seconds``; the generator's own cores (this process)."""
    # throughput.py holds the process-tree measures and imports this module: taken when used.
    from benchmarks.throughput import process_cpu as tree_cpu

    server.check_alive()
    cpu, own, wall = tree_cpu(server.pid), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - wall
    used = (tree_cpu(server.pid) - cpu) / elapsed
    generator = (time.process_time() - own) / elapsed
    server.check_alive()
    return used, (server.idle_rss, _rss_mb(server.pid)), generator


def _rss_mb(pid: int) -> float:
    from benchmarks.throughput import rss_and_threads  # as in usage_window

    return rss_and_threads(pid)[0]


async def release_all(pipelines: Sequence[Any]) -> None:
    """Release each pipeline (``RemoteObject``), whatever became of the others."""
    for pipeline in pipelines:
        with contextlib.suppress(Exception):
            await pipeline.release()


def pin_server(pin: bool) -> int | None:
    """The CPU the servers are pinned to (the last one), this process (the load generator)
    moved to the others; None when not pinned (asked, or a single CPU)."""
    cores = os.cpu_count() or 1
    if not pin or cores < 2:
        return None
    os.sched_setaffinity(0, set(range(cores - 1)))
    return cores - 1


class HeldLevel(Protocol):
    """A level of a sweep: its case, whether it held, and why not."""

    @property
    def case(self) -> str:
        """The case the level belongs to."""

    @property
    def held(self) -> bool:
        """Whether the level held real-time pace."""

    @property
    def why_not(self) -> list[str]:
        """What did not hold."""


L = TypeVar("L", bound=HeldLevel)


async def sweep_levels(
    label: str,
    counts: Sequence[int],
    cpu: int | None,
    measure: Callable[[int, Server, KurentoClient], Awaitable[L]],
    describe: Callable[[L], str],
    out: Console,
    extra: Sequence[str] = (),
) -> list[L]:
    """``measure`` each count on a fresh server, until a level does not hold pace; each level
    is printed with ``describe`` (what it cost) and whether it held."""
    levels: list[L] = []
    for count in counts:
        out.print(f"{label} x{count}...")
        async with server_running(cpu, extra) as server:
            server.idle_rss = _rss_mb(server.pid)
            async with await KurentoClient.connect(server.url) as client:
                level = await measure(count, server, client)
            server.check_alive()
        levels.append(level)
        state = "held" if level.held else "NOT held: " + "; ".join(level.why_not)
        out.print(f"  {describe(level)}, {state}")
        if not level.held:
            break
    return levels


def plot_levels(
    levels: Sequence[Any],
    count: str,
    metrics: list[tuple[str, str, float]],
    xlabel: str,
    target: Path,
    log2: bool = False,
) -> None:
    """Side by side, each metric (attribute, title, scale) against the ``count`` attribute, one
    line per ``case``; hollow points: the level did not hold pace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, axes = plt.subplots(1, len(metrics), figsize=(12, 4.2))
    cases = list(dict.fromkeys(level.case for level in levels))
    for axis, (attribute, label, scale) in zip(axes, metrics, strict=True):
        for index, case in enumerate(cases):
            mine = [lv for lv in levels if lv.case == case and getattr(lv, attribute) is not None]
            xs = [getattr(level, count) for level in mine]
            ys = [getattr(level, attribute) * scale for level in mine]
            color = f"C{index}"
            axis.plot(xs, ys, color=color, label=case)
            for x, y, level in zip(xs, ys, mine, strict=True):
                axis.plot(x, y, "o", color=color, markerfacecolor=color if level.held else "none")
        if log2:
            axis.set_xscale("log", base=2)
            axis.xaxis.set_major_formatter(ScalarFormatter())
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel(xlabel)
        axis.set_title(label, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)


def media_arguments(description: str, quick: str) -> argparse.ArgumentParser:
    """The options every media benchmark takes: ``--quick`` (what it means: ``quick``), ``--out``
    and ``--no-pin``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    return parser


def report_head(
    benchmark: str, quick: bool, server_cpu: int | None, warmup: float, window: float
) -> dict[str, Any]:
    """What every media benchmark's report starts with; its own ``setup`` entries are added."""
    pinned = server_cpu is not None
    generator = "this process, on the other CPUs" if pinned else "this process, unpinned"
    return {
        "benchmark": benchmark,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "quick": quick,
        "setup": {
            "server_cpu": server_cpu,
            "generator": generator,
            "warmup_seconds": warmup,
            "window_seconds": window,
        },
    }


def best_and_broken(levels: Sequence[L], count: str) -> dict[str, tuple[L | None, L | None]]:
    """Per ``case``: the level with the highest ``count`` that held, and the first that did not."""
    found: dict[str, tuple[L | None, L | None]] = {}
    for case in dict.fromkeys(level.case for level in levels):
        mine = [level for level in levels if level.case == case]
        held = [level for level in mine if level.held]
        best = max(held, key=lambda level: getattr(level, count)) if held else None
        found[case] = (best, next((level for level in mine if not level.held), None))
    return found


def write_results(
    report: dict[str, Any], stem: Path, plot: Callable[[Path], None], out: Console
) -> None:
    """``<stem>.json`` and the plot as ``<stem>.png``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(Path(f"{stem}.png"))
    out.print(f"wrote {stem}.json and .png")


def machine() -> dict[str, Any]:
    """A description of the machine the figures were taken on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def run(quick: bool) -> dict[str, Any]:
    """Every scenario, with a progress bar."""
    seconds = 2.0 if quick else 10.0
    plan = [
        ("ping", ping_cycle, 1),
        ("ping", ping_cycle, 50),
        ("pipeline+10 elements", pipeline_cycle, 1),
        ("pipeline+10 elements", pipeline_cycle, 50),
    ]
    results: list[Result] = []
    async with server_process() as (url, pid):
        with Progress(console=console) as progress:
            task = progress.add_task("control plane", total=len(plan))
            for name, cycle, clients in plan:
                progress.update(task, description=f"{name}, {clients} client(s)")
                results.append(await measure(url, pid, name, cycle, clients, seconds))
                progress.advance(task)
    return {
        "benchmark": "control_plane",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "quick": quick,
        "results": [asdict(r) for r in results],
    }


def show(report: dict[str, Any]) -> None:
    """Print the figures as a table."""
    table = Table(title="kurento-emulator control plane")
    for column in (
        "scenario",
        "clients",
        "ops/s",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "server CPU s",
    ):
        table.add_column(column)
    for r in report["results"]:
        table.add_row(
            r["scenario"],
            str(r["clients"]),
            str(r["ops_per_second"]),
            str(r["requests_per_second"]),
            str(r["latency_ms_p50"]),
            str(r["latency_ms_p99"]),
            str(r["server_cpu_seconds"]),
        )
    console.print(table)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per scenario instead of 10 s")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    show(report)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"control_plane-{report['date'][:10]}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {target}")


if __name__ == "__main__":
    main()
