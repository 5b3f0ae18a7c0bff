"""Media elements benchmark: N concurrent PlayerEndpoints feeding WebRTC sinks and N concurrent
RecorderEndpoints fed by WebRTC sources, remuxed and transcoded.

    python -m benchmarks.media_elements [--quick] [--out benchmarks/results] [--no-pin]

Four cases, each swept over N (one stream = one element and its WebRtcEndpoint, in its own
MediaPipeline), each level on a fresh server in its own process (pinned to the last CPU; this
process, the load generator, gets the others):

- ``players/remux``: a PlayerEndpoint plays a VP8 + Opus WebM (640x480, 30 fps, made by ffmpeg
  into a temporary folder) into a WebRtcEndpoint whose peer negotiated VP8/Opus: forwarded
  without decoding.
- ``players/transcode``: the same clip as H264 + AAC in MP4 into the same VP8/Opus sinks: the
  player decodes the AAC once and encodes Opus, and the H264 is transcoded to VP8 for the sink.
- ``recorders/remux``: load peers send pre-encoded VP8 + Opus into a WebRtcEndpoint connected to
  a RecorderEndpoint with the ``WEBM`` profile (muxed as received).
- ``recorders/transcode``: the same into the ``MP4`` profile (VP8 -> H264, Opus -> AAC).

The WebRTC peers are ``benchmarks/load_peers.py``'s: real ICE and DTLS-SRTP, then synchronous
SRTP; sinks count what arrives without decoding, sources replay frames encoded once (sent without
the timing trailer, as a browser's media packets carry no RTP padding).

Real-time pace, per level:

- players: each sink's video frames (RTP packets with the marker bit) and audio packets per second
  in the window against what the clip carries (30 frames/s, 50 Opus packets/s), and how late each
  frame arrives against its RTP timestamp (relative to the stream's earliest frame in the window).
  Held when both rates are at least 98 % of the clip's (a 10 s window is exact to about 0.3 %:
  the margin is for the window's edges, not for loss), at most 1 % of video frames are more than
  100 ms late (a WebRTC jitter buffer absorbs less than that without stalling the picture; 1 % is
  the loss limit of the other benchmarks), and every sink received both kinds.
- recorders: the time ``stopAndWait`` takes (the backlog of the recording's queue: a recorder that
  keeps pace finishes within a second), packets the server reports dropped on overload, and, on a
  sample of files read by ffprobe, the file's duration and video frames against the wall-clock
  time from the first packet sent to ``stop``. Held when every stop took at most 1 s, nothing was
  dropped, and the sampled files hold at least 98 % of the wall-clock duration and of its frames.

Cost, per level: the server's CPU (every thread of its process tree, from
``/proc/<pid>/task/*/schedstat`` as in the throughput benchmark) over the window, as
a share of one core per stream, and its RSS minus the RSS of the same fresh server before any
stream, per stream; streams per core is the inverse of the CPU per stream at the highest N that
held pace. The sweep of a case stops at the first level that did not hold.

Baseline: the first level of each case (N = 1) must hold pace and meet every precondition, or the
run stops with an error: sinks received only the payload types their answers gave for VP8 and
Opus; the player reports ``isMediaTranscoding`` as expected for the case (false for the WebM, true
for both media types for the MP4); the recorded files exist and carry the profile's codecs; the
server process is alive after every level. At every level wrong payload types, wrong codecs or a
dead server stop the run (they mean it did not run as intended); missing media counts against
pace.

Results: ``benchmarks/results/media_elements-<date>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCCertificate
from rich.console import Console
from rich.table import Table

from benchmarks.control_plane import (
    PreconditionFailed,
    Server,
    Usage,
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
    LoadPeer,
    PlainStream,
    Sender,
    first_media,
    in_batches,
    loopback_only,
    negotiate,
    opus_clip,
    tear_down,
    vp8_clip,
)
from emulator.transport.client import KurentoClient, RemoteObject

console = Console(width=None if sys.stdout.isatty() else 130)

FPS = 30
AUDIO_PPS = 50
WIDTH, HEIGHT = 640, 480
RATE_LIMIT = 0.98
"""Least share of the clip's frame and packet rate a level must deliver to hold pace."""
LATE_SECONDS = 0.1
"""A video frame later than this (against its RTP timestamp) is late."""
LATE_LIMIT = 0.01
"""Most share of late video frames a level may have and hold pace."""
STOP_LIMIT = 1.0
"""Most seconds ``stopAndWait`` may take (the recording's backlog) for a level to hold pace."""
PROBE_SAMPLE = 6
"""Recorded files read by ffprobe per level (first, last and a random few)."""
GENERATOR_BOUND = 0.9
"""Share of its cores above which the load generator may be what limits a level."""


