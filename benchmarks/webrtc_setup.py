"""WebRTC set-up benchmark: time from processOffer to the first media packet, endpoints
negotiated per second, and how soon each direction of concurrent two-way calls decodes video,
against a server in its own process with real aiortc peers on loopback.

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


CALLS = 10
"""Concurrent two-way calls per round (the case issue 12's bug was seen in)."""
FIRST_FRAME_TIMEOUT = 10.0


async def _video_flowing_since(flow: Any) -> float:
    """The wall-clock time the server saw the endpoint's first video packet."""
    while True:
        event = await flow.get(timeout=20)
        if event["mediaType"] == "VIDEO" and event["state"] == "FLOWING":
            return int(event["timestampMillis"]) / 1000


async def _first_frame(peer: ClientPeer) -> float | None:
    try:
        await peer.wait_for(lambda p: "video" in p.first_frame_at, timeout=FIRST_FRAME_TIMEOUT)
    except TimeoutError:
        return None
    return peer.first_frame_at["video"]


async def two_way_call(client: KurentoClient) -> list[float | None]:
    """Two peers (which never ask for keyframes themselves: only the server's requests count)
    through two WebRtcEndpoints connected both ways as each exists, so that connects race the
    sources' starts. Seconds from each source's first video packet at the server to the other
    peer's first decoded frame; None for a direction that decoded nothing in 10 s."""
    pipeline = await client.create("MediaPipeline")
    left = await pipeline.create("WebRtcEndpoint")
    right = await pipeline.create("WebRtcEndpoint")
    flows = [
        await left.subscribe("MediaFlowInStateChanged"),
        await right.subscribe("MediaFlowInStateChanged"),
    ]
    peers = [ClientPeer(asks_keyframes=False), ClientPeer(asks_keyframes=False)]
    try:
        await negotiate(left, peers[0])
        await left.connect(right)
        await negotiate(right, peers[1])
        await right.connect(left)
        sent = [await _video_flowing_since(flow) for flow in flows]
        seen = [await _first_frame(peers[1]), await _first_frame(peers[0])]
    finally:
        await asyncio.gather(*(peer.close() for peer in peers))
        await pipeline.release()
    return [None if at is None else at - since for at, since in zip(seen, sent, strict=True)]


async def first_video_frames(client: KurentoClient, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds of ``CALLS`` concurrent two-way calls: first-frame delays per direction."""
    delays: list[float | None] = []
    for _ in range(rounds):
        calls = await asyncio.gather(*(two_way_call(client) for _ in range(CALLS)))
        delays += [delay for call in calls for delay in call]
    decoded = sorted(d for d in delays if d is not None)
    if not decoded:
        raise RuntimeError("no direction of any call decoded video: the run measured nothing")
    return {
        "calls_per_round": CALLS,
        "rounds": rounds,
        "directions": len(delays),
        "never_decoded": len(delays) - len(decoded),
        "first_frame_ms_p50": round(statistics.median(decoded) * 1000, 1),
        "first_frame_ms_p95": round(decoded[int(0.95 * (len(decoded) - 1))] * 1000, 1),
        "first_frame_ms_max": round(decoded[-1] * 1000, 1),
    }


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
        progress.update(task, description=f"{CALLS} concurrent two-way calls")
        results["first_video_frame"] = await first_video_frames(client, 2 if quick else 10)
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
    for key, value in report["first_video_frame"].items():
        table.add_row(f"two-way calls: {key}", str(value))
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
