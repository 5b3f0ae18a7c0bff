"""Build Settings from the places KMS users already configure: flags, the official image's
environment variables and KMS's config files (ecosystem.md section 1, protocol.md section 5).

Precedence, highest first: command-line options, environment (``KMS_*``, ``KURENTO_*``,
``GST_DEBUG``, then ``KURENTO_EMULATOR_<FIELD>``), config files (``kurento.conf.json`` and
``modules/kurento/*.conf.{ini,json}``), defaults. ``load_settings`` also says where each value came
from, for the start-up report.
"""

from __future__ import annotations

import configparser
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from emulator.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_CONF_FILE = Path("/etc/kurento/kurento.conf.json")

ENV_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KMS_MIN_PORT": ("min_port", int),
    "KMS_MAX_PORT": ("max_port", int),
    "KMS_MTU": ("mtu", int),
    "KMS_TURN_URL": ("turn_url", str),
    "KMS_EXTERNAL_IPV4": ("external_ipv4", str),
    "KMS_EXTERNAL_IPV6": ("external_ipv6", str),
    "KMS_NETWORK_INTERFACES": ("network_interfaces", str),
    "KMS_ICE_TCP": ("ice_tcp", lambda v: v.strip().lower() in ("1", "true", "yes")),
    "KMS_PEM_CERTIFICATE_ECDSA": ("pem_certificate", Path),
}
INI_FIELDS: dict[str, dict[str, str]] = {
    "BaseRtpEndpoint": {"minPort": "min_port", "maxPort": "max_port", "mtu": "mtu"},
    "MediaElement": {
        "encoderBitrate": "encoder_bitrate",
        "minEncoderBitrate": "min_encoder_bitrate",
        "maxEncoderBitrate": "max_encoder_bitrate",
    },
    "Composite": {
        "width": "composite_width",
        "height": "composite_height",
        "framerate": "composite_framerate",
    },
    "RecorderEndpoint": {"gapsFix": "gaps_fix"},
    "UriEndpoint": {"defaultPath": "default_path"},
    "HttpEndpoint": {
        "serverAddress": "http_endpoint_address",
        "serverPort": "http_endpoint_port",
        "announcedAddress": "http_endpoint_announced_address",
    },
    "WebRtcEndpoint": {
        "networkInterfaces": "network_interfaces",
        "stunServerAddress": "stun_server_address",
        "stunServerPort": "stun_server_port",
        "turnURL": "turn_url",
        "externalIPv4": "external_ipv4",
        "externalIPv6": "external_ipv6",
        "iceTcp": "ice_tcp",
        "pemCertificateECDSA": "pem_certificate",
    },
}
SDP_ENDPOINT_JSON = "SdpEndpoint.conf.json"
GST_LEVELS = {0: "CRITICAL", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "INFO", 5: "DEBUG"}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says how to fix it."""


@dataclass
class LoadedSettings:
    """The effective settings and the origin of every value that is not a default."""

    settings: Settings
    origins: dict[str, str] = field(default_factory=dict)

    def report(self) -> list[str]:
        """One line per setting: value and origin."""
        lines = []
        for name in Settings.model_fields:
            value = getattr(self.settings, name)
            secret = "password" in name or "token" in name
            shown = "***" if secret and value else value
            lines.append(f"{name} = {shown!r} ({self.origins.get(name, 'default')})")
        return lines


def load_settings(
    cli: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    conf_file: Path | None = None,
    modules_dir: Path | None = None,
) -> LoadedSettings:
    """Merge every source into one validated Settings.

    Raises:
        ConfigError: an unreadable file or an invalid value, named with its origin and a fix.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def take(source: str, found: Mapping[str, Any]) -> None:
        for key, value in found.items():
            values[key] = value
            origins[key] = source

    conf = conf_file or _env_path(environ, "KURENTO_CONF_FILE") or DEFAULT_CONF_FILE
    if conf.exists():
        take(str(conf), read_kurento_conf(conf))
    modules = modules_dir or _env_path(environ, "KURENTO_MODULES_CONFIG_PATH")
    modules = modules or conf.parent / "modules"
    for path, found in read_module_configs(modules / "kurento").items():
        take(str(path), found)
    take("environment", settings_from_env(environ))
    take("command line", dict(cli))
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins)) from exc
    return LoadedSettings(settings, origins)