@dataclass(frozen=True)
class Case:
    """One of the four cases and its levels."""

    role: str
    """``players`` or ``recorders``."""
    mode: str
    """``remux`` or ``transcode``."""
    levels: tuple[int, ...]

    @property
    def key(self) -> str:
        """``players/remux`` and so on."""
        return f"{self.role}/{self.mode}"


def plan(quick: bool) -> list[Case]:
    """The levels of each case (the sweep stops at the first that does not hold pace)."""
    if quick:
        return [
            Case("players", "remux", (1, 4)),
            Case("players", "transcode", (1, 2)),
            Case("recorders", "remux", (1, 4)),
            Case("recorders", "transcode", (1, 2)),
        ]
    return [
        Case("players", "remux", (1, 2, 4, 8, 16, 24, 32, 48, 64, 96)),
        Case("players", "transcode", (1, 2, 3, 4, 6, 8, 10, 12, 16)),
        Case("recorders", "remux", (1, 2, 4, 8, 16, 24, 32, 48, 64, 96)),
        Case("recorders", "transcode", (1, 2, 3, 4, 6, 8, 10, 12, 16)),
    ]


@dataclass
class Level:
    """The figures of one N of one case."""

    case: str
    streams: int
    window_seconds: float
    held: bool
    why_not: list[str]
    server_cores: float
    cpu_per_stream: float
    """Share of one core per stream."""
    rss_mb: float
    rss_mb_per_stream: float
    generator_cores: float
    generator_bound: bool
    """The load generator used most of its own cores: a break may be the generator's."""
    streams_without_media: int
    server_warnings: int
    """Warning and error lines in the server's log during the level."""
    # players
    video_fps: float | None = None
    """Mean video frames/s per sink in the window (the clip: 30)."""
    video_fps_worst: float | None = None
    audio_pps: float | None = None
    """Mean audio packets/s per sink in the window (the clip: 50)."""
    audio_pps_worst: float | None = None
    late_frames: float | None = None
    """Share of video frames more than LATE_SECONDS late."""
    late_ms_p99: float | None = None
    transcoding: dict[str, bool] | None = None
    # recorders
    stop_seconds_max: float | None = None
    stop_seconds_p50: float | None = None
    dropped_packets: int | None = None
    generator_late_frames: int | None = None
    probed: list[dict[str, Any]] = field(default_factory=list)
    duration_ratio_min: float | None = None
    frame_ratio_min: float | None = None


def _cost(
    case: Case,
    streams: int,
    run: Run,
    why: list[str],
    measured: Usage,
    without: int,
    server: Server,
) -> dict[str, Any]:
    """The fields every case's Level has: whether the level held, CPU, memory, generator."""
    cpu, rss, generator = measured
    return {
        "case": case.key,
        "streams": streams,
        "window_seconds": run.window,
        "held": not why,
        "why_not": why,
        "server_cores": round(cpu, 4),
        "cpu_per_stream": round(cpu / streams, 4),
        "rss_mb": round(rss[1], 1),
        "rss_mb_per_stream": round((rss[1] - rss[0]) / streams, 2),
        "generator_cores": round(generator, 3),
        "generator_bound": generator > GENERATOR_BOUND * run.generator_cores,
        "streams_without_media": without,
        "server_warnings": len(server.warnings),
    }


# -- media ----------------------------------------------------------------------------------------


def make_clips(folder: Path, seconds: float) -> dict[str, Path]:
    """The players' clips: VP8 + Opus WebM and H264 + AAC MP4, one keyframe a second."""
    source = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
    ]
    outputs = {
        "webm": [
            *("-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8"),
            *("-g", str(FPS), "-c:a", "libopus", "-b:a", "64k", "-ac", "2"),
        ],
        "mp4": [
            *("-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-b:v", "1M"),
            *("-g", str(FPS), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ac", "2"),
        ],
    }
    clips = {}
    for name, codecs in outputs.items():
        target = folder / f"clip.{name}"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", *source, *codecs, "-shortest", str(target)],
            check=True,
        )
        clips[name] = target
    return clips


