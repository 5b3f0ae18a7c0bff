"""The RPC dispatcher of a server with media workers: each pipeline's requests go to its worker.

Sessions, ``ping``, ``connect``, ``keepAlive``, the replay cache and the session collector stay in
this process, as without workers. A ``create`` of a MediaPipeline goes to the next worker in turn;
every later request about an object goes to the worker of its pipeline (an object id starts with
its pipeline's id). For each (session, worker) this process holds one upstream connection that
carries the client's session id, so the worker's objects belong to the client's session and its
events come back to it. ServerManager figures that depend on the workers (pipelines, memory, CPU)
are gathered from all of them; its events are subscribed on all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from emulator.dispatch import (
    Handler,
    Params,
    RpcDispatcher,
    RpcFaults,
    RpcObserver,
    ServerIdentity,
    require_params,
    session_or_new,
    string_param,
)
from emulator.registry import MediaSet
from emulator.settings import Settings
from emulator.transport.client import ConnectionLost, KurentoClient
from emulator.workers import WorkerPool
from protocol.client import ClientConnection, EventReceived
from protocol.errors import MediaObjectNotFound, NotEnoughResources, UnexpectedError

logger = logging.getLogger(__name__)

MANAGER = "manager_ServerManager"
UPSTREAM_TIMEOUT = 60.0
"""Seconds a worker may take to answer (longer than any client's own request timeout)."""
ID_BLOCK = 1 << 24
"""Request ids each upstream connection may use before the next one's."""
GATHERED = ("getPipelines", "getUsedMemory", "getUsedCpu")
"""ServerManager operations answered from every worker (and this process)."""

Deliver = Callable[[str, dict[str, Any]], None]


class RoutingRpcDispatcher(RpcDispatcher):
    """Executes requests by relaying them to the media worker that owns the object."""

    def __init__(
        self,
        media_set: MediaSet,
        settings: Settings,
        identity: ServerIdentity,
        pool: WorkerPool,
        deliver: Deliver,
        *,
        faults: RpcFaults | None = None,
        observer: RpcObserver | None = None,
    ) -> None:
        super().__init__(media_set, settings, identity, faults=faults, observer=observer)
        self.pool = pool
        self.deliver = deliver
        self.pipelines: dict[str, int] = {}
        """Pipeline id -> index of its worker."""
        self.upstreams: dict[tuple[str, int], KurentoClient] = {}
        self.session_objects: dict[str, set[str]] = {}
        """Session id -> the objects it created or ref'd, on every worker: the control plane's
        own count for ``max_objects_per_session``, which a worker alone sees only part of."""
        self.session_subscriptions: dict[str, dict[str, tuple[str, str]]] = {}
        """Session id -> subscription id -> (object, event type), on every worker: the control
        plane's count for ``max_subscriptions_per_session``, and who hears a worker die."""
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}
        self._manager_subscriptions: dict[str, list[tuple[int, str]]] = {}
        self._id_base = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.lost: dict[str, str] = {}
        """Pipeline id -> why it is gone (its worker died): requests for it get 40101 saying so."""
        pool.on_exit(self.worker_died)
        self._here: dict[str, Handler] = {
            "invoke": super().invoke,
            "describe": super().describe,
            "subscribe": super().subscribe,
            "unsubscribe": super().unsubscribe,
            "release": super().release,
            "ref": super().ref,
            "unref": super().unref,
        }
        """The handlers of objects not on a worker: unknown ids (KMS's answers) and the
        ServerManager."""
        self.handlers.update(
            {
                "create": self.create,
                "closeSession": self.close_session,
                "invoke": self.invoke,
                "subscribe": self.subscribe,
                "unsubscribe": self.unsubscribe,
                "release": self.release,
                "describe": self._on_owner("describe"),
                "ref": self.ref,
                "unref": self.unref,
            }
        )

    # -- methods ---------------------------------------------------------------------------------

    async def create(self, params: Params | None) -> Any:
        """``create``: a pipeline on the next worker, anything else on its pipeline's."""
        params = require_params(params)
        session_id = session_or_new(params)
        cls = self.types.lookup_class(string_param(params, "type"))
        self._check_session_limit(session_id)
        self._check_object_limit(session_id)
        is_pipeline = cls is not None and cls.name == "MediaPipeline"
        index = self.pool.pick() if is_pipeline else self._worker_in(params)
        result = await self._relay(index, "create", params, session_id)
        if isinstance(result, dict) and isinstance(result.get("value"), str):
            self.session_objects.setdefault(session_id, set()).add(result["value"])
        if is_pipeline and isinstance(result, dict) and isinstance(result.get("value"), str):
            self.pipelines[result["value"]] = index
            logger.info("= pipeline %s on media worker %d", result["value"], index)
        return result

    async def invoke(self, params: Params | None) -> Any:
        """``invoke``: on the object's worker; some ServerManager operations on all."""
        params = require_params(params)
        if string_param(params, "object") == MANAGER and params.get("operation") in GATHERED:
            return await self._manager_invoke(params)
        return await self._on_owner("invoke")(params)

    async def subscribe(self, params: Params | None) -> Any:
        """``subscribe``: on the object's worker; ServerManager events on every worker."""
        params = require_params(params)
        session_id = session_or_new(params)
        object_id = string_param(params, "object")
        self._check_subscription_limit(session_id)
        if object_id == MANAGER:
            result = await self._manager_subscribe(params)
        else:
            result = await self._on_owner("subscribe")(params)
        if isinstance(result, dict) and isinstance(result.get("value"), str):
            held = self.session_subscriptions.setdefault(session_id, {})
            held[result["value"]] = (object_id, string_param(params, "type"))
        return result

    async def unsubscribe(self, params: Params | None) -> Any:
        """``unsubscribe``: on the object's worker (every worker for the ServerManager)."""
        params = require_params(params)
        held = self.session_subscriptions.get(session_or_new(params), {})
        held.pop(str(params.get("subscription")), None)
        aliases = self._manager_subscriptions.pop(str(params.get("subscription")), None)
        if string_param(params, "object") != MANAGER or aliases is None:
            return await self._on_owner("unsubscribe")(params)
        for index, alias in aliases:
            await self._relay(index, "unsubscribe", {**params, "subscription": alias})
        return {"sessionId": string_param(params, "sessionId")}

    async def release(self, params: Params | None) -> Any:
        """``release``: on the object's worker; a released pipeline is forgotten here."""
        params = require_params(params)
        result = await self._on_owner("release")(params)
        object_id = string_param(params, "object")
        self.pipelines.pop(object_id, None)
        self._forget(object_id)
        return result

    async def ref(self, params: Params | None) -> Any:
        """``ref``: on the object's worker; the object counts for the session here."""
        params = require_params(params)
        session_id = session_or_new(params)
        object_id = string_param(params, "object")
        if self._owner(object_id) is not None:
            self._check_object_limit(session_id)
        result = await self._on_owner("ref")(params)
        if self._owner(object_id) is not None:
            self.session_objects.setdefault(session_id, set()).add(object_id)
        return result

    async def unref(self, params: Params | None) -> Any:
        """``unref``: on the object's worker; the session no longer counts it."""
        params = require_params(params)
        result = await self._on_owner("unref")(params)
        objects = self.session_objects.get(session_or_new(params), set())
        objects.discard(string_param(params, "object"))
        return result

    async def close_session(self, params: Params | None) -> Any:
        """``closeSession``: on every worker the session used, then its connections close."""
        params = require_params(params)
        session_id = string_param(params, "sessionId")
        for index in self._indices_of(session_id):
            await self._relay(index, "closeSession", params, session_id)
        await super().close_session(params)  # and forgotten here
        await self.sessions_gone([session_id])
        return None

    # -- ServerManager ---------------------------------------------------------------------------

    async def _manager_invoke(self, params: Params) -> Any:
        local = await self._here["invoke"](params)
        session_id = str(local["sessionId"])
        replies = await asyncio.gather(
            *(self._relay(index, "invoke", params, session_id) for index in self._live())
        )
        values = [local["value"], *(reply.get("value") for reply in replies)]
        if params.get("operation") == "getPipelines":
            merged: Any = [pipeline for value in values[1:] for pipeline in value or []]
        else:
            merged = sum(value or 0 for value in values)
        return {"sessionId": session_id, "value": merged}

    async def _manager_subscribe(self, params: Params) -> Any:
        session_id = session_or_new(params)
        replies = [
            (index, await self._relay(index, "subscribe", params, session_id))
            for index in self._live()
        ]
        aliases = [(index, str(reply["value"])) for index, reply in replies]
        subscription = aliases[0][1] if aliases else ""
        self._manager_subscriptions[subscription] = aliases
        return {"sessionId": session_id, "value": subscription}

    # -- routing ---------------------------------------------------------------------------------

    def _owner(self, object_id: str) -> int | None:
        """The worker of the object's pipeline; None for an object no worker owns.

        Raises:
            MediaObjectNotFound: the pipeline died with its worker.
        """
        pipeline = object_id.split("/", 1)[0]
        if pipeline in self.lost:
            raise MediaObjectNotFound(f"object {object_id!r} is gone: {self.lost[pipeline]}")
        return self.pipelines.get(pipeline)

    def _worker_in(self, params: Any) -> int:
        """The worker of the first known object id among the parameters, else the next one."""
        for value in _strings(params):
            index = self._owner(value)
            if index is not None:
                return index
        return self.pool.pick()

    def _check_object_limit(self, session_id: str) -> None:
        """``max_objects_per_session`` over every worker (each worker sees only its part)."""
        limit = self.max_objects_per_session
        if limit is not None and len(self.session_objects.get(session_id, ())) >= limit:
            raise NotEnoughResources(
                f"Session {session_id} already references {limit} objects "
                "(setting max_objects_per_session)"
            )

    def _check_subscription_limit(self, session_id: str) -> None:
        """``max_subscriptions_per_session`` over every worker (each worker sees only its part)."""
        limit = self.settings.max_subscriptions_per_session
        if limit is not None and len(self.session_subscriptions.get(session_id, {})) >= limit:
            raise NotEnoughResources(
                f"Session {session_id} already holds {limit} subscriptions "
                "(setting max_subscriptions_per_session); unsubscribe from one first"
            )

    def _forget(self, object_id: str) -> None:
        """A released object, and what was inside it (a pipeline's elements), in every session:
        its references and the subscriptions to it (the worker dropped those with it)."""
        inside = object_id + "/"

        def gone(candidate: str) -> bool:
            return candidate == object_id or candidate.startswith(inside)

        for objects in self.session_objects.values():
            for released in [o for o in objects if gone(o)]:
                objects.discard(released)
        for held in self.session_subscriptions.values():
            for subscription in [s for s, (listened, _) in held.items() if gone(listened)]:
                del held[subscription]

    def _live(self) -> list[int]:
        return [w.index for w in self.pool.workers if w.serving]

    def _indices_of(self, session_id: str) -> list[int]:
        return [index for (session, index) in self.upstreams if session == session_id]

    def _on_owner(self, method: str) -> Handler:
        """A handler that relays to the worker of ``params["object"]``, or handles here an
        object no worker owns (an unknown id gets KMS's answer)."""

        async def handle(params: Params | None) -> Any:
            params = require_params(params)
            index = self._owner(string_param(params, "object"))
            if index is None:
                return await self._here[method](params)
            return await self._relay(index, method, params, session_or_new(params))

        return handle

    async def _relay(
        self, index: int, method: str, params: Params, session_id: str | None = None
    ) -> Any:
        """Send the request to the worker in the session; its error reply is raised as is."""
        session_id = session_id or string_param(params, "sessionId")
        self.media_set.activity.touch(session_id)
        upstream = await self._upstream(session_id, index)
        try:
            return await upstream.call(
                method, {**params, "sessionId": session_id}, timeout=UPSTREAM_TIMEOUT
            )
        except (ConnectionLost, TimeoutError) as exc:
            raise UnexpectedError(
                f"media worker {index} did not answer {method}: {exc or type(exc).__name__}"
            ) from exc

    async def _upstream(self, session_id: str, index: int) -> KurentoClient:
        key = (session_id, index)
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            upstream = self.upstreams.get(key)
            if upstream is not None and upstream.connected:
                return upstream
            worker = self.pool.workers[index]
            if not worker.serving:
                raise UnexpectedError(f"media worker {index} is not running")
            upstream = await KurentoClient.connect(worker.url, reconnect=False)
            # Request ids never repeat in a session: the worker's replay cache would answer a
            # reused id with the reply it cached for another request (KMS's 20 s cache).
            self._id_base += ID_BLOCK
            upstream.protocol = ClientConnection(session_id, first_id=self._id_base)
            upstream.on_event = lambda event: self._relay_event(session_id, event)
            self.upstreams[key] = upstream
            return upstream

    def _relay_event(self, session_id: str, event: EventReceived) -> None:
        params = {"value": {"data": event.data, "object": event.object, "type": event.type}}
        self.media_set.events_sent += 1
        self.deliver(session_id, params)

    # -- lifecycle -------------------------------------------------------------------------------

    def worker_died(self, index: int, status: int) -> None:
        """A worker exited unasked (killed, crashed): its pipelines are gone. Sessions subscribed
        to ``Error`` on them or their elements get it (KMS's UNEXPECTED_PIPELINE_ERROR /
        UNEXPECTED_ELEMENT_ERROR); the objects no longer count for the session limits; requests
        for them get 40101 naming the worker (as objects of a restarted KMS)."""
        dead = {pipeline for pipeline, owner in self.pipelines.items() if owner == index}
        for session_id, held in list(self.session_subscriptions.items()):
            for object_id, event in list(held.values()):
                if event == "Error" and object_id.split("/", 1)[0] in dead:
                    self._deliver_error(session_id, object_id, index, status)
        for pipeline in dead:
            self._forget(pipeline)
            del self.pipelines[pipeline]
            self.lost[pipeline] = f"its media worker {index} exited (status {status})"
        for key in [key for key in self.upstreams if key[1] == index]:
            self._opening.pop(key, None)
            closing = asyncio.create_task(_close_quietly(self.upstreams.pop(key)))
            self._closing.add(closing)  # a reference until done (asyncio keeps weak ones)
            closing.add_done_callback(self._closing.discard)

    def _deliver_error(self, session_id: str, object_id: str, index: int, status: int) -> None:
        is_pipeline = "/" not in object_id
        data = {
            "description": f"media worker {index} exited (status {status}): "
            f"{'this pipeline' if is_pipeline else 'the pipeline of this element'} is gone",
            "errorCode": 1,
            "source": object_id,
            "tags": [],
            "timestampMillis": str(int(time.time() * 1000)),
            "type": "UNEXPECTED_PIPELINE_ERROR" if is_pipeline else "UNEXPECTED_ELEMENT_ERROR",
        }
        self.media_set.events_sent += 1
        self.deliver(session_id, {"value": {"data": data, "object": object_id, "type": "Error"}})

    async def sessions_gone(self, session_ids: list[str]) -> None:
        """Close the upstream connections of sessions closed or collected here: each worker
        then collects them as it would a client that went away."""
        gone = set(session_ids)
        for session_id in gone:
            self.session_objects.pop(session_id, None)
            self.session_subscriptions.pop(session_id, None)
        for key in [key for key in self.upstreams if key[0] in gone]:
            self._opening.pop(key, None)
            upstream = self.upstreams.pop(key)
            with contextlib.suppress(Exception):
                await upstream.close()

    async def close(self) -> None:
        """Close every upstream connection (server stop)."""
        await self.sessions_gone([session for session, _ in self.upstreams])
        self.pipelines.clear()
        self.lost.clear()
        self.session_objects.clear()
        self.session_subscriptions.clear()


async def _close_quietly(upstream: KurentoClient) -> None:
    """Close an upstream connection whose worker is gone (its reader ended with the socket)."""
    with contextlib.suppress(Exception):
        await upstream.close()


def _strings(node: Any) -> list[str]:
    """Every string inside a JSON value, in document order."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []
