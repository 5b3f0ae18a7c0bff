"""JSON-RPC 2.0 messages as KMS 7.3.0 writes and reads them (protocol.md sections 1 and 2.1).

KMS serialises with jsoncpp: compact, object keys in alphabetical order. ``dumps`` does the same so
that transcripts compare byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import InvalidRequest, ParseError, RpcError

RequestId = int | str | None
JsonObject = dict[str, Any]

_NO_ID = object()


@dataclass(frozen=True, slots=True)
class Request:
    """A request (or, without ``id``, a notification) from a client."""

    method: str
    params: JsonObject | None = None
    id: RequestId = None
    has_id: bool = True

    def to_wire(self) -> JsonObject:
        """The request as a JSON object."""
        msg: JsonObject = {"jsonrpc": "2.0", "method": self.method}
        if self.params is not None:
            msg["params"] = self.params
        if self.has_id:
            msg["id"] = self.id
        return msg

    def with_params(self, params: JsonObject | None) -> Request:
        """The same request with other params (used to inject the bound session id)."""
        return Request(self.method, params, self.id, self.has_id)


@dataclass(frozen=True, slots=True)
class Response:
    """A successful reply."""

    id: RequestId
    result: Any

    def to_wire(self) -> JsonObject:
        """The reply as a JSON object."""
        return {"id": self.id, "jsonrpc": "2.0", "result": self.result}


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An error reply; ``error`` is the wire ``{"code", "message", "data"?}`` object."""

    id: RequestId
    error: JsonObject

    @classmethod
    def from_error(cls, request_id: RequestId, error: RpcError) -> ErrorResponse:
        """Build the reply for a raised error."""
        return cls(request_id, error.to_wire())

    @property
    def code(self) -> int:
        """The error code."""
        return int(self.error.get("code", 0))

    @property
    def message(self) -> str:
        """The error message."""
        return str(self.error.get("message", ""))

    @property
    def data_type(self) -> str | None:
        """``data.type`` or None."""
        data = self.error.get("data")
        return data.get("type") if isinstance(data, dict) else None

    def to_wire(self) -> JsonObject:
        """The reply as a JSON object."""
        return {"error": self.error, "id": self.id, "jsonrpc": "2.0"}


@dataclass(frozen=True, slots=True)
class Notification:
    """A server-to-client notification (KMS only sends ``onEvent``)."""

    method: str
    params: JsonObject = field(default_factory=dict)

    def to_wire(self) -> JsonObject:
        """The notification as a JSON object."""
        return {"jsonrpc": "2.0", "method": self.method, "params": self.params}


Message = Request | Response | ErrorResponse | Notification


def dumps(message: Message | JsonObject) -> str:
    """Serialise like jsoncpp with ``indentation=""``: compact, keys sorted.

    Text that holds lone surrogates (a client may send ``"\\ud800"``, which JSON allows and
    Python decodes to one) is written with ``\\u`` escapes: a WebSocket text frame must be
    valid UTF-8, and a reply that cannot be encoded would never leave the server.
    """
    obj = message if isinstance(message, dict) else message.to_wire()
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return text


def loads(text: str | bytes) -> Any:
    """Parse JSON text; anything unparsable raises ``ParseError``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError() from exc


def parse_request(text: str | bytes) -> Request:
    """Parse a client message into a Request.

    Raises:
        ParseError: not JSON.
        InvalidRequest: JSON that is not a JSON-RPC 2.0 request (arrays, i.e. batches, included).
    """
    return request_from_json(loads(text))


def request_from_json(obj: Any) -> Request:
    """Validate a decoded JSON value as a request, as KMS's JsonRpcHandler does."""
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise InvalidRequest()
    method = obj.get("method")
    if not isinstance(method, str):
        raise InvalidRequest()
    request_id = obj.get("id", _NO_ID)
    if request_id is not _NO_ID and not isinstance(request_id, int | str | None):
        raise InvalidRequest()
    if isinstance(request_id, bool):
        raise InvalidRequest()
    params = obj.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidRequest()
    if request_id is _NO_ID or request_id is None:
        return Request(method, params, None, has_id=False)
    assert isinstance(request_id, int | str)
    return Request(method, params, request_id)


def parse_server_message(text: str | bytes) -> Response | ErrorResponse | Notification | Request:
    """Parse a message a server sent (client side)."""
    obj = loads(text)
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise InvalidRequest("not a JSON-RPC 2.0 message")
    if "method" in obj:
        if "id" in obj:
            return request_from_json(obj)
        params = obj.get("params")
        return Notification(str(obj["method"]), params if isinstance(params, dict) else {})
    if "error" in obj:
        error = obj["error"]
        return ErrorResponse(obj.get("id"), error if isinstance(error, dict) else {})
    if "result" in obj:
        return Response(obj.get("id"), obj["result"])
    raise InvalidRequest("neither result, error nor method")
