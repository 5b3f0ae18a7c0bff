"""The Docker image without a Docker engine: its CMD and HEALTHCHECK run here as subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from emulator.app import running_emulator
from emulator.config import ENV_FIELDS
from emulator.healthcheck import check, probe_url
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on (ws://\S+) \(ws\)")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    joined: list[str] = []
    current = ""
    for line in lines:
        if line.lstrip().startswith("#") and not current:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    pairs = []
    for text in joined:
        instruction, _, rest = text.partition(" ")
        pairs.append((instruction.upper(), rest.strip()))
    return pairs


def instruction(name: str) -> str:
    """The arguments of the last ``name`` instruction."""
    found = [rest for inst, rest in dockerfile_instructions() if inst == name]
    assert found, f"Dockerfile has no {name}"
    return found[-1]


def exec_form(text: str) -> list[str]:
    """An exec-form command (JSON array), with the executable taken from this venv."""
    argv = json.loads(text)
    assert isinstance(argv, list) and argv, f"not an exec-form command: {text}"
    executable = BIN / argv[0]
    assert executable.exists(), f"{argv[0]} is not installed (console script in pyproject.toml)"
    return [str(executable), *argv[1:]]


def cmd() -> list[str]:
    """The image's CMD."""
    return exec_form(instruction("CMD"))


def healthcheck_cmd() -> list[str]:
    """The command of the image's HEALTHCHECK."""
    text = instruction("HEALTHCHECK")
    _, _, command = text.partition(" CMD ")
    return exec_form(command.strip())


def image_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The container's environment: the Dockerfile's ENV, loopback and the image's config; the
    admin listener on a port of the OS's choosing (the image's 8890 is one port for every test
    running beside this one)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    for inst, rest in dockerfile_instructions():
        if inst == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                env[key] = value.strip('"')
    modules = tmp_path / "modules" / "kurento"
    modules.mkdir(parents=True)
    shutil.copy(ROOT / "docker" / "BaseRtpEndpoint.conf.ini", modules)
    env.update(
        KURENTO_CONF_FILE=str(tmp_path / "kurento.conf.json"),  # absent: defaults
        KURENTO_MODULES_CONFIG_PATH=str(tmp_path / "modules"),
        KURENTO_EMULATOR_HOST="127.0.0.1",
        KURENTO_EMULATOR_ADMIN_PORT="0",
    )
    env.update(overrides)
    return env


@contextlib.asynccontextmanager
async def image_cmd(env: dict[str, str]) -> AsyncIterator[tuple[str, list[str]]]:
    """Run the CMD; yield its ws:// URL (read from its log) and the log lines so far."""
    process = await asyncio.create_subprocess_exec(
        *cmd(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        url = None
        while url is None:
            raw = await asyncio.wait_for(process.stdout.readline(), 30)
            assert raw, "the server exited before listening:\n" + "".join(lines)
            lines.append(raw.decode())
            match = LISTENING.search(lines[-1])
            url = match.group(1) if match else None
        yield url, lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), 30)


async def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a command to completion; exit status and output."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode()


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (from PyPI) finds nothing in the Dockerfile."""
    import subprocess

    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_matches_the_kms_image_contract() -> None:
    """Unprivileged numeric user, ports 8888/8433 and the UDP range exposed, KMS variables."""
    user = instruction("USER").split(":")[0]
    assert user.isdigit() and int(user) != 0
    exposed = instruction("EXPOSE").split()
    assert {"8888/tcp", "8433/tcp"} <= set(exposed)
    ini = (ROOT / "docker" / "BaseRtpEndpoint.conf.ini").read_text(encoding="utf-8")
    low = re.search(r"^minPort=(\d+)", ini, re.M)
    high = re.search(r"^maxPort=(\d+)", ini, re.M)
    assert low and high
    assert f"{low.group(1)}-{high.group(1)}/udp" in exposed
    declared = set()
    for inst, rest in dockerfile_instructions():
        if inst == "ENV":
            declared.update(re.findall(r"(\w+)=", rest))
    official = {*ENV_FIELDS, "KMS_STUN_IP", "KMS_STUN_PORT", "KMS_PEM_CERTIFICATE_RSA", "GST_DEBUG"}
    assert official <= declared
    assert "--start-period" in instruction("HEALTHCHECK")


async def test_image_cmd_serves_and_healthcheck_follows_it(tmp_path: Path) -> None:
    """CMD starts a server with the image's config; HEALTHCHECK says 0 while up and 1 once down."""
    env = image_env(tmp_path, KURENTO_EMULATOR_PORT="0", KURENTO_EMULATOR_SECURE_PORT="0")
    async with image_cmd(env) as (url, lines):
        assert "min_port = 40000" in "".join(lines)  # the image's BaseRtpEndpoint.conf.ini
        port = url.split(":")[2].split("/")[0]
        probe_env = {**env, "KURENTO_EMULATOR_PORT": port}
        status, output = await run(healthcheck_cmd(), probe_env)
        assert (status, output.split(":")[0]) == (0, "healthy"), output
    status, output = await run(healthcheck_cmd(), probe_env)
    assert status == 1 and output.startswith("unhealthy: ws://127.0.0.1:"), output


async def test_healthcheck_sends_the_access_token(tmp_path: Path) -> None:
    """With an access_token set, the probe passes it (the same variable reaches both)."""
    env = image_env(
        tmp_path,
        KURENTO_EMULATOR_PORT="0",
        KURENTO_EMULATOR_SECURE_PORT="0",
        KURENTO_EMULATOR_ACCESS_TOKEN="s3cret",
    )
    async with image_cmd(env) as (url, _):
        port = url.split(":")[2].split("/")[0]
        status, output = await run(healthcheck_cmd(), {**env, "KURENTO_EMULATOR_PORT": port})
        assert status == 0, output
        without = {**env, "KURENTO_EMULATOR_PORT": port, "KURENTO_EMULATOR_ACCESS_TOKEN": ""}
        status, output = await run(healthcheck_cmd(), without)
        assert status == 1 and "401" in output, output


async def test_healthcheck_gives_up_on_a_server_that_never_answers(tmp_path: Path) -> None:
    """A listener that accepts TCP and then hangs is unhealthy within the probe's timeout."""
    held: list[asyncio.StreamWriter] = []

    async def hang(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        argv = [*healthcheck_cmd(), "--url", f"ws://127.0.0.1:{port}/kurento", "--timeout", "0.5"]
        status, output = await run(argv, image_env(tmp_path))
        assert status == 1 and "no answer within 0.5 s" in output, output
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_healthcheck_probes_wss_when_ws_is_off() -> None:
    """With ws:// off the probe uses wss:// and accepts the self-signed certificate."""
    settings = make_settings(port=None, secure_port=0)
    assert probe_url(make_settings(port=None, secure_port=8433)) == "wss://127.0.0.1:8433/kurento"
    async with running_emulator(settings) as server:
        url = probe_url(make_settings(port=None, secure_port=server.port("wss")))
        # A bound, not a figure: a loaded CI machine once took over 5 s to open the TLS socket.
        healthy, what = await asyncio.to_thread(check, url, 30.0)
    assert healthy, what


def test_healthcheck_url_carries_token_and_brackets_ipv6() -> None:
    """The probe URL follows host, path and access_token of the settings."""
    settings = make_settings(host="::1", port=9000, path="/kms/", access_token="a b")
    assert probe_url(settings) == "ws://[::1]:9000/kms?access_token=a+b"
