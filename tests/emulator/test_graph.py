"""The pipeline's connection graph: links indexed from both ends, and the forwarding rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from emulator.objects.media_pipeline import Connection, ConnectionGraph


@dataclass(eq=False)
class Node:
    """A stand-in element: what the graph needs of one."""

    TYPE: ClassVar[str] = "PassThrough"
    id: str
    name: str = ""


def _graph(*names: str) -> tuple[ConnectionGraph[Node], list[Node]]:
    graph: ConnectionGraph[Node] = ConnectionGraph()
    nodes = [Node(name) for name in names]
    for node in nodes:
        graph.add(node)
    return graph, nodes


def test_graph_links_are_indexed_from_both_ends() -> None:
    """A link is found from its source (sinks, links_from) and from its sink pad (source_of)."""
    graph, (a, b, c) = _graph("a", "b", "c")
    ab = Connection(a, b, "VIDEO")
    ac = Connection(a, c, "VIDEO", sink_description="screen")
    graph.link(ab)
    graph.link(ac)
    graph.link(Connection(a, b, "AUDIO"))
    assert graph.sinks(a, "VIDEO") == (b, c)
    assert graph.source_of(b, "VIDEO") is ab
    assert graph.source_of(c, "VIDEO") is None
    assert graph.source_of(c, "VIDEO", "screen") is ac
    assert graph.links_from(a, "VIDEO") == [ab, ac]
    assert graph.links_into(b) == [ab, Connection(a, b, "AUDIO")]
    graph.unlink(ab)
    assert graph.sinks(a, "VIDEO") == (c,)
    assert graph.source_of(b, "VIDEO") is None
    assert graph.links() == [ac, Connection(a, b, "AUDIO")]


def test_graph_forwarding_row_is_the_graphs_own_and_follows_the_links() -> None:
    """The row add() returns is kept current in place: media type -> a tuple of sinks, and no
    entry once a media type has no sink (the per-packet read is one dict get)."""
    graph: ConnectionGraph[Node] = ConnectionGraph()
    a, b, c = Node("a"), Node("b"), Node("c")
    row = graph.add(a)
    graph.add(b)
    graph.add(c)
    assert dict(row) == {}
    graph.link(Connection(a, b, "AUDIO"))
    graph.link(Connection(a, c, "AUDIO"))
    assert row == {"AUDIO": (b, c)}
    graph.unlink(Connection(a, b, "AUDIO"))
    assert row == {"AUDIO": (c,)}
    graph.unlink(Connection(a, c, "AUDIO"))
    assert dict(row) == {}


def test_graph_sink_pad_has_one_source() -> None:
    """Linking a fed pad is refused (elements unlink the old source first, as KMS does)."""
    graph, (a, b, c) = _graph("a", "b", "c")
    graph.link(Connection(a, c, "AUDIO"))
    with pytest.raises(AssertionError, match="is fed"):
        graph.link(Connection(b, c, "AUDIO"))
    graph.link(Connection(b, c, "AUDIO", sink_description="second"))
    assert [link.source for link in graph.links_into(c)] == [a, b]


def test_graph_forgets_an_element_once_its_links_are_gone() -> None:
    """remove() drops a node without links; nodes() lists the others in joining order."""
    graph, (a, b, c) = _graph("a", "b", "c")
    link = Connection(a, b, "DATA")
    graph.link(link)
    with pytest.raises(AssertionError, match="still has links"):
        graph.remove(b)
    graph.unlink(link)
    graph.remove(b)
    assert graph.nodes() == [a, c]
