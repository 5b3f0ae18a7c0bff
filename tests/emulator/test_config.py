"""Settings from the places KMS users configure: flags, KMS_* variables, config files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.config import ConfigError, gst_debug_level, load_settings


def _conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "modules" / "kurento").mkdir(parents=True)
    return tmp_path


def test_defaults_without_any_source(tmp_path: Path) -> None:
    """Without files, variables or flags the KMS defaults apply."""
    loaded = load_settings({}, environ={}, conf_file=tmp_path / "missing.json")
    assert (loaded.settings.port, loaded.settings.secure_port) == (8888, 8433)
    assert (loaded.settings.min_port, loaded.settings.max_port) == (1024, 65535)
    assert loaded.origins == {}


def test_kurento_conf_json_with_comment_keys(tmp_path: Path) -> None:
    """kurento.conf.json is read, "//" keys are comments, certificate is relative to it."""
    conf = _conf_dir(tmp_path) / "kurento.conf.json"
    conf.write_text(
        json.dumps(
            {
                "metadata": {"lab": "a"},
                "mediaServer": {
                    "resources": {"garbageCollectorPeriod": 30, "//exceptionLimit": "0.8"},
                    "net": {
                        "websocket": {
                            "port": 9999,
                            "path": "kms",
                            "//address": "0.0.0.0",
                            "secure": {"port": 9443, "certificate": "cert+key.pem"},
                        }
                    },
                },
            }
        )
    )
    loaded = load_settings({}, environ={}, conf_file=conf)
    settings = loaded.settings
    assert (settings.port, settings.secure_port, settings.path) == (9999, 9443, "kms")
    assert settings.gc_period == 30 and settings.metadata == {"lab": "a"}
    assert settings.certificate == tmp_path / "cert+key.pem"
    assert loaded.origins["port"] == str(conf)


def test_module_ini_files_and_env_precedence(tmp_path: Path) -> None:
    """BaseRtpEndpoint/WebRtcEndpoint .conf.ini apply; KMS_* variables override them."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    (folder / "BaseRtpEndpoint.conf.ini").write_text("; comment\nminPort=40000\nmaxPort=40099\n")
    (folder / "WebRtcEndpoint.conf.ini").write_text(
        "stunServerAddress=10.0.0.1\nstunServerPort=3479\nturnURL=u:p@10.0.0.2:3478\n"
        "networkInterfaces=lo\nunknownKey=1\n"
    )
    environ = {"KMS_MAX_PORT": "40049", "KMS_EXTERNAL_IPV4": "198.51.100.7"}
    loaded = load_settings({}, environ=environ, conf_file=tmp_path / "kurento.conf.json")
    settings = loaded.settings
    assert (settings.min_port, settings.max_port) == (40000, 40049)
    assert loaded.origins["min_port"].endswith("BaseRtpEndpoint.conf.ini")
    assert loaded.origins["max_port"] == "environment"
    assert settings.stun_server_address == "10.0.0.1" and settings.stun_server_port == 3479
    assert settings.turn_url == "u:p@10.0.0.2:3478" and settings.network_interfaces == "lo"
    assert settings.external_ipv4 == "198.51.100.7"


