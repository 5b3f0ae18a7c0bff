"""The emulator's own type registry against the official KMS 7.3.0 interface definitions.

The KMD files in ``../shared/kurento/kmd`` are fixtures only: the registry is written in
``protocol/modules`` and must match every signature, with nothing extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.modules import default_registry
from protocol.types import snake_case

KMD_DIR = Path(__file__).resolve().parents[3] / "shared" / "kurento" / "kmd"
MODULE_NAMES = ("core", "elements", "filters")


def _official(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((KMD_DIR / f"{name}.kmd.json").read_text(encoding="utf-8"))
    return data


def _strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_strip_docs(v) for v in node]
    return node


def _param_signature(param: dict[str, Any]) -> tuple[Any, ...]:
    return (
        param["name"],
        param["type"],
        bool(param.get("optional", False)),
        json.dumps(param.get("defaultValue")),
    )


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_registry_classes_match_kmd(name: str) -> None:
    """Every class: extends, abstract, constructor, properties, methods and events, nothing more."""
    registry = default_registry()
    official = {c["name"]: c for c in _official(name)["remoteClasses"]}
    ours = {c.name: c for c in registry.modules[name].classes}
    assert set(ours) == set(official)
    for class_name, kmd in official.items():
        cls = ours[class_name]
        assert cls.extends == kmd.get("extends"), class_name
        assert cls.abstract == bool(kmd.get("abstract", False)), class_name
        if "constructor" in kmd:
            assert cls.constructor is not None, class_name
            assert [
                (p.name, p.type, p.optional, json.dumps(p.default if p.has_default else None))
                for p in cls.constructor
            ] == [_param_signature(p) for p in kmd["constructor"]["params"]], class_name
        else:
            assert cls.constructor is None, class_name
        assert [(p.name, p.type, p.read_only, p.final) for p in cls.properties] == [
            (p["name"], p["type"], bool(p.get("readOnly")), bool(p.get("final")))
            for p in kmd.get("properties", [])
        ], class_name
        assert [
            (
                m.name,
                m.returns,
                [
                    (p.name, p.type, p.optional, json.dumps(p.default if p.has_default else None))
                    for p in m.params
                ],
            )
            for m in cls.methods
        ] == [
            (
                m["name"],
                m.get("return", {}).get("type"),
                [_param_signature(p) for p in m["params"]],
            )
            for m in kmd.get("methods", [])
        ], class_name
        assert list(cls.events) == kmd.get("events", []), class_name


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_registry_complex_types_and_events_match_kmd(name: str) -> None:
    """Complex types and events, regenerated from the registry, equal the official ones."""
    ours = _strip_docs(default_registry().kmd(name))
    official = _strip_docs(_official(name))
    assert ours["complexTypes"] == official["complexTypes"]
    assert ours["events"] == official["events"]


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_registry_kmd_document_regenerates_official(name: str) -> None:
    """The KMD that getKmd returns equals the official file, docs aside."""
    assert _strip_docs(default_registry().kmd(name)) == _strip_docs(_official(name))


def test_registry_coverage_report() -> None:
    """Print how much of each official module the registry covers (everything, or a test fails)."""
    registry = default_registry()
    for name in MODULE_NAMES:
        kmd = _official(name)
        module = registry.modules[name]
        classes = len(module.classes)
        methods = sum(len(c.methods) for c in module.classes)
        properties = sum(len(c.properties) for c in module.classes)
        print(  # noqa: T201
            f"{name}: {classes}/{len(kmd['remoteClasses'])} classes, {methods} methods, "
            f"{properties} properties, {len(module.complex_types)}/{len(kmd['complexTypes'])} "
            f"complex types, {len(module.events)}/{len(kmd['events'])} events"
        )
        assert classes == len(kmd["remoteClasses"])


def test_registry_hierarchy_of_webrtc_endpoint() -> None:
    """describe's hierarchy lists qualified ancestors, nearest first."""
    assert default_registry().hierarchy("WebRtcEndpoint") == [
        "kurento.BaseRtpEndpoint",
        "kurento.SdpEndpoint",
        "kurento.SessionEndpoint",
        "kurento.Endpoint",
        "kurento.MediaElement",
        "kurento.MediaObject",
    ]


def test_registry_factories_sorted_per_module() -> None:
    """ModuleInfo.factories: the concrete classes of a module, sorted."""
    registry = default_registry()
    assert registry.factories("core") == ["HubPort", "MediaPipeline", "PassThrough"]
    assert "WebRtcEndpoint" in registry.factories("elements")
    assert "GStreamerFilter" in registry.factories("filters")


def test_registry_resolves_getters_setters_and_methods() -> None:
    """Operations resolve to methods, then property getters and setters, along the hierarchy."""
    registry = default_registry()
    pairs = registry.resolve_operation("WebRtcEndpoint", "getICECandidatePairs")
    assert pairs is not None and pairs.kind == "getter" and pairs.returns == "IceCandidatePair[]"
    stun = registry.resolve_operation("WebRtcEndpoint", "setStunServerAddress")
    assert stun is not None and stun.kind == "setter"
    assert [p.name for p in stun.params] == ["stunServerAddress"]
    pipeline = registry.resolve_operation("PassThrough", "getMediaPipeline")
    assert pipeline is not None and pipeline.declared_by == "MediaObject"
    connect = registry.resolve_operation("PassThrough", "connect")
    assert connect is not None and connect.kind == "method"
    assert registry.resolve_operation("PassThrough", "setMediaPipeline") is None
    assert registry.resolve_operation("WebRtcEndpoint", "setMediaState") is None
    assert registry.resolve_operation("PassThrough", "frobnicate") is None


def test_registry_events_of_class_include_inherited() -> None:
    """subscribe accepts a class's own events and its ancestors'."""
    events = default_registry().events_of("WebRtcEndpoint")
    assert {"IceCandidateFound", "MediaStateChanged", "ElementConnected", "Error"} <= events
    assert "OnIceCandidate" not in events


@pytest.mark.parametrize(
    ("kmd", "python"),
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
def test_snake_case_of_kmd_names(kmd: str, python: str) -> None:
    """KMD names become Python names with acronyms kept as one word."""
    assert snake_case(kmd) == python
