"""Property tests of the config-file readers, the environment and the URI endpoints' URIs
(issue 18, fuzzing).

A broken config file must stop the start with a ``ConfigError`` naming the file, never with a
traceback from deep inside the reader; a client's URI is accepted (absolute, with a scheme the
endpoints use) or refused with 40600.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from emulator.config import ENV_FIELDS, ConfigError, load_settings
from emulator.objects.uri_endpoint import SCHEMES, file_path, resolve_uri
from protocol.errors import UriPathFileNotFound

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value."""

KMS_CONF_KEYS = [
    "mediaServer",
    "net",
    "websocket",
    "port",
    "address",
    "path",
    "secure",
    "certificate",
    "password",
    "resources",
    "garbageCollectorPeriod",
    "disableRequestCache",
    "metadata",
    "//comment",
]


def kms_shaped() -> st.SearchStrategy[Any]:
    """JSON shaped like kurento.conf.json: its keys, nested, with values of any type."""
    return st.recursive(
        json_values,
        lambda children: st.dictionaries(st.sampled_from(KMS_CONF_KEYS), children, max_size=5),
        max_leaves=15,
    )


def _load(files: dict[str, str], environ: dict[str, str] | None = None) -> None:
    """Write the files into a fresh configuration folder and load settings from it."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "modules" / "kurento").mkdir(parents=True)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(ConfigError):
            load_settings({}, environ or {}, root / "kurento.conf.json", root / "modules")


@given(kms_shaped() | json_values)
def test_fuzz_kurento_conf_json_raises_only_config_errors(data: Any) -> None:
    """Any kurento.conf.json content loads or raises ConfigError."""
    _load({"kurento.conf.json": json.dumps(data)})


@given(st.text(max_size=200))
def test_fuzz_kurento_conf_text_raises_only_config_errors(text: str) -> None:
    """Text that is not JSON at all raises ConfigError."""
    _load({"kurento.conf.json": text})


INI_FILES = [
    "BaseRtpEndpoint.conf.ini",
    "WebRtcEndpoint.conf.ini",
    "MediaElement.conf.ini",
    "UriEndpoint.conf.ini",
    "HttpEndpoint.conf.ini",
    "RecorderEndpoint.conf.ini",
]
INI_KEYS = [
    "minPort",
    "maxPort",
    "mtu",
    "stunServerAddress",
    "stunServerPort",
    "turnURL",
    "networkInterfaces",
    "iceTcp",
    "externalIPv4",
    "pemCertificateECDSA",
    "encoderBitrate",
    "defaultPath",
    "serverPort",
    "gapsFix",
    "[section]",
]


@given(
    st.sampled_from(INI_FILES),
    st.lists(
        st.tuples(st.sampled_from(INI_KEYS) | st.text(max_size=8), st.text(max_size=20)),
        max_size=5,
    ),
)
def test_fuzz_module_ini_files_raise_only_config_errors(
    name: str, pairs: list[tuple[str, str]]
) -> None:
    """Any INI module file (keys known or not, values of any text) loads or raises ConfigError."""
    text = "\n".join(f"{key}={value}" for key, value in pairs)
    _load({f"modules/kurento/{name}": text})


@given(
    json_values
    | st.dictionaries(
        st.sampled_from(
            ["numAudioMedias", "numVideoMedias", "audioCodecs", "videoCodecs", "jbufmodertp"]
        ),
        json_values,
        max_size=4,
    )
)
def test_fuzz_sdp_endpoint_conf_raises_only_config_errors(data: Any) -> None:
    """Any SdpEndpoint.conf.json content loads or raises ConfigError."""
    _load({"modules/kurento/SdpEndpoint.conf.json": json.dumps(data)})


ENV_NAMES = [
    *ENV_FIELDS,
    "KMS_STUN_IP",
    "KMS_STUN_PORT",
    "GST_DEBUG",
    "KURENTO_EMULATOR_PORT",
    "KURENTO_EMULATOR_METADATA",
    "KURENTO_EMULATOR_FAULTS",
    "KURENTO_EMULATOR_MEDIA_WORKERS",
    "KURENTO_EMULATOR_MAX_SESSIONS",
]


@given(st.dictionaries(st.sampled_from(ENV_NAMES), st.text(max_size=20), max_size=4))
def test_fuzz_environment_raises_only_config_errors(environ: dict[str, str]) -> None:
    """Any value of the KMS image's variables (and ours) loads or raises ConfigError."""
    _load({}, environ)


@given(
    st.text(max_size=80)
    | st.builds(
        lambda scheme, rest: f"{scheme}:{rest}",
        st.sampled_from([*SCHEMES, "FILE", "ftp", "javascript", ""]),
        st.text(max_size=60),
    )
)
def test_fuzz_uri_resolution(uri: str) -> None:
    """A URI resolves to one with a scheme the endpoints use, or is refused with 40600; a
    ``file://`` one has a local path."""
    try:
        resolved = resolve_uri(uri, "file:///var/lib/kurento/")
    except UriPathFileNotFound:
        return
    scheme = resolved.split(":", 1)[0].lower()
    assert scheme in SCHEMES
    path = file_path(resolved)
    assert (path is not None) == (scheme == "file")