def test_external_auto_kept_for_discovery_at_start(tmp_path: Path) -> None:
    """KMS_EXTERNAL_IPV4/IPV6=auto reach the settings as ``auto`` (resolved when the server
    starts, tests/media/test_external_address.py), as does ``externalIPv6=auto`` in the ini."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    (folder / "WebRtcEndpoint.conf.ini").write_text("externalIPv6=auto\n")
    environ = {"KMS_EXTERNAL_IPV4": "auto"}
    loaded = load_settings({}, environ=environ, conf_file=tmp_path / "kurento.conf.json")
    assert (loaded.settings.external_ipv4, loaded.settings.external_ipv6) == ("auto", "auto")


def test_command_line_wins(tmp_path: Path) -> None:
    """Flags override the environment."""
    loaded = load_settings(
        {"min_port": 50000, "max_port": 50010},
        environ={"KMS_MIN_PORT": "40000"},
        conf_file=tmp_path / "none.json",
    )
    assert loaded.settings.min_port == 50000 and loaded.origins["min_port"] == "command line"


def test_stun_needs_both_variables(tmp_path: Path) -> None:
    """KMS_STUN_IP without KMS_STUN_PORT is ignored, as the KMS image does."""
    loaded = load_settings({}, environ={"KMS_STUN_IP": "1.2.3.4"}, conf_file=tmp_path / "x")
    assert loaded.settings.stun_server_address == ""
    both = load_settings(
        {}, environ={"KMS_STUN_IP": "1.2.3.4", "KMS_STUN_PORT": "3478"}, conf_file=tmp_path / "x"
    )
    assert both.settings.stun_server_address == "1.2.3.4"


def test_invalid_value_names_setting_and_origin(tmp_path: Path) -> None:
    """An invalid value stops loading with the setting, where it came from and why."""
    with pytest.raises(ConfigError, match=r"KMS_MIN_PORT='low'"):
        load_settings({}, environ={"KMS_MIN_PORT": "low"}, conf_file=tmp_path / "x")
    with pytest.raises(ConfigError, match="min_port <= max_port"):
        load_settings(
            {}, environ={"KMS_MIN_PORT": "5000", "KMS_MAX_PORT": "4000"}, conf_file=tmp_path / "x"
        )


def test_gst_debug_with_a_non_ascii_digit_is_ignored() -> None:
    """GST_DEBUG="²" (a digit to str.isdigit, not to int) keeps the default level instead of
    stopping the start with a ValueError (found by test_fuzz_config's long run)."""
    assert gst_debug_level("²") == "INFO"
    assert gst_debug_level("*:²,3") == "INFO"


def test_ini_values_are_verbatim_percent_included(tmp_path: Path) -> None:
    """A "%" in an INI value (a TURN password) is kept as written, not interpolated (found by
    tests/emulator/test_fuzz_config.py: configparser raised InterpolationSyntaxError)."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    (folder / "WebRtcEndpoint.conf.ini").write_text("turnURL=user:50%off@10.0.0.2:3478\n")
    loaded = load_settings(
        {}, environ={}, conf_file=tmp_path / "x", modules_dir=tmp_path / "modules"
    )
    assert loaded.settings.turn_url == "user:50%off@10.0.0.2:3478"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("null", "the file should be a JSON object"),
        ('{"mediaServer": []}', "mediaServer should be a JSON object"),
        ('{"mediaServer": {"net": {"websocket": {"port": "x"}}}}', "websocket.port should be"),
        ('{"mediaServer": {"resources": {"garbageCollectorPeriod": {}}}}', "garbageCollector"),
        ('{"mediaServer": {"net": {"websocket": {"secure": {"certificate": 5}}}}}', "file name"),
    ],
)
def test_kurento_conf_json_of_the_wrong_shape_names_the_key(
    tmp_path: Path, content: str, fragment: str
) -> None:
    """A kurento.conf.json of the wrong shape stops the start with a ConfigError naming the key
    (found by the fuzz tests: AttributeError and TypeError escaped the reader)."""
    conf = tmp_path / "kurento.conf.json"
    conf.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        load_settings({}, environ={}, conf_file=conf)


def test_gst_debug_maps_to_log_level() -> None:
    """GST_DEBUG's default level becomes the Python log level."""
    assert gst_debug_level("2,Kurento*:4,kms*:4") == "WARNING"
    assert gst_debug_level("5") == "DEBUG"
    assert gst_debug_level("*:3") == "INFO"


def test_report_lists_every_value_with_origin(tmp_path: Path) -> None:
    """The start-up report has one line per setting with its origin."""
    loaded = load_settings({"port": 1234}, environ={}, conf_file=tmp_path / "x")
    lines = loaded.report()
    assert "port = 1234 (command line)" in lines
    assert "gc_period = 240.0 (default)" in lines


def test_invalid_start_exits_with_message() -> None:
    """The console script refuses to start on an invalid value, naming it."""
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "--min-port", "6000", "--max-port", "5000"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "min_port" in result.stderr


def test_sdp_endpoint_json_and_media_element_ini(tmp_path: Path) -> None:
    """SdpEndpoint.conf.json (the estos audio-only variant, with its extra keys) and
    MediaElement.conf.ini are read from the modules folder."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    (folder / "SdpEndpoint.conf.json").write_text(
        json.dumps(
            {
                "//": "estos variant",
                "numAudioMedias": 1,
                "numVideoMedias": 0,
                "audioCodecs": [{"name": "opus/48000/2"}, {"name": "PCMA/8000"}],
                "videoCodecs": [{"name": "VP8/90000"}],
                "jbufmodertp": 1,
            }
        )
    )
    (folder / "MediaElement.conf.ini").write_text("encoderBitrate=500000\nmaxEncoderBitrate=0\n")
    loaded = load_settings({}, environ={}, conf_file=tmp_path / "kurento.conf.json")
    settings = loaded.settings
    assert (settings.num_audio_medias, settings.num_video_medias) == (1, 0)
    assert settings.audio_codecs == ["opus/48000/2", "PCMA/8000"]
    assert settings.video_codecs == ["VP8/90000"]
    assert settings.encoder_bitrate == 500000
    assert loaded.origins["audio_codecs"] == str(folder / "SdpEndpoint.conf.json")


def test_start_report_names_addresses_range_and_fingerprint() -> None:
    """At start: every value with its origin, the advertised address, the range, the fingerprint."""
    env = {**os.environ, "KMS_EXTERNAL_IPV4": "203.0.113.9", "KMS_MIN_PORT": "41000"}
    env["KMS_MAX_PORT"] = "41099"
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--no-wss", "--no-admin"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "server id" in line:
                break
    finally:
        process.terminate()
        process.communicate(timeout=30)
    report = "".join(lines)
    assert "min_port = 41000 (environment)" in report
    assert "advertised IPv4 address: 203.0.113.9" in report
    assert "media UDP port range 41000-41099" in report
    assert "DTLS certificate fingerprint sha-256" in report


def test_composite_conf_ini_gives_the_grid_size_and_framerate(tmp_path: Path) -> None:
    """Composite.conf.ini's width, height and framerate (protocol.md 5.2) become the Composite
    defaults; without the file, the KMD's 800x600 at 15 fps."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    loaded = load_settings({}, environ={}, conf_file=tmp_path / "kurento.conf.json")
    settings = loaded.settings
    assert (settings.composite_width, settings.composite_height) == (800, 600)
    assert settings.composite_framerate == 15
    (folder / "Composite.conf.ini").write_text("width=1280\nheight=720\nframerate=30\n")
    loaded = load_settings({}, environ={}, conf_file=tmp_path / "kurento.conf.json")
    settings = loaded.settings
    assert (settings.composite_width, settings.composite_height) == (1280, 720)
    assert settings.composite_framerate == 30
    assert loaded.origins["composite_width"] == str(folder / "Composite.conf.ini")


def test_composite_conf_ini_refuses_a_zero_size(tmp_path: Path) -> None:
    """A width of 0 is refused at start, naming the setting and the file."""
    folder = _conf_dir(tmp_path) / "modules" / "kurento"
    (folder / "Composite.conf.ini").write_text("width=0\n")
    with pytest.raises(ConfigError, match=r"composite_width.*Composite\.conf\.ini"):
        load_settings({}, environ={}, conf_file=tmp_path / "kurento.conf.json")
