"""Composite benchmark: N participants in one Composite, audio only and audio + video.

    python -m benchmarks.composite [--quick] [--out benchmarks/results] [--no-pin]

Each level is a fresh server in its own process (pinned to the last CPU; this process, the load
generator, gets the others) holding one MediaPipeline with one Composite (800x600, 15 fps, its
defaults) and N participants: a WebRtcEndpoint connected both ways to a HubPort of its own, fed by
a ``benchmarks/load_peers.py`` peer (real ICE and DTLS-SRTP, then synchronous SRTP) that sends
pre-encoded Opus (and, in the audio + video case, 640x480 30 fps VP8 at about 1 Mbit/s) and counts
what comes back without decoding. The server decodes every participant, mixes N audio outputs
(each without its own voice) and composes one grid, encoded once.

Real-time pace: each participant receives its mix at 50 packets/s (20 ms) and, with video, the
grid at 15 frames/s. A level holds when every participant gets at least 98 % of the audio rate
and 95 % of the picture rate (and the latency probe is heard). Latency is reported, not a
condition: on a shared machine its tail follows the load generator's own delays (a sender that
falls behind sends its late packets in a burst, and the receiving peer reads late), which
``generator_late_frames`` counts.

Latency: participant 0 sends quiet audio with a 100 ms loud burst once a second; participant 1
decodes what it receives (PyAV's Opus decoder, in this process) and notes when the burst arrives:
the time from the burst's first packet leaving participant 0 to the first loud 20 ms arriving at
participant 1 is the one-way latency through the Composite (loopback network: what the server's
receive, jitter buffer, 20 ms mixing clock, Opus encoding and send add, and the Opus codec's own
look-ahead).

Cost: the server's CPU over the window (every thread, ``/proc/<pid>/task/*/schedstat``), per
participant; participants per core is the inverse at the highest N that held.

Results: ``benchmarks/results/composite-<date>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import RTCCertificate
from rich.console import Console
from rich.table import Table

from benchmarks.control_plane import (
    PreconditionFailed,
    Server,
    best_and_broken,
    media_arguments,
    pin_server,
    plot_levels,
    report_head,
    sweep_levels,
    usage_window,
    write_results,
)
from benchmarks.load_peers import (
    OPUS_PT,
    VP8_PT,
    Clip,
    Counters,
    CountingPeer,
    PlainStream,
    Sender,
    encoded_opus,
    first_media,
    in_batches,
    loopback_only,
    negotiate,
    tear_down,
    vp8_clip,
)
from emulator.transport.client import KurentoClient, RemoteObject

console = Console(width=None if sys.stdout.isatty() else 130)

AUDIO_PPS = 50
GRID_FPS = 15
AUDIO_LIMIT = 0.98
VIDEO_LIMIT = 0.95
BURST_FRAMES = 5
"""20 ms frames of loud tone at the start of each second of the probe's clip."""
QUIET, LOUD = 300, 16000
LOUD_RMS = 4000
"""Decoded RMS above which a 20 ms packet at the listener carries the burst."""


@dataclass(frozen=True)
class Case:
    """One case and its levels."""

    name: str
    video: bool
    levels: tuple[int, ...]


def plan(quick: bool) -> list[Case]:
    """The two cases."""
    if quick:
        return [Case("audio", False, (2, 8)), Case("audio+video", True, (2, 4))]
    return [
        Case("audio", False, (2, 4, 8, 16, 24, 32, 48, 64)),
        Case("audio+video", True, (2, 3, 4, 6, 8, 10)),
    ]


def tone_clip(amplitude: int, burst: bool) -> Clip:
    """One second of 20 ms Opus frames: a quiet 440 Hz tone, the first 100 ms loud when
    ``burst`` (the latency probe)."""
    frames = []
    for index in range(AUDIO_PPS):
        t = (np.arange(960) + index * 960) / 48000
        level = LOUD if burst and index < BURST_FRAMES else amplitude
        frames.append(level * np.sin(2 * np.pi * 440 * t))
    return encoded_opus(frames)


class ProbeStream(PlainStream):
    """The probe's audio: notes when each burst's first packet leaves."""

    bursts: list[float]

    def send_frame(self, now: float, counters: Counters) -> None:
        """Send; the first frame of each loop of the clip starts a burst."""
        if self.frame % len(self.clip.frames) == 0:
            self.bursts.append(time.perf_counter())
        super().send_frame(now, counters)


