"""RtpEndpoint options (RTP sub-range, latching) from KURENTO_EMULATOR_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.config import ConfigError, load_settings


def test_rtp_options_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KURENTO_EMULATOR_RTP_MIN_PORT, _RTP_MAX_PORT and _RTP_LATCHING are read."""
    monkeypatch.setenv("KURENTO_EMULATOR_RTP_MIN_PORT", "30000")
    monkeypatch.setenv("KURENTO_EMULATOR_RTP_MAX_PORT", "30999")
    monkeypatch.setenv("KURENTO_EMULATOR_RTP_LATCHING", "true")
    settings = load_settings({}, environ={}, conf_file=tmp_path / "missing.json").settings
    assert (settings.rtp_min_port, settings.rtp_max_port) == (30000, 30999)
    assert settings.rtp_latching


def test_rtp_range_needs_both_bounds(tmp_path: Path) -> None:
    """Only one bound of the RTP sub-range stops the start with a message naming both."""
    with pytest.raises(ConfigError, match="rtp_min_port and rtp_max_port"):
        load_settings({"rtp_min_port": 30000}, environ={}, conf_file=tmp_path / "missing.json")