def _env_path(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from the official image's variables (set and non-empty only, as entrypoint.sh)."""
    found: dict[str, Any] = {}
    for name, (field_name, convert) in ENV_FIELDS.items():
        value = environ.get(name, "").strip()
        if not value:
            continue
        try:
            found[field_name] = convert(value)
        except ValueError as exc:
            raise ConfigError(f"{name}={value!r} is not valid: {exc}") from exc
    stun_ip, stun_port = environ.get("KMS_STUN_IP", ""), environ.get("KMS_STUN_PORT", "")
    if stun_ip and stun_port:
        if not stun_port.isdigit():
            raise ConfigError(f"KMS_STUN_PORT={stun_port!r} should be a port number")
        found.update(stun_server_address=stun_ip, stun_server_port=int(stun_port))
    elif stun_ip or stun_port:
        logger.warning("KMS_STUN_IP and KMS_STUN_PORT must both be set (as in the KMS image)")
    if environ.get("KMS_PEM_CERTIFICATE_RSA"):
        logger.warning(
            "KMS_PEM_CERTIFICATE_RSA: RSA DTLS certificates are not supported; "
            "an ECDSA certificate is generated (or set KMS_PEM_CERTIFICATE_ECDSA)"
        )
    gst = environ.get("GST_DEBUG", "").strip()
    if gst:
        found["log_level"] = gst_debug_level(gst)
    for name in Settings.model_fields:
        # Read here (not by pydantic) so they rank above config files and show their origin.
        value = environ.get(f"KURENTO_EMULATOR_{name.upper()}", "").strip()
        if value and name not in found:
            found[name] = _env_value(name, value)
    return found


def _env_value(name: str, value: str) -> Any:
    if name == "metadata":
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"KURENTO_EMULATOR_METADATA is not JSON: {exc}") from exc
    return value


def gst_debug_level(value: str) -> str:
    """The Python log level of a GST_DEBUG string (its default level, e.g. ``2,Kurento*:4``)."""
    for item in value.split(","):
        item = item.strip()
        level = item.rsplit(":", 1)[-1] if ":" in item else item
        # isascii: str.isdigit() also takes "²", which int() refuses.
        if (
            item
            and (":" not in item or item.startswith("*:"))
            and level.isascii()
            and level.isdigit()
        ):
            return GST_LEVELS.get(min(int(level), 5), "DEBUG")
    return "INFO"


