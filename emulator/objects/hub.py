"""Hub and HubPort (KMD core) and the hubs of the elements module.

A hub's ports are its children (ids ``<hub id>/<uuid>_kurento.HubPort``). Media entering a port
(from the element connected to it) goes to the hub, which decides which ports send it on:
Dispatcher routes one port to another, DispatcherOneToMany routes its source port to every other
port. Composite, Mixer and AlphaBlending need decoding and mixing, which the emulator lacks.
"""

from __future__ import annotations

from typing import Any

from emulator.objects.media_element import MediaElement
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import write_dot


class Hub(MediaObject):
    """Abstract: a media mixing or routing point with HubPorts."""

    TYPE = "Hub"

    def ports(self) -> list[HubPort]:
        """The hub's ports."""
        return [c for c in self.children.values() if isinstance(c, HubPort)]

    def targets(self, source: HubPort) -> list[HubPort]:
        """The ports that send on what ``source`` receives (none: this hub does not route)."""
        return []

    def feeders(self, sink: HubPort) -> list[HubPort]:
        """The ports whose input ``sink`` sends on."""
        return [port for port in self.ports() if sink in self.targets(port)]

    def get_gstreamer_dot(self, details: str | None = None) -> str:
        """A DOT graph of the hub and its ports."""
        lines = [f'digraph "{self.id}" {{', f'  "{self.id}" [label="{self.TYPE}", shape=box];']
        lines += [f'  "{port.id}" -> "{self.id}";' for port in self.ports()]
        return "\n".join([*lines, "}"]) + "\n"

    def dump_gstreamer_dot(self, details: str | None = None) -> None:
        """Write the DOT graph as KMS does."""
        write_dot(self, self.get_gstreamer_dot(details))


class HubPort(MediaElement):
    """A hub's connection point: an element whose parent is the hub."""

    TYPE = "HubPort"

    @property
    def hub(self) -> Hub:
        """The hub this port belongs to."""
        assert isinstance(self.parent, Hub)
        return self.parent

    def receive_media(self, media_type: str, packet: Any) -> None:
        """Media entering the port goes through the hub to the ports it routes to."""
        if self._busy:
            return
        self.mark_flow("in", media_type, True)
        self._busy = True
        try:
            for port in self.hub.targets(self):
                if port.has_sinks(media_type):
                    port.mark_flow("out", media_type, True)
                port.forward(media_type, packet)
        finally:
            self._busy = False

    def video_source_changed(self) -> None:
        """A new source into this port: the ports it is routed to send on its video."""
        for port in self.hub.targets(self):
            port.video_sinks_restarted()

    def source_ended(self) -> None:
        """One input of the hub ended: the hub goes on with the others (no EOS leaves it)."""

    def produce_keyframe(self, media_type: str) -> None:
        """A sink of this port wants a keyframe: ask the producers of the ports feeding it."""
        for port in self.hub.feeders(self):
            port.ask_keyframe(media_type)


_NO_MIXING = "mixing and compositing media is not supported by kurento-emulator yet"


class Composite(Hub):
    """Mixes video of its ports into a grid."""

    TYPE = "Composite"
    NOT_YET = _NO_MIXING


class Mixer(Hub):
    """Mixes media of its ports."""

    TYPE = "Mixer"
    NOT_YET = _NO_MIXING


class AlphaBlending(Hub):
    """Blends video of its ports."""

    TYPE = "AlphaBlending"
    NOT_YET = _NO_MIXING


class Dispatcher(Hub):
    """Routes one port's media to another: each sink port has one source port."""

    TYPE = "Dispatcher"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_of_port: dict[str, HubPort] = {}

    def connect(self, source: HubPort, sink: HubPort) -> None:
        """Send what ``source`` receives out of ``sink`` (replacing the sink's previous source)."""
        self.source_of_port[sink.id] = source
        self.log.info("= routing %s -> %s", source.id, sink.id)
        sink.video_sinks_restarted()

    def targets(self, source: HubPort) -> list[HubPort]:
        """The ports routed from ``source``."""
        return [p for p in self.ports() if self.source_of_port.get(p.id) is source]


class DispatcherOneToMany(Hub):
    """Routes one source port's media to every other port."""

    TYPE = "DispatcherOneToMany"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source: HubPort | None = None

    def set_source(self, source: HubPort) -> None:
        """Make ``source`` the port every other port sends on."""
        self.source = source
        self.log.info("= source %s", source.id)
        for port in self.targets(source):
            port.video_sinks_restarted()

    def remove_source(self) -> None:
        """Stop routing."""
        self.source = None

    def targets(self, source: HubPort) -> list[HubPort]:
        """Every other port, when ``source`` is the source."""
        if source is not self.source:
            return []
        return [p for p in self.ports() if p is not source]
