"""The aiortc/aioice adapter: every internal it declares still exists in the installed versions
(else the failure names it, its user and the library to blame), and no other module of emulator/
touches one of them."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import aioice.ice
import pytest
from aioice import Connection

from emulator.media.legs import aiortc_adapter
from emulator.media.legs.aiortc_adapter import INTERNALS, Internal, consent_loop

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = Path(aiortc_adapter.__file__).resolve()
LIBRARIES = ("aiortc", "aioice")

TEST_INTERNALS: tuple[Internal, ...] = (
    # Test and benchmark peers instrument aiortc's own client objects (not the emulator's): they
    # patch these directly, and are declared here so that an upgrade names them too.
    Internal(
        "aiortc.rtcrtpsender.RTCRtpSender._send_keyframe",
        "tests/media/peers.py watch_keyframe_requests",
    ),
    Internal(
        "aiortc.rtcrtpreceiver.RTCRtpReceiver._send_rtcp_pli",
        "tests/media/peers.py ClientPeer(asks_keyframes=False)",
    ),
    Internal(
        "aiortc.rtcdtlstransport.RTCDtlsTransport._send_rtp",
        "tests/media/rtp_peers.py DtmfInjector",
    ),
    Internal(
        "aiortc.rtcrtpsender.RTCRtpSender._ssrc",
        "tests/media/rtp_peers.py DtmfInjector",
        set_in="aiortc.rtcrtpsender.RTCRtpSender.__init__",
    ),
    Internal(
        "aiortc.rtcdtlstransport.RTCDtlsTransport._handle_rtp_data",
        "tests/media/rtp_peers.py spy_received",
    ),
    Internal("aiortc.rtcrtpsender.RTCRtpSender._handle_rtcp_packet", "tests/media/test_stats.py"),
    Internal(
        "aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet",
        "tests/media/test_transcoding.py, benchmarks/bridged_calls.py",
    ),
    Internal(
        "aioice.ice.get_host_addresses",
        "tests/media/peers.py loopback_peers, benchmarks (patched: peers gather on loopback)",
        read_by=("aioice.ice.Connection.gather_candidates",),
    ),
)


def _resolve(path: str) -> object:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            found = getattr(found, part)
        return found
    raise ImportError(path)


def _names_in(function: object) -> set[str]:
    """Every global and attribute name a function's code refers to, nested code included."""
    code = inspect.unwrap(function).__code__  # type: ignore[arg-type]
    names: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return names


