"""The emulator's type registry against the official KMD files of Kurento 7.3.0.

``protocol/modules/`` is written by hand (the emulator never reads the KMD JSON); these tests load
``../shared/kurento/kmd/*.kmd.json`` and check every signature, and that nothing is extra.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from protocol.modules import MODULES, default_registry
from protocol.types import (
    PRIMITIVES,
    EnumType,
    EventType,
    Method,
    Param,
    Property,
    RegisterType,
    RemoteClass,
    TypeRegistry,
    snake_case,
)

KMD_DIR = Path(__file__).resolve().parents[3] / "shared" / "kurento" / "kmd"
MODULE_NAMES = ("core", "elements", "filters")
Signature = dict[str, Any]


@cache
def official(module: str) -> dict[str, Any]:
    """The official KMD document of a module."""
    with (KMD_DIR / f"{module}.kmd.json").open(encoding="utf-8") as f:
        document: dict[str, Any] = json.load(f)
    return document


def registry() -> TypeRegistry:
    """The registry the server uses."""
    return default_registry()


_NO_DEFAULT = object()


def _default(value: Any) -> str | None:
    # JSON text keeps 30 apart from 30.0 and true apart from 1, which == would not
    return None if value is _NO_DEFAULT else json.dumps(value, sort_keys=True)


def kmd_param(param: dict[str, Any]) -> Signature:
    """A KMD parameter's signature: name, type, optional and defaultValue."""
    return {
        "name": param["name"],
        "type": param["type"],
        "optional": param.get("optional", False),
        "default": _default(param.get("defaultValue", _NO_DEFAULT)),
    }


def our_param(param: Param) -> Signature:
    """A registry parameter's signature, shaped as ``kmd_param``'s."""
    return {
        "name": param.name,
        "type": param.type,
        "optional": param.optional,
        "default": _default(param.default if param.has_default else _NO_DEFAULT),
    }


def kmd_class(cls: dict[str, Any]) -> Signature:
    """A KMD class's declaration: name, extends, abstract and constructor parameters."""
    constructor = cls.get("constructor")
    return {
        "name": cls["name"],
        "extends": cls.get("extends"),
        "abstract": cls.get("abstract", False),
        "constructor": None
        if constructor is None
        else [kmd_param(p) for p in constructor["params"]],
    }


def our_class(cls: RemoteClass) -> Signature:
    """A registry class's declaration, shaped as ``kmd_class``'s."""
    return {
        "name": cls.name,
        "extends": cls.extends,
        "abstract": cls.abstract,
        "constructor": None if cls.constructor is None else [our_param(p) for p in cls.constructor],
    }


def kmd_method(method: dict[str, Any]) -> Signature:
    """A KMD method's signature: name, parameters and return type."""
    returns = method.get("return")
    return {
        "name": method["name"],
        "params": [kmd_param(p) for p in method["params"]],
        "returns": None if returns is None else returns["type"],
    }


def our_method(method: Method) -> Signature:
    """A registry method's signature, shaped as ``kmd_method``'s."""
    return {
        "name": method.name,
        "params": [our_param(p) for p in method.params],
        "returns": method.returns,
    }


def kmd_property(prop: dict[str, Any]) -> Signature:
    """A KMD property's signature: name, type, readOnly and final."""
    return {
        "name": prop["name"],
        "type": prop["type"],
        "readOnly": prop.get("readOnly", False),
        "final": prop.get("final", False),
    }


def our_property(prop: Property) -> Signature:
    """A registry property's signature, shaped as ``kmd_property``'s."""
    return {"name": prop.name, "type": prop.type, "readOnly": prop.read_only, "final": prop.final}


def kmd_complex_type(ct: dict[str, Any]) -> Signature:
    """A KMD complex type: format, ENUM values or REGISTER properties, extends."""
    return {
        "name": ct["name"],
        "format": ct["typeFormat"],
        "values": ct.get("values"),
        "properties": [kmd_param(p) for p in ct["properties"]] if "properties" in ct else None,
        "extends": ct.get("extends"),
    }


def our_complex_type(ct: EnumType | RegisterType) -> Signature:
    """A registry complex type, shaped as ``kmd_complex_type``'s."""
    if isinstance(ct, EnumType):
        return {
            "name": ct.name,
            "format": "ENUM",
            "values": list(ct.values),
            "properties": None,
            "extends": None,
        }
    return {
        "name": ct.name,
        "format": "REGISTER",
        "values": None,
        "properties": [our_param(p) for p in ct.properties],
        "extends": ct.extends,
    }


