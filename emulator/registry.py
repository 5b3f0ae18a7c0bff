"""MediaSet: objects by id, parent -> children, session references and event subscriptions.

Reference rules follow KMS's ``MediaSet.cpp``: touching an object from a session references it and
its ancestors in that session; a new child is referenced in every session that references its
parent; an object whose last session reference goes away is released, children first; ``release``
drops the object from every session. The server manager is never released.

``SessionCollector`` is KMS's session garbage collector over the MediaSet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from emulator.media.http_post import HttpEndpoints
from emulator.media.services import MediaServices
from emulator.objects.media_object import MediaObject, ObjectServices
from emulator.objects.media_pipeline import MediaPipeline
from emulator.objects.server_manager import SERVER_MANAGER_ID, ServerManager
from emulator.settings import Settings
from protocol.errors import (
    MediaObjectEventNotSupported,
    MediaObjectNotFound,
    MediaObjectNotFoundTransactionNoCommit,
)
from protocol.sessions import SessionActivity
from protocol.types import TypeRegistry

logger = logging.getLogger(__name__)

NEWREF = "newref:"
EventDelivery = Callable[[str, dict[str, Any]], None]
"""``deliver(session_id, onEvent params)``: pushes to the session's bound connection, if any."""


def new_object_id(type_name: str, parent: MediaObject | None) -> str:
    """``<uuid>_kurento.<Type>``, prefixed by the parent's id and ``/`` for children."""
    own = f"{uuid.uuid4()}_kurento.{type_name}"
    return f"{parent.id}/{own}" if parent is not None else own


def to_wire(value: Any) -> Any:
    """A Python result as JSON: objects become their ids."""
    if isinstance(value, MediaObject):
        return value.id
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


