"""A pool of Kurento servers for the project's client: round-robin calls, failover, re-inclusion.

    pool = ServerPool.from_file("lab/kurentoservers.json")
    async with pool:
        call = await pool.place_call()          # a MediaPipeline on the next server that is up
        endpoint = await call.pipeline.create("WebRtcEndpoint")
        keep = call.server.candidate_filter     # apply candkillipv6 / candkilltcp / candonlyturn
        ...
        await call.release()

One connection per server, watched by its own task: a closed socket or a ping without answer marks
the server down (it gets no new calls), then it is retried with exponential backoff and takes calls
again once it answers. The list is static, or comes from DNS (``dns=DnsDiscovery(...)``: a
Kubernetes headless Service's SRV or A records), re-resolved every ``resolve_interval`` seconds: a
server that appears is connected and joins the round-robin, one that leaves gets no new calls
(calls already on it go on while its connection lasts), and a failed lookup keeps the last list.
Decisions are logged with ``= pool:`` lines. The choices themselves live in ``protocol/pool.py``.
``python -m emulator.transport.pool`` places calls on a lab and prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from emulator.transport.client import ConnectionLost, KurentoClient, RemoteObject
from emulator.transport.discovery import DiscoveryError, DnsDiscovery
from protocol.errors import RpcError
from protocol.pool import DnsServerList, PoolPlan, ServerEntry, parse_kurentoservers

logger = logging.getLogger(__name__)


class NoServerAvailable(ConnectionError):
    """Every server of the pool is down; the message lists why."""


@dataclass(eq=False)
class PlacedCall:
    """A call placed by the pool: its server (with candidate filters) and its MediaPipeline."""

    number: int
    server: ServerEntry
    client: KurentoClient
    pipeline: RemoteObject

    def accepts_candidate(self, candidate: str) -> bool:
        """Whether an ICE candidate passes the server's ``cand*`` filters."""
        return self.server.candidate_filter(candidate)

    async def release(self) -> None:
        """Release the call's pipeline (a server that went away already dropped it)."""
        with contextlib.suppress(RpcError, ConnectionLost, TimeoutError):
            await self.pipeline.release()


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A short reason for the log: ``connection refused``, ``no answer within 3 s``..."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, InvalidStatus):
        return f"handshake refused with HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionLost | ConnectionClosed):
        return "connection closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