def kmd_event(event: dict[str, Any]) -> Signature:
    """A KMD event: name, properties and extends."""
    return {
        "name": event["name"],
        "properties": [kmd_param(p) for p in event["properties"]],
        "extends": event.get("extends"),
    }


def our_event(event: EventType) -> Signature:
    """A registry event, shaped as ``kmd_event``'s."""
    return {
        "name": event.name,
        "properties": [our_param(p) for p in event.properties],
        "extends": event.extends,
    }


def module_classes(module: str) -> list[RemoteClass]:
    """The registry's classes of a module, in declaration order."""
    return list(registry().modules[module].classes)


def without_docs(value: Any) -> Any:
    """A JSON value with every ``doc`` key removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_docs(v) for k, v in value.items() if k != "doc"}
    if isinstance(value, list):
        return [without_docs(v) for v in value]
    return value


# -- modules -----------------------------------------------------------------------------------


def test_registry_modules_are_the_three_kmd_modules() -> None:
    """The registry serves core, elements and filters, in that order, and nothing else."""
    assert [m.name for m in MODULES] == list(MODULE_NAMES)
    assert list(registry().modules) == list(MODULE_NAMES)


def test_default_registry_is_built_once() -> None:
    """Every caller shares one registry."""
    assert default_registry() is default_registry()


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_module_metadata_matches_kmd(module: str) -> None:
    """Name, version, kurentoVersion, imports and code are the KMD's."""
    ours = registry().modules[module]
    kmd = official(module)
    assert (ours.name, ours.version, ours.kurento_version) == (
        kmd["name"],
        kmd["version"],
        kmd["kurentoVersion"],
    )
    assert ours.version == "7.3.0"
    imports = [
        {
            "name": i.name,
            "version": i.version,
            "mavenVersion": i.maven_version,
            "npmVersion": i.npm_version,
        }
        for i in ours.imports
    ]
    assert imports == kmd["imports"]
    assert dict(ours.code) == kmd["code"]


# -- remote classes ----------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_classes_declared_as_in_kmd(module: str) -> None:
    """Every class has the KMD's name, extends, abstract flag and constructor, in KMD order."""
    ours = [our_class(c) for c in module_classes(module)]
    assert ours == [kmd_class(c) for c in official(module)["remoteClasses"]]


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_classes_belong_to_their_module(module: str) -> None:
    """Each class names the module that holds it."""
    assert {c.module for c in module_classes(module)} == {module}


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_methods_match_kmd(module: str) -> None:
    """Every method has the KMD's name, parameters (type, optional, default) and return type."""
    ours = {c.name: [our_method(m) for m in c.methods] for c in module_classes(module)}
    kmd = {
        c["name"]: [kmd_method(m) for m in c.get("methods", [])]
        for c in official(module)["remoteClasses"]
    }
    assert ours == kmd


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_properties_match_kmd(module: str) -> None:
    """Every property has the KMD's name, type, readOnly and final flags."""
    ours = {c.name: [our_property(p) for p in c.properties] for c in module_classes(module)}
    kmd = {
        c["name"]: [kmd_property(p) for p in c.get("properties", [])]
        for c in official(module)["remoteClasses"]
    }
    assert ours == kmd


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_class_events_match_kmd(module: str) -> None:
    """Every class declares the KMD's own events, in KMD order."""
    ours = {c.name: list(c.events) for c in module_classes(module)}
    kmd = {c["name"]: c.get("events", []) for c in official(module)["remoteClasses"]}
    assert ours == kmd


# -- complex types and events ------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_complex_types_match_kmd(module: str) -> None:
    """Every complex type has the KMD's format, values or properties, and extends, in KMD order."""
    ours = [our_complex_type(t) for t in registry().modules[module].complex_types]
    assert ours == [kmd_complex_type(t) for t in official(module)["complexTypes"]]
    assert {t.module for t in registry().modules[module].complex_types} <= {module}


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_events_match_kmd(module: str) -> None:
    """Every event has the KMD's properties and extends, in KMD order."""
    ours = [our_event(e) for e in registry().modules[module].events]
    assert ours == [kmd_event(e) for e in official(module)["events"]]
    assert {e.module for e in registry().modules[module].events} == {module}


