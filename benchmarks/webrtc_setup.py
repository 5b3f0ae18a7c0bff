"""WebRTC set-up benchmark: time from processOffer to the first media packet, and endpoints
negotiated per second, against a server in its own process with real aiortc peers on loopback.

    python -m benchmarks.webrtc_setup [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.control_plane import machine, server_process
from emulator.transport.client import KurentoClient
from tests.media.peers import ClientPeer, loopback_peers, negotiate

console = Console()


async def one_call(client: KurentoClient) -> dict[str, float]:
    """A Hello World call; seconds from processOffer to media flowing, and to CONNECTED."""
    pipeline = await client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    await endpoint.connect(endpoint)
    flow = await endpoint.subscribe("MediaFlowInStateChanged")
    connected = await endpoint.subscribe("ConnectionStateChanged")
    peer = ClientPeer()
    try:
        started = time.perf_counter()
        await negotiate(endpoint, peer)
        await connected.get(timeout=20)
        connected_at = time.perf_counter() - started
        await flow.get(timeout=20)
        flowing_at = time.perf_counter() - started
        await peer.wait_for(lambda p: bool(p.frames), timeout=20)
        returned_at = time.perf_counter() - started
    finally:
        await peer.close()
        await pipeline.release()
    return {"connected": connected_at, "first_packet": flowing_at, "first_frame_back": returned_at}


async def run(quick: bool) -> dict[str, Any]:
    """Sequential calls for latency, then concurrent batches for throughput."""
    sequential = 5 if quick else 20
    batches = [4, 8] if quick else [4, 8, 16, 32]
    results: dict[str, Any] = {"sequential": [], "concurrent": []}
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(loopback_peers())
        url, _pid = await stack.enter_async_context(server_process(["--network-interfaces", "lo"]))
        client = await stack.enter_async_context(await KurentoClient.connect(url))
        progress = stack.enter_context(Progress(console=console))
        task = progress.add_task("sequential calls", total=sequential + len(batches))
        for _ in range(sequential):
            results["sequential"].append(await one_call(client))
            progress.advance(task)
        for size in batches:
            progress.update(task, description=f"{size} concurrent negotiations")
            started = time.perf_counter()
            await asyncio.gather(*(one_call(client) for _ in range(size)))
            elapsed = time.perf_counter() - started
            results["concurrent"].append(
                {
                    "endpoints": size,
                    "seconds": round(elapsed, 3),
                    "endpoints_per_second": round(size / elapsed, 2),
                }
            )
            progress.advance(task)
    firsts = [r["first_packet"] for r in results["sequential"]]
    results["summary"] = {
        "offer_to_first_packet_ms_p50": round(statistics.median(firsts) * 1000, 1),
        "offer_to_first_packet_ms_max": round(max(firsts) * 1000, 1),
        "offer_to_connected_ms_p50": round(
            statistics.median(r["connected"] for r in results["sequential"]) * 1000, 1
        ),
        "best_endpoints_per_second": max(c["endpoints_per_second"] for c in results["concurrent"]),
    }
    return {
        "benchmark": "webrtc_setup",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "quick": quick,
        **results,
    }


def show(report: dict[str, Any]) -> None:
    """Print the figures."""
    table = Table(title="WebRtcEndpoint set-up")
    table.add_column("figure")
    table.add_column("value")
    for key, value in report["summary"].items():
        table.add_row(key, str(value))
    for batch in report["concurrent"]:
        table.add_row(
            f"{batch['endpoints']} concurrent: endpoints/s", str(batch["endpoints_per_second"])
        )
    console.print(table)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, under a minute")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    show(report)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"webrtc_setup-{report['date'][:10]}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {target}")


if __name__ == "__main__":
    main()