def read_kurento_conf(path: Path) -> dict[str, Any]:
    """Settings from kurento.conf.json; keys starting with ``//`` are comments."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); fix or remove the file") from exc
    data = _object(_strip_comments(data), path, "the file")
    server = _object(data.get("mediaServer", {}), path, "mediaServer")
    net = _object(server.get("net", {}), path, "mediaServer.net")
    socket = _object(net.get("websocket", {}), path, "mediaServer.net.websocket")
    resources = _object(server.get("resources", {}), path, "mediaServer.resources")
    found: dict[str, Any] = {}
    if "port" in socket:
        found["port"] = _number(socket["port"], path, "websocket.port") or None
    if "address" in socket:
        found["host"] = socket["address"]
    if "path" in socket:
        found["path"] = socket["path"]
    secure = _object(socket.get("secure", {}), path, "mediaServer.net.websocket.secure")
    if "port" in secure:
        found["secure_port"] = _number(secure["port"], path, "websocket.secure.port") or None
    if secure.get("certificate"):
        certificate = secure["certificate"]
        if not isinstance(certificate, str):
            raise ConfigError(f"{path}: websocket.secure.certificate should be a file name")
        found["certificate"] = path.parent / certificate
    if secure.get("password"):
        found["certificate_password"] = secure["password"]
    if "garbageCollectorPeriod" in resources:
        period = resources["garbageCollectorPeriod"]
        found["gc_period"] = _number(period, path, "resources.garbageCollectorPeriod", float)
    if "disableRequestCache" in resources:
        found["disable_request_cache"] = _truthy(resources["disableRequestCache"])
    if isinstance(data.get("metadata"), dict) and data["metadata"]:
        found["metadata"] = data["metadata"]
    return found


def read_module_configs(folder: Path) -> dict[Path, dict[str, Any]]:
    """Settings from ``<modules>/kurento/<Class>.conf.ini`` files that exist."""
    found: dict[Path, dict[str, Any]] = {}
    for class_name, keys in INI_FIELDS.items():
        path = folder / f"{class_name}.conf.ini"
        if path.exists():
            found[path] = _read_ini(path, keys)
    sdp = folder / SDP_ENDPOINT_JSON
    if sdp.exists():
        found[sdp] = read_sdp_endpoint_conf(sdp)
    return found


def read_sdp_endpoint_conf(path: Path) -> dict[str, Any]:
    """``numAudioMedias``, ``numVideoMedias``, ``audioCodecs`` and ``videoCodecs`` (lists of
    ``{"name": "opus/48000/2"}``); other keys (estos' ``jbufmodertp``...) are logged, ignored."""
    try:
        data = _strip_comments(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc}); fix or remove the file") from exc
    data = _object(data, path, "the file")
    keys = {"numAudioMedias": "num_audio_medias", "numVideoMedias": "num_video_medias"}
    found: dict[str, Any] = {keys[k]: v for k, v in data.items() if k in keys}
    for key, name in (("audioCodecs", "audio_codecs"), ("videoCodecs", "video_codecs")):
        if key in data:
            entries = data[key] if isinstance(data[key], list) else []
            found[name] = [e["name"] for e in entries if isinstance(e, dict) and "name" in e]
    for key in data.keys() - {*keys, "audioCodecs", "videoCodecs"}:
        logger.info("%s: key %r is not used by kurento-emulator, ignored", path, key)
    return found


def _read_ini(path: Path, keys: dict[str, str]) -> dict[str, Any]:
    # No interpolation: KMS reads values verbatim, and a TURN password may hold a "%".
    parser = configparser.ConfigParser(
        inline_comment_prefixes=(";", "#"), strict=False, interpolation=None
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string("[kms]\n" + path.read_text(encoding="utf-8"))
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"{path}: not a readable INI file ({exc})") from exc
    found: dict[str, Any] = {}
    for key, value in parser["kms"].items():
        if key not in keys:
            logger.info("%s: key %r is not used by kurento-emulator, ignored", path, key)
            continue
        name = keys[key]
        if name == "pem_certificate":
            found[name] = path.parent / value
        elif name == "ice_tcp":
            found[name] = _truthy(value)
        else:
            found[name] = value
    return found


def _object(node: Any, path: Path, where: str) -> dict[str, Any]:
    """A JSON object of a config file, or a ConfigError naming where it should have been one."""
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: {where} should be a JSON object, not {json.dumps(node)[:40]}")
    return node


def _number(value: Any, path: Path, key: str, kind: type[int | float] = int) -> Any:
    """A finite number from a config file (JSON number or numeric text), or a ConfigError."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = kind(value)
        except (ValueError, OverflowError):
            pass
        else:
            if math.isfinite(number):
                return number
    raise ConfigError(f"{path}: {key} should be a number, not {value!r}")


def _strip_comments(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_comments(v) for k, v in node.items() if not str(k).startswith("//")}
    return node


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _explain(exc: ValidationError, origins: dict[str, str]) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        origin = origins.get(name, "default")
        problems.append(f"{name} (from {origin}): {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)
