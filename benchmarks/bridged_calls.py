"""Bridged-call benchmark: concurrent WebRTC Opus <-> RTP PCMA calls, transcoded, until loss > 1%.

    python -m benchmarks.bridged_calls [--quick] [--out benchmarks/results]

Each call is a MediaPipeline with a WebRtcEndpoint and an RtpEndpoint connected both ways, on a
server in its own process. The WebRTC side is an aiortc RTCPeerConnection (ICE, DTLS-SRTP on
loopback) offering Opus only, whose track replays Opus frames encoded once with PyAV (no encoder
runs during the measurement) and whose receiver counts RTP at the transport instead of going
through aiortc's jitter buffer and Opus decoder. The PBX side is a UDP socket offering PCMA only,
sending a pre-encoded PCMA tone at 50 packets/s from one shared ticker and counting what arrives.
Both directions are transcoded by the server (Opus -> PCMA and PCMA -> Opus).

For each N the calls are set up, warmed up, then measured over a window: loss per direction
(1 - received / sent), the server's CPU from /proc/<pid>/stat, and this process's CPU (the load
generator: aiortc's per-packet SRTP and pacing in Python). N grows until loss exceeds 1%; the
largest N under 1% is reported as sustained. The load generator shares the machine with the
server: on a small machine it competes for the same cores (see ``generator_cpu_per_call``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from rich.console import Console
from rich.table import Table

from benchmarks.control_plane import machine, process_cpu, server_process
from emulator.transport.client import KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.media.peers import ClientPeer, loopback_peers, negotiate

console = Console()

PTIME = 0.02
"""20 ms packets: 50 per second and direction."""
PCMA_PT = 8
LOSS_LIMIT = 0.01
TRANSIT = 0.25
"""Seconds a packet may take through the server (transcoder queues included) on loopback."""


def encode_opus(frequency: float = 880.0, seconds: float = 1.0) -> list[bytes]:
    """A tone as 20 ms Opus packets, encoded once (the track replays them)."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    encoder.bit_rate = 32000
    samples = int(48000 * PTIME)
    packets: list[bytes] = []
    for index in range(int(seconds / PTIME)):
        t = (np.arange(samples) + index * samples) / 48000
        mono = (np.sin(2 * np.pi * frequency * t) * 8000).astype("<i2")
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48000, index * samples
        frame.time_base = fractions.Fraction(1, 48000)
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets


def encode_pcma(frequency: float = 440.0, seconds: float = 1.0) -> list[bytes]:
    """A tone as 20 ms PCMA payloads (160 bytes), encoded once."""
    encoder = av.CodecContext.create("pcm_alaw", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
    t = np.arange(int(8000 * seconds)) / 8000
    tone = (np.sin(2 * np.pi * frequency * t) * 8000).astype("<i2")
    frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts = 8000, 0
    data = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]


class OpusReplay(MediaStreamTrack):
    """An audio track handing aiortc pre-encoded Opus packets (``av.Packet``) every 20 ms:
    aiortc packs them without encoding (``RTCRtpSender`` accepts packets as well as frames)."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self.packets = packets
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self.sent * PTIME - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts = self.sent * int(48000 * PTIME)
        packet.time_base = fractions.Fraction(1, 48000)
        self.sent += 1
        return packet


class PbxPeer(asyncio.DatagramProtocol):
    """The PBX side of one call: a UDP socket sending PCMA and counting PCMA received."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.target: tuple[str, int] | None = None
        self.received = 0
        self.sent = 0
        self.sequence = 0
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) > 12 and data[1] & 0x7F == PCMA_PT and not 192 <= data[1] <= 223:
            self.received += 1
            self.arrived.set()

    def send(self, payload: bytes) -> None:
        """One PCMA packet to the RtpEndpoint."""
        if self.transport is None or self.target is None:
            return
        header = bytes([0x80, PCMA_PT]) + self.sequence.to_bytes(2, "big")
        header += (self.sequence * 160 & 0xFFFFFFFF).to_bytes(4, "big") + b"\x0b\xad\xca\x11"
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.transport.sendto(header + payload, self.target)
        self.sent += 1

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


def pbx_offer(port: int) -> str:
    """A PCMA-only PBX offer (no telephone-event)."""
    return (
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {PCMA_PT}\r\na=rtpmap:{PCMA_PT} PCMA/8000\r\n"
        "a=ptime:20\r\na=sendrecv\r\n"
    )