class MediaSet:
    """Every live object and who references it."""

    def __init__(
        self,
        types: TypeRegistry,
        settings: Settings,
        deliver: EventDelivery,
        media_services: MediaServices,
        http_endpoints: HttpEndpoints,
        released: Callable[[], None] = lambda: None,
    ) -> None:
        self.types = types
        self.deliver = deliver
        self.released = released
        """Told after objects were released (the MemoryTrimmer gives their memory back)."""
        self.services = ObjectServices(types, settings, self._emit, media_services, http_endpoints)
        self.objects: dict[str, MediaObject] = {}
        self.session_refs: dict[str, dict[str, MediaObject]] = {}
        self.object_sessions: dict[str, set[str]] = {}
        self.subscriptions: dict[str, dict[str, dict[str, str]]] = {}
        self.activity = SessionActivity()
        self.events_sent = 0
        self.server_manager = ServerManager(
            self.services,
            SERVER_MANAGER_ID,
            None,
            {},
            pipelines=self.pipelines,
            sessions=lambda: list(self.session_refs),
        )
        self.objects[SERVER_MANAGER_ID] = self.server_manager

    # -- lookups ---------------------------------------------------------------------------------

    def lookup(self, object_id: str) -> MediaObject:
        """An object by id, without referencing it (KMS ``getMediaObject(id)``).

        Raises:
            MediaObjectNotFoundTransactionNoCommit: 40109 for a ``newref:`` id.
            MediaObjectNotFound: 40101 for an unknown or released id.
        """
        if object_id.startswith(NEWREF) and len(object_id) > len(NEWREF):
            raise MediaObjectNotFoundTransactionNoCommit(
                f"Object '{object_id}' not found. Possibly using a transactional object "
                "without committing the transaction."
            )
        obj = self.objects.get(object_id)
        if obj is None or (obj is not self.server_manager and not self.object_sessions.get(obj.id)):
            raise MediaObjectNotFound(f"Object '{object_id}' not found")
        return obj

    def get(self, session_id: str, object_id: str) -> MediaObject:
        """An object by id, referenced into the session (KMS ``getMediaObject(session, id)``)."""
        obj = self.lookup(object_id)
        self.ref(session_id, obj)
        return obj

    def pipelines(self) -> list[MediaObject]:
        """Every live pipeline."""
        return [o for o in self.objects.values() if isinstance(o, MediaPipeline)]

    def count_by_type(self) -> dict[str, int]:
        """Live objects per type (the server manager excluded)."""
        counts: dict[str, int] = {}
        for obj in self.objects.values():
            if obj is not self.server_manager:
                counts[obj.TYPE] = counts.get(obj.TYPE, 0) + 1
        return counts

    # -- references --------------------------------------------------------------------------

    def register(self, obj: MediaObject, session_id: str) -> None:
        """Add a new object: child of its parent, in its parent's sessions and this one."""
        self.objects[obj.id] = obj
        if obj.parent is not None:
            obj.parent.children[obj.id] = obj
            for other in list(self.object_sessions.get(obj.parent.id, ())):
                self.ref(other, obj)
        self.ref(session_id, obj)
        obj.log.info("+ created in session %s", session_id)
        self.server_manager.emit("ObjectCreated", object=obj)

    def ref(self, session_id: str, obj: MediaObject) -> None:
        """Reference an object (and its ancestors) from a session."""
        self.activity.touch(session_id)
        if obj.parent is not None:
            self.ref(session_id, obj.parent)
        self.session_refs.setdefault(session_id, {})[obj.id] = obj
        self.object_sessions.setdefault(obj.id, set()).add(session_id)

    async def unref(self, session_id: str, obj: MediaObject) -> None:
        """Drop a session's reference; an object nobody references any more is released."""
        await self._destroy(self._unref(session_id, obj))

    async def release(self, obj: MediaObject) -> None:
        """Release an object for every session, with its subtree."""
        doomed: list[MediaObject] = []
        for session_id in list(self.object_sessions.get(obj.id, ())):
            doomed += self._unref(session_id, obj)
        await self._destroy(doomed)

    async def release_id(self, object_id: str) -> None:
        """Release by id; unknown and already released ids are ignored, as KMS does."""
        try:
            obj = self.lookup(object_id)
        except (MediaObjectNotFound, MediaObjectNotFoundTransactionNoCommit):
            return
        await self.release(obj)

    async def release_session(self, session_id: str) -> None:
        """``closeSession`` with ``release``: release everything the session references."""
        doomed: list[MediaObject] = []
        for obj in list(self.session_refs.get(session_id, {}).values()):
            for other in list(self.object_sessions.get(obj.id, ())):
                doomed += self._unref(other, obj)
        self._forget_session(session_id)
        await self._destroy(doomed)

    async def unref_session(self, session_id: str) -> int:
        """Drop every reference of a session; returns how many objects that released."""
        doomed: list[MediaObject] = []
        for obj in list(self.session_refs.get(session_id, {}).values()):
            doomed += self._unref(session_id, obj)
        self._forget_session(session_id)
        await self._destroy(doomed)
        return len(doomed)

    async def release_all(self) -> None:
        """Release every pipeline (shutdown and simulated restarts)."""
        for pipeline in self.pipelines():
            await self.release(pipeline)
        for session_id in list(self.session_refs):
            await self.unref_session(session_id)

    async def collect_garbage(self) -> list[str]:
        """One collector pass: sessions idle for a whole period lose their references."""
        idle = self.activity.collect()
        for session_id in idle:
            released = await self.unref_session(session_id)
            if released:
                logger.warning(
                    "x session %s idle for a whole garbageCollectorPeriod: released %d objects",
                    session_id,
                    released,
                )
        return idle

    def _forget_session(self, session_id: str) -> None:
        self.session_refs.pop(session_id, None)
        self.subscriptions.pop(session_id, None)
        self.activity.forget(session_id)

    def _unref(self, session_id: str, obj: MediaObject) -> list[MediaObject]:
        """Bookkeeping of an unref; returns the objects to destroy, children first."""
        doomed: list[MediaObject] = []
        refs = self.session_refs.get(session_id)
        if refs is not None:
            refs.pop(obj.id, None)
        for child in list(obj.children.values()):
            doomed += self._unref(session_id, child)
        sessions = self.object_sessions.get(obj.id)
        if sessions is not None:
            sessions.discard(session_id)
        subscriptions = self.subscriptions.get(session_id)
        if subscriptions is not None:
            subscriptions.pop(obj.id, None)
        if not sessions and obj is not self.server_manager and obj.id in self.objects:
            self.object_sessions.pop(obj.id, None)
            doomed.append(obj)
        return doomed

    async def _destroy(self, doomed: list[MediaObject]) -> None:
        """Release each object; every release path ends here."""
        destroyed = False
        for obj in doomed:
            if obj.released:
                continue
            destroyed = True
            try:
                await obj.on_release()
            except Exception:
                obj.log.exception("! error while releasing")
            obj.released = True
            self.objects.pop(obj.id, None)
            for subscriptions in self.subscriptions.values():
                subscriptions.pop(obj.id, None)
            if obj.parent is not None:
                obj.parent.children.pop(obj.id, None)
            obj.log.info("x released")
            self.server_manager.emit("ObjectDestroyed", objectId=obj.id)
        if destroyed:
            self.released()

    # -- events ----------------------------------------------------------------------------

    def subscribe(self, session_id: str, obj: MediaObject, event_type: str) -> str:
        """Subscribe a session to an event of an object; returns the subscription id.

        Raises:
            MediaObjectEventNotSupported: 40106 when the class does not declare the event.
        """
        if event_type not in self.types.events_of(obj.TYPE):
            raise MediaObjectEventNotSupported(f"Event '{event_type}' not supported")
        subscription = str(uuid.uuid4())
        per_object = self.subscriptions.setdefault(session_id, {}).setdefault(obj.id, {})
        per_object[subscription] = event_type
        return subscription

    def unsubscribe(self, session_id: str, object_id: str, subscription: str) -> None:
        """Drop a subscription; unknown ids are ignored."""
        self.subscriptions.get(session_id, {}).get(object_id, {}).pop(subscription, None)

    def _emit(self, source: MediaObject, event: str, fields: dict[str, Any]) -> None:
        """Deliver an event once to every session subscribed to it on ``source``."""
        targets = [
            session_id
            for session_id, per_object in self.subscriptions.items()
            if event in per_object.get(source.id, {}).values()
        ]
        if not targets:
            return
        data: dict[str, Any] = {
            "source": source.id,
            "tags": source.event_tags(),
            "timestampMillis": str(int(time.time() * 1000)),
        }
        if self.types.is_media_event(event):
            data["type"] = event
        data.update((k, to_wire(v)) for k, v in fields.items())
        params = {"value": {"data": data, "object": source.id, "type": event}}
        for session_id in targets:
            self.events_sent += 1
            self.deliver(session_id, params)