class ServerPool:
    """Places new calls round-robin on the servers that are up; watches and retries the others."""

    def __init__(
        self,
        servers: Sequence[ServerEntry] | Sequence[dict[str, Any]] | str = (),
        *,
        dns: DnsDiscovery | None = None,
        resolve_interval: float = 10.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        connect_timeout: float = 3.0,
        call_timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if dns is not None and not isinstance(servers, str) and not servers:
            entries: list[ServerEntry] = []  # DNS alone lists the servers
        elif isinstance(servers, str) or any(not isinstance(s, ServerEntry) for s in servers):
            entries = parse_kurentoservers(servers if isinstance(servers, str) else list(servers))
        else:
            entries = [s for s in servers if isinstance(s, ServerEntry)]
        self.entries = entries
        self.dns = dns
        self.resolve_interval = resolve_interval
        self.plan = PoolPlan(entries, retry_initial, retry_max)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.ssl_context = ssl_context
        self.clients: dict[str, KurentoClient] = {}
        self.server_ids: dict[str, str | None] = {}
        self.placed: list[tuple[int, str]] = []
        self._clock = clock
        self._numbers = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tried: set[str] = set()
        self._changed = asyncio.Condition()
        self._closing = False

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> ServerPool:
        """A pool from a JSON file holding the ``kurentoservers`` list."""
        return cls(Path(path).read_text(encoding="utf-8"), **options)

    async def __aenter__(self) -> ServerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the DNS list (if any), connect to every server; returns once each has been
        tried once."""
        if self.dns is not None:
            await self.refresh()
            self._tasks.append(asyncio.create_task(self._resolve_loop(), name="pool dns"))
        for url in self.plan.listed_urls():
            self._start_watch(url)
        first = set(self.plan.listed_urls())
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: first <= self._tried),
                self.connect_timeout + self.ping_timeout + 1,
            )
        listed = len(self.plan.listed_urls())
        logger.info("= pool: %d servers, up: %s", listed, self._up_text())

    def _start_watch(self, url: str) -> None:
        """Watch the server unless a watch still runs (it goes on: the server is listed again)."""
        self._wake.setdefault(url, asyncio.Event()).set()
        task = self._watches.get(url)
        if task is None or task.done():
            entry = self.plan.health(url).entry
            task = asyncio.create_task(self._watch(entry), name=f"pool {url}")
            self._watches[url] = task
            self._tasks.append(task)

    # -- the list from DNS ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Resolve the DNS list now and take it: static entries plus the servers DNS names.

        A failed lookup is logged and the list stays as it was (a DNS outage is not an outage
        of the media servers).
        """
        if self.dns is None:
            return
        try:
            addresses = await self.dns.resolve()
        except DiscoveryError as exc:
            logger.warning("= pool: %s; keeping %d servers", exc, len(self.plan.listed_urls()))
            return
        static = {entry.url for entry in self.entries}
        found = [e for e in self.dns.servers.entries(addresses) if e.url not in static]
        added, removed = self.plan.set_listed([*self.entries, *found])
        for entry in removed:
            logger.warning(
                "= pool: server %s left the DNS list, no new calls (placing on %s)",
                entry.url,
                self._up_text(),
            )
            self._wake.setdefault(entry.url, asyncio.Event()).set()
        for entry in added:
            logger.info("= pool: server %s listed by DNS", entry.url)
            if self._tasks:  # after start(); start() itself watches the first list
                self._start_watch(entry.url)
        if added or removed:
            async with self._changed:
                self._changed.notify_all()

    async def _resolve_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.resolve_interval)
            await self.refresh()

    def listed(self) -> list[str]:
        """URLs of the servers on the current list (static and DNS), up or down."""
        return self.plan.listed_urls()

    async def wait_listed(self, url: str, listed: bool, timeout: float) -> None:
        """Wait until the server is on the list (or off it), at most ``timeout`` seconds."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.plan.is_listed(url) is listed), timeout
            )

    async def close(self) -> None:
        """Stop watching and close every connection (calls are not released)."""
        # The watch loops also end on this flag: a cancellation can be lost on the way (Python
        # 3.11's wait_for drops it when the awaited future completes in the same turn, gh-86296)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._watches.clear()
        for client in list(self.clients.values()):
            await client.close()
        self.clients.clear()

    # -- placing calls ---------------------------------------------------------------------------

    async def place_call(self) -> PlacedCall:
        """Create a MediaPipeline for a new call on the next server that is up.

        A server that fails the create (closed, no answer) is marked down and the call goes to the
        next one; a server that answers with an error (e.g. 40009 when full) is skipped for this
        call only.

        Raises:
            NoServerAvailable: no server is up, or every one failed this call.
        """
        tried: set[str] = set()
        while True:
            entry = self.plan.pick(frozenset(tried))
            if entry is None:
                states = "; ".join(f"{s.entry.url}: {s.reason}" for s in self.plan.servers)
                raise NoServerAvailable(f"no media server can take the call ({states})")
            tried.add(entry.url)
            client = self.clients.get(entry.url)
            if client is None or not client.connected:
                await self._down(entry.url, "connection closed")
                continue
            try:
                pipeline = await self._create_pipeline(entry.url, client)
            except RpcError as exc:
                logger.warning(
                    "= pool: server %s refused a call (%s %s), trying the next one",
                    entry.url,
                    exc.code,
                    exc.message,
                )
                continue
            except (TimeoutError, ConnectionLost) as exc:
                if self.plan.health(entry.url).up:  # else its watch found it down already
                    await self._down(entry.url, describe_failure(exc, self.call_timeout))
                    with contextlib.suppress(Exception):
                        await client.close()
                continue
            number = next(self._numbers)
            self.placed.append((number, entry.url))
            logger.info("= pool: call %d placed on %s", number, entry.url)
            return PlacedCall(number, entry, client, pipeline)

    async def _create_pipeline(self, url: str, client: KurentoClient) -> RemoteObject:
        """``create MediaPipeline``, given up at ``call_timeout`` or as soon as the server's
        watch finds it down (a vanished host: the unanswered ping ends the wait, not the
        call timeout).

        Raises:
            TimeoutError: no answer within ``call_timeout``.
            ConnectionLost: the connection closed, or the server was found down meanwhile.
        """
        create = asyncio.ensure_future(client.create("MediaPipeline"))
        gone = asyncio.ensure_future(self.wait_until(url, up=False, timeout=self.call_timeout))
        try:
            await asyncio.wait({create, gone}, return_when=asyncio.FIRST_COMPLETED)
            if create.done():
                return create.result()
            if gone.exception() is None:
                raise ConnectionLost(f"{self.plan.health(url).reason} while creating the call")
            raise TimeoutError(f"no answer to create within {self.call_timeout:g} s")
        finally:
            for task in (create, gone):
                task.cancel()
            await asyncio.gather(create, gone, return_exceptions=True)

    # -- state -----------------------------------------------------------------------------------

    def is_up(self, url: str) -> bool:
        """Whether the server takes new calls."""
        return self.plan.health(url).up

    async def wait_until(self, url: str, up: bool, timeout: float) -> None:
        """Wait until the pool sees the server up (or down), at most ``timeout`` seconds."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.plan.health(url).up is up), timeout
            )

    def _up_text(self) -> str:
        return ", ".join(self.plan.up_urls()) or "none"

    async def _down(self, url: str, reason: str) -> None:
        was_up = self.plan.health(url).up
        if self.plan.mark_down(url, reason, self._now()) or was_up:
            logger.warning(
                "= pool: server %s down (%s), placing on %s", url, reason, self._up_text()
            )
        else:
            logger.info(
                "= pool: server %s still down (%s), next try in %.1f s",
                url,
                reason,
                self.plan.retry_delay(url, self._now()),
            )
        async with self._changed:
            self._tried.add(url)
            self._changed.notify_all()

    async def _up(self, url: str, client: KurentoClient, server_id: str | None) -> None:
        previous = self.server_ids.get(url)
        self.clients[url] = client
        self.server_ids[url] = server_id
        self.plan.mark_up(url)
        restarted = previous is not None and previous != server_id
        logger.info(
            "= pool: server %s up (serverId %s%s), placing on %s",
            url,
            server_id,
            ", restarted: its old sessions are gone" if restarted else "",
            self._up_text(),
        )
        async with self._changed:
            self._tried.add(url)
            self._changed.notify_all()

    # -- one task per server ---------------------------------------------------------------------

    async def _watch(self, entry: ServerEntry) -> None:
        """Connect, watch while up, retry with backoff while down; until the pool closes or the
        server has left the list (a server that leaves while connected keeps its connection,
        for its calls, until it closes)."""
        url = entry.url
        while self.plan.is_listed(url):
            try:
                client = await KurentoClient.connect(
                    url,
                    ssl_context=self.ssl_context,
                    reconnect=False,
                    timeout=self.connect_timeout,
                )
            except (OSError, TimeoutError, WebSocketException, RpcError, ConnectionLost) as exc:
                await self._down(url, describe_failure(exc, self.connect_timeout))
            else:
                try:
                    # connect without a sessionId: a new session, and the serverId (new per start)
                    result = await client.call("connect", timeout=self.ping_timeout)
                    server_id = result.get("serverId") if isinstance(result, dict) else None
                except (TimeoutError, RpcError, ConnectionLost) as exc:
                    reason, came_up = describe_failure(exc, self.ping_timeout), False
                else:
                    await self._up(url, client, server_id)
                    reason, came_up = await self._monitor(client), True
                self.clients.pop(url, None)
                # Down first: closing waits for the close handshake, which a vanished host never
                # answers (seconds of calls still placed on it). A server place_call already
                # marked down is not marked twice; one that failed `connect` is, for its backoff.
                if not self._closing and (self.plan.health(url).up or not came_up):
                    await self._down(url, reason)
                await client.close()
            if self._closing:
                return
            if not self.plan.is_listed(url):
                break
            # The backoff is cut short when the server is listed again (or leaves the list).
            wake = self._wake.setdefault(url, asyncio.Event())
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.plan.retry_delay(url, self._now()))
        logger.info("= pool: stopped watching %s (not listed)", url)

    async def _monitor(self, client: KurentoClient) -> str:
        """Return why the server stopped being usable: socket closed or ping unanswered."""
        while not self._closing:
            try:
                await asyncio.wait_for(client.wait_closed(), self.ping_interval)
            except TimeoutError:
                pass
            else:
                return "connection closed"
            try:
                await client.call("ping", timeout=self.ping_timeout)
            except TimeoutError:
                return f"no answer to ping within {self.ping_timeout:g} s"
            except (RpcError, ConnectionLost) as exc:
                return f"ping failed: {describe_failure(exc, self.ping_timeout)}"
        return "pool closed"


