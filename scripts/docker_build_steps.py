"""The Dockerfile's build steps, run outside Docker: a broken step fails here as it would in
``docker build``, on a machine without a Docker engine.

    python scripts/docker_build_steps.py [--keep DIR]

Reads the Dockerfile and plays each stage (``FROM ... AS name``) in a temporary folder standing
for that stage's root: ``ENV`` is collected, ``WORKDIR`` moves inside the folder, ``COPY`` copies
from the build context (the repository, less what ``.dockerignore`` leaves out), or with
``--from=stage`` from an earlier stage's folder, to the same paths inside it, and each ``RUN``
command (split at ``&&``) runs with the stage's clean virtual environment (``python -m venv``, no
system packages) first on PATH, absolute paths in its arguments taken inside the folder:
``pip install``/``pip wheel`` run as in the image (pip's cache is used: ``--no-cache-dir`` only
keeps the image small), ``python`` is the venv's, ``install -d`` creates its folders inside the
root (owners dropped: not root here). Steps that would change this machine are checked and
skipped, never run: ``groupadd``/``useradd`` against ``USER``; ``apt-get install`` by checking
that the packages it names are installed here (``dpkg-query``; a missing one fails the step,
naming it); ``apt-get update``/``purge``/``remove`` skipped. A command the script does not know
stops it: teach it the new step. Then the last stage's ``CMD`` starts with the image's environment
(its config files read from the folder's /etc/kurento, its ports moved to free ones so nothing
here clashes) and must use the compiled media data path (its start log, or the installed package,
says which); ``HEALTHCHECK``'s command must exit 0 against it, and ``STOPSIGNAL`` must stop it
with status 0. Exit status 0 when every step worked; the failing step and its output otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on (ws://\S+) \(ws\)")
STARTED = re.compile(r"server id \S+")
"""The server's last start-up line (after the listeners and the media data path)."""
DATA_PATH = "media data path:"
START_TIMEOUT = 60.0


class StepFailed(RuntimeError):
    """A Dockerfile step that would fail ``docker build`` (or the image's start)."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs: continuation lines joined, comments dropped."""
    pairs: list[tuple[str, str]] = []
    current = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            name, _, rest = current.strip().partition(" ")
            pairs.append((name.upper(), rest.strip()))
        current = ""
    return pairs


def env_pairs(text: str) -> dict[str, str]:
    """``KEY=value KEY2="quoted value"`` of an ENV instruction."""
    return {key: value for key, _, value in (item.partition("=") for item in shlex.split(text))}


@dataclass
class Image:
    """A stage being played (the last one is the image): its root folder, environment, working
    folder and user. Every stage writes to one log."""

    root: Path
    venv: Path
    log: list[str]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    stopsignal: str = "SIGTERM"

    def path(self, image_path: str) -> Path:
        """Where an image path lies in the root folder (relative paths from WORKDIR)."""
        absolute = image_path if image_path.startswith("/") else f"{self.workdir}/{image_path}"
        return self.root / absolute.lstrip("/")

    def process_env(self) -> dict[str, str]:
        """The environment RUN and CMD see: the image's ENV, the venv first on PATH."""
        env = {"PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}", "HOME": str(self.root)}
        env.update(self.env)
        env.pop("PIP_NO_CACHE_DIR", None)  # pip's cache is fine outside an image
        return env


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves the path out (``**/`` patterns match at any depth)."""
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern + "/*"):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(Path(relative).name, pattern[3:]):
            return True
    return False


def dockerignore() -> list[str]:
    """The patterns of the build context's .dockerignore."""
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copy(image: Image, arguments: str, stages: dict[str, Image]) -> None:
    """COPY [--from=stage] src... dest, from the build context or an earlier stage."""
    *sources, dest = shlex.split(arguments)
    flags = [source for source in sources if source.startswith("--")]
    sources = [source for source in sources if not source.startswith("--")]
    if any(not flag.startswith("--from=") for flag in flags):
        raise StepFailed(f"COPY {arguments}: scripts/docker_build_steps.py knows only --from=")
    if flags:
        copy_from_stage(image, arguments, stages, flags[-1].partition("=")[2], sources, dest)
        return
    patterns = dockerignore()
    target = image.path(dest)
    for source in sources:
        origin = ROOT / source
        if not origin.exists() or ignored(source, patterns):
            raise StepFailed(f"COPY {arguments}: {source} is not in the build context")
        if origin.is_dir():
            shutil.copytree(
                origin,
                target,
                dirs_exist_ok=True,
                ignore=lambda folder, names: [
                    n for n in names if ignored(str((Path(folder) / n).relative_to(ROOT)), patterns)
                ],
            )
        else:
            into = target / origin.name if dest.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into)
    image.log.append(f"COPY {arguments}")


