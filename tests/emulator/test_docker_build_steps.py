"""The Dockerfile's build steps, played outside Docker by scripts/docker_build_steps.py: a clean
venv, the project installed as the image installs it, CMD started, HEALTHCHECK passing.

The full build takes about 30 s on this project's 2-core machine (pip installs every
dependency into a fresh venv, from pip's cache) and is the slowest test of tests/emulator/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "docker_build_steps.py"


def play(dockerfile: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the script on a Dockerfile."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--dockerfile", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.timeout(300)
def test_dockerfile_steps_build_and_the_image_answers_its_healthcheck() -> None:
    done = play(ROOT / "Dockerfile", timeout=280)
    assert done.returncode == 0, done.stderr
    assert "HEALTHCHECK" in done.stdout and "(exit 0)" in done.stdout
    assert "STOPSIGNAL SIGTERM  (exit 0)" in done.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("COPY emulator ./emulator", "COPY emulatorr ./emulator"), "not in the build context"),
        (("RUN pip install", "RUN apk add curl && pip install"), "does not know 'apk'"),
        (("USER 10001:10001", "USER 10002:10001"), "not the user and group"),
    ],
)
def test_a_broken_step_fails(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert change[0] in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    done = play(broken, timeout=120)
    assert done.returncode == 1
    assert message in done.stderr
