"""The emulator's type registry: Kurento classes, complex types and events, and their marshalling.

The definitions live in ``protocol/modules/{core,elements,filters}.py``, written in this project;
``tests/protocol/test_registry_vs_kmd.py`` checks them against the official KMD files.
This module holds the machinery: lookups along the class hierarchy (KMS's invoke dispatch order,
protocol.md 2.6), validation of incoming values with KMS's MARSHALL_ERROR messages (generated
``Serialize`` code of kurento-module-creator), and the KMD document ``getKmd`` returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from protocol.errors import MarshallError

MODULE_PREFIX = "kurento"

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "MISSING"})()
MISSING: Any = _MISSING
"""Marks a parameter without a default value."""

PRIMITIVES = frozenset({"String", "int", "int64", "float", "double", "boolean"})


@dataclass(frozen=True, slots=True)
class Param:
    """A constructor, method or complex-type parameter (KMD ``params[]``/``properties[]``)."""

    name: str
    type: str
    optional: bool = False
    default: Any = MISSING
    doc: str = ""

    @property
    def has_default(self) -> bool:
        """Whether the KMD gives a ``defaultValue``."""
        return self.default is not MISSING


@dataclass(frozen=True, slots=True)
class Property:
    """A remote-class property, reached as ``get<Name>``/``set<Name>`` operations."""

    name: str
    type: str
    read_only: bool = False
    final: bool = False
    doc: str = ""

    @property
    def getter(self) -> str:
        """The getter's operation name."""
        return "get" + self.name[0].upper() + self.name[1:]

    @property
    def setter(self) -> str | None:
        """The setter's operation name, None for read-only and final properties."""
        if self.read_only or self.final:
            return None
        return "set" + self.name[0].upper() + self.name[1:]


@dataclass(frozen=True, slots=True)
class Method:
    """A remote-class method."""

    name: str
    params: tuple[Param, ...] = ()
    returns: str | None = None
    doc: str = ""
    return_doc: str = ""


@dataclass(frozen=True, slots=True)
class RemoteClass:
    """A Kurento class (KMD ``remoteClasses[]``)."""

    name: str
    module: str
    extends: str | None = None
    abstract: bool = False
    constructor: tuple[Param, ...] | None = None
    properties: tuple[Property, ...] = ()
    methods: tuple[Method, ...] = ()
    events: tuple[str, ...] = ()
    doc: str = ""
    constructor_doc: str = ""


@dataclass(frozen=True, slots=True)
class EnumType:
    """An ENUM complex type: serialised as a plain string."""

    name: str
    module: str
    values: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True, slots=True)
class RegisterType:
    """A REGISTER complex type: an object with ``__module__``/``__type__`` plus its fields."""

    name: str
    module: str
    properties: tuple[Param, ...] = ()
    extends: str | None = None
    doc: str = ""


ComplexType = EnumType | RegisterType


@dataclass(frozen=True, slots=True)
class EventType:
    """An event (KMD ``events[]``); ``RaiseBase`` -> ``Media`` -> concrete events."""

    name: str
    module: str
    properties: tuple[Param, ...] = ()
    extends: str | None = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ModuleImport:
    """A KMD ``imports[]`` entry."""

    name: str
    version: str
    maven_version: str
    npm_version: str


@dataclass(frozen=True, slots=True)
class Module:
    """One KMD module (``core``, ``elements``, ``filters``)."""

    name: str
    version: str
    kurento_version: str
    code: Mapping[str, Any]
    classes: tuple[RemoteClass, ...] = ()
    complex_types: tuple[ComplexType, ...] = ()
    events: tuple[EventType, ...] = ()
    imports: tuple[ModuleImport, ...] = ()
    generation_time: str = "Mar 19 2024 12:00:00"


OperationKind = Literal["method", "getter", "setter"]


@dataclass(frozen=True, slots=True)
class Operation:
    """What an ``invoke`` operation name resolves to on a class."""

    kind: OperationKind
    name: str
    declared_by: str
    params: tuple[Param, ...]
    returns: str | None
    prop: Property | None = None


ObjectResolver = Callable[[str, str, str], Any]
"""``resolve(object_id, expected_class, param_name)`` -> the object; raises KurentoError."""