def copy_from_stage(
    image: Image,
    arguments: str,
    stages: dict[str, Image],
    name: str,
    sources: list[str],
    dest: str,
) -> None:
    """COPY --from=stage: the paths of that stage's root folder, as they are there."""
    stage = stages.get(name)
    if stage is None:
        raise StepFailed(f"COPY {arguments}: no earlier stage is named {name!r}")
    for source in sources:
        origin = stage.path(source if source.startswith("/") else f"/{source}")
        if not origin.exists():
            raise StepFailed(f"COPY {arguments}: stage {name!r} has no {source}")
        target = image.path(dest)
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            into = target / origin.name if dest.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into)
    image.log.append(f"COPY {arguments}")


KNOWN_PROGRAMS = ("pip", "python", "install", "apt-get", "groupadd", "useradd")


def commands(arguments: str) -> list[str]:
    """The ``&&`` commands of a RUN."""
    return [part.strip() for part in arguments.split("&&")]


def run(image: Image, arguments: str) -> None:
    """RUN: each ``&&`` command, as the image's shell would run it, translated for here."""
    for command in commands(arguments):
        argv = shlex.split(command)
        program = argv[0]
        python = str(image.venv / "bin" / "python")
        if program == "pip":
            argv = [python, "-m", "pip", *paths_here(image, argv[1:])]
            execute(image, [arg for arg in argv if arg != "--no-cache-dir"], command)
        elif program == "python":
            execute(image, [python, *paths_here(image, argv[1:])], command)
        elif program == "install":
            execute(image, install_here(image, argv), command)
        elif program == "apt-get":
            image.log.append(f"RUN {command}  (skipped here: {apt_get_here(argv, command)})")
        else:
            image.log.append(f"RUN {command}  (skipped here: creates a user, checked against USER)")


def paths_here(image: Image, arguments: list[str]) -> list[str]:
    """Absolute paths (alone or after ``--option=``) taken inside the root, globs expanded there
    as the image's shell would (a glob that matches nothing stays as it is, as in sh)."""
    here: list[str] = []
    for arg in arguments:
        option, equals, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        if not value.startswith("/"):
            here.append(arg)
            continue
        inside = str(image.path(value))
        matches = sorted(glob.glob(inside)) if any(c in inside for c in "*?[") else [inside]
        here.extend(f"{option}{equals}{match}" for match in matches or [inside])
    return here


def apt_get_here(argv: list[str], command: str) -> str:
    """Why an ``apt-get`` step is skipped here; raise when it installs what this machine lacks.
    apt-get never runs: it would change this machine's packages (and needs root)."""
    action = next((arg for arg in argv[1:] if not arg.startswith("-")), "")
    if action in ("update", "clean"):
        return "it only refreshes apt's package lists"
    if action in ("purge", "remove", "autoremove"):
        return "it would remove this machine's packages"
    if action != "install":
        raise StepFailed(f"RUN {command}: scripts/docker_build_steps.py does not know {action!r}")
    names = [arg.partition("=")[0] for arg in argv[argv.index("install") + 1 :]]
    packages = [name for name in names if not name.startswith("-")]
    missing = [name for name in packages if not installed_here(name)]
    if missing:
        raise StepFailed(
            f"RUN {command}: {', '.join(missing)} not installed on this machine; install "
            "it here to play this step (the script never runs apt-get)"
        )
    return f"{', '.join(packages)} installed on this machine"


def installed_here(package: str) -> bool:
    """Whether dpkg says the Debian package is installed on this machine."""
    if shutil.which("dpkg-query") is None:
        raise StepFailed(f"apt-get install {package}: no dpkg-query here to check it is installed")
    done = subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == "install ok installed"