def test_registry_has_nothing_beyond_kmd() -> None:
    """The registry's classes, complex types and events are exactly the KMD's."""
    kmds = [official(m) for m in MODULE_NAMES]
    types = registry()
    assert set(types.classes) == {c["name"] for k in kmds for c in k["remoteClasses"]}
    assert set(types.complex_types) == {t["name"] for k in kmds for t in k["complexTypes"]}
    assert set(types.events) == {e["name"] for k in kmds for e in k["events"]}
    declared = sum(
        len(k["remoteClasses"]) + len(k["complexTypes"]) + len(k["events"]) for k in kmds
    )
    assert len(types.classes) + len(types.complex_types) + len(types.events) == declared


def test_registry_references_only_known_types() -> None:
    """Every type named in a signature is a primitive, a class or a complex type."""
    types = registry()

    def known(kmd_type: str) -> bool:
        base = kmd_type.removesuffix("[]").removesuffix("<>")
        return base in PRIMITIVES or base in types.classes or base in types.complex_types

    named: list[str] = []
    for cls in types.classes.values():
        named += [p.type for p in cls.constructor or ()]
        named += [p.type for p in cls.properties]
        for method in cls.methods:
            named += [p.type for p in method.params]
            named += [method.returns] if method.returns else []
        assert cls.extends is None or cls.extends in types.classes
        assert set(cls.events) <= set(types.events)
    for ct in types.complex_types.values():
        if isinstance(ct, RegisterType):
            named += [p.type for p in ct.properties]
            assert ct.extends is None or ct.extends in types.complex_types
    for event in types.events.values():
        named += [p.type for p in event.properties]
        assert event.extends is None or event.extends in types.events
    assert [t for t in named if not known(t)] == []


