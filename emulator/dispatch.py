"""One handler per RPC method (protocol.md sections 2.3-2.12, ``ServerMethods.cpp``).

``RpcDispatcher`` runs the JSON-RPC requests; it is no relative of Kurento's ``Dispatcher`` hub
(``emulator/objects/hub.py``).

This is the only place that turns exceptions into error replies: a ``RpcError`` keeps its code, any
other exception is logged with its traceback and answered as 40003 UNEXPECTED_ERROR. The connection
and every other session carry on.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from emulator.objects import CLASSES
from emulator.objects.media_object import MediaObject
from emulator.registry import NEWREF, MediaSet, new_object_id, to_wire
from emulator.settings import Settings
from protocol.errors import (
    InvalidParams,
    InvalidSession,
    KurentoError,
    KurentoNotImplemented,
    MalformedTransaction,
    MarshallError,
    MediaObjectNotAvailable,
    MethodNotFound,
    NotEnoughResources,
    RpcError,
    ServerError,
    UnexpectedError,
)
from protocol.jsonrpc import ErrorResponse, Request, Response, request_from_json
from protocol.server import ServerConnection
from protocol.sessions import ReplayCache
from protocol.types import Operation, snake_case

logger = logging.getLogger(__name__)

Params = dict[str, Any]
Handler = Callable[[Params | None], Awaitable[Any]]
RpcObserver = Callable[[str, float, int | None], None]
"""``observe(method, seconds, error_code)`` after every request (metrics)."""
RPC_METHODS = frozenset(
    {
        "ping",
        "create",
        "invoke",
        "subscribe",
        "unsubscribe",
        "release",
        "describe",
        "connect",
        "transaction",
        "ref",
        "unref",
        "keepAlive",
        "closeSession",
    }
)
"""The JSON-RPC methods of KMS's server."""


class RpcFaults(Protocol):
    """Fault injection around requests (``emulator.faults.FaultController``)."""

    async def before_execute(self, method: str, params: Params | None) -> None:
        """May raise an RpcError instead of running the request."""

    async def before_reply(self, method: str, params: Params | None) -> None:
        """May wait before the reply is sent."""


class ServerIdentity:
    """The ``serverId`` that ``connect`` reports: new at every start, and at a simulated restart
    (a client that sees it change knows its sessions are gone)."""

    def __init__(self) -> None:
        self.id = str(uuid.uuid4())

    def renew(self) -> None:
        """Take a new id."""
        self.id = str(uuid.uuid4())