def check_before_building(steps: list[tuple[str, str]]) -> None:
    """What can be checked without building, so that a broken step fails in seconds: every RUN
    program is one this script knows, USER names the ids the RUN steps create, and each
    ``COPY --from`` names an earlier stage."""
    check_stage_names(steps)
    created: set[str] = set()
    for name, rest in steps:
        if name != "RUN":
            continue
        for command in commands(rest):
            argv = shlex.split(command)
            if argv[0] not in KNOWN_PROGRAMS:
                raise StepFailed(
                    f"RUN {command}: scripts/docker_build_steps.py does not know {argv[0]!r}; "
                    "teach it how to run this step outside Docker"
                )
            if argv[0] in ("groupadd", "useradd"):
                created |= {argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in IDS}
    users = [rest for name, rest in steps if name == "USER"]
    for user in users:
        if created and any(part not in created for part in user.split(":")):
            raise StepFailed(f"USER {user}: not the user and group the RUN steps create")


IDS = ("--gid", "--uid", "-g", "-u")


def check_stage_names(steps: list[tuple[str, str]]) -> None:
    """Each ``COPY --from=stage`` names a stage before it (by name or index)."""
    stages: list[str] = []
    for name, rest in steps:
        if name == "FROM":
            stages.append(stage_name(rest, len(stages)))
        elif name == "COPY":
            for flag in shlex.split(rest):
                source = flag.partition("--from=")[2]
                if source and source not in stages:
                    raise StepFailed(f"COPY {rest}: no earlier stage is named {source!r}")


def stage_name(arguments: str, index: int) -> str:
    """The name of the stage ``FROM arguments`` starts: its ``AS`` name, else its index."""
    _, *alias = re.split(r"\s+as\s+", arguments.strip(), maxsplit=1, flags=re.IGNORECASE)
    return alias[0] if alias else str(index)


def install_here(image: Image, argv: list[str]) -> list[str]:
    """``install -d [-o U] [-g G] PATH...`` with the paths inside the root, owners dropped."""
    kept: list[str] = ["install"]
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in ("-o", "-g", "--owner", "--group"):
            skip = True
        elif arg.startswith("/"):
            kept.append(str(image.path(arg)))
        else:
            kept.append(arg)
    return kept


