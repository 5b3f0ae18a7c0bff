"""The media behind the mixing hubs: audio mixed per port, video composed into one picture.

Composite as KMS's ``kmscompositemixer``, AlphaBlending as ``kmsalphablending``, the audio of
both as ``kmsaudiomixer``, Mixer's audio as ``kmsselectablemixer`` (each sink port hears the
sources linked to it; its video is routed by the hub, not here):

- **audio**: every port's audio is decoded (PyAV, ``codecs/coders.py``'s ``AudioCoder``) and
  resampled to one internal format, 48 kHz mono s16. A clock ticks every 20 ms whatever the inputs
  do (while there are any); at each tick every input gives 20 ms from its jitter buffer
  (``_AudioInput``), so a late or silent participant never stalls the mix. The inputs are summed
  in int32 once, and each port hears that sum minus its own input (``kmsaudiomixer`` never feeds a
  port's input back to it), clipped to int16 (a Mixer port hears the sum of its linked sources,
  its own too if linked). Each distinct (mix, codec) is encoded once (``AudioEncoding``: Opus,
  PCMU, PCMA, G.722): ports without audio input of their own (a recorder's port) share the full
  mix.
- **video**: every port's video is decoded (``VideoCoder``: VP8, H264). At the Composite's
  frame rate the latest picture of each port is scaled into its cell of a grid of ``width`` x
  ``height`` (1 port: the whole picture, 2: side by side, then ``ceil(sqrt(n))`` columns) in the
  order the ports were created, keeping its shape (black borders). AlphaBlending draws its
  master's picture whole and the others at their ``setPortProperties`` places, by z-order
  (``BlendLayout``). The picture is encoded once per output codec (``VideoEncoding``: VP8,
  H264) for every port whose sinks take it; unlike audio, each port sees the whole picture,
  itself included, as in KMS. A keyframe request from any sink reaches the shared encoder.

Each hub has one audio thread and (Composite, AlphaBlending) one video thread (PyAV and libvpx
release the GIL while they work), fed through bounded queues that they take at each tick; what
they produce comes back to the event loop with ``call_soon_threadsafe``, where it becomes
``MediaPacket``s of the hub's own streams. The loop side also picks, every tick, what each
port's sinks negotiated (``MixPort.wants``), so that a PBX leg gets PCMA straight from the mix
instead of through a second transcoder, and the bitrate of each video output (its viewers'
lowest REMB within the hub's encoder bounds). A thread that has had no input for twice the flow
timeout sleeps until the next packet, so that an empty hub costs nothing; its timeline goes on
by the ticks it slept through.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import av
import numpy as np

from emulator.media.codecs.coders import (
    AudioCoder,
    AudioEncoding,
    EncoderBitrates,
    MediaInput,
    Timeline,
    VideoCoder,
    VideoEncoding,
    call_from_thread,
    codec_identity,
    encodable_codec,
)
from emulator.media.codecs.packetize import VP8, RtpStamper
from emulator.media.codecs.served import is_dtmf
from emulator.media.codecs.transcoding import KEYFRAME_INTERVAL
from emulator.media.flow import MediaPacket
from protocol.sdp import Codec

logger = logging.getLogger(__name__)

MIX_RATE = 48000
"""The internal audio format: 48 kHz mono s16 (Opus's rate: no resampling for WebRTC legs)."""
TICK = 0.02
TICK_SAMPLES = MIX_RATE * 20 // 1000
PRIME_SAMPLES = 2 * TICK_SAMPLES
"""An input joins the mix (again) once it holds 40 ms: its jitter buffer."""
MAX_BUFFERED = 10 * TICK_SAMPLES
"""An input more than 200 ms ahead of the clock (a burst) is cut back to the primed depth."""
IDLE_TICKS = 25
"""Ticks (0.5 s) without audio after which an input stops counting as a participant."""
DRY_TICKS = 3
"""Ticks in a row without a whole 20 ms after which an input primes its buffer again."""
TRIM_TICKS = 50
TRIM_MARGIN = MIX_RATE * 10 // 1000
"""Once every ``TRIM_TICKS`` (1 s), a buffer is cut to its lowest depth over that second less
this margin (10 ms)."""
QUEUE_LIMIT = 600
"""Pending packets per thread before the oldest is dropped (overload)."""
LATE_LIMIT = 0.2
"""Seconds a clock may fall behind before it skips ahead instead of catching up."""
MIXED = Codec(0, "L16", MIX_RATE, 1)
"""What the mixer's encoders take: their source clock is the mix's."""

PortKey = object
"""A port as the threads know it: a dictionary key, never called there."""
InputT = TypeVar("InputT")
"""What a thread keeps per port: its decoder and what it decoded."""


class MixPort(Protocol):
    """What a mixing hub's media asks of and tells a port (always on the event loop)."""

    def wants(self, kind: str) -> list[Codec] | None:
        """The codecs the port's sinks negotiated for ``kind`` (``[]``: any); None: no sinks."""

    def mixed(self, kind: str, packet: MediaPacket) -> None:
        """One packet of the port's output (its mix, or the grid), for its sinks."""

    def keyframe_needed(self) -> None:
        """The port's video decoder needs a keyframe from what feeds the port."""

    def flow_stopped(self, direction: str, kind: str) -> None:
        """Nothing of ``kind`` went ``in``/``out`` of the port for the flow timeout."""

    def video_send_limit(self) -> int | None:
        """The video bitrate (bps) the receivers behind the port take (their REMB), None if
        unknown."""


@dataclass(frozen=True, slots=True)
class MixFormat:
    """Pictures per second of the video output, the flow timeout of the ports, and the
    bitrate the video output is encoded at (MediaElement.conf.ini's ``encoderBitrate``)."""

    framerate: int = 15
    flow_timeout: float = 2.0
    bitrates: EncoderBitrates = field(default_factory=EncoderBitrates)


def _lowest(limits: Iterable[int | None]) -> int | None:
    """The lowest of the known limits (None: none known)."""
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def grid(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The cells (x, y, width, height; even numbers) of ``count`` pictures, row by row."""
    if count <= 0:
        return []
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    cell_w, cell_h = (width // columns) & ~1, (height // rows) & ~1
    return [((i % columns) * cell_w, (i // columns) * cell_h, cell_w, cell_h) for i in range(count)]


@dataclass(frozen=True, slots=True)
class Mix:
    """What one output hears: every input but ``minus`` (Composite, AlphaBlending: the port's
    own input, or None for a port without one), or only ``sources`` (Mixer's audio links)."""

    sources: frozenset[object] | None = None
    minus: object | None = None

    def hears(self, port: object) -> bool:
        """Whether ``port``'s input is part of this mix."""
        return port is not self.minus if self.sources is None else port in self.sources


MixChooser = Callable[["MixPort", bool], "Mix | None"]
"""The mix a port hears (None: nothing), given whether it sends audio itself (event loop)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one picture goes on the blended output, relative to its size (0..1), and its
    z-order (the greater on top); KMD AlphaBlending ``setPortProperties``."""

    x: float
    y: float
    width: float
    height: float
    z_order: int


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Composite: the pictures in a grid of ``width`` x ``height``, in the ports' creation
    order, each keeping its shape inside its cell."""

    width: int
    height: int


@dataclass(frozen=True, slots=True)
class BlendLayout:
    """AlphaBlending as ``kmsalphablending.c``: the master's picture sets the output size (640x480
    until it has one) and is drawn whole at ``master_z``; a placed port is scaled to its
    placement's share of that size, an unplaced one to the whole size at z-order 1; pictures are
    opaque (KMS sets every pad's alpha to 1.0), over black."""

    master: object | None = None
    master_z: int = 5
    placements: dict[object, Placement] = field(default_factory=dict)


DEFAULT_BLEND_SIZE = (640, 480)
Layout = GridLayout | BlendLayout


# -- the event loop side ------------------------------------------------------------------------


_Payload = tuple[bytes, int, bool]
"""payload, RTP timestamp, marker."""
_Produced = list[tuple[Hashable, list[_Payload]]]
"""Per output key, what was encoded at one tick."""


class HubMedia:
    """A mixing hub's media: inputs from its ports, outputs to its ports (event-loop side).

    Args:
        name: for logs and thread names.
        fmt: frame rate and flow timeout (and the grid size of a Composite).
        ports: the hub's ports now.
        mix_of: the audio mix each port hears.
        layout: how video is composed; None: this hub does not touch video (Mixer routes it).
    """

    def __init__(
        self,
        name: str,
        fmt: MixFormat,
        ports: Callable[[], list[MixPort]],
        mix_of: MixChooser,
        layout: Layout | None,
    ) -> None:
        self.name = name
        self.format = fmt
        self._ports = ports
        self._mix_of = mix_of
        loop = asyncio.get_running_loop()
        self._last_in: dict[tuple[MixPort, str], float] = {}
        self._last_out: dict[tuple[MixPort, str], float] = {}
        self._routes: dict[str, dict[Hashable, list[MixPort]]] = {"audio": {}, "video": {}}
        self._stampers: dict[tuple[str, Hashable], RtpStamper] = {}
        self._video_codecs: dict[MixPort, Hashable] = {}
        self.audio = AudioMixer(
            name, lambda out: self._post(loop, "audio", out), 2 * fmt.flow_timeout
        )
        self.video: VideoCompositor | None = None
        if layout is not None:
            self.video = VideoCompositor(
                name,
                fmt,
                layout,
                lambda out: self._post(loop, "video", out),
                self._keyframe_needed(loop),
            )
        self.closed = False

    def set_layout(self, layout: Layout) -> None:
        """A new picture layout (AlphaBlending's master and placements)."""
        if self.video is not None:
            self.video.layout = layout

    # -- ports -----------------------------------------------------------------------------------

    def feed(self, port: MixPort, kind: str, packet: MediaPacket) -> None:
        """A packet entering a port."""
        if self.closed or is_dtmf(packet.codec):
            return  # telephone-events are signalling, not sound: they are not mixed
        self._last_in[(port, kind)] = time.monotonic()
        if kind == "audio":
            self.audio.feed(port, packet)
        elif self.video is not None:
            self.video.feed(port, packet)

    def remove(self, port: MixPort) -> None:
        """A port leaves (released): its input leaves the mixes and the picture."""
        self.audio.remove(port)
        if self.video is not None:
            self.video.remove(port)
        self._video_codecs.pop(port, None)
        for kind in ("audio", "video"):
            self._last_in.pop((port, kind), None)
            self._last_out.pop((port, kind), None)
            for ports in self._routes[kind].values():
                if port in ports:
                    ports.remove(port)

    def keyframe_wanted(self, port: MixPort) -> None:
        """A sink of ``port`` wants a keyframe: the grid's encoder of its codec makes one."""
        key = self._video_codecs.get(port)
        if key is not None and self.video is not None:
            self.video.request_keyframe(key)

    async def close(self) -> None:
        """Stop the threads."""
        self.closed = True
        workers: list[_ClockedWorker[Any]] = [self.audio]
        if self.video is not None:
            workers.append(self.video)
        for worker in workers:
            worker.close()
        await asyncio.gather(*(worker.ended.wait() for worker in workers))

    # -- what the threads produced ---------------------------------------------------------------

    def _post(self, loop: asyncio.AbstractEventLoop, kind: str, produced: _Produced) -> None:
        call_from_thread(loop, self._deliver, kind, produced)

    def _keyframe_needed(self, loop: asyncio.AbstractEventLoop) -> Callable[[PortKey], None]:
        def post(port: PortKey) -> None:
            call_from_thread(loop, self._ask_keyframe, port)

        return post

    def _ask_keyframe(self, key: PortKey) -> None:
        port = next((p for p in self._ports() if p is key), None)
        if not self.closed and port is not None:
            port.keyframe_needed()

    def _deliver(self, kind: str, produced: _Produced) -> None:
        if self.closed:
            return
        now = time.monotonic()
        routes = self._routes[kind]
        for out_key, payloads in produced:
            stamper = self._stampers.get((kind, out_key))
            ports = routes.get(out_key, [])
            if stamper is None or not ports:
                continue
            for payload, timestamp, marker in payloads:
                packet = stamper.packet(payload, timestamp, marker, now)
                for port in ports:
                    self._last_out[(port, kind)] = now
                    port.mixed(kind, packet)
        if kind == "audio":  # the audio clock paces the loop side too
            self._refresh(now)

    def _refresh(self, now: float) -> None:
        ports = self._ports()
        self._route_audio(ports, now)
        if self.video is not None:
            self._route_video(ports, self.video)
        self._expire(now)

    def _route_audio(self, ports: list[MixPort], now: float) -> None:
        def out_key_of(port: MixPort, codec: Codec) -> Hashable | None:
            last = self._last_in.get((port, "audio"))
            mix = self._mix_of(port, last is not None and now - last < 1.0)
            return None if mix is None else (mix, codec_identity(codec))

        self.audio.set_outputs(self._route("audio", ports, out_key_of))

    def _route_video(self, ports: list[MixPort], video: VideoCompositor) -> None:
        wanted = self._route("video", ports, lambda port, codec: codec_identity(codec))
        previous = self._video_codecs
        self._video_codecs = {
            p: key for key, routed in self._routes["video"].items() for p in routed
        }
        for port, out_key in self._video_codecs.items():
            if previous.get(port) != out_key:
                video.request_keyframe(out_key)  # a new viewer starts with a keyframe
        video.set_outputs(wanted)
        video.bitrates = {
            out_key: self.format.bitrates.choose(_lowest(p.video_send_limit() for p in routed))
            for out_key, routed in self._routes["video"].items()
        }
        video.order = list(ports)

    def _route(
        self,
        kind: str,
        ports: list[MixPort],
        out_key_of: Callable[[MixPort, Codec], Hashable | None],
    ) -> dict[Hashable, Codec]:
        """Which output each port with sinks gets (its codec: the first its sinks negotiated
        that is encoded here; ``out_key_of`` None: no output), with a stream per output; the
        outputs the thread encodes now."""
        routes: dict[Hashable, list[MixPort]] = {}
        wanted: dict[Hashable, Codec] = {}
        for port in ports:
            offered = port.wants(kind)
            if offered is None:
                continue
            codec = encodable_codec(kind, offered)
            out_key = out_key_of(port, codec)
            if out_key is None:
                continue
            routes.setdefault(out_key, []).append(port)
            wanted[out_key] = codec
        self._routes[kind] = routes
        for key in [k for k in self._stampers if k[0] == kind and k[1] not in wanted]:
            del self._stampers[key]
        for out_key, codec in wanted.items():
            if (kind, out_key) not in self._stampers:
                self._stampers[(kind, out_key)] = RtpStamper(kind, codec)
        return wanted

    def _expire(self, now: float) -> None:
        timeout = self.format.flow_timeout
        for states, direction in ((self._last_in, "in"), (self._last_out, "out")):
            for (port, kind), last in list(states.items()):
                if now - last > timeout:
                    del states[(port, kind)]
                    port.flow_stopped(direction, kind)


# -- the threads ----------------------------------------------------------------------------------


class _ClockedWorker(Generic[InputT]):
    """A thread that runs ``tick`` every ``period``, after handling what was queued since: the
    ports' packets, each to its port's input (``InputT``: its decoder), and the ports removed."""

    def __init__(
        self, name: str, period: float, catch_up: float, step: int, idle_after: float
    ) -> None:
        self.inputs: dict[PortKey, InputT] = {}
        self.outputs: dict[Hashable, Codec] = {}
        """What is encoded at each tick, by output key; the event loop replaces it whole."""
        self.name = name
        self.period = period
        self.catch_up = catch_up
        """How late the clock may be and still run the ticks it missed (audio: 200 ms, so that
        its streams keep their rate; video: none, a late picture is skipped, not repeated)."""
        self.position = 0
        """The output's timeline (audio samples, video 90 kHz), advanced ``step`` a tick,
        ticks skipped included."""
        self.step = step
        self.idle_after = idle_after
        """Seconds without inputs after which the thread sleeps until a packet is queued (the
        loop side's flow checks ride on the audio ticks: this outlasts the flow timeout)."""
        self.idle_since: float | None = None
        self.asleep = threading.Event()
        """Set while the thread sleeps for want of input."""
        self.dropped = 0
        self.ended = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[tuple[str, PortKey, Any]] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, action: str, port: PortKey, item: Any) -> None:
        # No wake-up: the thread takes the queue at its next tick (what arrives is only mixed or
        # drawn then), so it wakes 50 (or framerate) times a second however many packets come,
        # instead of contending for the GIL with the event loop on every packet.
        with self._wake:
            if len(self._queue) >= QUEUE_LIMIT:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((action, port, item))
            if self.asleep.is_set():
                self._wake.notify()

    def feed(self, port: PortKey, packet: MediaPacket) -> None:
        """A port's packet (event loop side)."""
        self._put("packet", port, (packet.codec, packet.source, MediaInput.of(packet)))

    def set_outputs(self, outputs: dict[Hashable, Codec]) -> None:
        """The outputs wanted now (replaced whole: a plain assignment)."""
        self.outputs = outputs

    def remove(self, port: PortKey) -> None:
        """Forget a port's input (and its decoder)."""
        self._put("remove", port, None)

    def close(self) -> None:
        """End the thread after what it is doing."""
        with self._wake:
            self._closing = True
            self._queue.clear()
            self._wake.notify()

    def _run(self) -> None:
        next_tick = time.monotonic() + self.period
        try:
            while True:
                with self._wake:
                    if self._idle():
                        next_tick = self._sleep(next_tick)
                    delay = next_tick - time.monotonic()
                    if not self._closing and delay > 0:
                        self._wake.wait(delay)
                    if self._closing:
                        return
                    items = list(self._queue)
                    self._queue.clear()
                for action, port, item in items:
                    self._guarded(self._handle, action, port, item)
                now = time.monotonic()
                if now - next_tick > self.catch_up:  # too late to catch up: skip ticks
                    self.position += int((now - next_tick) / self.period) * self.step
                    next_tick = now
                while now >= next_tick:
                    self._guarded(self.tick)
                    next_tick += self.period
        finally:
            call_from_thread(self._loop, self.ended.set)

    def _idle(self) -> bool:
        """No input for ``idle_after`` seconds and nothing queued (called with the lock)."""
        if self.inputs or self._queue:
            self.idle_since = None
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        return now - self.idle_since >= self.idle_after and not self._closing

    def _sleep(self, next_tick: float) -> float:
        """Sleep (the lock released) until a packet is queued or the worker closes, so that an
        empty hub costs nothing; the timeline goes on by the ticks slept through."""
        self.asleep.set()
        while not self._queue and not self._closing:
            self._wake.wait()
        self.asleep.clear()
        self.idle_since = None
        slept = max(0, int((time.monotonic() - next_tick) / self.period))
        self.position += slept * self.step
        return next_tick + slept * self.period

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except Exception:
            logger.exception("! %s failed", self.name)

    def _handle(self, action: str, port: PortKey, item: Any) -> None:
        if action == "remove":
            self.inputs.pop(port, None)
            return
        codec, origin, data = item
        self.decode(port, codec, origin, data)

    def decode(self, port: PortKey, codec: Codec, origin: object, data: MediaInput) -> None:
        """A packet of ``port`` whose stream (``origin``) sends ``codec``, into its input."""
        raise NotImplementedError

    def tick(self) -> None:
        """The clock's work."""
        raise NotImplementedError


class _AudioInput:
    """One port's audio: decoded, resampled to the mix's format, in a jitter buffer.

    The buffer primes to 40 ms before the input joins the mix. A tick that finds less than
    20 ms is padded with silence (a late packet: concealment) and the input stays in the mix;
    after ``DRY_TICKS`` such ticks in a row the talker has stopped and the buffer primes again.
    Packets that arrive late then in a burst leave the buffer deeper than it needs to be: once a
    second, the samples it never went below (less 10 ms of margin) are dropped, so the delay
    returns to what the jitter needs instead of creeping up with each late packet.
    """

    def __init__(self, codec: Codec, origin: object) -> None:
        self.codec_key = codec.key
        self.origin = origin
        self.coder = AudioCoder(codec, codec)
        self.coder.sink = self
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=MIX_RATE)
        self.buffer = np.zeros(0, dtype=np.int16)
        self.primed = False
        self.idle = IDLE_TICKS
        """Ticks since the input last gave audio (it leaves the mix at ``IDLE_TICKS``)."""
        self.dry = 0
        self.lowest = 0
        self.ticks = 0

    def frame(self, frame: Any, position: int) -> None:
        """A decoded frame (``FrameSink``): resampled into the buffer."""
        frame.pts = None
        chunks = [c.to_ndarray().reshape(-1) for c in self.resampler.resample(frame)]
        if chunks:
            self.buffer = np.concatenate([self.buffer, *chunks])
        if len(self.buffer) > MAX_BUFFERED:
            self.buffer = self.buffer[-PRIME_SAMPLES:]

    @property
    def heard(self) -> bool:
        """Whether the input is part of the mixes (it gave audio within ``IDLE_TICKS``)."""
        return self.idle < IDLE_TICKS

    def take(self) -> np.ndarray[Any, Any] | None:
        """The next 20 ms (silence-padded when late); None while priming."""
        if not self.primed:
            if len(self.buffer) < PRIME_SAMPLES:
                self.idle += 1
                return None
            self.primed, self.dry, self.ticks, self.lowest = True, 0, 0, len(self.buffer)
        out, self.buffer = self.buffer[:TICK_SAMPLES], self.buffer[TICK_SAMPLES:]
        if len(out) < TICK_SAMPLES:
            self.dry += 1
            self.primed = self.dry < DRY_TICKS
            out = np.concatenate([out, np.zeros(TICK_SAMPLES - len(out), dtype=np.int16)])
        else:
            self.dry = 0
        self.idle = 0
        self._trim()
        return out

    def _trim(self) -> None:
        self.lowest = min(self.lowest, len(self.buffer))
        self.ticks += 1
        if self.ticks < TRIM_TICKS:
            return
        excess = self.lowest - TRIM_MARGIN
        if excess > 0:
            self.buffer = self.buffer[excess:]
        self.ticks, self.lowest = 0, len(self.buffer)


class AudioMixer(_ClockedWorker[_AudioInput]):
    """The audio thread: decode each port's audio, mix per output, encode per (mix, codec)."""

    def __init__(self, name: str, deliver: Callable[[_Produced], None], idle_after: float) -> None:
        self.encodings: dict[Hashable, AudioEncoding] = {}
        self.mixes = 0
        """Mixes encoded since the start (one per (mix, codec) and tick)."""
        self._deliver = deliver
        super().__init__(f"hub audio {name}", TICK, LATE_LIMIT, TICK_SAMPLES, idle_after)

    def decode(self, port: PortKey, codec: Codec, origin: object, data: MediaInput) -> None:
        """Into the port's decoder; a new source (or codec) starts a new one."""
        found = self.inputs.get(port)
        if found is None or found.codec_key != codec.key or found.origin is not origin:
            found = self.inputs[port] = _AudioInput(codec, origin)  # a new source: new timeline
        found.coder.process(data)

    def tick(self) -> None:
        """20 ms of every output."""
        taken = {port: inp.take() for port, inp in self.inputs.items()}
        silence = np.zeros(TICK_SAMPLES, dtype=np.int16)
        # A participant between two packets (or priming again after a pause shorter than
        # IDLE_TICKS) counts as silence, so that its listeners' streams go on at 50 packets/s.
        active = {
            port: chunk if chunk is not None else silence
            for port, chunk in taken.items()
            if chunk is not None or self.inputs[port].heard
        }
        produced: _Produced = []
        outputs = self.outputs
        if active:
            total: Any = None
            mixes: dict[Mix, np.ndarray[Any, Any]] = {}
            for out_key, codec in outputs.items():
                mix: Mix = out_key[0]  # type: ignore[index]
                heard = [port for port in active if mix.hears(port)]
                if not heard:
                    continue  # nobody this port listens to is talking (or only itself)
                if mix not in mixes:
                    if mix.sources is None:  # everybody but one: the sum once, minus one
                        if total is None:
                            total = np.sum(np.stack(list(active.values())), axis=0, dtype=np.int32)
                        own = active.get(mix.minus)
                        mixed: Any = total - own if own is not None else total
                    else:
                        mixed = np.sum(np.stack([active[p] for p in heard]), axis=0, dtype=np.int32)
                    mixes[mix] = np.clip(mixed, -32768, 32767).astype(np.int16)
                produced.append((out_key, self._encode(out_key, codec, mixes[mix])))
        for stale in [k for k in self.encodings if k not in outputs]:
            del self.encodings[stale]
        self.position += self.step
        self._deliver(produced)

    def _encode(
        self, out_key: Hashable, codec: Codec, samples: np.ndarray[Any, Any]
    ) -> list[_Payload]:
        encoding = self.encodings.get(out_key)
        if encoding is None:
            encoding = AudioEncoding(MIXED, codec, Timeline(MIX_RATE, codec.clock_rate))
            self.encodings[out_key] = encoding
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = MIX_RATE
        encoding.frame(frame, self.position)
        self.mixes += 1
        return [(payload, ts, marker) for payload, ts, marker, _ in encoding.take()]


class _VideoInput:
    """One port's video: depayloaded and decoded; the latest picture is kept."""

    def __init__(self, codec: Codec, origin: object) -> None:
        self.codec_key = codec_identity(codec)
        self.origin = origin
        self.coder = VideoCoder(codec, codec)
        self.coder.sink = self
        self.latest: Any = None
        self.asked = -KEYFRAME_INTERVAL
        """When a keyframe was last asked for (``time.monotonic()``)."""

    def frame(self, frame: Any, position: int) -> None:
        """A decoded picture (``FrameSink``)."""
        self.latest = frame


class VideoCompositor(_ClockedWorker[_VideoInput]):
    """The video thread: decode each port's video, compose the grid, encode it per codec."""

    def __init__(
        self,
        name: str,
        fmt: MixFormat,
        layout: Layout,
        deliver: Callable[[_Produced], None],
        keyframe_needed: Callable[[PortKey], None],
    ) -> None:
        self.format = fmt
        self.layout = layout
        """Read once per picture; the event loop replaces it whole."""
        self.order: list[PortKey] = []
        """The ports in creation order (KMS sorts the grid's cells by port id)."""
        self.encodings: dict[Hashable, VideoEncoding] = {}
        self.bitrates: dict[Hashable, int] = {}
        """The bitrate of each output: the lowest its viewers take (their REMB) within the
        hub's encoder bounds; the event loop replaces it whole."""
        self.forced: set[Hashable] = set()
        self.composed = 0
        self._deliver = deliver
        self._keyframe_needed = keyframe_needed
        period = 1.0 / max(1, fmt.framerate)
        step = 90000 // max(1, fmt.framerate)
        super().__init__(f"hub video {name}", period, period, step, 2 * fmt.flow_timeout)

    def request_keyframe(self, out_key: Hashable) -> None:
        """The next grid of that codec is a keyframe (a set's add is atomic)."""
        self.forced.add(out_key)

    def decode(self, port: PortKey, codec: Codec, origin: object, data: MediaInput) -> None:
        """Into the port's decoder (a new one, and a keyframe asked, for a new source)."""
        found = self.inputs.get(port)
        if found is None or found.codec_key != codec_identity(codec) or found.origin is not origin:
            if found is not None:
                del self.inputs[port]  # re-inserted: a new source keeps its cell's order anyway
            found = _VideoInput(codec, origin)
            self.inputs[port] = found
            self._ask(found, port)
        found.coder.process(data)
        if found.coder.keyframe_needed:
            found.coder.keyframe_needed = False
            self._ask(found, port)

    def _ask(self, found: _VideoInput, port: PortKey) -> None:
        # At most one request a second per input: a decoder waiting for a keyframe finds every
        # frame broken until it comes, as the transcoders do (KEYFRAME_INTERVAL).
        now = time.monotonic()
        if now - found.asked >= KEYFRAME_INTERVAL:
            found.asked = now
            self._keyframe_needed(port)

    def tick(self) -> None:
        """One grid picture, encoded in every wanted codec."""
        pictures = {port: inp.latest for port, inp in self.inputs.items() if inp.latest is not None}
        outputs = self.outputs
        for stale in [k for k in self.encodings if k not in outputs]:
            del self.encodings[stale]
        self.position += self.step
        if not pictures or not outputs:
            return
        canvas = self.compose(pictures)
        produced: _Produced = []
        for out_key, codec in outputs.items():
            encoding = self.encoding(out_key, codec)
            frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
            encoding.frame(frame, self.position)
            produced.append((out_key, [(p, ts, m) for p, ts, m, _ in encoding.take()]))
        self.composed += 1
        self._deliver(produced)

    def encoding(self, out_key: Hashable, codec: Codec) -> VideoEncoding:
        """The output's encoder, ready for the next picture: made at its first picture (a
        keyframe), a keyframe when one was asked for, at the output's bitrate now."""
        encoding = self.encodings.get(out_key)
        if encoding is None:
            encoding = VideoEncoding(VP8, codec, Timeline(90000, 90000))
            self.encodings[out_key] = encoding
            self.forced.add(out_key)
        if out_key in self.forced:
            self.forced.discard(out_key)
            encoding.force_keyframe = True
        encoding.bitrate = self.bitrates.get(out_key) or self.format.bitrates.choose(None)
        return encoding

    def compose(self, pictures: dict[PortKey, Any]) -> np.ndarray[Any, Any]:
        """The output picture as one yuv420p array (planes one after another)."""
        layout = self.layout
        if isinstance(layout, GridLayout):
            width, height = layout.width & ~3, layout.height & ~3
            order = self.order
            ranked = sorted(pictures, key=lambda p: order.index(p) if p in order else len(order))
            cells = grid(len(ranked), width, height)
            layers = [
                (pictures[port], *fit(pictures[port], *cell))
                for port, cell in zip(ranked, cells, strict=True)
            ]
        else:
            width, height, layers = blend(layout, pictures)
        canvas = _Canvas(width, height)
        for picture, x, y, w, h in layers:
            canvas.paste(picture, x, y, w, h)
        return canvas.array()


def fit(picture: Any, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """The picture's place in a cell, scaled to keep its shape and centred (black borders, as
    GStreamer's videoscale ``add-borders`` does in KMS's composite)."""
    scale = min(w / picture.width, h / picture.height)
    fitted_w, fitted_h = int(picture.width * scale) & ~1, int(picture.height * scale) & ~1
    return x + (w - fitted_w) // 2, y + (h - fitted_h) // 2, fitted_w, fitted_h


def blend(
    layout: BlendLayout, pictures: dict[PortKey, Any]
) -> tuple[int, int, list[tuple[Any, int, int, int, int]]]:
    """Output size and the pictures as (picture, x, y, width, height), lowest z-order first."""
    master = pictures.get(layout.master) if layout.master is not None else None
    width, height = (master.width, master.height) if master is not None else DEFAULT_BLEND_SIZE
    width, height = max(4, width & ~3), max(4, height & ~3)
    layers: list[tuple[int, int, tuple[Any, int, int, int, int]]] = []
    for order, (port, picture) in enumerate(pictures.items()):
        placement = layout.placements.get(port)
        if port is layout.master:
            layers.append((layout.master_z, order, (picture, 0, 0, width, height)))
        elif placement is None:
            layers.append((1, order, (picture, 0, 0, width, height)))
        else:
            x, y = int(placement.x * width), int(placement.y * height)
            w, h = int(placement.width * width), int(placement.height * height)
            layers.append((placement.z_order, order, (picture, x, y, w, h)))
    layers.sort(key=lambda layer: (layer[0], layer[1]))
    return width, height, [layer[2] for layer in layers]


class _Canvas:
    """A black yuv420p picture that scaled pictures are pasted on (clipped to its edges)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.luma = np.zeros((height, width), dtype=np.uint8)
        self.chroma = [np.full((height // 2, width // 2), 128, dtype=np.uint8) for _ in range(2)]

    def paste(self, picture: Any, x: int, y: int, w: int, h: int) -> None:
        """``picture`` scaled to ``w`` x ``h`` with its top left corner at (x, y)."""
        x, y, w, h = x & ~1, y & ~1, w & ~1, h & ~1
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + w, self.width), min(y + h, self.height)
        if w < 2 or h < 2 or right <= left or bottom <= top:
            return
        flat = picture.reformat(width=w, height=h, format="yuv420p").to_ndarray().reshape(-1)
        luma = flat[: w * h].reshape(h, w)
        self.luma[top:bottom, left:right] = luma[top - y : bottom - y, left - x : right - x]
        quarter = (w // 2) * (h // 2)
        for index, plane in enumerate(self.chroma):
            start = w * h + index * quarter
            part = flat[start : start + quarter].reshape(h // 2, w // 2)
            plane[top // 2 : bottom // 2, left // 2 : right // 2] = part[
                (top - y) // 2 : (bottom - y) // 2, (left - x) // 2 : (right - x) // 2
            ]

    def array(self) -> np.ndarray[Any, Any]:
        """The planes one after another, shaped as PyAV's yuv420p ndarray."""
        planes = [self.luma.reshape(-1), *(p.reshape(-1) for p in self.chroma)]
        return np.concatenate(planes).reshape(self.height * 3 // 2, self.width)