def _rebinds_outside_init(owner: type, name: str) -> list[str]:
    """Methods of ``owner`` other than ``__init__`` that assign ``self.<name>``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(owner)))
    found = []
    for method in ast.walk(tree):
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if method.name == "__init__":
            continue
        for node in ast.walk(method):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == name
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    found.append(method.name)
    return found


def _problems(internal: Internal) -> list[str]:
    """What an upgrade broke of ``internal``: nothing when it is as the adapter expects."""
    blame = f"(used by {internal.used_by}): {internal.library} upgrade?"
    owner_path, name = internal.path.rsplit(".", 1)
    try:
        owner = _resolve(owner_path)
        setter = _resolve(internal.set_in) if internal.set_in else None
    except (ImportError, AttributeError):
        return [f"{internal.path} is gone: {owner_path} no longer exists {blame}"]
    if setter is not None:
        if name not in _names_in(setter):
            return [f"{internal.path} is gone: {internal.set_in} no longer sets it {blame}"]
    elif not hasattr(owner, name):
        return [f"{internal.path} is gone {blame}"]
    problems = []
    for reader in internal.read_by:
        try:
            uses = name in _names_in(_resolve(reader))
        except (ImportError, AttributeError):
            uses = False
        if not uses:
            problems.append(
                f"{reader} no longer uses {name}, so {internal.used_by} changes nothing: "
                f"{internal.library} upgrade?"
            )
    if internal.held:
        assert isinstance(owner, type)
        for method in _rebinds_outside_init(owner, name):
            problems.append(
                f"{owner_path}.{method} now replaces {name}, which {internal.used_by} holds "
                f"(a stale reference): {internal.library} upgrade?"
            )
    return problems


@pytest.mark.parametrize("internal", INTERNALS + TEST_INTERNALS, ids=lambda i: i.path)
def test_every_declared_internal_still_exists(internal: Internal) -> None:
    """Each aiortc/aioice internal the project relies on exists in the installed versions, is
    still called or read where the adapter's override or rebinding needs it, and is not replaced
    where the adapter holds a reference."""
    problems = _problems(internal)
    assert not problems, "\n".join(problems)


def test_the_check_names_what_an_upgrade_removed() -> None:
    """A declared name that is missing fails with its path, its user and the library."""
    gone = Internal("aiortc.rtcdtlstransport.RTCDtlsTransport._rx_srtp_v2", "DtlsTransportSeam")
    assert _problems(gone) == [
        "aiortc.rtcdtlstransport.RTCDtlsTransport._rx_srtp_v2 is gone "
        "(used by DtlsTransportSeam): aiortc upgrade?"
    ]
    unread = Internal("aioice.ice.CONSENT_INTERVAL", "consent_loop", read_by=("aioice.ice.stun",))
    assert _problems(unread) == [
        "aioice.ice.stun no longer uses CONSENT_INTERVAL, so consent_loop changes nothing: "
        "aioice upgrade?"
    ]


def test_declared_internals_are_of_aiortc_or_aioice_and_unique() -> None:
    """The declared list names each internal once, by its full path in aiortc or aioice."""
    paths = [internal.path for internal in INTERNALS]
    assert len(paths) == len(set(paths))
    assert all(internal.library in LIBRARIES for internal in INTERNALS + TEST_INTERNALS)


# -- layering --------------------------------------------------------------------------------------


def _library_module(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in LIBRARIES


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def _derived_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Names of the classes of emulator/ built on an aiortc/aioice class (directly, through the
    adapter's seams, or through another such class): their ``self`` is the library's object."""
    derived: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                _library_module(node.module) or node.module == "emulator.media.legs.aiortc_adapter"
            ):
                derived.update(alias.asname or alias.name for alias in node.names)
    classes = [n for tree in trees.values() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for node in classes:
            if node.name not in derived and _base_names(node) & derived:
                derived.add(node.name)
                grew = True
    return derived


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _uses(
    tree: ast.Module, declared: dict[str, Internal], derived: set[str]
) -> Iterator[tuple[int, str, Internal]]:
    """(line, how, internal) for each use of a declared internal in a module."""
    # A public method name (``data_received``) is also the emulator's own elsewhere: only its
    # override in a library-derived class counts. Private and module-level names count anywhere,
    # except an underscore attribute of ``self`` in a class of the emulator's own.
    hooks = {
        name
        for name, internal in declared.items()
        if name[0].islower() and internal.path.rsplit(".", 2)[-2][0].isupper()
    }

    def visit(node: ast.AST, in_derived: bool) -> Iterator[tuple[int, str, Internal]]:
        if isinstance(node, ast.ClassDef):
            in_derived = node.name in derived
        elif isinstance(node, ast.ImportFrom) and _library_module(node.module):
            for alias in node.names:
                if alias.name in declared:
                    yield node.lineno, f"imports {alias.name}", declared[alias.name]
        elif isinstance(node, ast.Attribute) and node.attr in declared and node.attr not in hooks:
            if in_derived or not _is_self(node.value):
                yield node.lineno, f"uses .{node.attr}", declared[node.attr]
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and in_derived
            and node.name in declared
        ):
            yield node.lineno, f"overrides {node.name}", declared[node.name]
        for child in ast.iter_child_nodes(node):
            yield from visit(child, in_derived)

    yield from visit(tree, False)


def test_only_the_adapter_touches_aiortc_and_aioice_internals() -> None:
    """No module of emulator/ but the adapter imports, reads, writes or overrides a declared
    internal: each violation is named with its file and line."""
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted((ROOT / "emulator").rglob("*.py"))
    }
    declared = {internal.name: internal for internal in INTERNALS}
    derived = _derived_classes(trees)
    violations = [
        f"{path.relative_to(ROOT)}:{line} {how} ({internal.path}): go through "
        f"{ADAPTER.relative_to(ROOT)}"
        for path, tree in trees.items()
        if path != ADAPTER
        for line, how, internal in _uses(tree, declared, derived)
    ]
    assert not violations, "\n".join(violations)


def test_the_layering_check_sees_reads_imports_and_overrides() -> None:
    """The check finds a private read through another object, an import of an undocumented name,
    and an override in a class built on a seam; an own private attribute of ``self`` passes."""
    source = textwrap.dedent(
        """
        from aioice.ice import StunProtocol
        from emulator.media.legs.aiortc_adapter import DtlsTransportSeam

        class Mine(DtlsTransportSeam):
            def _setup_srtp(self): ...

        class Own:
            def __init__(self, dtls):
                self._queue = []
                self.role = dtls._role
        """
    )
    tree = ast.parse(source)
    declared = {internal.name: internal for internal in INTERNALS}
    found = [(line, how) for line, how, _ in _uses(tree, declared, _derived_classes({ROOT: tree}))]
    assert found == [(2, "imports StunProtocol"), (6, "overrides _setup_srtp"), (11, "uses ._role")]


# -- consent timing ------------------------------------------------------------------------------


def test_consent_loop_runs_aioice_code_with_the_connection_timing() -> None:
    """The consent loop runs aioice's code unchanged, reading the given interval and failures;
    aioice's module constants (every other connection's) stay as they are."""
    before = (aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES)
    loop = consent_loop(0.25, 2)
    assert isinstance(loop, types.FunctionType)
    assert loop.__code__ is Connection.query_consent.__code__
    assert (loop.__globals__["CONSENT_INTERVAL"], loop.__globals__["CONSENT_FAILURES"]) == (0.25, 2)
    after = (aioice.ice.CONSENT_INTERVAL, aioice.ice.CONSENT_FAILURES)
    assert after == before