class Participant(CountingPeer):
    """A load peer in the conference: counts its mix and the grid; the listener decodes."""

    def __init__(self, certificate: RTCCertificate, listener: bool) -> None:
        super().__init__(certificate)
        self.decoder: Any = None
        self.loud: list[float] = []
        """Arrival times of the loud 20 ms packets (the listener only)."""
        if listener:
            self.decoder = av.CodecContext.create("opus", "r")
            self.decoder.sample_rate = 48000
            self.decoder.layout = "stereo"

    def arrived(self, kind: str, plain: bytes, now: float) -> None:
        """The listener decodes its audio, looking for the probe's bursts."""
        if kind == "audio" and self.decoder is not None:
            self._listen(plain, now)

    def _listen(self, plain: bytes, now: float) -> None:
        header = 12 + 4 * (plain[0] & 0x0F)
        if plain[0] & 0x10:  # a header extension
            header += 4 + 4 * int.from_bytes(plain[header + 2 : header + 4], "big")
        with contextlib.suppress(av.error.FFmpegError):
            for frame in self.decoder.decode(av.Packet(plain[header:])):
                samples = frame.to_ndarray().astype(np.float64)
                if frame.format.name.startswith("flt"):  # FFmpeg's Opus decoder: -1.0..1.0
                    samples *= 32768
                if float(np.sqrt(np.mean(samples**2))) > LOUD_RMS:
                    self.loud.append(now)


def latencies(bursts: list[float], loud: list[float], window: tuple[float, float]) -> list[float]:
    """For each burst sent in the window, the delay to the first loud packet after it."""
    found = []
    for sent in bursts:
        if not window[0] <= sent <= window[1]:
            continue
        arrived = next((t for t in loud if t >= sent), None)
        if arrived is not None and arrived - sent < 1.0:
            found.append(arrived - sent)
    return found


@dataclass
class Level:
    """One level's figures."""

    case: str
    participants: int
    window_seconds: float
    held: bool
    why_not: list[str]
    server_cores: float
    cpu_per_participant: float
    rss_mb: float
    rss_mb_per_participant: float
    generator_cores: float
    audio_pps_mean: float
    audio_pps_min: float
    video_fps_mean: float | None
    video_fps_min: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_samples: int
    generator_late_frames: int
    server_warnings: int
    latency_ms: list[float] = field(default_factory=list)


@dataclass
class Run:
    """What every level needs."""

    warmup: float
    window: float
    certificate: RTCCertificate
    quiet: Clip
    probe: Clip
    video: Clip


