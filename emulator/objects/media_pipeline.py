"""MediaPipeline: the container of elements, and owner of their connection maps (KMD core)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from emulator.objects.media_object import MediaObject

if TYPE_CHECKING:
    from emulator.objects.media_element import MediaElement

MEDIA_TYPES = ("AUDIO", "VIDEO", "DATA")
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connection:
    """One media link: ``source`` sends ``media_type`` to ``sink``."""

    source: MediaElement
    sink: MediaElement
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


class MediaPipeline(MediaObject):
    """A pipeline: its elements and who sends what to whom."""

    TYPE = "MediaPipeline"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {"latencyStats": False}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: list[Connection] = []

    # -- connection maps ---------------------------------------------------------------------

    def source_of(
        self, sink: MediaElement, media_type: str, sink_description: str
    ) -> Connection | None:
        """The connection feeding a sink pad (a sink pad has at most one source)."""
        for conn in self.connections:
            if (
                conn.sink is sink
                and conn.media_type == media_type
                and conn.sink_description == sink_description
            ):
                return conn
        return None

    def links(
        self,
        *,
        source: MediaElement | None = None,
        sink: MediaElement | None = None,
        media_type: str | None = None,
    ) -> Iterator[Connection]:
        """Connections matching every given filter."""
        for conn in list(self.connections):
            if source is not None and conn.source is not source:
                continue
            if sink is not None and conn.sink is not sink:
                continue
            if media_type is not None and conn.media_type != media_type:
                continue
            yield conn

    def add_link(self, conn: Connection) -> None:
        """Record a connection."""
        self.connections.append(conn)

    def remove_link(self, conn: Connection) -> None:
        """Forget a connection."""
        self.connections.remove(conn)

    def elements(self) -> list[MediaElement]:
        """Every element of the pipeline, hub ports included."""
        from emulator.objects.media_element import MediaElement

        found: list[MediaElement] = []
        stack: list[MediaObject] = list(self.children.values())
        while stack:
            node = stack.pop(0)
            if isinstance(node, MediaElement):
                found.append(node)
            stack.extend(node.children.values())
        return found

    # -- KMD MediaPipeline methods ------------------------------------------------------------

    def get_gstreamer_dot(self, details: str | None = None) -> str:
        """A DOT graph of the pipeline's elements and media links."""
        lines = [f'digraph "{self.id}" {{', "  rankdir=LR;", f'  label="{self.TYPE} {self.name}";']
        for element in self.elements():
            lines.append(f'  "{element.id}" [label="{element.TYPE}\\n{element.name}", shape=box];')
        for conn in self.connections:
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
