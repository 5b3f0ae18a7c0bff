"""The layering rules, read from the source with ast (imports inside functions and under
TYPE_CHECKING count): protocol/ is pure, only emulator/media/ imports the media libraries, no
module imports itself back through others, and no module imports a layer above its own. The
rule that only ``emulator/media/legs/aiortc_adapter.py`` names aiortc's and aioice's internals is
checked beside the adapter's own checks, in ``tests/test_aiortc_adapter.py``."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocol", "emulator")
IO_LIBRARIES = {
    "asyncio",
    "websockets",
    "aiortc",
    "aioice",
    "av",
    "socket",
    "ssl",
    "pylibsrtp",
    "dns",
}
MEDIA_LIBRARIES = {"aiortc", "aioice", "av", "pylibsrtp"}

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Sans-I/O: messages, errors, types, connection state machines.
    ("protocol", ("protocol.*",)),
    # What every layer may read: the version, Settings and where they come from.
    ("settings", ("emulator", "emulator.settings", "emulator.config")),
    # A Kurento client over WebSocket, and TLS material: protocol/ on a socket, no server inside.
    # Low because the routing dispatcher talks to its media workers as a client.
    # The DNS lookups of the pool's server list sit beside it.
    (
        "wire",
        (
            "emulator.transport",
            "emulator.transport.client",
            "emulator.transport.tls",
            "emulator.transport.discovery",
        ),
    ),
    # The media plane knows no Kurento object. Its folders are layers of their own, lowest first:
    # sockets and polling; RTP packets and stream state; the compiled forwarding loop; the seam
    # (what flows between elements); codecs and transcoding; SDP offer/answer (and SDES keys); lab
    # tools (capture, impairment); the legs (ICE, DTLS-SRTP, the aiortc/aioice adapter); the RTP
    # session; the media behind each element kind; the services every endpoint shares.
    ("media: net", ("emulator.media", "emulator.media.net.*")),
    ("media: rtp", ("emulator.media.rtp.*",)),
    ("media: fastpath", ("emulator.media.fastpath", "emulator.media.fastpath.*")),
    ("media: flow", ("emulator.media.flow",)),
    ("media: codecs", ("emulator.media.codecs.*",)),
    ("media: sdp", ("emulator.media.sdp.*",)),
    ("media: lab", ("emulator.media.lab.*",)),
    ("media: legs", ("emulator.media.legs.*",)),
    ("media: session", ("emulator.media.session.*",)),
    (
        "media: elements",
        (
            "emulator.media.webrtc",
            "emulator.media.plain_rtp",
            "emulator.media.http_post",
            "emulator.media.recorder",
            "emulator.media.player",
            "emulator.media.mixing",
            "emulator.media.video_filter",
            "emulator.media.images",
            "emulator.media.gst_elements",
            "emulator.media.frame_filters",
        ),
    ),
    ("media: services", ("emulator.media.services",)),
    # Kurento's classes (KMD): pipelines own the connection graph, endpoints drive their media.
    ("objects", ("emulator.objects.*",)),
    # Server-wide state over the objects and the media: the MediaSet, the fault rules, and the
    # trimmer that gives released objects' memory back.
    ("registry", ("emulator.registry", "emulator.faults", "emulator.memory", "emulator.blocking")),
    # One handler per JSON-RPC method.
    ("dispatch", ("emulator.dispatch",)),
    # Media worker processes, and the dispatcher that relays requests to them.
    ("workers", ("emulator.workers", "emulator.routing")),
    # The WebSocket listeners: they pump frames into a dispatcher they are given; the HTTP
    # endpoint listener feeds uploads to the targets registered with it.
    ("listener", ("emulator.transport.server", "emulator.transport.http_endpoint")),
    # Admin HTTP listener and metrics: they read the parts they are given.
    ("observability", ("emulator.observability.*",)),
    # The composition root: builds every part above from Settings, and runs the server.
    ("app", ("emulator.app",)),
    # Programs: the console scripts, and the pool's command line (its demo builds servers).
    ("entry points", ("emulator.__main__", "emulator.healthcheck", "emulator.transport.pool")),
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def module_name(path: Path) -> str:
    """``emulator/objects/hub.py`` -> ``emulator.objects.hub``; a package is its __init__."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imported_modules(path: Path, name: str, known: Iterable[str]) -> set[str]:
    """The project modules ``path`` imports, wherever the import statement sits.

    ``from package import name`` counts as importing the submodule when ``name`` is one.
    Importing a submodule also runs its package's ``__init__``; that is Python's mechanics, not
    a dependency the code chose, so it is not counted.
    """
    modules = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(_owning_module(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else _owning_module(base, modules))
    found.discard("")
    found.discard(name)
    return found


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _owning_module(dotted: str, modules: set[str]) -> str:
    """The longest project module that ``dotted`` names or lies in; "" for other libraries."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return ""


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def find_circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules, as ``[a, b, ..., a]``."""
    circles: list[list[str]] = []
    for group in _strongly_connected(graph):
        if len(group) > 1:
            circles.append(_circle_through(group, graph))
    return circles


def _strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion depth is not ours)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop(0)
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(graph.get(target, ()))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def _circle_through(group: set[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(set(graph.get(node, ())) & group):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{sorted(group)} is not strongly connected")


def layer_of(module: str) -> int | None:
    """The index of the module's layer: its most specific pattern wins (``x.*``: x and below)."""
    best: tuple[int, int] | None = None
    for position, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            prefix = pattern.removesuffix(".*")
            matches = module == prefix or (
                pattern.endswith(".*") and module.startswith(prefix + ".")
            )
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), position)
    return None if best is None else best[1]


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import from a lower layer into a higher one, described."""
    found = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                found.append(
                    f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]}), "
                    "a higher layer"
                )
    return found


# -- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "protocol").rglob("*.py")), ids=str)
def test_protocol_module_imports_no_io(path: Path) -> None:
    """protocol/ imports neither the event loop, sockets nor media libraries."""
    assert _imports(path) & IO_LIBRARIES == set()


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "emulator").rglob("*.py")) if "media" not in p.parts],
    ids=str,
)
def test_only_media_package_imports_media_libraries(path: Path) -> None:
    """Outside emulator/media/, nothing imports aiortc, aioice, av or pylibsrtp."""
    assert _imports(path) & MEDIA_LIBRARIES == set()


def test_layers_every_module_has_a_layer() -> None:
    """Each module of protocol/ and emulator/ belongs to a layer of LAYERS."""
    assert [name for name in sorted(project_modules()) if layer_of(name) is None] == []


def test_layers_no_import_circle() -> None:
    """No module imports itself back through others (type-only imports included)."""
    circles = find_circles(import_graph())
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_layers_no_import_from_a_lower_layer_up() -> None:
    """Every import goes to the module's own layer or one below (type-only imports included)."""
    upward = upward_imports(import_graph())
    assert upward == [], "\n".join(upward)


# -- the checks themselves ----------------------------------------------------------------------


def test_layers_circle_finder_names_the_circle() -> None:
    """A circle is reported as the path that closes it; a chain is not a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert find_circles(graph) == [["a", "b", "c", "a"]]
    assert find_circles({"a": {"b"}, "b": set()}) == []


def test_layers_upward_import_is_named() -> None:
    """An import from the workers' layer into __main__ is reported with both layers."""
    graph = {"emulator.workers": {"emulator.__main__", "emulator.settings"}}
    assert upward_imports(graph) == [
        "emulator.workers (workers) imports emulator.__main__ (entry points), a higher layer"
    ]


def test_layers_import_graph_reads_type_checking_and_function_imports(tmp_path: Path) -> None:
    """Imports under TYPE_CHECKING, inside functions and relative ones are all edges."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from emulator.app import App\n"
        "def f():\n"
        "    import emulator.media.net.ports\n"
        "from . import hub\n",
        encoding="utf-8",
    )
    known = {"emulator.app", "emulator.media.net.ports", "emulator.objects.hub"}
    found = imported_modules(source, "emulator.objects.media_element", known)
    assert found == known
