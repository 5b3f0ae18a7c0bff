"""Media worker processes: one emulator per core behind one control plane, as mediasoup does.

One Python process forwards about 10,000 SRTP packets/s per core (README, Results). With
``media_workers`` > 1 the server's own process keeps the WebSocket listeners, the sessions and the
admin listener, and starts that many workers: each is a complete emulator on a loopback port with
its own slice of the media port range, and each MediaPipeline lives in one of them, chosen in turn
(``emulator/routing.py`` relays the requests). Elements connect only inside their pipeline, so
media never crosses processes.

A worker starts through the same composition root as the server (``emulator.app``, which gives
the pool the command line); its settings come as JSON in ``KURENTO_EMULATOR_WORKER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from emulator.settings import Settings

logger = logging.getLogger(__name__)

SETTINGS_ENV = "KURENTO_EMULATOR_WORKER"
READY = re.compile(r"listening on (ws://\S+) \(ws\)")
ADMIN_READY = re.compile(r"admin: .* on (http://\S+)")
ADMIN_TIMEOUT = 10.0
START_TIMEOUT = 60.0
QUICK_DEATH = 10.0
"""Seconds: a restarted worker that dies sooner than this again is not restarted a third time
(it would die at every start: a crash loop)."""


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent thread exits."""


def stop_with_parent() -> None:
    """Have the kernel send SIGTERM to this worker when its server dies (SIGKILL, a crash), so
    that no worker outlives its server; a no-op off Linux."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("! prctl(PR_SET_PDEATHSIG): %s", os.strerror(ctypes.get_errno()))
    if os.getppid() == 1:  # the server died before the prctl: nobody will stop this worker
        os.kill(os.getpid(), signal.SIGTERM)


def worker_count(settings: Settings) -> int:
    """How many workers ``media_workers`` asks for (0: one per core); 1 means none."""
    return settings.media_workers or os.cpu_count() or 1


def _slice(low: int, high: int, index: int, count: int) -> tuple[int, int]:
    """The index-th of ``count`` slices of ``low..high``; each starts ``low``'s parity, so that
    RTP/RTCP pairs stay even/odd, and the last takes what is left."""
    size = (high - low + 1) // count // 2 * 2
    start = low + index * size
    end = high if index == count - 1 else start + size - 1
    return start, end


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """What worker ``index`` runs with: loopback control, its slice of every port range."""
    low, high = _slice(settings.min_port, settings.max_port, index, count)
    changes: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "secure_port": None,
        # Loopback admin for the control plane only: /metrics (the worker's media figures) and
        # PUT /faults (the control plane's media fault rules, synced after every change).
        "admin_port": 0,
        "admin_host": "127.0.0.1",
        "fault_injection": True,
        "faults": [],
        "http_endpoint_port": 0,  # each worker serves its own uploads: getUrl names its port
        "media_workers": 1,
        "min_port": low,
        "max_port": high,
    }
    if settings.rtp_min_port is not None and settings.rtp_max_port is not None:
        rtp_low, rtp_high = _slice(settings.rtp_min_port, settings.rtp_max_port, index, count)
        changes.update(rtp_min_port=rtp_low, rtp_max_port=rtp_high)
    return settings.model_copy(update=changes)


class MediaWorker:
    """One worker process: started, read until it listens, its log lines passed on.

    Args:
        command: the program and arguments that run a worker from ``SETTINGS_ENV``.
    """

    def __init__(self, index: int, settings: Settings, command: Sequence[str]) -> None:
        self.index = index
        self.settings = settings
        self.command = command
        self.url = ""
        self.admin_url = ""
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.started_at = 0.0
        self.quick_deaths = 0
        self.on_exit: Callable[[int, int], None] | None = None
        """Called with (index, exit status) when the process exits without being stopped."""
        self._pump: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.returncode is None

    @property
    def serving(self) -> bool:
        """Whether the process runs and listens (a restarted one does not yet while starting)."""
        return self.alive and bool(self.url)

    async def start(self) -> None:
        """Start the process and wait for its ws:// URL."""
        self.url = self.admin_url = ""
        self.stopping = False
        self.started_at = time.monotonic()
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json()}
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while not self.url:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"media worker {self.index} exited while starting")
                self._relay(line)
                text = line.decode(errors="replace")
                if admin := ADMIN_READY.search(text):
                    self.admin_url = admin.group(1)
                if found := READY.search(text):
                    self.url = found.group(1)
        self._pump = asyncio.create_task(self._relay_all(), name=f"media worker {self.index}")
        logger.info(
            "media worker %d: pid %d, %s, media ports %d-%d",
            self.index,
            self.process.pid,
            self.url,
            self.settings.min_port,
            self.settings.max_port,
        )

    async def stop(self, timeout: float) -> None:
        """SIGTERM (the worker releases its objects), then SIGKILL after ``timeout``."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.stopping = True
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            logger.error("! media worker %d did not stop in %.1f s: killed", self.index, timeout)
            process.kill()
            await process.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def _relay_all(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self._relay(line)
        code = await self.process.wait()
        if self.stopping:
            logger.info("x media worker %d stopped (status %d)", self.index, code)
            return
        if code:
            logger.error("! media worker %d exited with status %d", self.index, code)
        else:
            logger.error("! media worker %d exited", self.index)
        if self.on_exit is not None:
            self.on_exit(self.index, code)

    def _relay(self, line: bytes) -> None:
        """A worker's log line, in this process's log (stdout), marked with the worker."""
        text = line.decode(errors="replace").rstrip()
        if text:
            print(f"[worker {self.index}] {text}", flush=True)  # noqa: T201


class WorkerPool:
    """The workers, and which one the next pipeline goes to.

    Args:
        command: the program and arguments that run a worker (see ``MediaWorker``).
    """

    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        count = worker_count(settings)
        self.workers = [
            MediaWorker(index, worker_settings(settings, index, count), command)
            for index in range(count)
        ]
        self._exit_callbacks: list[Callable[[int, int], None]] = []
        self._restart_callbacks: list[Callable[[int], Awaitable[None]]] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        for worker in self.workers:
            worker.on_exit = self._worker_exited
        self._next = 0

    async def start(self) -> None:
        """Start every worker (in parallel); a failure stops those already started."""
        for worker in self.workers:
            worker.quick_deaths = 0
        try:
            await asyncio.gather(*(worker.start() for worker in self.workers))
        except BaseException:
            await self.stop(5.0)
            raise

    async def stop(self, timeout: float) -> None:
        """Stop every worker (and any restart under way)."""
        for restart in list(self._restarts):
            restart.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await asyncio.gather(*(worker.stop(timeout) for worker in self.workers))

    async def admin_all(self, method: str, path: str, body: bytes = b"") -> list[bytes]:
        """One request to every live worker's admin listener; the bodies of the 2xx answers
        (a worker that fails to answer is logged and left out)."""

        async def one(worker: MediaWorker) -> bytes | None:
            try:
                status, payload = await admin_request(worker.admin_url, method, path, body)
            except (OSError, TimeoutError, ValueError) as exc:
                logger.warning(
                    "! media worker %d: admin %s %s: %s", worker.index, method, path, exc
                )
                return None
            if status // 100 != 2:
                logger.warning(
                    "! media worker %d: admin %s %s -> %d", worker.index, method, path, status
                )
                return None
            return payload

        live = [w for w in self.workers if w.alive and w.admin_url]
        return [p for p in await asyncio.gather(*(one(w) for w in live)) if p is not None]

    async def sync_faults(self, rules: list[dict[str, object]]) -> None:
        """Give every worker exactly these media fault rules (with the control plane's ids)."""
        await self.admin_all("PUT", "/faults", json.dumps(rules).encode())

    async def fault_reports(self) -> list[object]:
        """Every worker's ``GET /faults`` answer."""
        return [json.loads(payload) for payload in await self.admin_all("GET", "/faults")]

    async def metrics(self) -> list[str]:
        """Every worker's ``/metrics`` exposition."""
        return [payload.decode() for payload in await self.admin_all("GET", "/metrics")]

    def on_exit(self, callback: Callable[[int, int], None]) -> None:
        """Call ``callback(index, status)`` when a worker exits without being stopped."""
        self._exit_callbacks.append(callback)

    def on_restarted(self, callback: Callable[[int], Awaitable[None]]) -> None:
        """Await ``callback(index)`` when a worker that died has been started again."""
        self._restart_callbacks.append(callback)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until every worker runs (a dead one restarted).

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self.ready:
                self._changed.clear()
                await self._changed.wait()

    def _worker_exited(self, index: int, status: int) -> None:
        """A worker died unasked: tell the listeners, then start it again (an empty worker on
        the same port slice), unless it keeps dying as soon as it starts. One that exited with
        status 0 was stopped on purpose (a Ctrl-C reaches the whole process group): it stays
        stopped."""
        for callback in self._exit_callbacks:
            callback(index, status)
        if status == 0:
            return
        worker = self.workers[index]
        lived = time.monotonic() - worker.started_at
        worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH else 0
        if worker.quick_deaths >= 2:
            logger.error(
                "! media worker %d died twice within %.0f s of starting: not restarted",
                index,
                QUICK_DEATH,
            )
            return
        restart = asyncio.create_task(self._restart(worker), name=f"restart worker {index}")
        self._restarts.add(restart)
        restart.add_done_callback(self._restarts.discard)

    async def _restart(self, worker: MediaWorker) -> None:
        try:
            await worker.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            logger.error("! media worker %d did not restart: %s", worker.index, exc)
            return
        logger.warning("= media worker %d restarted (its old pipelines are gone)", worker.index)
        for callback in self._restart_callbacks:
            await callback(worker.index)
        self._changed.set()

    def pick(self) -> int:
        """The worker of a new pipeline: the next live one, in turn."""
        for _ in range(len(self.workers)):
            index = self._next
            self._next = (self._next + 1) % len(self.workers)
            if self.workers[index].serving:
                return index
        return 0  # none alive: the request fails on the closed connection, with a clear error

    @property
    def ready(self) -> bool:
        """Whether every worker runs and listens."""
        return all(worker.serving for worker in self.workers)


async def admin_request(url: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request to a worker's admin listener (``Connection: close``): status, body.

    Raises:
        OSError: the listener cannot be reached.
        TimeoutError: no full answer within ADMIN_TIMEOUT.
        ValueError: the answer is not HTTP.
    """
    host, _, port = url.removeprefix("http://").rpartition(":")
    async with asyncio.timeout(ADMIN_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                f"Content-Type: application/json\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            answer = await reader.read()
        finally:
            writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)
    if len(status) < 2 or not status[1].isdigit():
        raise ValueError(f"not an HTTP answer from {url}")
    return int(status[1]), payload