@dataclass
class Call:
    """One bridged call: its pipeline, the WebRTC peer and the PBX socket."""

    pipeline: RemoteObject
    peer: ClientPeer
    track: OpusReplay
    pbx: PbxPeer
    webrtc_received: list[int] = field(default_factory=lambda: [0])
    webrtc_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        """Close the peers and release the pipeline."""
        await self.peer.close()
        if self.pbx.transport is not None:
            self.pbx.transport.close()
        with contextlib.suppress(Exception):
            await self.pipeline.release()


async def open_call(client: KurentoClient, opus: list[bytes]) -> Call:
    """Create, connect and negotiate one call; media starts flowing on its own."""
    pipeline = await client.create("MediaPipeline")
    webrtc = await pipeline.create("WebRtcEndpoint")
    rtp = await pipeline.create("RtpEndpoint")
    await webrtc.connect(rtp, "AUDIO")
    await rtp.connect(webrtc, "AUDIO")
    loop = asyncio.get_running_loop()
    _, pbx = await loop.create_datagram_endpoint(PbxPeer, local_addr=("127.0.0.1", 0))
    answer = await rtp.invoke("processOffer", offer=pbx_offer(pbx.port))
    pbx.target = ("127.0.0.1", SessionDescription.parse(answer).media[0].port)
    peer = ClientPeer(audio=False, video=False)
    track = OpusReplay(opus)
    transceiver = peer.pc.addTransceiver(track, direction="sendrecv")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"]
    )
    call = Call(pipeline, peer, track, pbx)

    async def count(packet: Any, arrival_time_ms: int) -> None:
        # Count at the transport; aiortc's jitter buffer and decoder would cost the generator
        # more than the server's transcoding.
        call.webrtc_received[0] += 1
        call.webrtc_arrived.set()

    transceiver.receiver._handle_rtp_packet = count  # type: ignore[method-assign]
    await negotiate(webrtc, peer)
    return call


@dataclass
class Step:
    """The figures of one N."""

    calls: int
    established: int
    seconds: float
    sent_to_pbx: int
    received_by_pbx: int
    sent_to_webrtc: int
    received_by_webrtc: int
    loss_to_pbx: float
    loss_to_webrtc: float
    loss: float
    server_cpu_per_call: float
    """Share of one core, per call."""
    generator_cpu_per_call: float
    generator_send_rate: float
    """Packets/s per call the generator actually sent (nominal 50): below 49 it is saturated."""


def _loss(sent: int, received: int) -> float:
    return max(0.0, 1 - received / sent) if sent else 1.0


async def measure(
    client: KurentoClient, pid: int, n: int, opus: list[bytes], pcma: list[bytes], window: float
) -> Step:
    """Set up ``n`` calls, warm up, measure loss and CPU over ``window`` seconds, tear down."""
    calls: list[Call] = []
    ticker: asyncio.Task[None] | None = None
    try:
        for start in range(0, n, 8):  # a few negotiations at a time, as phones ring
            calls += await asyncio.gather(
                *(open_call(client, opus) for _ in range(min(8, n - start)))
            )
        ticker = asyncio.create_task(pbx_ticker([c.pbx for c in calls], pcma))
        established = 0
        for call in calls:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await call.pbx.arrived.wait()
                    await call.webrtc_arrived.wait()
                    established += 1
        await asyncio.sleep(1.0)  # warm-up: transcoders started, queues settled
        # Received packets are counted over the same window shifted by the transit time, so
        # that packets in flight at either edge count on both sides.
        sent_before = _sent(calls)
        cpu, own, wall = process_cpu(pid), time.process_time(), time.perf_counter()
        await asyncio.sleep(TRANSIT)
        received_before = _received(calls)
        await asyncio.sleep(window - TRANSIT)  # the measurement window itself
        elapsed = time.perf_counter() - wall
        server_cpu = process_cpu(pid) - cpu
        generator_cpu = time.process_time() - own
        sent_after = _sent(calls)
        await asyncio.sleep(TRANSIT)
        received_after = _received(calls)
    finally:
        if ticker is not None:
            ticker.cancel()
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)
    sent_pbx, sent_web = (a - b for a, b in zip(sent_after, sent_before, strict=True))
    got_pbx, got_web = (a - b for a, b in zip(received_after, received_before, strict=True))
    to_pbx, to_webrtc = _loss(sent_pbx, got_pbx), _loss(sent_web, got_web)
    return Step(
        calls=n,
        established=established,
        seconds=round(elapsed, 2),
        sent_to_pbx=sent_pbx,
        received_by_pbx=got_pbx,
        sent_to_webrtc=sent_web,
        received_by_webrtc=got_web,
        loss_to_pbx=round(to_pbx, 4),
        loss_to_webrtc=round(to_webrtc, 4),
        loss=round(max(to_pbx, to_webrtc, 1 - established / n), 4),
        server_cpu_per_call=round(server_cpu / elapsed / n, 4),
        generator_cpu_per_call=round(generator_cpu / elapsed / n, 4),
        generator_send_rate=round((sent_pbx + sent_web) / 2 / elapsed / n, 1),
    )