class SessionCollector:
    """KMS's session garbage collector: every ``garbageCollectorPeriod``, sessions idle for a
    whole period lose their references. Sessions bound to an open connection are marked in use
    every quarter period, so only those without a connection can go idle."""

    def __init__(
        self,
        media_set: MediaSet,
        period: float,
        bound_sessions: Callable[[], Iterable[str]],
        sessions_gone: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self.media_set = media_set
        self.period = period
        self.bound_sessions = bound_sessions
        self.sessions_gone = sessions_gone
        """Told which sessions a pass collected (a routing dispatcher closes their upstreams)."""
        self.passes = 0
        self._passed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start collecting."""
        self._task = asyncio.create_task(self._run(), name="session-collector")

    async def stop(self) -> None:
        """Stop collecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for_passes(self, count: int) -> None:
        """Wait until ``count`` more passes have run (for tests and probes)."""
        async with self._passed:
            target = self.passes + count
            await self._passed.wait_for(lambda: self.passes >= target)

    async def _run(self) -> None:
        quarter = self.period / 4
        tick = 0
        while True:
            await asyncio.sleep(quarter)
            self.media_set.activity.touch_all(self.bound_sessions())
            tick += 1
            if tick % 4 == 0:
                await self.sessions_gone(await self.media_set.collect_garbage())
                async with self._passed:
                    self.passes += 1
                    self._passed.notify_all()