async def conference_level(
    case: Case, count: int, server: Server, client: KurentoClient, run: Run
) -> Level:
    """``count`` participants in one Composite; pace, latency and cost."""
    pipelines: list[RemoteObject] = []
    counters = Counters()
    sender = Sender(counters)
    bursts: list[float] = []
    pipeline = await client.create("MediaPipeline")
    pipelines.append(pipeline)
    hub = await pipeline.create("Composite")

    async def join(index: int) -> Participant:
        endpoint = await pipeline.create("WebRtcEndpoint")
        port = await hub.create("HubPort")
        await endpoint.connect(port)
        await port.connect(endpoint)
        peer = Participant(run.certificate, listener=index == 1)
        await peer.gather()
        ssrcs = {"audio": random.getrandbits(32) or 1, "video": random.getrandbits(32) or 1}
        await negotiate(endpoint, peer, ssrcs)
        if index == 0:
            probe = ProbeStream(peer, run.probe, index, OPUS_PT, 0, 1, ssrc=ssrcs["audio"])
            probe.bursts = bursts
            sender.add(probe)
        else:
            sender.add(PlainStream(peer, run.quiet, index, OPUS_PT, 0, 1, ssrc=ssrcs["audio"]))
        if case.video:
            sender.add(PlainStream(peer, run.video, index, VP8_PT, 0, 1, ssrc=ssrcs["video"]))
        return peer

    peers: list[Participant] = []
    try:
        peers = await in_batches(count, join)
        await first_media(peers, ("audio", "video") if case.video else ("audio",), 15)
        await asyncio.sleep(run.warmup)
        counters.late = 0
        start = time.perf_counter()
        for peer in peers:
            peer.measure(start, start + run.window)
        cpu, rss, generator = await usage_window(server, run.window)
        window = (start, start + run.window)
        late_frames = counters.late
    finally:
        await tear_down(pipelines, peers, sender)
    wrong = {pt for peer in peers for pt in peer.payload_types} - {OPUS_PT, VP8_PT}
    if wrong:
        raise PreconditionFailed(f"participants received payload types {wrong}")
    audio = [p.audio_packets / run.window for p in peers]
    video = [p.video_frames / run.window for p in peers] if case.video else []
    delays = sorted(latencies(bursts, peers[1].loud, window))
    why = []
    if min(audio) < AUDIO_LIMIT * AUDIO_PPS:
        why.append(f"a participant got {min(audio):.1f} audio packets/s")
    if video and min(video) < VIDEO_LIMIT * GRID_FPS:
        why.append(f"a participant got {min(video):.1f} pictures/s")
    p95 = delays[math.ceil(0.95 * len(delays)) - 1] if delays else None
    if p95 is None:
        why.append("the latency probe's bursts were not heard")
    return Level(
        case=case.name,
        participants=count,
        window_seconds=run.window,
        held=not why,
        why_not=why,
        server_cores=round(cpu, 4),
        cpu_per_participant=round(cpu / count, 4),
        rss_mb=round(rss[1], 1),
        rss_mb_per_participant=round((rss[1] - rss[0]) / count, 2),
        generator_cores=round(generator, 3),
        audio_pps_mean=round(sum(audio) / len(audio), 2),
        audio_pps_min=round(min(audio), 2),
        video_fps_mean=round(sum(video) / len(video), 2) if video else None,
        video_fps_min=round(min(video), 2) if video else None,
        latency_ms_p50=round(delays[len(delays) // 2] * 1000, 1) if delays else None,
        latency_ms_p95=round(p95 * 1000, 1) if p95 is not None else None,
        latency_samples=len(delays),
        generator_late_frames=late_frames,
        server_warnings=len(server.warnings),
        latency_ms=[round(d * 1000, 1) for d in delays],
    )


async def sweep(case: Case, cpu: int | None, run: Run) -> list[Level]:
    """Each level on a fresh server (no admin listener), until one does not hold pace."""

    def cost(level: Level) -> str:
        return (
            f"{level.cpu_per_participant:.1%} of a core per participant, latency p50 "
            f"{level.latency_ms_p50} ms p95 {level.latency_ms_p95} ms"
        )

    return await sweep_levels(
        case.name,
        case.levels,
        cpu,
        lambda count, server, client: conference_level(case, count, server, client, run),
        cost,
        console,
        extra=["--no-admin"],
    )


def summarize(levels: list[Level]) -> dict[str, Any]:
    """Per case: the highest N that held pace and its cost."""
    summary: dict[str, Any] = {}
    for name, (best, broke) in best_and_broken(levels, "participants").items():
        summary[name] = {
            "max_participants_held": best.participants if best else 0,
            "first_not_held": broke.participants if broke else None,
            "why_not": broke.why_not if broke else [],
            "cpu_per_participant": best.cpu_per_participant if best else None,
            "participants_per_core": round(1 / best.cpu_per_participant, 1)
            if best and best.cpu_per_participant
            else None,
            "latency_ms_p50": best.latency_ms_p50 if best else None,
            "latency_ms_p95": best.latency_ms_p95 if best else None,
        }
    return summary


def plot(levels: list[Level], target: Path) -> None:
    """CPU per participant and latency against N, one line per case (hollow: not held)."""
    metrics = [
        ("cpu_per_participant", "server CPU per participant (% of a core)", 100.0),
        ("latency_ms_p50", "one-way latency through the Composite, p50 (ms)", 1.0),
    ]
    xlabel = "participants in one Composite (hollow: real-time pace not held)"
    plot_levels(levels, "participants", metrics, xlabel, target)


def show(report: dict[str, Any]) -> None:
    """Print every level, then the summary."""
    table = Table(title="Composite: N participants, each hearing the others and seeing the grid")
    for column in ("case", "N", "held", "% core/part.", "pps min", "fps min", "lat p50/p95 ms"):
        table.add_column(column)
    for level in report["levels"]:
        table.add_row(
            level["case"],
            str(level["participants"]),
            "yes" if level["held"] else "[red]no",
            f"{level['cpu_per_participant'] * 100:.1f}",
            str(level["audio_pps_min"]),
            str(level["video_fps_min"] or ""),
            f"{level['latency_ms_p50']}/{level['latency_ms_p95']}",
        )
    console.print(table)
    console.print(report["summary"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case."""
    server_cpu = pin_server(args.pin)
    loopback_only()
    warmup, window = (1.0, 3.0) if args.quick else (3.0, 8.0)
    context = Run(
        warmup,
        window,
        RTCCertificate.generateCertificate(),
        tone_clip(QUIET, burst=False),
        tone_clip(QUIET, burst=True),
        vp8_clip(),
    )
    levels: list[Level] = []
    for case in plan(args.quick):
        if args.levels:
            case = Case(case.name, case.video, tuple(args.levels))
        if not args.case or case.name in args.case:
            levels += await sweep(case, server_cpu, context)
    report = report_head("composite", args.quick, server_cpu, warmup, window)
    report["setup"] |= {
        "composite": "800x600, 15 fps (defaults); one pipeline, N WebRtcEndpoint <-> HubPort",
        "participants": "load peers sending Opus 20 ms (and 640x480 30 fps VP8 ~1 Mbit/s), "
        "counting RTP without decoding; participant 1 decodes its mix for the latency probe",
        "held_when": f"every participant >= {AUDIO_LIMIT:.0%} of {AUDIO_PPS} audio packets/s "
        f"and >= {VIDEO_LIMIT:.0%} of {GRID_FPS} pictures/s (latency reported, not a "
        "condition)",
    }
    report["levels"] = [asdict(level) for level in levels]
    report["summary"] = summarize(levels)
    return report


def main() -> None:
    """Command-line entry point."""
    parser = media_arguments(__doc__.splitlines()[0], "two levels per case")
    parser.add_argument("--case", nargs="*", help="audio, audio+video")
    parser.add_argument("--levels", type=int, nargs="*", help="participants, instead of the plan")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    show(report)
    levels = [Level(**level) for level in report["levels"]]
    stem = args.out / ("composite-" + time.strftime("%Y-%m-%d") + ("-quick" if args.quick else ""))
    write_results(report, stem, lambda target: plot(levels, target), console)


if __name__ == "__main__":
    main()