# -- command line: watch round-robin and failover on a lab ----------------------------------------


async def place_calls(
    pool: ServerPool, count: int | None, interval: float, hold: int = 3
) -> list[PlacedCall]:
    """Place a call every ``interval`` seconds (forever if ``count`` is None), keeping ``hold``."""
    held: list[PlacedCall] = []
    placed: list[PlacedCall] = []
    for _ in itertools.count() if count is None else range(count):
        try:
            call = await pool.place_call()
        except NoServerAvailable as exc:
            logger.warning("= pool: %s", exc)
        else:
            placed.append(call)
            held.append(call)
            if len(held) > hold:
                await held.pop(0).release()
        await asyncio.sleep(interval)
    for call in held:
        await call.release()
    return placed


async def demo(interval: float) -> None:
    """Three in-process servers; one stops after a few calls and comes back on the same port."""
    # Imported here: the pool itself is client code; only the demo builds servers.
    from emulator.app import App
    from emulator.settings import Settings

    def settings(port: int) -> Settings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "secure_port": None,
            "admin_port": None,
        }
        return Settings(**values)

    servers = [App(settings(0)) for _ in range(3)]
    for server in servers:
        await server.start()
    urls = [server.urls["ws"] for server in servers]
    pool = ServerPool([{"url": url} for url in urls], ping_interval=1, retry_initial=0.2)
    try:
        async with pool:
            await place_calls(pool, 6, interval)
            port = servers[1].listener.port("ws")
            logger.info("demo: stopping %s", urls[1])
            await servers[1].stop()
            await place_calls(pool, 6, interval)
            logger.info("demo: starting %s again (a new serverId, as a KMS restart)", urls[1])
            servers[1] = App(settings(port))
            await servers[1].start()
            await pool.wait_until(urls[1], up=True, timeout=30)
            await place_calls(pool, 6, interval)
    finally:
        for server in servers:
            await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emulator.transport.pool [FILE | --dns NAME | --demo]``."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator.transport.pool",
        description="Place calls round-robin on the servers of a kurentoservers file and log "
        "the pool's decisions (stop and start a server to watch failover).",
    )
    parser.add_argument("file", nargs="?", help="JSON file with the kurentoservers list")
    parser.add_argument("--demo", action="store_true", help="three local servers, one restarts")
    parser.add_argument(
        "--dns",
        metavar="NAME",
        help="take the servers from DNS: SRV _kurento._tcp.NAME, else NAME's A/AAAA records "
        "(a headless Service, e.g. kurento-emulator.kurento.svc.cluster.local)",
    )
    parser.add_argument("--dns-port", type=int, default=8888, help="ws:// port with A records")
    parser.add_argument("--resolve-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--calls", type=int, help="how many calls (default: until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between calls")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout
    )
    # Only the pool's decisions: the servers' and clients' own lines would drown them.
    logging.getLogger("emulator").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logger.setLevel(logging.INFO)
    if args.demo:
        asyncio.run(demo(min(args.interval, 0.3)))
        return 0
    if not args.file and not args.dns:
        parser.error("give a kurentoservers file (e.g. lab/kurentoservers.json), --dns or --demo")
    dns = None
    if args.dns:
        dns = DnsDiscovery(DnsServerList(args.dns, port=args.dns_port))

    static = Path(args.file).read_text(encoding="utf-8") if args.file else ()

    async def run() -> None:
        options: dict[str, Any] = {"ping_interval": 2, "retry_initial": 0.5}
        async with ServerPool(
            static, dns=dns, resolve_interval=args.resolve_interval, **options
        ) as pool:
            await place_calls(pool, args.calls, args.interval)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
