"""Hub and HubPort (KMD core) and the hubs of the elements module.

A hub's ports are its children (ids ``<hub id>/<uuid>_kurento.HubPort``). Media entering a port
(from the element connected to it) goes to the hub, which decides which ports send it on:
Dispatcher routes one port to another, DispatcherOneToMany routes its source port to every other
port. Composite decodes, mixes and composes (``emulator/media/mixing.py``): each port sends out
the mix of the other ports' audio and the grid of every port's video. Mixer and AlphaBlending are
refused at ``create`` (40006): their routing and blending are not implemented.
"""

from __future__ import annotations

from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.mixing import CompositeFormat, CompositeMedia, MixPort
from emulator.objects.media_element import MediaElement
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import write_dot
from protocol.errors import KurentoNotImplemented
from protocol.sdp import Codec


class Hub(MediaObject):
    """Abstract: a media mixing or routing point with HubPorts."""

    TYPE = "Hub"

    def ports(self) -> list[HubPort]:
        """The hub's ports."""
        return [c for c in self.children.values() if isinstance(c, HubPort)]

    def targets(self, source: HubPort) -> list[HubPort]:
        """The ports that send on what ``source`` receives (none: this hub does not route)."""
        return []

    def port_received(self, port: HubPort, media_type: str, packet: Any) -> None:
        """Media entering ``port``: the ports this hub routes it to send it on."""
        port.mark_flow("in", media_type, True)
        for target in self.targets(port):
            if target.has_sinks(media_type):
                target.mark_flow("out", media_type, True)
            target.forward(media_type, packet)

    def port_wants_keyframe(self, port: HubPort, media_type: str) -> None:
        """A sink of ``port`` wants a keyframe: ask the producers of the ports feeding it."""
        for feeder in self.feeders(port):
            feeder.ask_keyframe(media_type)

    def port_left(self, port: HubPort) -> None:
        """``port`` is being released."""

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
        self._busy = True
        try:
            self.hub.port_received(self, media_type, packet)
        finally:
            self._busy = False

    def video_source_changed(self) -> None:
        """A new source into this port: the ports it is routed to send on its video."""
        for port in self.hub.targets(self):
            port.video_sinks_restarted()

    def source_ended(self) -> None:
        """One input of the hub ended: the hub goes on with the others (no EOS leaves it)."""

    def produce_keyframe(self, media_type: str) -> None:
        """A sink of this port wants a keyframe: the hub decides who makes it."""
        self.hub.port_wants_keyframe(self, media_type)

    async def on_release(self) -> None:
        """The hub forgets the port first (its input leaves mixes and grids)."""
        self.hub.port_left(self)
        await super().on_release()

    # -- MixPort: what a Composite's media asks and tells (on the event loop) ----------------------

    def wants(self, kind: str) -> list[Codec] | None:
        """The codecs the port's sinks negotiated (``[]``: any); None without sinks."""
        media_type = kind.upper()
        if not self.has_sinks(media_type):
            return None
        return [c for sink in self._sinks.get(media_type, ()) for c in sink.sink_codecs(media_type)]

    def mixed(self, kind: str, packet: MediaPacket) -> None:
        """The hub's output for this port: to its sinks."""
        media_type = kind.upper()
        if self.has_sinks(media_type):
            self.mark_flow("out", media_type, True)
            self.forward(media_type, packet)

    def keyframe_needed(self) -> None:
        """The hub's decoder needs a keyframe of what feeds this port."""
        self.ask_keyframe("VIDEO")

    def flow_stopped(self, direction: str, kind: str) -> None:
        """Nothing went in or out for the flow timeout: MediaFlow*StateChanged NOT_FLOWING."""
        self.mark_flow(direction, kind.upper(), False)


_NOT_MIXED = (
    "{hub} is not implemented by kurento-emulator ({what}); use Composite, which mixes audio "
    "and composes video, or Dispatcher/DispatcherOneToMany, which route"
)


class Composite(Hub):
    """Mixes the audio of its ports (each port hears the others) and composes their video into
    a grid of ``width`` x ``height`` at ``framerate`` (KMD elements Composite)."""

    TYPE = "Composite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fmt = CompositeFormat(
            int(self.params.get("width") or 800),
            int(self.params.get("height") or 600),
            int(self.params.get("framerate") or 15),
            self.services.settings.media_flow_timeout,
        )
        short = self.id.rsplit("/", 1)[-1][:8]
        self.media = CompositeMedia(short, fmt, self._mix_ports)

    def _mix_ports(self) -> list[MixPort]:
        return list(self.ports())

    def port_received(self, port: HubPort, media_type: str, packet: Any) -> None:
        """Audio and video entering a port go into the mix and the grid."""
        if media_type in ("AUDIO", "VIDEO") and isinstance(packet, MediaPacket):
            port.mark_flow("in", media_type, True)
            self.media.feed(port, media_type.lower(), packet)

    def port_wants_keyframe(self, port: HubPort, media_type: str) -> None:
        """The grid's encoder for the port's codec makes the next picture a keyframe."""
        if media_type == "VIDEO":
            self.media.keyframe_wanted(port)

    def port_left(self, port: HubPort) -> None:
        """The port's input leaves the mix and its cell the grid."""
        self.media.remove(port)

    async def on_release(self) -> None:
        """Stop the mixing threads."""
        await self.media.close()
        await super().on_release()


class Mixer(Hub):
    """KMD Mixer: refused at ``create`` (40006), its routing is not implemented."""

    TYPE = "Mixer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise KurentoNotImplemented(
            _NOT_MIXED.format(hub="Mixer", what="connect(media, source, sink) routing")
        )


class AlphaBlending(Hub):
    """KMD AlphaBlending: refused at ``create`` (40006), its blending is not implemented."""

    TYPE = "AlphaBlending"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise KurentoNotImplemented(
            _NOT_MIXED.format(
                hub="AlphaBlending", what="setMaster/setPortProperties video blending"
            )
        )


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