def execute(image: Image, argv: list[str], command: str) -> None:
    """Run one command in the image's working folder; raise with its output on failure."""
    cwd = image.path(image.workdir)
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=cwd, env=image.process_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise StepFailed(f"RUN {command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    image.log.append(f"RUN {command}  ({time.monotonic() - started:.1f} s)")


def exec_form(image: Image, text: str, what: str) -> list[str]:
    """An exec-form command (JSON array) whose program the venv provides."""
    argv = json.loads(text)
    if not isinstance(argv, list) or not argv:
        raise StepFailed(f"{what} {text}: not an exec-form command")
    program = image.venv / "bin" / argv[0]
    if not program.exists():
        raise StepFailed(f"{what}: {argv[0]} is not installed by the RUN steps")
    return [str(program), *argv[1:]]


def build(dockerfile: Path, folder: Path, log: list[str]) -> Image:
    """Play every build instruction of every stage; the last stage (the image), ready to start."""
    steps = instructions(dockerfile)
    check_before_building(steps)
    stages: dict[str, Image] = {}
    image: Image | None = None
    for name, rest in steps:
        if name == "FROM":
            named, image = stage(folder, rest, len(stages), log)
            stages[named] = image
            continue
        if image is None:
            raise StepFailed(f"{name} {rest}: before any FROM")
        if name == "ENV":
            image.env.update(env_pairs(rest))
        elif name == "WORKDIR":
            image.workdir = rest if rest.startswith("/") else f"{image.workdir}/{rest}"
            image.path(image.workdir).mkdir(parents=True, exist_ok=True)
        elif name == "COPY":
            copy(image, rest, stages)
        elif name == "RUN":
            if not image.venv.exists():  # made at the first RUN: a broken COPY fails sooner
                subprocess.run([sys.executable, "-m", "venv", str(image.venv)], check=True)
            run(image, rest)
        elif name == "USER":
            image.user = rest
        elif name == "CMD":
            image.cmd = exec_form(image, rest, "CMD")
        elif name == "HEALTHCHECK":
            image.healthcheck = exec_form(image, rest.partition(" CMD ")[2].strip(), "HEALTHCHECK")
        elif name == "STOPSIGNAL":
            image.stopsignal = rest
    if image is None:
        raise StepFailed(f"{dockerfile}: no FROM")
    return image


def stage(folder: Path, arguments: str, index: int, log: list[str]) -> tuple[str, Image]:
    """FROM base [AS name]: a new stage in its own folder (named as the stage, else by its index
    as ``COPY --from`` names it), played on this machine's Python."""
    name = stage_name(arguments, index)
    log.append(f"FROM {arguments}")
    match = re.match(r"python:(\d+\.\d+)", arguments)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if match and match.group(1) != here:
        log.append(f"  this machine runs Python {here}, not {match.group(1)}")
    return name, Image(root=folder / name / "root", venv=folder / name / "venv", log=log)


def start_and_check(image: Image) -> None:
    """CMD, then HEALTHCHECK against it, then STOPSIGNAL: status 0 each."""
    env = image.process_env()
    env.update(
        # The image's /etc/kurento, inside the root folder.
        KURENTO_CONF_FILE=str(image.path("/etc/kurento/kurento.conf.json")),
        KURENTO_EMULATOR_HOST="127.0.0.1",
        KURENTO_EMULATOR_PORT=str(free_port()),
        KURENTO_EMULATOR_SECURE_PORT="0",
        KURENTO_EMULATOR_ADMIN_PORT="0",
    )
    cwd = image.path(image.workdir)
    process = subprocess.Popen(
        image.cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not any(STARTED.search(line) for line in lines):
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise StepFailed("CMD did not start:\n" + "".join(lines))
            lines.append(line)
        if not any(LISTENING.search(line) for line in lines):
            raise StepFailed("CMD did not start listening:\n" + "".join(lines))
        image.log.append(f"CMD {' '.join(image.cmd)}  (listening)")
        data_path = media_data_path(image, lines)
        image.log.append(f"  {data_path}")
        if not data_path.startswith(f"{DATA_PATH} compiled"):
            raise StepFailed(f"the image does not run the compiled forwarding loop: {data_path}")
        if not any("min_port = 40000" in line and "BaseRtpEndpoint" in line for line in lines):
            raise StepFailed(
                "the image's BaseRtpEndpoint.conf.ini was not read:\n" + "".join(lines)
            )
        check = subprocess.run(
            image.healthcheck, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        if check.returncode != 0:
            raise StepFailed(f"HEALTHCHECK exited {check.returncode}: {check.stdout}{check.stderr}")
        image.log.append(f"HEALTHCHECK {' '.join(image.healthcheck)}  (exit 0)")
        process.send_signal(getattr(signal, image.stopsignal))
        status = process.wait(timeout=30)
        if status != 0:
            raise StepFailed(f"{image.stopsignal}: the server exited {status}")
        image.log.append(f"STOPSIGNAL {image.stopsignal}  (exit 0)")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def media_data_path(image: Image, lines: list[str]) -> str:
    """Which forwarding loop the started server uses: its start log's line, or (a server that
    does not log it) what the installed package offers by default. The loop is optional in
    setup.py: an image built without a compiler would quietly run the Python one."""
    logged = next((line for line in lines if DATA_PATH in line), "")
    if logged:
        return logged[logged.index(DATA_PATH) :].strip() + "  (start log)"
    probe = "from emulator.media import fastpath; print(fastpath.describe('compiled'))"
    done = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", probe],
        cwd=image.path(image.workdir),
        env=image.process_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    said = done.stdout.strip() or f"{DATA_PATH} unknown ({done.stderr.strip()[-200:]})"
    return f"{said}  (installed package)"


def free_port() -> int:
    """A TCP port free on loopback now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    """Play the Dockerfile; print each step; 0 when all worked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dockerfile", type=Path, default=ROOT / "Dockerfile")
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="docker-build-steps-") as temporary:
        folder = args.keep or Path(temporary)
        try:
            start_and_check(build(args.dockerfile, folder, log))
        except (StepFailed, subprocess.TimeoutExpired) as exc:
            print("\n".join(log), f"\nFAILED: {exc}", sep="\n", file=sys.stderr)  # noqa: T201
            return 1
    print("\n".join(log))  # noqa: T201
    print(f"every step worked in {time.monotonic() - started:.0f} s")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
