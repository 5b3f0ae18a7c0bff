"""MediaPipeline: the container of elements, and owner of their connection graph (KMD core).

The graph is indexed both ways, as KMS's pipeline and mediasoup's Router hold it: source -> sinks
per media type, and sink -> the link feeding each of its pads (media type, sink description).
Elements ask the graph and keep no copies. The sinks of one (source, media type) are a tuple that
the graph rebuilds when a link changes, so forwarding a packet costs one dict read.

The pipeline does not know the element class (``media_element`` builds on this module): it is
generic in what it connects, and elements bind it as ``MediaPipeline[MediaElement]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from emulator.media.session.datapath import invalidate_all as invalidate_routes
from emulator.objects.media_object import MediaObject

MEDIA_TYPES = ("AUDIO", "VIDEO", "DATA")
logger = logging.getLogger(__name__)


class GraphNode(Protocol):
    """What the graph needs of an element: its id, type and name (KMD values, DOT labels)."""

    TYPE: ClassVar[str]
    id: str
    name: str


N = TypeVar("N", bound=GraphNode)


@dataclass(frozen=True, slots=True)
class Connection(Generic[N]):
    """One media link: ``source`` sends ``media_type`` to ``sink``."""

    source: N
    sink: N
    media_type: str
    source_description: str = "default"
    sink_description: str = "default"

    def to_kmd(self) -> dict[str, Any]:
        """As an ``ElementConnectionData`` value."""
        return {
            "__module__": "kurento",
            "__type__": "ElementConnectionData",
            "sink": self.sink.id,
            "sinkDescription": self.sink_description,
            "source": self.source.id,
            "sourceDescription": self.source_description,
            "type": self.media_type,
        }


class ConnectionGraph(Generic[N]):
    """Who sends what to whom inside one pipeline, indexed from both ends of every link."""

    def __init__(self) -> None:
        self._sinks: dict[N, dict[str, tuple[N, ...]]] = {}
        """Source -> media type -> its sinks: the forwarding table, one row per element."""
        self._out: dict[N, dict[Connection[N], None]] = {}
        """Source -> the links leaving it, in the order they were made."""
        self._in: dict[N, dict[tuple[str, str], Connection[N]]] = {}
        """Sink -> (media type, sink description) -> the one link feeding that pad."""

    # -- elements --------------------------------------------------------------------------------

    def add(self, node: N) -> Mapping[str, tuple[N, ...]]:
        """Take an element in; returns its row of the forwarding table (media type -> sinks).

        The row stays the graph's: it changes as links do, and the element reads it per packet.
        """
        self._out[node] = {}
        self._in[node] = {}
        row: dict[str, tuple[N, ...]] = {}
        self._sinks[node] = row
        return row

    def remove(self, node: N) -> None:
        """Forget an element whose links are all gone."""
        assert not self._out[node] and not self._in[node], f"{node.id} still has links"
        del self._out[node], self._in[node], self._sinks[node]

    def nodes(self) -> list[N]:
        """Every element, in the order they joined."""
        return list(self._sinks)

    # -- links -----------------------------------------------------------------------------------

    def link(self, connection: Connection[N]) -> None:
        """Add a link; the sink pad must be free (a pad has one source: unlink the old first)."""
        pad = (connection.media_type, connection.sink_description)
        assert pad not in self._in[connection.sink], f"{connection.sink.id} {pad} is fed"
        invalidate_routes()  # the compiled forwarder's journeys may change
        self._out[connection.source][connection] = None
        self._in[connection.sink][pad] = connection
        self._refresh(connection.source, connection.media_type)

    def unlink(self, connection: Connection[N]) -> None:
        """Remove a link."""
        invalidate_routes()
        del self._out[connection.source][connection]
        del self._in[connection.sink][(connection.media_type, connection.sink_description)]
        self._refresh(connection.source, connection.media_type)

    def _refresh(self, source: N, media_type: str) -> None:
        row = self._sinks[source]
        sinks = tuple(c.sink for c in self._out[source] if c.media_type == media_type)
        if sinks:
            row[media_type] = sinks
        else:
            row.pop(media_type, None)

    # -- queries ---------------------------------------------------------------------------------

    def sinks(self, source: N, media_type: str) -> tuple[N, ...]:
        """The elements ``source`` sends ``media_type`` to."""
        return self._sinks[source].get(media_type, ())

    def source_of(
        self, sink: N, media_type: str, sink_description: str = "default"
    ) -> Connection[N] | None:
        """The link feeding a sink pad, if any."""
        return self._in[sink].get((media_type, sink_description))

    def links_from(self, source: N, media_type: str | None = None) -> list[Connection[N]]:
        """The links leaving ``source`` (of one media type, when given)."""
        return [c for c in self._out[source] if media_type in (None, c.media_type)]

    def links_into(self, sink: N, media_type: str | None = None) -> list[Connection[N]]:
        """The links feeding ``sink`` (of one media type, when given)."""
        return [c for c in self._in[sink].values() if media_type in (None, c.media_type)]

    def links(self) -> list[Connection[N]]:
        """Every link of the pipeline."""
        return [c for out in self._out.values() for c in out]


class MediaPipeline(MediaObject, Generic[N]):
    """A pipeline: its elements and who sends what to whom."""

    TYPE = "MediaPipeline"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {"latencyStats": False}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graph: ConnectionGraph[N] = ConnectionGraph()

    # -- KMD MediaPipeline methods ------------------------------------------------------------

    def get_gstreamer_dot(self, details: str | None = None) -> str:
        """A DOT graph of the pipeline's elements and media links."""
        lines = [f'digraph "{self.id}" {{', "  rankdir=LR;", f'  label="{self.TYPE} {self.name}";']
        for element in self.graph.nodes():
            lines.append(f'  "{element.id}" [label="{element.TYPE}\\n{element.name}", shape=box];')
        for conn in self.graph.links():
            lines.append(
                f'  "{conn.source.id}" -> "{conn.sink.id}" '
                f'[label="{conn.media_type} {conn.source_description}->{conn.sink_description}"];'
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    def dump_gstreamer_dot(self, details: str | None = None) -> None:
        """Write the DOT graph to ``$GST_DEBUG_DUMP_DOT_DIR`` as KMS does, or log it."""
        write_dot(self, self.get_gstreamer_dot(details))


def write_dot(obj: MediaObject, dot: str) -> None:
    """Write a DOT graph where GStreamer would, else log where it would have gone."""
    folder = os.environ.get("GST_DEBUG_DUMP_DOT_DIR")
    if not folder:
        obj.log.info("dumpGstreamerDot: GST_DEBUG_DUMP_DOT_DIR is not set, graph not written")
        return
    safe = obj.id.replace("/", "_")
    target = Path(folder) / f"{safe}.dot"
    target.write_text(dot, encoding="utf-8")
    obj.log.info("dumpGstreamerDot: wrote %s", target)