def probe(path: Path) -> dict[str, Any]:
    """Codecs, video frames and duration of a file, read by ffprobe (every packet counted)."""
    result = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-count_packets", "-of", "json"),
            *("-show_entries", "stream=codec_type,codec_name,nb_read_packets:format=duration"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PreconditionFailed(f"ffprobe cannot read {path.name}: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    codecs = {s["codec_type"]: s["codec_name"] for s in info.get("streams", [])}
    frames = {s["codec_type"]: int(s.get("nb_read_packets", 0)) for s in info.get("streams", [])}
    duration = float(info.get("format", {}).get("duration", 0.0) or 0.0)
    return {"codecs": codecs, "video_frames": frames.get("video", 0), "duration": duration}


class Sink(CountingPeer):
    """A load peer that only receives: RTP counted per payload type, frame timing kept."""

    def __init__(self, certificate: RTCCertificate) -> None:
        super().__init__(certificate)
        self.delays: list[float] = []
        """Arrival minus RTP time of each video frame in the window (relative)."""
        self._origin: tuple[float, int] | None = None

    def frame_arrived(self, plain: bytes, now: float) -> None:
        """The frame's delay against its RTP time, relative to the first frame's."""
        timestamp = int.from_bytes(plain[4:8], "big")
        if self._origin is None:
            self._origin = (now, timestamp)
        arrived, rtp = self._origin
        self.delays.append((now - arrived) - ((timestamp - rtp) & 0xFFFFFFFF) / 90000)

    def measure(self, start: float, end: float) -> None:
        """Count from ``start`` to ``end`` (perf_counter)."""
        super().measure(start, end)
        self.delays = []
        self._origin = None


def _rate_summary(values: list[float]) -> tuple[float, float]:
    return (round(sum(values) / len(values), 2), round(min(values), 2)) if values else (0.0, 0.0)


# -- the two roles --------------------------------------------------------------------------------


@dataclass
class Run:
    """What every level needs: timing, clips, the generator's certificate and folders."""

    warmup: float
    window: float
    clips: dict[str, Path]
    records: Path
    certificate: RTCCertificate
    media: dict[str, Clip]
    generator_cores: int
    """CPUs the load generator (this process) may use."""


async def players_level(
    case: Case, streams: int, server: Server, client: KurentoClient, run: Run
) -> Level:
    """``streams`` players, each into its own WebRTC sink; pace measured at the sinks."""
    clip = run.clips["webm" if case.mode == "remux" else "mp4"]
    pipelines: list[RemoteObject] = []

    async def make(index: int) -> tuple[RemoteObject, Sink]:
        pipeline = await client.create("MediaPipeline")
        pipelines.append(pipeline)
        player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
        endpoint = await pipeline.create("WebRtcEndpoint")
        await player.connect(endpoint)
        sink = Sink(run.certificate)
        await sink.gather()
        ssrcs = {"audio": random.getrandbits(32) or 1, "video": random.getrandbits(32) or 1}
        await negotiate(endpoint, sink, ssrcs)
        return player, sink

    made: list[tuple[RemoteObject, Sink]] = []
    try:
        made = await in_batches(streams, make)
        await asyncio.gather(*(player.invoke("play") for player, _ in made))
        sinks = [sink for _, sink in made]
        await first_media(sinks, ("audio", "video"), 20.0)
        await asyncio.sleep(run.warmup)
        transcoding = {
            kind: bool(await made[0][0].invoke("isMediaTranscoding", mediaType=kind))
            for kind in ("AUDIO", "VIDEO")
        }
        start = time.perf_counter()
        for sink in sinks:
            sink.measure(start, start + run.window)
        cpu, rss, generator = await usage_window(server, run.window)
    finally:
        await tear_down(pipelines, [sink for _, sink in made])
    without = sum(1 for s in sinks if not (s.got["audio"].is_set() and s.got["video"].is_set()))
    unexpected = {pt for s in sinks for pt in s.payload_types if pt not in (OPUS_PT, VP8_PT)}
    if unexpected:
        raise PreconditionFailed(f"sinks received payload types {sorted(unexpected)}")
    fps = [s.video_frames / run.window for s in sinks]
    pps = [s.audio_packets / run.window for s in sinks]
    lateness = sorted(delay - min(s.delays) for s in sinks if s.delays for delay in s.delays)
    late = sum(1 for d in lateness if d > LATE_SECONDS) / len(lateness) if lateness else 1.0
    p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))] if lateness else 0.0
    fps_mean, fps_worst = _rate_summary(fps)
    pps_mean, pps_worst = _rate_summary(pps)
    why = []
    if without:
        why.append(f"{without} sink(s) without audio and video")
    if fps_mean < RATE_LIMIT * FPS:
        why.append(f"video {fps_mean} frames/s < {RATE_LIMIT:.0%} of {FPS}")
    if pps_mean < RATE_LIMIT * AUDIO_PPS:
        why.append(f"audio {pps_mean} packets/s < {RATE_LIMIT:.0%} of {AUDIO_PPS}")
    if late > LATE_LIMIT:
        why.append(f"{late:.1%} of frames > {LATE_SECONDS * 1000:.0f} ms late")
    expected = case.mode == "transcode"
    if streams == 1 and transcoding != {"AUDIO": expected, "VIDEO": expected}:
        raise PreconditionFailed(
            f"{case.key}: the player reports isMediaTranscoding {transcoding}, expected "
            f"{expected} for both: the case did not run the path it names"
        )
    return Level(
        **_cost(case, streams, run, why, (cpu, rss, generator), without, server),
        video_fps=fps_mean,
        video_fps_worst=fps_worst,
        audio_pps=pps_mean,
        audio_pps_worst=pps_worst,
        late_frames=round(late, 4),
        late_ms_p99=round(p99 * 1000, 1),
        transcoding=transcoding,
    )


