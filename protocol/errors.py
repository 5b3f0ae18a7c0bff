"""Errors the server answers with: one tree, converted to the wire once (``emulator/dispatch.py``).

The tree::

    RpcError                      code, message, data_type (None: no "data" member)
    ├── JsonRpcError              JSON-RPC framing codes (-32xxx)
    │   ├── ParseError            -32700 "Parse error."
    │   ├── InvalidRequest        -32600 "Invalid JSON-RPC request."
    │   ├── MethodNotFound        -32601 "Method not found."
    │   ├── InvalidParams         -32602 "'params' is required"  (data.type INVALID_PARAMS)
    │   ├── InternalError         -32603
    │   └── ServerError           -32000 missing or mistyped top-level parameter (no data)
    └── KurentoError              KurentoException.hpp codes; data.type = the KMS type name
        ├── MarshallError         40001
        ├── UnexpectedError       40003
        ├── ...                   (one class per code, CamelCase of the type name)
        └── PlayerSeekFail        40700

Codes, names and default messages are those of KMS 7.3.0 (``KurentoException.hpp``,
``JsonRpcException.hpp``; protocol.md section 2.13).
"""

from __future__ import annotations

from typing import Any, ClassVar


class RpcError(Exception):
    """An error answered to a request: ``{"code", "message", "data": {"type"}}``."""

    code: ClassVar[int] = -32603
    data_type: ClassVar[str | None] = None
    default_message: ClassVar[str] = ""

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` member for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data_type is not None:
            error["data"] = {"type": self.data_type}
        return error


class JsonRpcError(RpcError):
    """JSON-RPC 2.0 framing errors (codes -32768..-32000)."""


class ParseError(JsonRpcError):
    """The text is not JSON."""

    code = -32700
    default_message = "Parse error."


class InvalidRequest(JsonRpcError):
    """Valid JSON that is not a JSON-RPC 2.0 request object."""

    code = -32600
    default_message = "Invalid JSON-RPC request."


class MethodNotFound(JsonRpcError):
    """A method KMS does not register."""

    code = -32601
    default_message = "Method not found."


class InvalidParams(JsonRpcError):
    """A method that needs ``params`` got none."""

    code = -32602
    data_type = "INVALID_PARAMS"
    default_message = "'params' is required"


class InternalError(JsonRpcError):
    """Unexpected failure while handling a method."""

    code = -32603
    default_message = "Unexpected error while processing method"


class ServerError(JsonRpcError):
    """A missing or mistyped top-level parameter: KMS sends -32000 without ``data``."""

    code = -32000


class KurentoError(RpcError):
    """A KurentoException: ``data.type`` carries the KMS type name."""

    code: ClassVar[int] = 40003
    type: ClassVar[str] = "UNEXPECTED_ERROR"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.data_type = cls.type


KurentoError.data_type = KurentoError.type


class MarshallError(KurentoError):
    """A value does not convert to or from its KMD type."""

    code = 40001
    type = "MARSHALL_ERROR"


class UnexpectedError(KurentoError):
    """Anything the server did not foresee; logged with its traceback."""

    code = 40003
    type = "UNEXPECTED_ERROR"


class ConnectError(KurentoError):
    """Elements that cannot be connected (different pipelines)."""

    code = 40004
    type = "CONNECT_ERROR"


class UnsupportedMediaType(KurentoError):
    """A media type the element cannot handle."""

    code = 40005
    type = "UNSUPPORTED_MEDIA_TYPE"


class KurentoNotImplemented(KurentoError):
    """A KMD class or method the emulator does not provide yet."""

    code = 40006
    type = "NOT_IMPLEMENTED"


class InvalidSession(KurentoError):
    """Unknown or collected session id."""

    code = 40007
    type = "INVALID_SESSION"
    default_message = "Invalid session"


class MalformedTransaction(KurentoError):
    """A bad ``transaction``, and KMS 7.3.0's answer to an unknown operation."""

    code = 40008
    type = "MALFORMED_TRANSACTION"


class NotEnoughResources(KurentoError):
    """Port range exhausted, object limits reached."""

    code = 40009
    type = "NOT_ENOUGH_RESOURCES"


class MediaObjectTypeNotFound(KurentoError):
    """Type name unknown."""

    code = 40100
    type = "MEDIA_OBJECT_TYPE_NOT_FOUND"


class MediaObjectNotFound(KurentoError):
    """Unknown or released object id."""

    code = 40101
    type = "MEDIA_OBJECT_NOT_FOUND"


class MediaObjectConstructorNotFound(KurentoError):
    """No constructor for the type."""

    code = 40104
    type = "MEDIA_OBJECT_CONSTRUCTOR_NOT_FOUND"


class MediaObjectMethodNotFound(KurentoError):
    """Method unknown (KMS 7.3.0 answers 40008 instead, see MalformedTransaction)."""

    code = 40105
    type = "MEDIA_OBJECT_METHOD_NOT_FOUND"


class MediaObjectEventNotSupported(KurentoError):
    """``subscribe`` to an event the type lacks."""

    code = 40106
    type = "MEDIA_OBJECT_EVENT_NOT_SUPPORTED"


class MediaObjectIllegalParamError(KurentoError):
    """A parameter value outside what the operation accepts."""

    code = 40107
    type = "MEDIA_OBJECT_ILLEGAL_PARAM_ERROR"


class MediaObjectNotAvailable(KurentoError):
    """``create`` with a type that has no factory."""

    code = 40108
    type = "MEDIA_OBJECT_NOT_AVAILABLE"


class MediaObjectNotFoundTransactionNoCommit(KurentoError):
    """A ``newref:`` id used outside its transaction."""

    code = 40109
    type = "MEDIA_OBJECT_NOT_FOUND_TRANSACTION_NO_COMMIT"


class MediaObjectTagKeyNotFound(KurentoError):
    """``getTag`` with a key that was never added."""

    code = 40110
    type = "MEDIA_OBJECT_TAG_KEY_NOT_FOUND"
    default_message = "Tag key not found"


class MediaObjectOperationNotSupported(KurentoError):
    """An operation the object does not support in its configuration."""

    code = 40111
    type = "MEDIA_OBJECT_OPERATION_NOT_SUPPORTED"


class SdpCreateError(KurentoError):
    """The SDP could not be created."""

    code = 40200
    type = "SDP_CREATE_ERROR"


class SdpParseError(KurentoError):
    """Empty or invalid SDP."""

    code = 40201
    type = "SDP_PARSE_ERROR"


class SdpEndPointNoLocalSdpError(KurentoError):
    """No local description yet."""

    code = 40202
    type = "SDP_END_POINT_NO_LOCAL_SDP_ERROR"


class SdpEndPointNoRemoteSdpError(KurentoError):
    """No remote description yet."""

    code = 40203
    type = "SDP_END_POINT_NO_REMOTE_SDP_ERROR"


class SdpEndPointGenerateOfferError(KurentoError):
    """generateOffer failed."""

    code = 40204
    type = "SDP_END_POINT_GENERATE_OFFER_ERROR"


class SdpEndPointProcessOfferError(KurentoError):
    """processOffer failed."""

    code = 40205
    type = "SDP_END_POINT_PROCESS_OFFER_ERROR"


class SdpEndPointProcessAnswerError(KurentoError):
    """processAnswer failed."""

    code = 40206
    type = "SDP_END_POINT_PROCESS_ANSWER_ERROR"


class SdpConfigurationError(KurentoError):
    """Bad SDP configuration."""

    code = 40207
    type = "SDP_CONFIGURATION_ERROR"


class SdpEndPointAlreadyNegotiated(KurentoError):
    """A second offer on a negotiated endpoint."""

    code = 40208
    type = "SDP_END_POINT_ALREADY_NEGOTIATED"


class SdpEndPointNotOfferGenerated(KurentoError):
    """processAnswer without generateOffer."""

    code = 40209
    type = "SDP_END_POINT_NOT_OFFER_GENERATED"


class SdpEndPointAnswerAlreadyProccesed(KurentoError):
    """A second answer (KMS's spelling of the type name)."""

    code = 40210
    type = "SDP_END_POINT_ANSWER_ALREADY_PROCCESED"


class SdpEndPointCannotCreateSesson(KurentoError):
    """The SDP session could not be created (KMS's spelling)."""

    code = 40211
    type = "SDP_END_POINT_CANNOT_CREATE_SESSON"


class HttpEndPointRegistrationError(KurentoError):
    """HTTP endpoint registration failed."""

    code = 40300
    type = "HTTP_END_POINT_REGISTRATION_ERROR"


class IceGatherCandidatesError(KurentoError):
    """gatherCandidates failed."""

    code = 40400
    type = "ICE_GATHER_CANDIDATES_ERROR"


class IceAddCandidateError(KurentoError):
    """Malformed ICE candidate."""

    code = 40401
    type = "ICE_ADD_CANDIDATE_ERROR"


class ServerManagerErrorKmdNotFound(KurentoError):
    """getKmd for a module that does not exist."""

    code = 40500
    type = "SERVER_MANAGER_ERROR_KMD_NOT_FOUND"


class UriPathFileNotFound(KurentoError):
    """A URI that points nowhere."""

    code = 40600
    type = "URI_PATH_FILE_NOT_FOUND"


class PlayerSeekFail(KurentoError):
    """Seek failed."""

    code = 40700
    type = "PLAYER_SEEK_FAIL"


def error_class_for_code(code: int) -> type[RpcError] | None:
    """The error class for a wire code (used by the client to raise typed errors)."""
    return _BY_CODE.get(code)


def _all_subclasses(cls: type[RpcError]) -> list[type[RpcError]]:
    found: list[type[RpcError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[int, type[RpcError]] = {
    cls.code: cls for cls in _all_subclasses(RpcError) if cls not in (JsonRpcError,)
}
