"""The Dockerfile's build steps, played outside Docker by scripts/docker_build_steps.py: the
builder stage's wheel (with the compiled forwarding loop) built in a clean venv, the runtime
stage's clean venv installing it as the image does, CMD started on the compiled data path,
HEALTHCHECK passing. No apt-get runs here: the packages the builder installs must already be
installed on this machine (gcc, libc6-dev), which the script checks.

The full build takes about 30 s on this project's 2-core machine (pip installs every
dependency into a fresh venv, from pip's cache) and is the slowest test of tests/emulator/;
the broken-step cases fail before building, except the one without setup.py (a full build)."""

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
    assert "COPY --from=builder /wheels /wheels" in done.stdout
    assert "gcc, libc6-dev installed on this machine" in done.stdout  # checked, apt-get not run
    assert "media data path: compiled" in done.stdout
    assert "HEALTHCHECK" in done.stdout and "(exit 0)" in done.stdout
    assert "STOPSIGNAL SIGTERM  (exit 0)" in done.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("COPY emulator ./emulator", "COPY emulatorr ./emulator"), "not in the build context"),
        (("RUN pip install", "RUN apk add curl && pip install"), "does not know 'apk'"),
        (("USER 10001:10001", "USER 10002:10001"), "not the user and group"),
        (("--from=builder", "--from=bulider"), "no earlier stage is named 'bulider'"),
        (("gcc libc6-dev", "gcc-not-packaged libc6-dev"), "gcc-not-packaged not installed"),
    ],
)
def test_a_broken_step_fails(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    done = play(changed_dockerfile(tmp_path, change), timeout=120)
    assert done.returncode == 1
    assert message in done.stderr


@pytest.mark.timeout(300)
def test_an_image_without_the_compiled_loop_does_not_build(tmp_path: Path) -> None:
    """setup.py makes the loop optional: a builder that lacks it (or a compiler) must fail the
    build, not give an image that quietly runs the Python loop."""
    change = ("COPY pyproject.toml setup.py README.md", "COPY pyproject.toml README.md")
    done = play(changed_dockerfile(tmp_path, change), timeout=280)
    assert done.returncode == 1
    assert "No module named 'emulator.media.fastpath._forward'" in done.stderr


def changed_dockerfile(tmp_path: Path, change: tuple[str, str]) -> Path:
    """The Dockerfile with one text replaced."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert change[0] in text
    changed = tmp_path / "Dockerfile"
    changed.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    return changed
