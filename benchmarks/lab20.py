"""The many-server lab on one machine: N servers, each in its own network namespace with its own
address, driven through the client pool; some die mid-run and come back.

    sudo python -m benchmarks.lab20 [--servers 20] [--kill 3] [--lose 2] [--calls 80]

Each server runs in a namespace ``<prefix>-<i>`` joined to a bridge in the root namespace by a
veth pair (``ip netns``, ``ip link``: root or CAP_NET_ADMIN), listening on ``ws://10.x.y.(10+i):
8888/kurento``; the pool runs in the root namespace. A call is the control plane of a WebRTC
call: a MediaPipeline placed by the pool, a WebRtcEndpoint, and ``processOffer`` with an SDP offer
that an aiortc peer made (one offer, reused; no ICE, no media), held ``--hold`` seconds, then
released. With ``--media`` each call has its own aiortc peer (audio): ICE and DTLS-SRTP from the
root namespace to the server's, the endpoint connected to itself, until the peer decodes its own
audio coming back (time to first audio reported). Three phases of ``--calls`` calls each,
``--concurrency`` at a time:

1. every server up: the spread of calls over the servers;
2. after the first calls of the phase, ``--kill`` servers are SIGKILLed (the kernel closes their
   sockets: the pool sees the connections close) and ``--lose`` more lose their host (the veth
   link goes down, then the process is killed: nothing reaches the pool, which finds out by an
   unanswered ping); failover time = from the kill to the pool marking the server down, and no
   call placed after that may land on it;
3. the dead servers are started again (links up): rejoin time = from the server listening again
   to the pool placing on it; the spread over all servers again.

A call attempt that fails (its server died under it) is counted and retried, up to 3 times.
Figures go to ``benchmarks/results/lab20-<date>.json`` (``lab20-<date>-media.json`` with
``--media``). Namespaces, veths and the bridge are
removed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.control_plane import machine
from emulator.transport.client import ConnectionLost, RemoteObject
from emulator.transport.pool import NoServerAvailable, ServerPool
from emulator.workers import READY
from protocol.errors import RpcError
from tests.media.peers import ClientPeer, negotiate_connected

ROOT = Path(__file__).resolve().parents[1]
WS_PORT = 8888
POOL_OPTIONS: dict[str, Any] = {
    "ping_interval": 1.0,
    "ping_timeout": 1.0,
    "connect_timeout": 2.0,
    "call_timeout": 5.0,
    "retry_initial": 0.2,
    "retry_max": 1.0,
}
ATTEMPTS = 3
CALL_WITHOUT_MEDIA = (
    "control plane: MediaPipeline (placed by the pool) + WebRtcEndpoint + processOffer with an "
    "aiortc offer; no ICE, no media"
)
CALL_WITH_MEDIA = (
    "MediaPipeline (placed by the pool) + WebRtcEndpoint connected to itself + an aiortc peer "
    "(audio) negotiated with ICE and DTLS-SRTP across the namespaces, until its audio comes back"
)
MEDIA_TIMEOUT = 20.0


class NamespacesUnavailable(RuntimeError):
    """``ip netns add`` failed here (not root, no CAP_NET_ADMIN, no iproute2)."""


def ip(*args: str) -> None:
    """Run one ``ip`` command; raise with its message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def free_subnet() -> str:
    """A 10.x.y /24 prefix (``10.x.y``) no interface of the machine uses, from the pid."""
    used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=False).stdout
    pid = os.getpid()
    for step in range(250):
        prefix = f"10.{200 + (pid + step) % 50}.{(pid // 50 + step) % 250}"
        if f"inet {prefix}." not in used:
            return prefix
    raise NamespacesUnavailable("no free 10.x.y.0/24 subnet for the lab's bridge")


@dataclass(eq=False)
class LabServer:
    """One server: its namespace, address, veth pair and process."""

    index: int
    namespace: str
    address: str
    veth_host: str
    veth_ns: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    listening_at: float = 0.0
    _drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The ws:// URL the pool uses."""
        return f"ws://{self.address}:{WS_PORT}/kurento"


