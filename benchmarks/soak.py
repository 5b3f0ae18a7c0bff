"""Soak: create, negotiate, carry media and release the same call again and again, and watch
what the server keeps (issue 18).

One cycle: a MediaPipeline with a WebRtcEndpoint (an aiortc peer sending audio and video, its
media looped back to it), an RtpEndpoint (a UDP socket playing a PBX: PCMU in, the WebRTC
peer's audio out to it through a PassThrough, transcoded), a PlayerEndpoint playing a short
VP8/Opus WebM through a DispatcherOneToMany (two HubPorts) into a RecorderEndpoint; every
negotiation real, then media until the peer decoded frames of both
kinds, the PBX received RTP and the recorder said ``Recording``; then ``release`` and the peers
closed. The server runs in its own process (``--media-workers`` passed through).

Figures, sampled after every cycle: from outside (``/proc`` of the server and its media
workers): UDP ports held, file descriptors, threads, RSS; from the server's own ``/metrics``:
media ports in use, live objects, sessions, open fds, threads and asyncio tasks of the control
process. The report compares the last sample with the first after warm-up: ports, fds, tasks,
threads and objects should not grow at all, RSS by under 5 %.

    .venv/bin/python -m benchmarks.soak --cycles 200
    .venv/bin/python -m benchmarks.soak --cycles 200 --media-workers 2
    .venv/bin/python -m benchmarks.soak --cycles 150 --without webrtc   # which part keeps memory

Each sample also holds glibc's heap of the server process (``kurento_heap_bytes``, from
``mallinfo2``): memory in use against free memory glibc keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from benchmarks.control_plane import machine
from benchmarks.throughput import process_tree, rss_and_threads
from emulator.transport.client import KurentoClient, RemoteObject

RESULTS = Path(__file__).parent / "results"
ZERO_GROWTH = ("udp_ports", "fds", "threads", "media_ports_in_use", "objects", "asyncio_tasks")
"""Figures that must come back exactly to their post-warm-up value."""
RSS_GROWTH_LIMIT = 0.05
CHECKPOINT_EVERY = 500
"""Cycles between two writes of the report so far (a stopped long run keeps its figures)."""
KEPT_SAMPLES = 1000
"""About how many samples a report writes (every cycle's below this)."""
TIMEOUT = 30.0


@dataclass
class Sample:
    """What the server holds after one cycle (outside: /proc; admin: its /metrics)."""

    cycle: int
    udp_ports: int
    fds: int
    threads: int
    rss_mb: float
    media_ports_in_use: int
    objects: int
    sessions: int
    asyncio_tasks: int
    admin_fds: int
    admin_threads: int
    memory_trims: int
    """Times freed memory was given back to the OS so far (server and workers together)."""
    heap_in_use_kb: int = -1
    """glibc's heap of the server process (mallinfo2, ``kurento_heap_bytes``): allocated..."""
    heap_free_kb: int = -1
    """...free but kept by glibc..."""
    heap_kb: int = -1
    """...the heaps' size (every arena)..."""
    heap_mmap_kb: int = -1
    """...and large blocks in their own mappings."""


@dataclass
class Server:
    """A server process started for the soak."""

    process: asyncio.subprocess.Process
    url: str
    admin: str
    drain: asyncio.Task[None] | None = None
    recent: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    """The server's last log lines: a failed cycle's report carries them."""


@contextlib.asynccontextmanager
async def server_process(args: list[str]) -> AsyncIterator[Server]:
    """``python -m emulator`` on ephemeral ws:// and admin ports, with ``args``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-wss",
        "--admin-port",
        "0",
        "--admin-host",
        "127.0.0.1",
        "--network-interfaces",
        "lo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url = admin = ""
    while not (url and admin):
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        if not line:
            raise RuntimeError("the server exited before listening")
        if found := re.search(r"listening on (ws://\S+/kurento)", line):
            url = found.group(1)
        if found := re.search(r"admin: .* on (http://\S+)", line):
            admin = found.group(1)
    server = Server(process, url, admin)
    server.drain = asyncio.create_task(_drain(process.stdout, server.recent))
    try:
        yield server
    finally:
        process.terminate()
        await process.wait()
        server.drain.cancel()


async def _drain(stream: asyncio.StreamReader, recent: collections.deque[str]) -> None:
    while line := await stream.readline():
        recent.append(line.decode(errors="replace").rstrip())


# -- the peers ------------------------------------------------------------------------------------


class WebRtcPeer:
    """An aiortc peer sending synthetic audio and video and counting what it decodes."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTrack(AudioStreamTrack())
        self.pc.addTrack(VideoStreamTrack())
        self.frames: dict[str, int] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.pc.on(
            "track", lambda track: self.readers.append(asyncio.create_task(self._read(track)))
        )

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] = self.frames.get(track.kind, 0) + 1

    def flowing(self) -> bool:
        """Frames of both kinds came back."""
        return self.frames.get("audio", 0) >= 5 and self.frames.get("video", 0) >= 5

    async def wait_flowing(self) -> None:
        """Wait for frames of both kinds; a timeout says how far the call got (ICE, DTLS,
        frames of each kind), which tells a transport failure from a missing keyframe."""
        try:
            await wait_until(self.flowing, "the WebRTC peer's media back")
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}: connection {self.pc.connectionState}, ICE "
                f"{self.pc.iceConnectionState}, frames decoded {dict(self.frames)}"
            ) from None

    async def close(self) -> None:
        """Close the connection and its readers."""
        await self.pc.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


