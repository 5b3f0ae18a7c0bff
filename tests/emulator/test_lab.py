"""The compose lab: three servers, distinct ports, disjoint media ranges, one controller list."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from emulator.config import settings_from_env
from emulator.settings import Settings
from protocol.pool import parse_kurentoservers

ROOT = Path(__file__).resolve().parents[2]


def services(name: str) -> dict[str, dict[str, Any]]:
    """The services of a compose file (YAML anchors resolved)."""
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    found = data["services"]
    assert isinstance(found, dict) and len(found) == 3
    return found


def effective(service: dict[str, Any]) -> Settings:
    """The settings a service's environment gives the server (as in the container)."""
    env = {
        k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in service["environment"].items()
    }
    return Settings(**settings_from_env(env))


def published(service: dict[str, Any], container: str) -> list[str]:
    """Host sides of the port mappings whose container side is ``container``."""
    return [p.rsplit(":", 1)[0] for p in service.get("ports", []) if p.endswith(f":{container}")]


def lab_ports(name: str) -> list[tuple[int, int, int, range]]:
    """(ws port, wss port, admin port, media range) as seen from the host, per service."""
    found = []
    for service in services(name).values():
        settings = effective(service)
        assert settings.port is not None and settings.secure_port is not None
        assert settings.admin_port is not None
        media = range(settings.min_port, settings.max_port + 1)
        if "ports" in service:
            assert "network_mode" not in service
            (ws,) = published(service, f"{settings.port}/tcp")
            (wss,) = published(service, f"{settings.secure_port}/tcp")
            (admin,) = published(service, f"{settings.admin_port}/tcp")
            # ICE candidates carry the port: the range must be published 1:1.
            udp = f"{media.start}-{media.stop - 1}"
            assert published(service, f"{udp}/udp") == [udp]
            found.append((int(ws), int(wss), int(admin), media))
        else:
            assert service["network_mode"] == "host"
            found.append((settings.port, settings.secure_port, settings.admin_port, media))
    return found


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.ports.yml"])
def test_lab_servers_have_distinct_ports_and_disjoint_ranges(name: str) -> None:
    """No two servers share a WebSocket, admin or media UDP port."""
    ports = lab_ports(name)
    tcp = [p for ws, wss, admin, _ in ports for p in (ws, wss, admin)]
    assert len(set(tcp)) == len(tcp)
    for (*_, one), (*_, other) in itertools.combinations(ports, 2):
        assert not set(one) & set(other), f"{one} overlaps {other}"
    assert not {p for *_, media in ports for p in media} & set(tcp)


def test_lab_variants_agree_and_the_controller_list_names_them() -> None:
    """Both variants expose the same host ports; kurentoservers.json lists exactly those."""
    host = lab_ports("docker-compose.yml")
    assert host == lab_ports("docker-compose.ports.yml")
    text = (ROOT / "lab" / "kurentoservers.json").read_text(encoding="utf-8")
    entries = parse_kurentoservers(text)
    assert [urlsplit(e.url).port for e in entries] == [ws for ws, *_ in host]
    assert all(urlsplit(e.url).path == "/kurento" for e in entries)
    assert all(not (e.candkillipv6 or e.candkilltcp or e.candonlyturn) for e in entries)