def test_registry_coverage_summary() -> None:
    """Counts what the comparison covers, per module, and prints it (pytest -s shows it)."""
    lines = []
    for module in MODULE_NAMES:
        kmd = official(module)
        classes = kmd["remoteClasses"]
        counts = {
            "classes": len(classes),
            "methods": sum(len(c.get("methods", [])) for c in classes),
            "properties": sum(len(c.get("properties", [])) for c in classes),
            "events": len(kmd["events"]),
            "complex types": len(kmd["complexTypes"]),
        }
        ours = registry().modules[module]
        assert counts == {
            "classes": len(ours.classes),
            "methods": sum(len(c.methods) for c in ours.classes),
            "properties": sum(len(c.properties) for c in ours.classes),
            "events": len(ours.events),
            "complex types": len(ours.complex_types),
        }
        lines.append(f"{module:>8}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    print("\nKMD signatures checked:\n" + "\n".join(lines))  # noqa: T201


# -- lookups -----------------------------------------------------------------------------------


def test_hierarchy_lists_qualified_ancestors_nearest_first() -> None:
    """``describe``'s hierarchy of a WebRtcEndpoint goes up to MediaObject."""
    assert registry().hierarchy("WebRtcEndpoint") == [
        "kurento.BaseRtpEndpoint",
        "kurento.SdpEndpoint",
        "kurento.SessionEndpoint",
        "kurento.Endpoint",
        "kurento.MediaElement",
        "kurento.MediaObject",
    ]
    assert registry().hierarchy("MediaObject") == []


def test_factories_are_concrete_classes_sorted() -> None:
    """Each module's factories are its non-abstract classes, alphabetically (protocol.md 2.7)."""
    types = registry()
    assert types.factories("core") == ["HubPort", "MediaPipeline", "PassThrough"]
    assert types.factories("elements") == [
        "AlphaBlending",
        "Composite",
        "Dispatcher",
        "DispatcherOneToMany",
        "HttpPostEndpoint",
        "Mixer",
        "PlayerEndpoint",
        "RecorderEndpoint",
        "RtpEndpoint",
        "WebRtcEndpoint",
    ]
    assert types.factories("filters") == [
        "FaceOverlayFilter",
        "GStreamerFilter",
        "ImageOverlayFilter",
        "ZBarFilter",
    ]


def test_resolve_operation_finds_getters_of_own_and_inherited_properties() -> None:
    """Getters resolve on the declaring class, including read-only and final properties."""
    types = registry()
    pairs = types.resolve_operation("WebRtcEndpoint", "getICECandidatePairs")
    assert pairs is not None
    assert (pairs.kind, pairs.declared_by, pairs.params, pairs.returns) == (
        "getter",
        "WebRtcEndpoint",
        (),
        "IceCandidatePair[]",
    )
    pipeline = types.resolve_operation("WebRtcEndpoint", "getMediaPipeline")
    assert pipeline is not None
    assert (pipeline.kind, pipeline.declared_by, pipeline.returns) == (
        "getter",
        "MediaObject",
        "MediaPipeline",
    )


def test_resolve_operation_finds_setters_of_writable_properties() -> None:
    """A writable property's setter takes one parameter named and typed as the property."""
    setter = registry().resolve_operation("WebRtcEndpoint", "setStunServerAddress")
    assert setter is not None
    assert (setter.kind, setter.declared_by, setter.returns) == (
        "setter",
        "WebRtcEndpoint",
        None,
    )
    assert setter.params == (Param("stunServerAddress", "String"),)


@pytest.mark.parametrize(
    ("class_name", "operation"),
    [
        ("WebRtcEndpoint", "setICECandidatePairs"),  # readOnly
        ("WebRtcEndpoint", "setMediaPipeline"),  # final
        ("PlayerEndpoint", "setUri"),  # final
        ("MediaPipeline", "setChildren"),  # readOnly
        ("MediaPipeline", "getStunServerAddress"),  # another class's property
        ("WebRtcEndpoint", "noSuchOperation"),
    ],
)
def test_resolve_operation_rejects_missing_setters(class_name: str, operation: str) -> None:
    """Read-only and final properties have no setter; unknown names resolve to nothing."""
    assert registry().resolve_operation(class_name, operation) is None


def test_resolve_operation_finds_inherited_methods() -> None:
    """Methods resolve on the nearest class that declares them, with the KMD's parameters."""
    types = registry()
    offer = types.resolve_operation("WebRtcEndpoint", "processOffer")
    assert offer is not None
    assert (offer.kind, offer.declared_by, offer.returns) == ("method", "SdpEndpoint", "String")
    assert [p.name for p in offer.params] == ["offer"]
    connect = types.resolve_operation("Mixer", "connect")
    assert connect is not None
    assert connect.declared_by == "Mixer"
    assert [p.name for p in connect.params] == ["media", "source", "sink"]


def test_resolve_operation_covers_every_property() -> None:
    """Every property of every class resolves to its getter, and to a setter only if writable."""
    types = registry()
    for name in types.classes:
        for prop in types.properties_of(name):
            getter = types.resolve_operation(name, prop.getter)
            assert getter is not None and getter.prop == prop, (name, prop.getter)
            setter_name = "set" + prop.name[0].upper() + prop.name[1:]
            setter = types.resolve_operation(name, setter_name)
            if prop.read_only or prop.final:
                assert setter is None, (name, setter_name)
            else:
                assert setter is not None and setter.kind == "setter", (name, setter_name)


def test_events_of_includes_inherited_events() -> None:
    """``subscribe`` accepts a class's own events and its ancestors', and no others."""
    events = registry().events_of("WebRtcEndpoint")
    assert {"IceCandidateFound", "MediaStateChanged", "ElementConnected", "Error"} <= events
    assert "OnIceCandidate" not in events
    assert "EndOfStream" not in events
    assert registry().events_of("MediaPipeline") == {"Error"}


# -- KMD document ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_kmd_regenerates_official_document(module: str) -> None:
    """``getKmd``'s document equals the official file apart from the shortened docs."""
    generated = json.loads(json.dumps(registry().kmd(module)))
    assert without_docs(generated) == without_docs(official(module))


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_kmd_documents_have_docs(module: str) -> None:
    """Every class and method of the generated document carries a doc string."""
    for cls in registry().kmd(module)["remoteClasses"]:
        assert cls["doc"], cls["name"]
        assert all(m["doc"] for m in cls.get("methods", [])), cls["name"]


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kmd_name", "python_name"),
    [
        ("processOffer", "process_offer"),
        ("getICECandidatePairs", "get_ice_candidate_pairs"),
        ("setExternalIPv4", "set_external_ipv4"),
        ("getGstreamerDot", "get_gstreamer_dot"),
        ("isMediaFlowingIn", "is_media_flowing_in"),
        ("sinkMediaDescription", "sink_media_description"),
        ("getIceConnectionState", "get_ice_connection_state"),
    ],
)
def test_snake_case_converts_kmd_names(kmd_name: str, python_name: str) -> None:
    """KMD method names map to snake_case, acronyms as one word."""
    assert snake_case(kmd_name) == python_name
