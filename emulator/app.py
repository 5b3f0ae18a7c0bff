"""The composition root: one emulator server built from its Settings, and run until a signal.

``App`` makes every part in dependency order and hands each what it uses through its
constructor; nothing is patched on afterwards. Reading ``App.__init__`` shows the whole house:

    Settings -> MediaServices (ports, certificate, transcoders, capture) -> FaultController
    -> HttpEndpointListener (HttpPostEndpoints' upload URLs; binds at the first registration)
    -> MemoryTrimmer (gives released objects' memory back to the OS)
    -> MediaSet (objects, sessions; events go out through the SessionBindings)
    -> RpcDispatcher, or RoutingRpcDispatcher over a WorkerPool (with faults and RPC metrics)
    -> WebSocketListener (pumps frames into the dispatcher) -> SessionCollector
    -> ServerMetrics and the AdminListener (health, readiness, metrics, /faults, /restart)

The console script (``emulator.__main__``) parses options and calls ``run``; a media worker is
this module run as a program (``python -m emulator.app``, the command the WorkerPool is given),
with its settings in ``KURENTO_EMULATOR_WORKER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator

from emulator.blocking import use_blocking_pool
from emulator.dispatch import RPC_METHODS, RpcDispatcher, ServerIdentity
from emulator.faults import FaultController, FaultError
from emulator.media.fastpath import describe as describe_datapath
from emulator.media.services import MediaOwnerIds, MediaServices, StreamMedia
from emulator.memory import MemoryTrimmer
from emulator.observability.admin import AdminListener
from emulator.observability.metrics import EmulatorCollector, RpcMetrics, ServerMetrics
from emulator.registry import MediaSet, SessionCollector
from emulator.routing import RoutingRpcDispatcher
from emulator.settings import Settings
from emulator.transport.http_endpoint import HttpEndpointListener
from emulator.transport.server import SessionBindings, WebSocketListener
from emulator.workers import SETTINGS_ENV, WorkerPool, stop_with_parent, worker_count
from protocol.modules import default_registry

logger = logging.getLogger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "emulator.app")
"""How the WorkerPool starts a media worker: through this root, like the server itself."""


class App:
    """One emulator server: its parts, built here, and their lifecycle.

    Raises:
        FaultError: ``settings.faults`` holds an invalid rule (at construction).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.identity = ServerIdentity()
        live_media: dict[StreamMedia, MediaOwnerIds] = {}
        self.faults = _fault_controller(settings, live_media)
        self.media_services = MediaServices.from_settings(
            settings, live_media, self.faults.media_adopted if self.faults else None
        )
        self.bindings = SessionBindings()
        self.http_endpoints = HttpEndpointListener(settings, self._local_addresses)
        # Each media worker, a whole App, trims its own process after its own releases.
        self.memory = MemoryTrimmer.from_interval(settings.memory_trim_interval)
        self.media_set = MediaSet(
            default_registry(),
            settings,
            self.bindings.deliver,
            self.media_services,
            self.http_endpoints,
            released=self.memory.released,
        )
        self.pool = WorkerPool(settings, WORKER_COMMAND) if worker_count(settings) > 1 else None
        if self.pool is not None:
            self.pool.on_restarted(self._worker_restarted)
        rpc_metrics = RpcMetrics(RPC_METHODS)
        self.dispatcher = self._rpc_dispatcher(rpc_metrics)
        self.listener = WebSocketListener(settings, self.dispatcher, self.bindings)
        self.session_collector = SessionCollector(
            self.media_set,
            settings.gc_period,
            self.bindings.session_ids,
            self.dispatcher.sessions_gone,
        )
        live_figures = EmulatorCollector(
            self.identity,
            self.listener,
            self.media_set,
            self.media_services,
            self.faults,
            self.memory,
        )
        self.metrics = ServerMetrics(live_figures, rpc_metrics)
        self.admin = (
            AdminListener(settings, self, self.metrics, self.faults, self.pool)
            if settings.admin_port is not None
            else None
        )

    def _local_addresses(self) -> list[str]:
        """This host's addresses, for upload URLs when no address is configured."""
        return self.media_services.ice_policy("", ipv6=False).addresses()

    def _rpc_dispatcher(self, rpc_metrics: RpcMetrics) -> RpcDispatcher:
        """Requests run here, or, with media workers, on the worker of their pipeline."""
        if self.pool is None:
            return RpcDispatcher(
                self.media_set,
                self.settings,
                self.identity,
                faults=self.faults,
                observer=rpc_metrics.observe,
            )
        return RoutingRpcDispatcher(
            self.media_set,
            self.settings,
            self.identity,
            self.pool,
            self.bindings.deliver,
            faults=self.faults,
            observer=rpc_metrics.observe,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the admin listener (readiness says 503 meanwhile), then serve."""
        await self.open_admin()
        try:
            await self.serve()
        except BaseException:
            await self.close()
            raise

    async def open_admin(self) -> None:
        """Open the admin listener, when there is one."""
        if self.admin is not None:
            await self.admin.start()

    async def serve(self) -> None:
        """Start the media workers, the WebSocket listeners and the session collector; the
        workers are stopped again when the listeners fail to open (or the start is cancelled)."""
        use_blocking_pool(asyncio.get_running_loop(), self.settings.blocking_threads)
        await self._start_pool()
        try:
            await self.listener.start()
        except BaseException:
            if self.pool is not None:
                await asyncio.shield(self.pool.stop(self.settings.shutdown_timeout))
            raise
        self.session_collector.start()
        if self.pool is None:  # with workers, each says which loop forwards its media
            logger.info("%s", describe_datapath(self.settings.datapath))
        logger.info("server id %s", self.identity.id)

    async def _start_pool(self) -> None:
        """Start the media workers and give them the media fault rules; without workers, this
        process resolves its external addresses (each worker, a whole server, resolves its own)."""
        if self.pool is None:
            await self.media_services.resolve_external_addresses()
            return
        await self.pool.start()
        if self.faults is not None:
            await self.pool.sync_faults(self.faults.media_rules())

    async def _worker_restarted(self, index: int) -> None:
        """A worker that died was started again: it needs the media fault rules."""
        if self.pool is not None and self.faults is not None:
            await self.pool.sync_faults(self.faults.media_rules())

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop serving: stop accepting, answer the requests in flight (within
        ``drain_timeout``), close connections (1001), stop the workers, release every object.
        The admin listener stays open, answering 503 on /readyz, until ``close``."""
        await self.listener.stop(drain_timeout)  # first: readiness turns 503 at once
        await self.session_collector.stop()
        await self.dispatcher.close()
        if self.pool is not None:
            await self.pool.stop(drain_timeout)
        await self.media_set.release_all()
        await self.memory.stop()
        await self.http_endpoints.stop()  # after the elements: they unregister their URLs
        self.media_services.transcoders.close()  # none should be left once every element is gone

    async def close(self) -> None:
        """Close the admin listener."""
        if self.admin is not None:
            await self.admin.stop()

    async def restart(self) -> None:
        """Drop every object and session and take a new server id, like a KMS restart."""
        await self.media_set.release_all()
        if self.pool is not None:  # the workers' objects go with their processes
            await self.dispatcher.close()
            await self.pool.stop(self.settings.shutdown_timeout)
            await self._start_pool()
        self.identity.renew()
        await self.listener.drop_sessions()
        logger.warning("= state dropped as by a restart: new server id %s", self.identity.id)

    # -- state -----------------------------------------------------------------------------------

    @property
    def server_id(self) -> str:
        """The ``serverId`` clients see."""
        return self.identity.id

    @property
    def urls(self) -> dict[str, str]:
        """``{"ws": "ws://host:port/kurento", "wss": ...}`` for the open listeners."""
        return self.listener.urls

    def port(self, scheme: str) -> int:
        """The bound port of a WebSocket listener (``ws`` or ``wss``)."""
        return self.listener.port(scheme)

    def not_ready(self) -> str | None:
        """Why clients cannot be served now (/readyz answers 503 with it), None when they can."""
        if self.pool is not None and not self.pool.ready:
            return "a media worker is not running"
        if not self.listener.accepting:
            return "not accepting: starting or shutting down"
        return None


def _fault_controller(
    settings: Settings, live_media: dict[StreamMedia, MediaOwnerIds]
) -> FaultController | None:
    """The fault rules, when fault injection or rules from the start are configured."""
    if not (settings.fault_injection or settings.faults):
        return None
    return FaultController(live_media, settings.fault_seed, settings.faults)


@contextlib.asynccontextmanager
async def running_emulator(settings: Settings) -> AsyncIterator[App]:
    """Start a server, yield it, always stop and close it (tests: ``settings`` with port 0)."""
    app = App(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await app.close()


# -- running as a program ------------------------------------------------------------------------


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT, then shut down in order within ``shutdown_timeout``.

    Returns:
        0 after a clean stop, 1 when the shutdown overran its time and was cut short, 2 when
        the fault rules given at start are invalid.
    """
    try:
        return asyncio.run(_serve_until_signalled(settings))
    except FaultError as exc:
        logger.error("! invalid fault rule in 'faults': %s", exc)
        return 2


async def _serve_until_signalled(settings: Settings) -> int:
    app = App(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The handlers come first: a signal during start-up (media workers starting) cancels the
    # start, which stops the workers already started, instead of killing this process and
    # leaving them running.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    if not await _started_unless_stopped(app, stop):
        logger.info("Kurento emulator stopped while starting")
        return 0
    await stop.wait()
    timeout = settings.shutdown_timeout
    logger.info("stopping: answering requests in flight, then releasing every object")
    status = 0
    try:
        async with asyncio.timeout(timeout):
            await app.stop(drain_timeout=timeout / 2)
    except TimeoutError:
        logger.error("! shutdown took over %.1f s (shutdown_timeout): exiting anyway", timeout)
        status = 1
    await app.close()
    logger.info("Kurento emulator stopped")
    return status


async def _started_unless_stopped(app: App, stop: asyncio.Event) -> bool:
    """Start ``app``; False when ``stop`` was set first (the start is then cancelled, and
    ``App.start`` has stopped what it had started)."""
    starting = asyncio.create_task(app.start(), name="start")
    stopped = asyncio.create_task(stop.wait(), name="stop signal")
    await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        starting.result()  # a failed start raises here
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    if stop.is_set():
        logger.warning("! %s again: already stopping", sig.name)
    else:
        logger.info("= %s received", sig.name)
    stop.set()


def log_to_stdout(settings: Settings) -> None:
    """Log lines to stdout at the configured level (a worker's are relayed by its server)."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stdout,
    )


def run_worker() -> int:
    """A media worker: the settings its server gave it, served until SIGTERM (sent by its
    server, or by the kernel when the server dies without stopping it)."""
    stop_with_parent()
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    log_to_stdout(settings)
    return run(settings)


if __name__ == "__main__":
    raise SystemExit(run_worker())