class NamespaceLab:
    """N namespaces on a bridge, and a server in each."""

    def __init__(self, count: int, workdir: Path, prefix: str | None = None) -> None:
        tag = prefix or f"ke{os.getpid() % 100000}"
        self.tag = tag
        self.bridge = f"{tag}br"
        self.subnet = free_subnet()
        self.workdir = workdir
        self.servers = [
            LabServer(
                index=i,
                namespace=f"{tag}-{i}",
                address=f"{self.subnet}.{10 + i}",
                veth_host=f"{tag}h{i}",
                veth_ns=f"{tag}n{i}",
                log_path=workdir / f"server-{i}.log",
            )
            for i in range(count)
        ]

    # -- network (synchronous: run before the event loop's work, or in a thread) ---------------

    def create(self) -> None:
        """Bridge, namespaces and veth pairs.

        Raises:
            NamespacesUnavailable: the first namespace could not be created (what is created is
                removed again).
        """
        try:
            ip("netns", "add", self.servers[0].namespace)
        except (RuntimeError, OSError) as exc:
            raise NamespacesUnavailable(
                f"cannot create network namespaces here ({exc}); the lab needs root "
                "(or CAP_NET_ADMIN) and iproute2"
            ) from exc
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for server in self.servers:
                self._join(server)
        except BaseException:
            self.destroy()
            raise

    def _join(self, server: LabServer) -> None:
        if server.index > 0:
            ip("netns", "add", server.namespace)
        ip("link", "add", server.veth_host, "type", "veth", "peer", "name", server.veth_ns)
        ip("link", "set", server.veth_ns, "netns", server.namespace)
        ip("link", "set", server.veth_host, "master", self.bridge)
        ip("link", "set", server.veth_host, "up")
        ns = ("-n", server.namespace)
        ip(*ns, "addr", "add", f"{server.address}/24", "dev", server.veth_ns)
        ip(*ns, "link", "set", server.veth_ns, "up")
        ip(*ns, "link", "set", "lo", "up")

    def destroy(self) -> None:
        """Remove every namespace (their veth ends go with them) and the bridge; best effort."""
        for server in self.servers:
            with contextlib.suppress(RuntimeError, OSError):
                ip("netns", "del", server.namespace)
        with contextlib.suppress(RuntimeError, OSError):
            ip("link", "del", self.bridge)

    def leftovers(self) -> list[str]:
        """Namespaces of this lab that still exist (for the test's clean-up check)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return sorted(names & {server.namespace for server in self.servers})

    def set_link(self, server: LabServer, up: bool) -> None:
        """Cut the server's host off the network, or plug it back."""
        ip("-n", server.namespace, "link", "set", server.veth_ns, "up" if up else "down")

    # -- server processes -------------------------------------------------------------------------

    async def start(self, server: LabServer) -> None:
        """Start the server in its namespace; returns once it is listening."""
        server.listening = asyncio.Event()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        # No /etc/kurento of the machine: the lab's servers differ only by namespace.
        env["KURENTO_CONF_FILE"] = str(self.workdir / "kurento.conf.json")
        server.process = await asyncio.create_subprocess_exec(
            *["ip", "netns", "exec", server.namespace, sys.executable, "-m", "emulator"],
            *["--host", "0.0.0.0", "--port", str(WS_PORT), "--no-wss", "--admin-port", "8890"],
            *["--min-port", "40000", "--max-port", "40099"],
            *["--network-interfaces", server.veth_ns, "--shutdown-timeout", "3"],
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        server._drain = asyncio.create_task(self._read_log(server, server.process))
        await asyncio.wait_for(server.listening.wait(), 60)

    async def _read_log(self, server: LabServer, process: asyncio.subprocess.Process) -> None:
        """Copy the server's output to its log file, and see it start listening."""
        assert process.stdout is not None
        with server.log_path.open("ab") as log:
            async for line in process.stdout:
                log.write(line)
                if READY.search(line.decode(errors="replace")):
                    server.listening_at = time.monotonic()
                    server.listening.set()

    async def kill(self, server: LabServer) -> None:
        """SIGKILL: no shutdown; the kernel closes the process's sockets."""
        if server.process and server.process.returncode is None:
            server.process.send_signal(signal.SIGKILL)
            await server.process.wait()
        if server._drain:
            await server._drain

    async def stop_all(self) -> None:
        """Stop whatever still runs (SIGTERM, then SIGKILL after 5 s)."""
        for server in self.servers:
            if server.process and server.process.returncode is None:
                server.process.terminate()
        for server in self.servers:
            if server.process and server.process.returncode is None:
                try:
                    await asyncio.wait_for(server.process.wait(), 5)
                except TimeoutError:
                    await self.kill(server)
            if server._drain:
                with contextlib.suppress(Exception):
                    await server._drain


# -- the driver -----------------------------------------------------------------------------------


@dataclass
class CallRecord:
    """One call: which phase, when each attempt started, where it landed, what failed."""

    number: int
    phase: str
    started: float
    url: str | None = None
    placed_at: float | None = None
    media_s: float | None = None
    failures: list[str] = field(default_factory=list)


async def make_offer() -> str:
    """An audio+video SDP offer from a real aiortc peer (made once, used for every call)."""
    peer = ClientPeer()
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def negotiate(
    endpoint: RemoteObject, offer: str | None, record: CallRecord
) -> ClientPeer | None:
    """``processOffer`` with the shared offer; or, with media (``offer`` None), a real aiortc
    peer of its own: ICE and DTLS across the namespaces, the endpoint looped back to itself, until
    the peer hears its own audio come back."""
    if offer is not None:
        answer = await endpoint.invoke("processOffer", offer=offer)
        if "m=audio" not in answer:
            raise RuntimeError("the answer has no audio m-line")
        return None
    peer = ClientPeer(video=False)
    try:
        await endpoint.connect(endpoint)
        await negotiate_connected(endpoint, peer)
        await peer.wait_for(lambda p: p.frames.get("audio", 0) > 0, timeout=MEDIA_TIMEOUT)
    except BaseException:
        await peer.close()
        raise
    record.media_s = time.monotonic() - record.started
    return peer


async def one_call(pool: ServerPool, offer: str | None, record: CallRecord, hold: float) -> None:
    """Place the call and negotiate it; a failed attempt is recorded and tried again."""
    for _ in range(ATTEMPTS):
        record.started = time.monotonic()
        try:
            call = await pool.place_call()
        except NoServerAvailable as exc:
            record.failures.append(f"no server: {exc}")
            continue
        peer = None
        try:
            endpoint = await call.pipeline.create("WebRtcEndpoint")
            peer = await negotiate(endpoint, offer, record)
        except (RpcError, ConnectionLost, TimeoutError, RuntimeError) as exc:
            record.failures.append(f"{call.server.url}: {type(exc).__name__} {exc}")
            await call.release()
            continue
        record.url, record.placed_at = call.server.url, record.started
        # Held to overlap calls, as real calls do; the pause shapes the load, it waits for nothing.
        await asyncio.sleep(hold)
        if peer is not None:
            await peer.close()
        await call.release()
        return


async def run_phase(
    pool: ServerPool,
    offer: str | None,
    phase: str,
    calls: int,
    concurrency: int,
    hold: float,
    records: list[CallRecord],
    after: tuple[int, asyncio.Event] | None = None,
) -> None:
    """``calls`` calls, ``concurrency`` at a time; ``after=(n, event)`` sets the event once n
    calls of the phase have been placed (the moment to kill servers)."""
    numbers = iter(range(len(records) + 1, len(records) + calls + 1))
    mine: list[CallRecord] = []

    async def worker() -> None:
        for number in numbers:
            record = CallRecord(number, phase, time.monotonic())
            records.append(record)
            mine.append(record)
            if after and sum(r.url is not None for r in mine) >= after[0]:
                after[1].set()
            await one_call(pool, offer, record, hold)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def spread(records: list[CallRecord], phase: str, urls: list[str]) -> dict[str, Any]:
    """Calls per server in a phase, over the servers given, and how even that is."""
    counts = Counter(r.url for r in records if r.phase == phase and r.url)
    per_server = [counts.get(url, 0) for url in urls]
    return {
        "servers": len(urls),
        "calls": sum(per_server),
        "min": min(per_server),
        "max": max(per_server),
        "mean": round(statistics.fmean(per_server), 2),
        "stdev": round(statistics.pstdev(per_server), 2),
        "per_server": dict(zip(urls, per_server, strict=True)),
    }


def media_figures(records: list[CallRecord]) -> dict[str, Any] | None:
    """Seconds from placing a call to its peer decoding audio back: p50, p99, max, and the
    slowest calls (number, phase, server)."""
    timed = sorted((r for r in records if r.media_s is not None), key=lambda r: r.media_s or 0.0)
    if not timed:
        return None
    times = [r.media_s or 0.0 for r in timed]
    return {
        "p50": round(statistics.median(times), 3),
        "p99": round(percentile(times, 99), 3),
        "max": round(max(times), 3),
        "slowest": [
            {"call": r.number, "phase": r.phase, "server": r.url, "s": round(r.media_s or 0, 3)}
            for r in timed[-5:]
        ],
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def run_lab(
    lab: NamespaceLab,
    *,
    kill: int,
    lose: int,
    calls: int,
    concurrency: int,
    hold: float,
    media: bool = False,
) -> dict[str, Any]:
    """Start the servers, run the three phases through the pool; the figures."""
    started = time.monotonic()
    await asyncio.gather(*(lab.start(server) for server in lab.servers))
    start_seconds = time.monotonic() - started
    urls = [server.url for server in lab.servers]
    offer = None if media else await make_offer()
    records: list[CallRecord] = []
    killed = lab.servers[1 : 1 + kill]
    lost = lab.servers[1 + kill : 1 + kill + lose]
    dead = [*killed, *lost]
    down_after: dict[str, float] = {}
    rejoin_after: dict[str, float] = {}
    async with ServerPool([{"url": url} for url in urls], **POOL_OPTIONS) as pool:
        await run_phase(pool, offer, "all up", calls, concurrency, hold, records)

        kill_now = asyncio.Event()
        kill_times: dict[str, float] = {}

        async def killer() -> None:
            await kill_now.wait()

            async def watch(server: LabServer) -> None:
                await pool.wait_until(server.url, up=False, timeout=30)
                down_after[server.url] = time.monotonic() - kill_times[server.url]

            watches = []
            for server in lost:
                await asyncio.to_thread(lab.set_link, server, False)
            for server in dead:
                kill_times[server.url] = time.monotonic()
                watches.append(asyncio.create_task(watch(server)))
                await lab.kill(server)
            await asyncio.gather(*watches)

        kills = asyncio.create_task(killer())
        after = (max(1, calls // 8), kill_now)
        await run_phase(pool, offer, "servers dying", calls, concurrency, hold, records, after)
        await kills

        for server in lost:
            await asyncio.to_thread(lab.set_link, server, True)
        await asyncio.gather(*(lab.start(server) for server in dead))

        async def rejoin(server: LabServer) -> None:
            await pool.wait_until(server.url, up=True, timeout=30)
            rejoin_after[server.url] = time.monotonic() - server.listening_at

        await asyncio.gather(*(rejoin(server) for server in dead))
        await run_phase(pool, offer, "restarted", calls, concurrency, hold, records)

    late = [
        r.number
        for r in records
        if r.phase == "servers dying"
        and r.url in kill_times
        and r.placed_at
        and r.placed_at > kill_times[r.url] + down_after[r.url]
    ]
    survivors = [url for url in urls if url not in kill_times]
    failed = [r for r in records if r.url is None]
    failover = list(down_after.values())
    total = Counter(r.url for r in records if r.url)
    return {
        "servers": len(urls),
        "call": CALL_WITH_MEDIA if media else CALL_WITHOUT_MEDIA,
        "first_audio_back_s": media_figures(records),
        "calls": len(records),
        "concurrency": concurrency,
        "hold_s": hold,
        "pool": POOL_OPTIONS,
        "start_all_s": round(start_seconds, 2),
        "spread_all_up": spread(records, "all up", urls),
        "spread_servers_dying_survivors": spread(records, "servers dying", survivors),
        "spread_restarted": spread(records, "restarted", urls),
        "calls_per_server": {url: total[url] for url in urls},
        "killed": [s.url for s in killed],
        "host_lost": [s.url for s in lost],
        "failover_s": {url: round(value, 3) for url, value in down_after.items()},
        "failover_p50_s": round(statistics.median(failover), 3) if failover else None,
        "failover_p99_s": round(percentile(failover, 99), 3) if failover else None,
        "calls_on_dead_servers_after_failover": late,
        "rejoin_s": {url: round(value, 3) for url, value in rejoin_after.items()},
        "restarted_calls_after_rejoin": {
            s.url: sum(1 for r in records if r.phase == "restarted" and r.url == s.url)
            for s in dead
        },
        "failed_attempts": sum(len(r.failures) for r in records),
        "failed_attempt_reasons": [f for r in records for f in r.failures][:20],
        "failed_calls": len(failed),
    }


async def lab_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Create the lab, run it, always remove it."""
    lab = NamespaceLab(args.servers, workdir)
    lab.create()
    try:
        return await run_lab(
            lab,
            kill=args.kill,
            lose=args.lose,
            calls=args.calls,
            concurrency=args.concurrency,
            hold=args.hold,
            media=args.media,
        )
    finally:
        await lab.stop_all()
        lab.destroy()


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.lab20``: run the lab, print and write the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lab20", description=__doc__)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--kill", type=int, default=3, help="servers SIGKILLed mid-run")
    parser.add_argument("--lose", type=int, default=2, help="servers whose host vanishes")
    parser.add_argument("--calls", type=int, default=80, help="calls per phase (3 phases)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--hold", type=float, default=0.5, help="seconds each call is held")
    parser.add_argument("--media", action="store_true", help="an aiortc peer per call (audio)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lab20-") as folder:
        try:
            report = asyncio.run(lab_run(args, Path(folder)))
        except NamespacesUnavailable as exc:
            print(f"lab20: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    report["machine"] = machine()
    report["date"] = datetime.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-media" if args.media else ""
    path = args.out / f"lab20-{report['date']}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))  # noqa: T201
    print(f"written to {path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