_ACRONYMS = (("IPv4", "Ipv4"), ("IPv6", "Ipv6"), ("ICE", "Ice"), ("E2E", "E2e"), ("RTP", "Rtp"))
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """The Python name of a KMD name: ``processOffer`` -> ``process_offer``.

    Acronyms are one word: ``getICECandidatePairs`` -> ``get_ice_candidate_pairs``,
    ``setExternalIPv4`` -> ``set_external_ipv4``.
    """
    for acronym, word in _ACRONYMS:
        name = name.replace(acronym, word)
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def json_kind(kmd_type: str, registry: TypeRegistry | None = None) -> str:
    """KMS's description of the JSON kind a KMD type needs (JsonCppTypeData in module-creator)."""
    if kmd_type.endswith("[]"):
        return "array"
    if kmd_type.endswith("<>"):
        return "map"
    simple = {
        "String": "string",
        "int": "integer",
        "boolean": "boolean",
        "float": "double",
        "double": "double",
        "int64": "int64",
    }
    if kmd_type in simple:
        return simple[kmd_type]
    if registry is not None and isinstance(registry.complex_types.get(kmd_type), RegisterType):
        return "object"
    return "string"


class TypeRegistry:
    """Every class, complex type and event of the loaded modules, with lookups and marshalling."""

    def __init__(self, modules: Iterable[Module]) -> None:
        self.modules: dict[str, Module] = {}
        self.classes: dict[str, RemoteClass] = {}
        self.complex_types: dict[str, ComplexType] = {}
        self.events: dict[str, EventType] = {}
        for module in modules:
            self.modules[module.name] = module
            self.classes.update((c.name, c) for c in module.classes)
            self.complex_types.update((t.name, t) for t in module.complex_types)
            self.events.update((e.name, e) for e in module.events)
        self._operations: dict[tuple[str, str], Operation | None] = {}

    # -- classes -----------------------------------------------------------------------------

    def lookup_class(self, name: str) -> RemoteClass | None:
        """A class by plain (``WebRtcEndpoint``) or qualified (``kurento.WebRtcEndpoint``) name."""
        if name.startswith(MODULE_PREFIX + "."):
            name = name[len(MODULE_PREFIX) + 1 :]
        return self.classes.get(name)

    def lineage(self, name: str) -> Iterator[RemoteClass]:
        """The class itself, then its ancestors, nearest first."""
        current: str | None = name
        while current is not None:
            cls = self.classes[current]
            yield cls
            current = cls.extends

    def hierarchy(self, name: str) -> list[str]:
        """``describe``'s ``hierarchy``: qualified ancestors, nearest first."""
        return [qualified(c.name) for c in self.lineage(name)][1:]

    def is_a(self, name: str, ancestor: str) -> bool:
        """Whether class ``name`` is ``ancestor`` or derives from it."""
        return any(c.name == ancestor for c in self.lineage(name))

    def factories(self, module: str) -> list[str]:
        """Concrete classes of a module, sorted as KMS lists them in ``ModuleInfo.factories``."""
        return sorted(c.name for c in self.modules[module].classes if not c.abstract)

    def events_of(self, name: str) -> set[str]:
        """Every event a class accepts in ``subscribe``: its own and its ancestors'."""
        return {event for cls in self.lineage(name) for event in cls.events}

    def properties_of(self, name: str) -> list[Property]:
        """Every property of a class, its own first."""
        return [prop for cls in self.lineage(name) for prop in cls.properties]

    def resolve_operation(self, class_name: str, operation: str) -> Operation | None:
        """What ``invoke(operation)`` means on a class, in KMS's order.

        The most derived class checks its methods, then its properties' getters and setters, then
        delegates to its parent (``remoteClass_internal_cpp.ftl``).
        """
        key = (class_name, operation)
        if key not in self._operations:
            self._operations[key] = self._find_operation(class_name, operation)
        return self._operations[key]

    def _find_operation(self, class_name: str, operation: str) -> Operation | None:
        for cls in self.lineage(class_name):
            for method in cls.methods:
                if method.name == operation:
                    return Operation("method", method.name, cls.name, method.params, method.returns)
            for prop in cls.properties:
                if prop.getter == operation:
                    return Operation("getter", operation, cls.name, (), prop.type, prop)
                if prop.setter == operation:
                    param = Param(prop.name, prop.type)
                    return Operation("setter", operation, cls.name, (param,), None, prop)
        return None

    # -- values ------------------------------------------------------------------------------

    def unmarshal_params(
        self,
        params: tuple[Param, ...],
        given: Any,
        container: str,
        resolve: ObjectResolver,
    ) -> dict[str, Any]:
        """Validate ``operationParams``/``constructorParams`` as KMS's generated code does.

        Returns the values by KMD name, with defaults filled in for absent optional parameters.

        Raises:
            MarshallError: "'operationParams' is required", "'x' parameter should be a string", ...
        """
        required = any(not p.optional for p in params)
        if given is None:
            if required:
                raise MarshallError(f"'{container}' is required")
            given = {}
        elif not isinstance(given, dict):
            raise MarshallError(f"'{container}' should be an object")
        values: dict[str, Any] = {}
        for param in params:
            if param.name not in given:
                if not param.optional:
                    raise MarshallError(self._should_be(param))
                if param.has_default:
                    values[param.name] = param.default
                continue
            values[param.name] = self.unmarshal(param.type, given[param.name], param.name, resolve)
        return values

    def _should_be(self, param: Param) -> str:
        kind = json_kind(param.type, self)
        article = "an" if kind[0] in "aeiou" else "a"
        return f"'{param.name}' parameter should be {article} {kind}"

    def unmarshal(self, kmd_type: str, value: Any, path: str, resolve: ObjectResolver) -> Any:
        """Check one incoming value against its KMD type; resolve object ids with ``resolve``."""
        if kmd_type.endswith("[]"):
            if not isinstance(value, list):
                raise self._type_error(path, kmd_type)
            item = kmd_type[:-2]
            return [self.unmarshal(item, v, f"{path}[{i}]", resolve) for i, v in enumerate(value)]
        if kmd_type.endswith("<>"):
            if not isinstance(value, dict):
                raise self._type_error(path, kmd_type)
            item = kmd_type[:-2]
            return {k: self.unmarshal(item, v, f"{path}.{k}", resolve) for k, v in value.items()}
        if kmd_type in PRIMITIVES:
            return self._unmarshal_primitive(kmd_type, value, path)
        complex_type = self.complex_types.get(kmd_type)
        if isinstance(complex_type, EnumType):
            return self._unmarshal_enum(complex_type, value, path)
        if isinstance(complex_type, RegisterType):
            return self._unmarshal_register(complex_type, value, path, resolve)
        if kmd_type in self.classes:
            if not isinstance(value, str):
                raise self._type_error(path, kmd_type)
            return resolve(value, kmd_type, path)
        raise MarshallError(f"'{path}' has unknown type {kmd_type}")

    def _type_error(self, path: str, kmd_type: str) -> MarshallError:
        kind = json_kind(kmd_type, self)
        article = "an" if kind[0] in "aeiou" else "a"
        return MarshallError(f"'{path}' parameter should be {article} {kind}")

    def _unmarshal_primitive(self, kmd_type: str, value: Any, path: str) -> Any:
        ok: bool
        if kmd_type == "String":
            ok = isinstance(value, str)
        elif kmd_type == "boolean":
            ok = isinstance(value, bool)
        elif kmd_type in ("int", "int64"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and kmd_type == "int" and not -(2**31) <= value < 2**31:
                raise MarshallError(f"'{path}' parameter should be an integer (32-bit)")
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        if not ok:
            raise self._type_error(path, kmd_type)
        return value

    def _unmarshal_enum(self, enum: EnumType, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self._type_error(path, enum.name)
        if value not in enum.values:
            raise MarshallError(
                f"'{path}' parameter has an invalid {enum.name} value {value!r}: "
                f"expected one of {', '.join(enum.values)}"
            )
        return value

    def _unmarshal_register(
        self, reg: RegisterType, value: Any, path: str, resolve: ObjectResolver
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._type_error(path, reg.name)
        declared = value.get("__type__")
        if (
            declared is not None
            and declared != reg.name
            and not self._register_is_a(str(declared), reg.name)
        ):
            raise MarshallError(f"'{path}' parameter should be a {reg.name}, got {declared}")
        out: dict[str, Any] = {}
        for prop in self.register_fields(reg.name):
            sub = f"{path}.{prop.name}"
            if prop.name in value:
                out[prop.name] = self.unmarshal(prop.type, value[prop.name], sub, resolve)
            elif not prop.optional:
                raise MarshallError(f"'{sub}' is required in {reg.name}")
            elif prop.has_default:
                out[prop.name] = prop.default
        return out

    def _register_is_a(self, name: str, ancestor: str) -> bool:
        current: str | None = name
        while current is not None:
            if current == ancestor:
                return True
            ct = self.complex_types.get(current)
            current = ct.extends if isinstance(ct, RegisterType) else None
        return False

    def register_fields(self, name: str) -> list[Param]:
        """Fields of a REGISTER type including inherited ones, base type first."""
        chain: list[RegisterType] = []
        current: str | None = name
        while current is not None:
            ct = self.complex_types[current]
            assert isinstance(ct, RegisterType)
            chain.append(ct)
            current = ct.extends
        return [p for ct in reversed(chain) for p in ct.properties]

    def event_fields(self, name: str) -> list[Param]:
        """Fields of an event including inherited ones (``RaiseBase`` first)."""
        chain: list[EventType] = []
        current: str | None = name
        while current is not None:
            event = self.events[current]
            chain.append(event)
            current = event.extends
        return [p for event in reversed(chain) for p in event.properties]

    def is_media_event(self, name: str) -> bool:
        """Whether an event derives from ``Media`` (and so carries ``type`` = its name)."""
        current: str | None = name
        while current is not None:
            if current == "Media":
                return True
            current = self.events[current].extends
        return False

    # -- KMD document --------------------------------------------------------------------------

    def kmd(self, module_name: str) -> dict[str, Any]:
        """The KMD document of a module, generated from the registry (what ``getKmd`` returns)."""
        module = self.modules[module_name]
        doc: dict[str, Any] = {
            "name": module.name,
            "version": module.version,
            "kurentoVersion": module.kurento_version,
            "imports": [_import_kmd(i) for i in module.imports],
            "code": dict(module.code),
            "remoteClasses": [_class_kmd(c) for c in module.classes],
            "complexTypes": [_complex_kmd(t) for t in module.complex_types],
            "events": [_event_kmd(e) for e in module.events],
        }
        return doc


def qualified(name: str) -> str:
    """``WebRtcEndpoint`` -> ``kurento.WebRtcEndpoint``."""
    return f"{MODULE_PREFIX}.{name}"


def complex_value(type_name: str, **fields: Any) -> dict[str, Any]:
    """A REGISTER value as KMS writes it: ``__module__``, ``__type__``, then the set fields."""
    value: dict[str, Any] = {"__module__": MODULE_PREFIX, "__type__": type_name}
    value.update((k, v) for k, v in fields.items() if v is not None)
    return value


def _param_kmd(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "doc": param.doc, "type": param.type}
    if param.optional:
        out["optional"] = True
    if param.has_default:
        out["defaultValue"] = param.default
    return out


def _class_kmd(cls: RemoteClass) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cls.name, "doc": cls.doc}
    if cls.abstract:
        out["abstract"] = True
    if cls.extends:
        out["extends"] = cls.extends
    if cls.constructor is not None:
        out["constructor"] = {
            "doc": cls.constructor_doc,
            "params": [_param_kmd(p) for p in cls.constructor],
        }
    if cls.properties:
        out["properties"] = [_property_kmd(p) for p in cls.properties]
    if cls.methods:
        out["methods"] = [_method_kmd(m) for m in cls.methods]
    if cls.events:
        out["events"] = list(cls.events)
    return out


def _property_kmd(prop: Property) -> dict[str, Any]:
    out: dict[str, Any] = {"name": prop.name, "doc": prop.doc, "type": prop.type}
    if prop.read_only:
        out["readOnly"] = True
    if prop.final:
        out["final"] = True
    return out


def _method_kmd(method: Method) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": method.name,
        "doc": method.doc,
        "params": [_param_kmd(p) for p in method.params],
    }
    if method.returns is not None:
        out["return"] = {"type": method.returns, "doc": method.return_doc}
    return out


def _complex_kmd(ct: ComplexType) -> dict[str, Any]:
    if isinstance(ct, EnumType):
        return {"typeFormat": "ENUM", "values": list(ct.values), "name": ct.name, "doc": ct.doc}
    out: dict[str, Any] = {"typeFormat": "REGISTER"}
    if ct.extends:
        out["extends"] = ct.extends
    out.update(properties=[_param_kmd(p) for p in ct.properties], name=ct.name, doc=ct.doc)
    return out


def _event_kmd(event: EventType) -> dict[str, Any]:
    out: dict[str, Any] = {"properties": [_param_kmd(p) for p in event.properties]}
    if event.extends:
        out["extends"] = event.extends
    out.update(name=event.name, doc=event.doc)
    return out


def _import_kmd(imp: ModuleImport) -> dict[str, Any]:
    return {
        "name": imp.name,
        "version": imp.version,
        "mavenVersion": imp.maven_version,
        "npmVersion": imp.npm_version,
    }


def P(name: str, type_: str, doc: str = "") -> Param:  # noqa: N802 - reads like the KMD
    """A required parameter."""
    return Param(name, type_, doc=doc)


def Opt(name: str, type_: str, default: Any = MISSING, doc: str = "") -> Param:  # noqa: N802
    """An optional parameter, with its KMD ``defaultValue`` when it has one."""
    return Param(name, type_, optional=True, default=default, doc=doc)