async def recorders_level(
    case: Case, streams: int, server: Server, client: KurentoClient, run: Run
) -> Level:
    """``streams`` WebRTC sources, each into its own recorder; pace read from the files."""
    profile, suffix = ("WEBM", "webm") if case.mode == "remux" else ("MP4", "mp4")
    expected = (
        {"video": "vp8", "audio": "opus"}
        if profile == "WEBM"
        else {
            "video": "h264",
            "audio": "aac",
        }
    )
    folder = Path(tempfile.mkdtemp(prefix=f"n{streams}-", dir=run.records))
    pipelines: list[RemoteObject] = []
    counters = Counters()
    sender = Sender(counters)

    async def make(index: int) -> tuple[RemoteObject, LoadPeer, list[PlainStream], Path]:
        pipeline = await client.create("MediaPipeline")
        pipelines.append(pipeline)
        endpoint = await pipeline.create("WebRtcEndpoint")
        path = folder / f"record-{index}.{suffix}"
        recorder = await pipeline.create(
            "RecorderEndpoint", uri=path.as_uri(), mediaProfile=profile
        )
        await endpoint.connect(recorder)
        # Recording from before the first packet: the file starts at the clip's first frame (a
        # keyframe), so its duration is comparable with the time the source sent.
        await recorder.invoke("record")
        peer = LoadPeer(run.certificate, counters, controlling=True)
        await peer.gather()
        ssrcs = {"audio": random.getrandbits(32) or 1, "video": random.getrandbits(32) or 1}
        await negotiate(endpoint, peer, ssrcs)
        sent = []
        for kind, pt in (("audio", OPUS_PT), ("video", VP8_PT)):
            stream = PlainStream(peer, run.media[kind], index, pt, 0, 1, ssrc=ssrcs[kind])
            sender.add(stream)
            sent.append(stream)
        return recorder, peer, sent, path

    made: list[tuple[RemoteObject, LoadPeer, list[PlainStream], Path]] = []
    stops: list[float] = []
    try:
        made = await in_batches(streams, make)
        await asyncio.sleep(run.warmup)
        counters.late = 0
        cpu, rss, generator = await usage_window(server, run.window)
        late_frames = counters.late
        stop_wall = time.time()

        async def stop(recorder: RemoteObject) -> float:
            began = time.perf_counter()
            await recorder.invoke("stopAndWait")
            return time.perf_counter() - began

        stops = list(await asyncio.gather(*(stop(recorder) for recorder, *_ in made)))
    finally:
        await tear_down(pipelines, [peer for _, peer, _, _ in made], sender)
    indexes = sorted({0, streams - 1, *random.sample(range(streams), min(streams, PROBE_SAMPLE))})
    probed = []
    for index in indexes[:PROBE_SAMPLE]:
        _, _, sent, path = made[index]
        if not path.exists():
            raise PreconditionFailed(f"{case.key}: recording {path.name} was not written")
        info = probe(path)
        if info["codecs"] != expected:
            raise PreconditionFailed(f"{case.key}: {path.name} holds {info['codecs']}")
        wall = stop_wall - min(s.first_sent for s in sent)
        probed.append(
            {
                "file": path.name,
                **info,
                "wall_seconds": round(wall, 3),
                "duration_ratio": round(info["duration"] / wall, 4),
                "frame_ratio": round(info["video_frames"] / (wall * FPS), 4),
            }
        )
    shutil.rmtree(folder, ignore_errors=True)
    dropped = sum(
        int(found.group(1))
        for line in server.warnings
        if (found := re.search(r"(\d+) packets dropped on overload", line))
    )
    without = sum(1 for p in probed if p["video_frames"] == 0 or p["duration"] == 0)
    duration_min = min(p["duration_ratio"] for p in probed)
    frame_min = min(p["frame_ratio"] for p in probed)
    stops.sort()
    why = []
    if stops[-1] > STOP_LIMIT:
        why.append(f"stopAndWait took {stops[-1]:.2f} s (backlog)")
    if dropped:
        why.append(f"{dropped} packets dropped on overload")
    if duration_min < RATE_LIMIT:
        why.append(f"a file holds {duration_min:.1%} of the wall-clock time")
    if frame_min < RATE_LIMIT:
        why.append(f"a file holds {frame_min:.1%} of the frames sent")
    return Level(
        **_cost(case, streams, run, why, (cpu, rss, generator), without, server),
        stop_seconds_max=round(stops[-1], 3),
        stop_seconds_p50=round(stops[len(stops) // 2], 3),
        dropped_packets=dropped,
        generator_late_frames=late_frames,
        probed=probed,
        duration_ratio_min=duration_min,
        frame_ratio_min=frame_min,
    )


# -- the sweep ------------------------------------------------------------------------------------


async def sweep(case: Case, cpu: int | None, run: Run) -> list[Level]:
    """Each level of a case on a fresh server, until one does not hold pace; the baseline
    (N = 1) must hold."""
    measure = players_level if case.role == "players" else recorders_level

    def cost(level: Level) -> str:
        text = f"{level.cpu_per_stream:.1%} of a core and {level.rss_mb_per_stream} MB per stream"
        bound = " (the load generator was near its CPU limit)" if level.generator_bound else ""
        return text + bound

    levels = await sweep_levels(
        case.key,
        case.levels,
        cpu,
        lambda streams, server, client: measure(case, streams, server, client, run),
        cost,
        console,
    )
    first = levels[0]
    if first.streams == 1 and not first.held:
        raise PreconditionFailed(f"{case.key}: one stream does not hold pace: {first.why_not}")
    return levels


def summarize(levels: list[Level]) -> dict[str, Any]:
    """Per case: the highest N that held pace and its cost."""
    summary: dict[str, Any] = {}
    for key, (best, broke) in best_and_broken(levels, "streams").items():
        summary[key] = {
            "max_streams_held": best.streams if best else 0,
            "first_not_held": broke.streams if broke else None,
            "sweep_ended_before_breaking": broke is None,
            "cpu_per_stream": best.cpu_per_stream if best else None,
            "streams_per_core": round(1 / best.cpu_per_stream, 1)
            if best and best.cpu_per_stream
            else None,
            "rss_mb_per_stream": best.rss_mb_per_stream if best else None,
        }
    return summary


def plot(levels: list[Level], target: Path) -> None:
    """CPU and RSS per stream against N, one line per case (hollow: pace not held)."""
    metrics = [
        ("cpu_per_stream", "server CPU per stream (% of a core)", 100.0),
        ("rss_mb_per_stream", "server RSS per stream (MB)", 1.0),
    ]
    xlabel = "concurrent streams (hollow: real-time pace not held)"
    plot_levels(levels, "streams", metrics, xlabel, target, log2=True)


def show(report: dict[str, Any]) -> None:
    """Print every level, then the summary."""
    table = Table(title="media elements: players -> WebRTC sinks, WebRTC sources -> recorders")
    columns = [
        "case",
        "streams",
        "held",
        "% core/stream",
        "MB/stream",
        "fps",
        "pps",
        "late",
        "stop s",
        "frames",
        "gen cores",
    ]
    for column in columns:
        table.add_column(column)
    for level in report["levels"]:
        players = level["video_fps"] is not None
        table.add_row(
            level["case"],
            str(level["streams"]),
            "yes" if level["held"] else "[red]no",
            f"{level['cpu_per_stream'] * 100:.1f}",
            str(level["rss_mb_per_stream"]),
            str(level["video_fps"]) if players else "",
            str(level["audio_pps"]) if players else "",
            f"{level['late_frames']:.1%}" if players else "",
            "" if players else str(level["stop_seconds_max"]),
            "" if players else f"{level['frame_ratio_min']:.1%}",
            str(level["generator_cores"]),
        )
    console.print(table)
    summary = Table(title="at the highest N that held real-time pace")
    for column in ("case", "streams", "% core/stream", "streams/core", "MB/stream", "broke at"):
        summary.add_column(column)
    for key, figures in report["summary"].items():
        summary.add_row(
            key,
            str(figures["max_streams_held"]),
            f"{(figures['cpu_per_stream'] or 0) * 100:.1f}",
            str(figures["streams_per_core"]),
            str(figures["rss_mb_per_stream"]),
            str(figures["first_not_held"] or "not reached"),
        )
    console.print(summary)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case; the baseline (N = 1) of each must hold."""
    server_cpu = pin_server(args.pin)
    loopback_only()
    warmup, window = (1.0, 3.0) if args.quick else (3.0, 8.0)
    cases = [c for c in plan(args.quick) if not args.case or c.key in args.case]
    levels: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="bench-media-") as temp:
        folder = Path(temp)
        console.print("encoding the clips...")
        # Long enough for setting up the streams, the first media, the warm-up and the window.
        clips = make_clips(folder, 15.0 if args.quick else 25.0)
        records = folder / "records"
        records.mkdir()
        context = Run(
            warmup,
            window,
            clips,
            records,
            RTCCertificate.generateCertificate(),
            {"audio": opus_clip(), "video": vp8_clip()},
            len(os.sched_getaffinity(0)),
        )
        for case in cases:
            levels += await sweep(case, server_cpu, context)
    report = report_head("media_elements", args.quick, server_cpu, warmup, window)
    report["setup"] |= {
        "clip": f"{WIDTH}x{HEIGHT} {FPS} fps, 1 Mbit/s video, 48 kHz stereo audio; players: "
        "VP8 + Opus WebM (remux), H264 + AAC MP4 (transcode); recorders: aiortc's VP8 and "
        "Opus, looped",
        "sinks": "load peers negotiating VP8 (96) and Opus (111), counting RTP, no decoding",
        "held_when": {
            "players": f"video and audio rates >= {RATE_LIMIT:.0%} of the clip's, <= "
            f"{LATE_LIMIT:.0%} of frames > {LATE_SECONDS * 1000:.0f} ms late, every sink fed",
            "recorders": f"stopAndWait <= {STOP_LIMIT} s, no packet dropped, sampled files "
            f">= {RATE_LIMIT:.0%} of wall-clock duration and frames",
        },
    }
    report["levels"] = [asdict(level) for level in levels]
    report["summary"] = summarize(levels)
    return report


def main() -> None:
    """Command-line entry point."""
    parser = media_arguments(__doc__.splitlines()[0], "two levels per case, < 2 minutes")
    parser.add_argument("--case", nargs="*", help="e.g. players/remux recorders/transcode")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    show(report)
    levels = [Level(**level) for level in report["levels"]]
    stem = args.out / f"media_elements-{report['date'][:10]}"
    write_results(report, stem, lambda target: plot(levels, target), console)


if __name__ == "__main__":
    main()