class PbxPeer(asyncio.DatagramProtocol):
    """A UDP socket on loopback playing a PBX: counts the RTP it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > 12 and not 192 <= data[1] <= 223:
            self.received += 1

    def offer(self) -> str:
        """A PCMU offer naming this socket."""
        assert self.transport is not None
        port = self.transport.get_extra_info("sockname")[1]
        return (
            "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\na=sendrecv\r\n"
        )

    def send_tone(self, target: tuple[str, int], count: int) -> None:
        """``count`` PCMU packets of silence."""
        assert self.transport is not None
        for sequence in range(count):
            head = struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, 0x5EED)
            self.transport.sendto(head + b"\xff" * 160, target)


async def wait_until(predicate: Any, what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``predicate()`` holds, looking every 20 ms (the peers' frames, the PBX's
    packets and the figures have no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.02)


# -- one cycle ------------------------------------------------------------------------------------


async def negotiate(endpoint: RemoteObject, peer: WebRtcPeer) -> None:
    """processOffer, gatherCandidates, and the answer with every candidate once gathered."""
    done = await endpoint.subscribe("IceGatheringDone")
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    await endpoint.invoke("processOffer", offer=peer.pc.localDescription.sdp)
    await endpoint.invoke("gatherCandidates")
    await done.get(timeout=TIMEOUT)
    answer = await endpoint.invoke("getLocalSessionDescriptor")
    await peer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await done.close()


def _media_port(answer: str) -> int:
    found = re.search(r"^m=audio (\d+) ", answer, re.M)
    assert found is not None, answer
    return int(found.group(1))


PARTS = ("webrtc", "rtp", "player", "recorder")
"""What a cycle holds; ``--without`` leaves some out, to find which one keeps memory."""


async def cycle(
    client: KurentoClient,
    clip: Path,
    folder: Path,
    index: int,
    without: frozenset[str] = frozenset(),
) -> None:
    """One call built, carried and released (``without``: parts of :data:`PARTS` left out)."""
    if without:
        await partial_cycle(client, clip, folder, index, without)
        return
    loop = asyncio.get_running_loop()
    peer = WebRtcPeer()
    transport, pbx = await loop.create_datagram_endpoint(PbxPeer, local_addr=("127.0.0.1", 0))
    target = folder / f"cycle-{index}.webm"
    try:
        pipeline = await client.create("MediaPipeline")
        web = await pipeline.create("WebRtcEndpoint")
        rtp = await pipeline.create("RtpEndpoint")
        passthrough = await pipeline.create("PassThrough")
        player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
        hub = await pipeline.create("DispatcherOneToMany")
        port_in = await hub.create("HubPort")
        port_out = await hub.create("HubPort")
        recorder = await pipeline.create("RecorderEndpoint", uri=target.as_uri())
        await web.connect(web)
        await web.connect(passthrough, "AUDIO")
        await passthrough.connect(rtp, "AUDIO")
        await player.connect(port_in)
        await hub.invoke("setSource", source=port_in.id)
        await port_out.connect(recorder)
        recording = await recorder.subscribe("Recording")
        await negotiate(web, peer)
        answer = await rtp.invoke("processOffer", offer=pbx.offer())
        pbx.send_tone(("127.0.0.1", _media_port(answer)), 5)
        await recorder.invoke("record")
        await player.invoke("play")
        await peer.wait_flowing()
        await wait_until(lambda: pbx.received >= 5, "RTP at the PBX")
        await recording.get(timeout=TIMEOUT)
        await recording.close()
        await recorder.invoke("stopAndWait")
        await pipeline.release()
    finally:
        await peer.close()
        transport.close()
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


async def partial_cycle(
    client: KurentoClient, clip: Path, folder: Path, index: int, without: frozenset[str]
) -> None:
    """The cycle with the parts in ``without`` left out: the WebRTC loop-back, the PBX leg
    (WebRTC audio to it through a PassThrough when both are there), the player (into the
    recorder through the hub when both are there) and the recorder (then fed by the WebRTC
    endpoint, or the player, whichever is there)."""
    loop = asyncio.get_running_loop()
    peer = WebRtcPeer()
    transport, pbx = await loop.create_datagram_endpoint(PbxPeer, local_addr=("127.0.0.1", 0))
    target = folder / f"cycle-{index}.webm"
    try:
        pipeline = await client.create("MediaPipeline")
        waits: list[Any] = []
        web = rtp = player = None
        if "webrtc" not in without:
            web = await pipeline.create("WebRtcEndpoint")
            await web.connect(web)
        if "rtp" not in without:
            rtp = await pipeline.create("RtpEndpoint")
            if web is not None:
                passthrough = await pipeline.create("PassThrough")
                await web.connect(passthrough, "AUDIO")
                await passthrough.connect(rtp, "AUDIO")
        if "player" not in without:
            player = await pipeline.create("PlayerEndpoint", uri=clip.as_uri())
        recorder = recording = None
        if "recorder" not in without:
            recorder = await pipeline.create("RecorderEndpoint", uri=target.as_uri())
            if player is not None:
                hub = await pipeline.create("DispatcherOneToMany")
                port_in, port_out = await hub.create("HubPort"), await hub.create("HubPort")
                await player.connect(port_in)
                await hub.invoke("setSource", source=port_in.id)
                await port_out.connect(recorder)
            elif web is not None:
                await web.connect(recorder)
            recording = await recorder.subscribe("Recording")
        if web is not None:
            await negotiate(web, peer)
            waits.append(peer.wait_flowing())
        if rtp is not None:
            answer = await rtp.invoke("processOffer", offer=pbx.offer())
            pbx.send_tone(("127.0.0.1", _media_port(answer)), 5)
            if web is not None:
                waits.append(wait_until(lambda: pbx.received >= 5, "RTP at the PBX"))
        if recorder is not None:
            await recorder.invoke("record")
        if player is not None:
            await player.invoke("play")
        for wait in waits:
            await wait
        if recorder is not None and recording is not None and (web or player):
            await recording.get(timeout=TIMEOUT)
            await recording.close()
            await recorder.invoke("stopAndWait")
        await pipeline.release()
    finally:
        await peer.close()
        transport.close()
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


# -- figures --------------------------------------------------------------------------------------


def udp_ports(pid: int) -> int:
    """UDP sockets held by the process tree (read from /proc: inodes of its fds in /proc/net)."""
    inodes = set()
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{member}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{member}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    held = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                if line.split()[9] in inodes:
                    held += 1
    return held


def fds(pid: int) -> int:
    """File descriptors of the process tree."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{member}/fd"))
    return total


