"""Load: many concurrent control sessions issuing mixed requests for a bounded time (issue 18).

Each session is its own WebSocket speaking raw JSON-RPC, one request in flight at a time, in a
loop of: create a MediaPipeline, create a WebRtcEndpoint and a PassThrough in it, subscribe to an
event, connect them, invoke getters and ``getStats``, ping, and release the pipeline. Every
request id is unique; a reply to an id not waiting is counted as answered twice (or unknown), and
ids still waiting at the end (after a grace period) as dropped. Reported: requests, p50/p99/max
latency (overall and by method), errors by code, dropped, answered twice, the server's CPU and
the load generator's (one process: when its CPU nears the wall time, latency is partly its own).

    .venv/bin/python -m benchmarks.load --sessions 500 --seconds 30
    .venv/bin/python -m benchmarks.load --sessions 500 --seconds 30 --media-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.control_plane import machine
from benchmarks.soak import RESULTS, server_process
from benchmarks.throughput import process_cpu, process_tree

GRACE = 30.0
"""Seconds the last requests may take to be answered once the run's time is up."""


@dataclass
class Tally:
    """What every session saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    twice: int = 0
    dropped: int = 0
    sent: int = 0
    answered: int = 0
    failed_sessions: list[str] = field(default_factory=list)


class Session:
    """One WebSocket and its requests waiting for their replies."""

    ids = itertools.count(1)

    def __init__(self, ws: ClientConnection, tally: Tally) -> None:
        self.ws = ws
        self.tally = tally
        self.waiting: dict[int, tuple[str, float, asyncio.Future[Any]]] = {}
        self.session_id: str | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                message = json.loads(text)
                if message.get("method") == "onEvent":
                    continue
                self._reply(message)

    def _reply(self, message: dict[str, Any]) -> None:
        entry = self.waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
        if entry is None:
            self.tally.twice += 1
            return
        method, started, future = entry
        self.tally.answered += 1
        self.tally.latencies.setdefault(method, []).append(time.monotonic() - started)
        if "error" in message:
            self.tally.errors[str(message["error"].get("code"))] += 1
        if not future.done():
            future.set_result(message)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and wait for its reply's result (None after an error)."""
        request_id = next(self.ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        params = dict(params or {})
        if self.session_id is not None:
            params["sessionId"] = self.session_id
        if params:
            body["params"] = params
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        label = params.get("operation", method) if method == "invoke" else method
        self.waiting[request_id] = (label, time.monotonic(), future)
        self.tally.sent += 1
        await self.ws.send(json.dumps(body))
        reply = await future
        result = reply.get("result")
        if isinstance(result, dict):
            self.session_id = result.get("sessionId", self.session_id)
            return result.get("value")
        return None

    async def close(self) -> None:
        """Close the socket; what still waits is counted as dropped."""
        self.tally.dropped += len(self.waiting)
        await self.ws.close()
        self.reader.cancel()


async def mixed_cycle(session: Session) -> None:
    """One round of the mixed requests."""
    pipeline = await session.call("create", {"type": "MediaPipeline"})
    if pipeline is None:
        return
    endpoint = await session.call(
        "create", {"type": "WebRtcEndpoint", "constructorParams": {"mediaPipeline": pipeline}}
    )
    passthrough = await session.call(
        "create", {"type": "PassThrough", "constructorParams": {"mediaPipeline": pipeline}}
    )
    if endpoint is not None:
        await session.call("subscribe", {"object": endpoint, "type": "IceCandidateFound"})
        if passthrough is not None:
            await session.call(
                "invoke",
                {
                    "object": endpoint,
                    "operation": "connect",
                    "operationParams": {"sink": passthrough},
                },
            )
        await session.call("invoke", {"object": endpoint, "operation": "getStats"})
        await session.call("invoke", {"object": endpoint, "operation": "getMediaState"})
    await session.call("ping", {"interval": 240000})
    await session.call("invoke", {"object": pipeline, "operation": "getLatencyStats"})
    await session.call("release", {"object": pipeline})


async def run_session(url: str, tally: Tally, until: float) -> None:
    """One client: mixed cycles until the time is up."""
    try:
        async with connect(url, compression=None, ping_interval=None, open_timeout=60) as ws:
            session = Session(ws, tally)
            try:
                while time.monotonic() < until:
                    await asyncio.wait_for(mixed_cycle(session), GRACE)
            finally:
                await session.close()
    except Exception as exc:  # counted: a session that could not run is a finding
        tally.failed_sessions.append(f"{type(exc).__name__}: {exc}")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) in milliseconds."""
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def load(
    sessions: int, seconds: float, media_workers: int, ports: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Run the load against a fresh server; the figures."""
    args = ["--media-workers", str(media_workers)]
    if ports is not None:
        args += ["--min-port", str(ports[0]), "--max-port", str(ports[1])]
    tally = Tally()
    async with server_process(args) as server:
        pid = server.process.pid
        cpu_before = sum(process_cpu(p) for p in process_tree(pid))
        generator_before = time.process_time()
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(run_session(server.url, tally, until) for _ in range(sessions)))
        wall = time.monotonic() - started
        cpu = sum(process_cpu(p) for p in process_tree(pid)) - cpu_before
        generator = time.process_time() - generator_before
    every = [v for values in tally.latencies.values() for v in values]
    return {
        "sessions": sessions,
        "seconds": seconds,
        "media_workers": media_workers,
        "wall_seconds": round(wall, 1),
        "requests_sent": tally.sent,
        "requests_answered": tally.answered,
        "requests_per_second": round(tally.answered / wall, 1),
        "latency_ms": {
            "p50": percentile(every, 0.5),
            "p99": percentile(every, 0.99),
            "max": percentile(every, 1.0),
        },
        "latency_ms_by_method": {
            method: {
                "count": len(values),
                "p50": percentile(values, 0.5),
                "p99": percentile(values, 0.99),
            }
            for method, values in sorted(tally.latencies.items())
        },
        "errors_by_code": dict(tally.errors),
        "dropped": tally.dropped,
        "answered_twice_or_unknown": tally.twice,
        "failed_sessions": tally.failed_sessions[:10],
        "failed_session_count": len(tally.failed_sessions),
        "server_cpu_seconds": round(cpu, 1),
        # The generator shares the machine: near wall_seconds, the latency is partly its own.
        "generator_cpu_seconds": round(generator, 1),
        "mean_latency_ms": round(1000 * statistics.fmean(every), 2) if every else None,
    }


def main() -> None:
    """Command line: run, print, write results/load-<date>-workers<N>.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--media-workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(load(args.sessions, args.seconds, args.media_workers))
    RESULTS.mkdir(exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out = args.out or RESULTS / f"load-{day}-workers{args.media_workers}.json"
    out.write_text(json.dumps({"machine": machine(), **figures}, indent=1) + "\n")
    print(json.dumps(figures, indent=1))  # noqa: T201
    print(f"written to {out}")  # noqa: T201
    bad = figures["dropped"] or figures["answered_twice_or_unknown"]
    raise SystemExit(1 if bad or figures["failed_session_count"] else 0)


if __name__ == "__main__":
    main()