def _sent(calls: list[Call]) -> tuple[int, int]:
    """Opus sent by the WebRTC peers (towards the PBXs), PCMA sent by the PBXs."""
    return sum(c.track.sent for c in calls), sum(c.pbx.sent for c in calls)


def _received(calls: list[Call]) -> tuple[int, int]:
    """PCMA received by the PBXs, Opus received by the WebRTC peers."""
    return sum(c.pbx.received for c in calls), sum(c.webrtc_received[0] for c in calls)


async def pbx_ticker(pbxs: list[PbxPeer], pcma: list[bytes]) -> None:
    """Every PBX sends one packet per 20 ms, from one timer (catching up if it runs late)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    index = 0
    while True:
        due = int((loop.time() - start) / PTIME) + 1
        while index < due:
            payload = pcma[index % len(pcma)]
            for pbx in pbxs:
                pbx.send(payload)
            index += 1
        await asyncio.sleep(max(0.0, start + index * PTIME - loop.time()))


async def run(quick: bool, max_calls: int) -> dict[str, Any]:
    """Sweep N until loss exceeds 1% (or ``max_calls``)."""
    window = 3.0 if quick else 10.0
    plan = [1, 2, 4] if quick else [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
    plan = [n for n in plan if n <= max_calls]
    opus, pcma = encode_opus(), encode_pcma()
    steps: list[Step] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(loopback_peers())
        url, pid = await stack.enter_async_context(server_process(["--network-interfaces", "lo"]))
        client = await stack.enter_async_context(await KurentoClient.connect(url))
        for n in plan:
            console.print(f"{n} call(s)...")
            step = await measure(client, pid, n, opus, pcma, window)
            steps.append(step)
            console.print(
                f"  loss {step.loss:.2%}, server {step.server_cpu_per_call:.1%} of a core per "
                f"call, generator {step.generator_cpu_per_call:.1%}"
            )
            if step.loss > LOSS_LIMIT:
                break
    sustained = max((s.calls for s in steps if s.loss <= LOSS_LIMIT), default=0)
    return {
        "benchmark": "bridged_calls",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "quick": quick,
        "call": "WebRTC Opus (aiortc, DTLS-SRTP) <-> WebRtcEndpoint <-> RtpEndpoint <-> RTP PCMA, "
        "transcoded both ways, 50 packets/s each way",
        "window_seconds": window,
        "load_generator": "this process: aiortc peers replaying pre-encoded Opus, counting at "
        "the transport; UDP PBX sockets on one ticker; shares the machine with the server",
        "sustained_calls_under_1pct_loss": sustained,
        "steps": [asdict(s) for s in steps],
    }


def show(report: dict[str, Any]) -> None:
    """Print the sweep as a table."""
    table = Table(title="bridged calls: WebRTC Opus <-> RTP PCMA, transcoded")
    columns = (
        "calls",
        "established",
        "loss_to_pbx",
        "loss_to_webrtc",
        "server_cpu_per_call",
        "generator_cpu_per_call",
        "generator_send_rate",
    )
    for column in columns:
        table.add_column(column)
    for step in report["steps"]:
        table.add_row(*(str(step[c]) for c in columns))
    console.print(table)
    console.print(f"sustained under 1% loss: {report['sustained_calls_under_1pct_loss']} calls")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1, 2 and 4 calls, 3 s windows")
    parser.add_argument("--max-calls", type=int, default=128, help="stop the sweep there")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    report = asyncio.run(run(args.quick, args.max_calls))
    show(report)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"bridged-{report['date'][:10]}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {target}")


if __name__ == "__main__":
    main()