async def admin_figures(admin: str) -> dict[str, float]:
    """The server's /metrics, as name{labels} -> value."""
    host, port = admin.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    figures = {}
    for line in raw.decode().split("\r\n\r\n", 1)[1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
    return figures


async def sample(server: Server, index: int) -> Sample:
    """The figures now."""
    pid = server.process.pid
    rss, threads = rss_and_threads(pid)
    metrics = await admin_figures(server.admin)
    objects = sum(v for k, v in metrics.items() if k.startswith("kurento_elements{"))
    return Sample(
        cycle=index,
        udp_ports=udp_ports(pid),
        fds=fds(pid),
        threads=threads,
        rss_mb=round(rss, 1),
        media_ports_in_use=int(metrics.get('kurento_media_ports{state="in_use"}', -1)),
        objects=int(objects),
        sessions=int(metrics.get("kurento_sessions", -1)),
        asyncio_tasks=int(metrics.get("kurento_asyncio_tasks", -1)),
        admin_fds=int(metrics.get("process_open_fds", -1)),
        admin_threads=int(metrics.get("kurento_threads", -1)),
        memory_trims=int(metrics.get("kurento_memory_trims_total", -1)),
        **{
            f"heap_{kind}_kb" if kind != "heap" else "heap_kb": int(
                metrics.get(f'kurento_heap_bytes{{kind="{kind}"}}', -1024) // 1024
            )
            for kind in ("in_use", "free", "heap", "mmap")
        },
    )


@dataclass
class Report:
    """A soak run: its settings, its samples and the growth after warm-up."""

    cycles: int
    warmup: int
    media_workers: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failure_logs: dict[str, list[str]] = field(default_factory=dict)
    """By failed cycle: the server's last log lines when it failed."""

    def growth(self) -> dict[str, float]:
        """Last sample minus the first after warm-up (RSS as a fraction)."""
        base, last = self.samples[self.warmup - 1], self.samples[-1]
        grown: dict[str, float] = {
            name: getattr(last, name) - getattr(base, name)
            for name in (*ZERO_GROWTH, "admin_fds", "admin_threads", "sessions")
        }
        grown["rss"] = round((last.rss_mb - base.rss_mb) / base.rss_mb, 4)
        return grown

    def problems(self) -> list[str]:
        """What grew that should not have, and failed cycles."""
        grown = self.growth()
        found = [f"{name} grew by {grown[name]}" for name in ZERO_GROWTH if grown[name] > 0]
        if grown["rss"] > RSS_GROWTH_LIMIT:
            found.append(f"RSS grew by {grown['rss']:.1%}")
        return found + self.failures

    def to_json(self) -> dict[str, Any]:
        """The report as written to results/."""
        return {
            "cycles": self.cycles,
            "warmup": self.warmup,
            "media_workers": self.media_workers,
            "seconds": round(self.seconds, 1),
            "growth_after_warmup": self.growth(),
            "problems": self.problems(),
            "first": asdict(self.samples[0]),
            "after_warmup": asdict(self.samples[self.warmup - 1]),
            "last": asdict(self.samples[-1]),
            "failure_logs": self.failure_logs,
            "sample_step": self.sample_step(),
            "samples": [asdict(s) for s in self.kept_samples()],
        }

    def sample_step(self) -> int:
        """Past the first cycles, every how many cycles a sample is written (about a thousand
        per run keeps a 10,000-cycle file readable; the growth uses every sample)."""
        return max(1, len(self.samples) // KEPT_SAMPLES)

    def kept_samples(self) -> list[Sample]:
        """Every sample of the first cycles (warm-up included), then one per ``sample_step``
        cycles, and the last."""
        head = max(KEPT_SAMPLES // 10, 2 * self.warmup)
        step = self.sample_step()
        kept = [s for i, s in enumerate(self.samples) if i < head or i % step == step - 1]
        if kept[-1] is not self.samples[-1]:
            kept.append(self.samples[-1])
        return kept


async def make_clip(folder: Path) -> Path:
    """A 2-second VP8/Opus WebM made by ffmpeg."""
    clip = folder / "clip.webm"
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        "-c:v", "libvpx", "-g", "15", "-c:a", "libopus", str(clip),
    )  # fmt: skip
    assert await process.wait() == 0, "ffmpeg failed"
    return clip


async def soak(
    cycles: int,
    warmup: int,
    media_workers: int,
    ports: tuple[int, int] | None = None,
    without: frozenset[str] = frozenset(),
    checkpoint: Callable[[Report], object] | None = None,
) -> Report:
    """Run ``cycles`` cycles against a fresh server and sample after each; ``checkpoint`` gets
    the report so far every :data:`CHECKPOINT_EVERY` cycles (a long run that is stopped still
    leaves its figures)."""
    args = ["--media-workers", str(media_workers), "--gc-period", "5"]
    if ports is not None:
        args += ["--min-port", str(ports[0]), "--max-port", str(ports[1])]
    started = time.monotonic()
    report = Report(cycles, warmup, media_workers, 0.0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        clip = await make_clip(folder)
        async with (
            server_process(args) as server,
            await KurentoClient.connect(server.url, reconnect=False) as client,
        ):
            for index in range(1, cycles + 1):
                try:
                    await asyncio.wait_for(cycle(client, clip, folder, index, without), 4 * TIMEOUT)
                except Exception as exc:  # a failed cycle is a finding, not the end of the run
                    failure = f"cycle {index}: {type(exc).__name__}: {exc}"
                    report.failures.append(failure)
                    report.failure_logs[str(index)] = list(server.recent)
                    print(f"! {failure}", file=sys.stderr, flush=True)  # noqa: T201
                    await release_leftovers(client)
                await settle(server)
                report.samples.append(await sample(server, index))
                print(json.dumps(asdict(report.samples[-1])), flush=True)  # noqa: T201
                if checkpoint is not None and index % CHECKPOINT_EVERY == 0:
                    report.seconds = time.monotonic() - started
                    checkpoint(report)
    report.seconds = time.monotonic() - started
    return report


async def release_leftovers(client: KurentoClient) -> None:
    """After a failed cycle, release what it left (as an application would), so that the next
    cycles start from a clean server and what they hold is theirs alone."""
    pipelines = await client.call(
        "invoke", {"object": "manager_ServerManager", "operation": "getPipelines"}
    )
    for pipeline in pipelines["value"]:
        with contextlib.suppress(Exception):
            await client.call("release", {"object": pipeline}, timeout=TIMEOUT)


async def settle(server: Server) -> None:
    """Wait until the server has let go of the cycle's media ports (released endpoints close
    their sockets as tasks finish), at most a few seconds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = await admin_figures(server.admin)
        if metrics.get('kurento_media_ports{state="in_use"}', 0) == 0:
            return
        await asyncio.sleep(0.05)


def plot(report: Report, target: Path) -> None:
    """RSS and glibc's heap in use, and what must not grow (ports, fds, tasks, objects),
    cycle after cycle, the warm-up marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report.kept_samples()
    cycles = [s.cycle for s in samples]
    figure, (memory, held) = plt.subplots(1, 2, figsize=(13, 4))
    memory.plot(cycles, [s.rss_mb for s in samples], label="RSS, all processes (MB)")
    heap = [(s.cycle, s.heap_in_use_kb / 1024) for s in samples if s.heap_in_use_kb >= 0]
    if heap:
        memory.plot(*zip(*heap, strict=True), label="glibc heap in use, server (MB)")
    for name in ("udp_ports", "fds", "asyncio_tasks", "threads", "objects"):
        held.plot(cycles, [getattr(s, name) for s in samples], label=name)
    workers = (
        f"{report.media_workers} media workers"
        if report.media_workers > 1
        else "media in the server's process"
    )
    for axis, title in ((memory, "memory"), (held, "held after each cycle")):
        axis.axvline(report.warmup, color="grey", linestyle=":", label="end of warm-up")
        axis.set_title(f"soak, {report.cycles} cycles, {workers}: {title}", fontsize=9)
        axis.set_xlabel("cycle")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)


def main() -> None:
    """Command line: run, print the growth, write results/soak-<date>.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--media-workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--without",
        action="append",
        choices=PARTS,
        default=[],
        help="leave this part out of the cycle (again for more), to find which one keeps memory",
    )
    args = parser.parse_args()
    without = frozenset(args.without)
    RESULTS.mkdir(exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out = args.out or RESULTS / f"soak-{day}-workers{args.media_workers}.json"

    def write(report: Report) -> dict[str, Any]:
        data = {"machine": machine(), "cycles_done": len(report.samples), **report.to_json()}
        out.write_text(json.dumps(data, indent=1) + "\n")
        plot(report, out.with_suffix(".png"))
        return data

    report = asyncio.run(
        soak(args.cycles, args.warmup, args.media_workers, without=without, checkpoint=write)
    )
    data = write(report)
    print(json.dumps(data["growth_after_warmup"]), "problems:", data["problems"])  # noqa: T201
    print(f"written to {out}")  # noqa: T201
    raise SystemExit(1 if report.problems() else 0)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