class RpcDispatcher:
    """Executes requests against the MediaSet.

    Args:
        faults: fault injection around each request, if any.
        observer: told the method, duration and error code of each request (metrics).
    """

    def __init__(
        self,
        media_set: MediaSet,
        settings: Settings,
        identity: ServerIdentity,
        *,
        faults: RpcFaults | None = None,
        observer: RpcObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.media_set = media_set
        self.types = media_set.types
        self.settings = settings
        self.identity = identity
        self.faults = faults
        self.observer = observer
        self.clock = clock
        self.cache = ReplayCache(settings.request_cache_ttl)
        self.max_objects_per_session: int | None = settings.max_objects_per_session
        self.handlers: dict[str, Handler] = {
            "ping": self.ping,
            "create": self.create,
            "invoke": self.invoke,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "release": self.release,
            "describe": self.describe,
            "connect": self.connect,
            "transaction": self.transaction,
            "ref": self.ref,
            "unref": self.unref,
            "keepAlive": self.keep_alive,
            "closeSession": self.close_session,
        }
        assert self.handlers.keys() == RPC_METHODS

    # -- entry points --------------------------------------------------------------------------

    async def handle(self, request: Request, conn: ServerConnection) -> None:
        """Execute one request and queue its reply on the connection."""
        session_id = _session_param(request.params)
        use_cache = not self.settings.disable_request_cache and request.has_id
        if use_cache and session_id is not None:
            cached = self.cache.get(session_id, request.id, self.clock())
            if cached is not None:
                logger.debug(
                    "< %s id=%s answered from the replay cache", request.method, request.id
                )
                conn.send_cached(cached, {"sessionId": session_id})
                return
        started = self.clock()
        code: int | None = None
        faults = self.faults
        failure: RpcError | None = None
        try:
            if faults is not None:
                await faults.before_execute(request.method, request.params)
            result = await self.execute(request.method, request.params)
        except RpcError as exc:
            failure = exc
        if faults is not None:
            # Before the reply is queued: events raised meanwhile flush the connection.
            await faults.before_reply(request.method, request.params)
        if failure is not None:
            code = failure.code
            logger.info(
                "! %s id=%s -> %s %s", request.method, request.id, failure.code, failure.message
            )
            text = conn.send_error(request, failure)
            cache_session = session_id
        else:
            text = conn.send_result(request, result)
            cache_session = _session_param(result) or session_id
        if self.observer is not None:
            self.observer(request.method, self.clock() - started, code)
        if use_cache and text is not None and cache_session is not None:
            self.cache.put(cache_session, request.id, text, self.clock())

    async def execute(self, method: str, params: Params | None) -> Any:
        """Run a method; every failure comes out as a ``RpcError``."""
        handler = self.handlers.get(method)
        if handler is None:
            raise MethodNotFound()
        try:
            return await handler(params)
        except RpcError:
            raise
        except Exception as exc:
            logger.exception("! unexpected error in %s", method)
            raise UnexpectedError(f"Unexpected error while processing {method}: {exc!r}") from exc

    # -- methods ---------------------------------------------------------------------------------

    async def ping(self, params: Params | None) -> Any:
        """``ping``: pong, echoing the session id when there is one."""
        result: Params = {"value": "pong"}
        session_id = _session_param(params)
        if session_id is not None:
            result["sessionId"] = session_id
        return result

    async def create(self, params: Params | None) -> Any:
        """``create``: a new object of a concrete type."""
        params = require_params(params)
        type_name = string_param(params, "type")
        session_id = session_or_new(params)
        cls = self.types.lookup_class(type_name)
        if cls is None or cls.abstract or cls.constructor is None:
            raise MediaObjectNotAvailable(f"Factory '{type_name}' not found")
        given = params.get("constructorParams")
        values = self.types.unmarshal_params(
            cls.constructor, given, "constructorParams", self._resolve
        )
        parent = next((v for v in values.values() if isinstance(v, MediaObject)), None)
        self._check_session_limit(session_id)
        self._check_object_limit(session_id)
        obj = CLASSES[cls.name](
            self.media_set.services,
            new_object_id(cls.name, parent),
            parent,
            values,
            given=frozenset(given or ()),
        )
        self.media_set.register(obj, session_id)
        return {"sessionId": session_id, "value": obj.id}

    async def describe(self, params: Params | None) -> Any:
        """``describe``: type, qualified type and ancestors of an object."""
        params = require_params(params)
        session_id = session_or_new(params)
        obj = self.media_set.get(session_id, string_param(params, "object"))
        return {
            "hierarchy": self.types.hierarchy(obj.TYPE),
            "qualifiedType": f"kurento.{obj.TYPE}",
            "sessionId": session_id,
            "type": obj.TYPE,
        }

    async def invoke(self, params: Params | None) -> Any:
        """``invoke``: a method, getter or setter of an object."""
        params = require_params(params)
        operation = string_param(params, "operation")
        object_id = string_param(params, "object")
        given = params.get("operationParams")
        given = given if isinstance(given, dict) else None
        session_id = session_or_new(params)
        obj = self.media_set.get(session_id, object_id)
        op = self.types.resolve_operation(obj.TYPE, operation)
        if op is None:
            count = len(given) if given else 0
            raise MalformedTransaction(f"Method '{operation}' with {count} parameters not found")
        if op.kind == "setter" and given is None:
            given = {}
        values = self.types.unmarshal_params(op.params, given, "operationParams", self._resolve)
        value = await self._call(obj, op, values)
        return {"sessionId": session_id, "value": to_wire(value)}

    async def subscribe(self, params: Params | None) -> Any:
        """``subscribe``: an event of an object, for this session."""
        params = require_params(params)
        event_type = string_param(params, "type")
        object_id = string_param(params, "object")
        session_id = session_or_new(params)
        obj = self.media_set.get(session_id, object_id)
        self._check_subscription_limit(session_id)
        subscription = self.media_set.subscribe(session_id, obj, event_type)
        return {"sessionId": session_id, "value": subscription}

    async def unsubscribe(self, params: Params | None) -> Any:
        """``unsubscribe``: never fails for unknown ids."""
        params = require_params(params)
        object_id = string_param(params, "object")
        subscription = string_param(params, "subscription")
        session_id = string_param(params, "sessionId")
        self.media_set.unsubscribe(session_id, object_id, subscription)
        return {"sessionId": session_id}

    async def release(self, params: Params | None) -> Any:
        """``release``: the object and its subtree, for every session; unknown ids succeed."""
        params = require_params(params)
        object_id = string_param(params, "object")
        session_id = session_or_new(params)
        await self.media_set.release_id(object_id)
        return {"sessionId": session_id}

    async def ref(self, params: Params | None) -> Any:
        """``ref``: reference an object from the session."""
        params = require_params(params)
        object_id = string_param(params, "object")
        session_id = string_param(params, "sessionId")
        self.media_set.get(session_id, object_id)
        return {"sessionId": session_id}

    async def unref(self, params: Params | None) -> Any:
        """``unref``: drop the session's reference; the last one releases the object."""
        params = require_params(params)
        object_id = string_param(params, "object")
        session_id = string_param(params, "sessionId")
        try:
            obj = self.media_set.lookup(object_id)
        except KurentoError:
            return {"sessionId": session_id}
        await self.media_set.unref(session_id, obj)
        return {"sessionId": session_id}

    async def keep_alive(self, params: Params | None) -> Any:
        """``keepAlive``: mark the session in use; 40007 when it does not exist."""
        params = require_params(params)
        session_id = string_param(params, "sessionId")
        self._keep_alive(session_id)
        return {"sessionId": session_id}

    async def connect(self, params: Params | None) -> Any:
        """``connect``: resume a session (40007 if unknown) or start a new one."""
        session_id = _session_param(params)
        if session_id is None:
            session_id = str(uuid.uuid4())
        else:
            self._keep_alive(session_id)
        return {"serverId": self.identity.id, "sessionId": session_id}

    async def close_session(self, params: Params | None) -> Any:
        """``closeSession``: unref (or, with ``release``, release) the session's objects."""
        params = require_params(params)
        release = params.get("release", False)
        if not isinstance(release, bool):
            raise ServerError("'release' parameter should be a boolean")
        session_id = string_param(params, "sessionId")
        if release:
            await self.media_set.release_session(session_id)
        else:
            await self.media_set.unref_session(session_id)
        return None

    async def transaction(self, params: Params | None) -> Any:
        """``transaction``: run operations in order, resolving ``newref:N`` from earlier results."""
        params = require_params(params)
        session_id = session_or_new(params)
        operations = params.get("operations")
        if "operations" not in params:
            raise ServerError("'operations' parameter is required")
        if not isinstance(operations, list):
            raise ServerError("'operations' parameter should be an array")
        responses: list[dict[str, Any]] = []
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict):
                raise MalformedTransaction(f"Operation {index} should be a JSON-RPC request object")
            op_id = operation.get("id")
            if not isinstance(op_id, int) or isinstance(op_id, bool) or op_id != index:
                raise MalformedTransaction(f"Id of request '{index}' should be '{index}'")
            op_params = operation.get("params")
            op_params = dict(op_params) if isinstance(op_params, dict) else {}
            op_params["sessionId"] = session_id
            op_params = _inject_newrefs(op_params, responses)
            response = await self._run_operation({**operation, "params": op_params})
            responses.append({**response, "id": index})
            if "error" in response:
                break
        return {"sessionId": session_id, "value": responses}

    async def _run_operation(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            request = request_from_json(message)
            if self.faults is not None:  # an rpc_error rule hits an operation in a transaction too
                await self.faults.before_execute(request.method, request.params)
            result = await self.execute(request.method, request.params)
        except RpcError as exc:
            return ErrorResponse.from_error(message.get("id"), exc).to_wire()
        return Response(request.id, result).to_wire()

    async def sessions_gone(self, session_ids: list[str]) -> None:
        """The collector dropped these sessions (nothing more to do in this process)."""

    async def close(self) -> None:
        """The server stops (nothing to close in this process)."""

    # -- helpers ---------------------------------------------------------------------------------

    def _keep_alive(self, session_id: str) -> None:
        if not self.media_set.activity.knows(session_id):
            raise InvalidSession()
        self.media_set.activity.touch(session_id)

    def _check_session_limit(self, session_id: str) -> None:
        limit = self.settings.max_sessions
        activity = self.media_set.activity
        new = not activity.knows(session_id)
        if limit is not None and new and len(activity.sessions()) >= limit:
            raise NotEnoughResources(
                f"Too many sessions: {limit} are open (setting max_sessions); "
                "close one (closeSession) or reuse a sessionId"
            )

    def _check_object_limit(self, session_id: str) -> None:
        limit = self.max_objects_per_session
        if limit is not None and len(self.media_set.session_refs.get(session_id, {})) >= limit:
            raise NotEnoughResources(
                f"Session {session_id} already references {limit} objects "
                "(setting max_objects_per_session)"
            )

    def _check_subscription_limit(self, session_id: str) -> None:
        limit = self.settings.max_subscriptions_per_session
        held = self.media_set.subscriptions.get(session_id, {})
        if limit is not None and sum(len(s) for s in held.values()) >= limit:
            raise NotEnoughResources(
                f"Session {session_id} already holds {limit} subscriptions "
                "(setting max_subscriptions_per_session); unsubscribe from one first"
            )

    def _resolve(self, object_id: str, expected: str, path: str) -> MediaObject:
        obj = self.media_set.lookup(object_id)
        if not self.types.is_a(obj.TYPE, expected):
            raise MarshallError(
                f"'{path}' parameter should be a {expected}, but '{object_id}' is a {obj.TYPE}"
            )
        return obj

    async def _call(self, obj: MediaObject, op: Operation, values: dict[str, Any]) -> Any:
        """Run an operation on the Python object behind a Kurento object."""
        implementation = getattr(obj, snake_case(op.name), None)
        if op.prop is not None and implementation is None and op.prop.name in obj.properties:
            if op.kind == "getter":
                return obj.properties[op.prop.name]
            obj.properties[op.prop.name] = values[op.prop.name]
            return None
        if not callable(implementation):
            raise KurentoNotImplemented(_not_implemented_message(obj, op))
        result = implementation(**{snake_case(k): v for k, v in values.items()})
        if inspect.isawaitable(result):
            result = await result
        return result


def _not_implemented_message(obj: MediaObject, op: Operation) -> str:
    reasons = (getattr(cls, "NOT_YET", "") for cls in type(obj).__mro__)
    reason = next((r for r in reasons if r), "")
    text = f"{obj.TYPE}.{op.name} is not implemented by kurento-emulator"
    return f"{text}: {reason}" if reason else text


def require_params(params: Params | None) -> Params:
    if params is None:
        raise InvalidParams()
    return params


def string_param(params: Params, name: str) -> str:
    if name not in params:
        raise ServerError(f"'{name}' parameter is required")
    value = params[name]
    if not isinstance(value, str):
        raise ServerError(f"'{name}' parameter should be a string")
    return value


def _session_param(params: Any) -> str | None:
    if isinstance(params, dict):
        session_id = params.get("sessionId")
        if isinstance(session_id, str) and session_id:
            return session_id
    return None


def session_or_new(params: Params) -> str:
    """KMS's getOrCreateSessionId: the given id as is (not validated), else a new UUID."""
    return _session_param(params) or str(uuid.uuid4())


def _inject_newrefs(node: Any, responses: list[dict[str, Any]]) -> Any:
    """Replace every ``"newref:N"`` string with the value of response N (``injectRefs``)."""
    if isinstance(node, dict):
        return {k: _inject_newrefs(v, responses) for k, v in node.items()}
    if isinstance(node, list):
        return [_inject_newrefs(v, responses) for v in node]
    if isinstance(node, str) and node.startswith(NEWREF) and len(node) > len(NEWREF):
        ref = node[len(NEWREF) :]
        try:
            index = int(ref)
        except ValueError:
            raise MalformedTransaction(f"Invalid index of newref '{ref}'") from None
        if not 0 <= index < len(responses) or "result" not in responses[index]:
            raise MalformedTransaction(f"Result not found on request {index}")
        result = responses[index]["result"]
        return result.get("value") if isinstance(result, dict) else None
    return node
