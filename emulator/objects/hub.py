"""Hub and HubPort (KMD core) and the hubs of the elements module.

A hub's ports are its children (ids ``<hub id>/<uuid>_kurento.HubPort``). Media entering a port
(from the element connected to it) goes to the hub, which decides which ports send it on:
Dispatcher routes one port to another, DispatcherOneToMany routes its source port to every other
port. Composite, AlphaBlending and Mixer decode and mix (``emulator/media/mixing.py``): each
port sends out the mix of the audio it hears, and the composed picture (Composite's grid,
AlphaBlending's blend) or, in a Mixer, the video routed to it.
"""

from __future__ import annotations

from typing import Any

from emulator.media.codecs.coders import EncoderBitrates
from emulator.media.flow import MediaPacket
from emulator.media.mixing import (
    BlendLayout,
    GridLayout,
    HubMedia,
    Layout,
    Mix,
    MixFormat,
    MixPort,
    Placement,
)
from emulator.objects.media_element import MediaElement
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import write_dot
from protocol.errors import MediaObjectIllegalParamError, UnsupportedMediaType
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

    def port_stopped_flowing(self, port: HubPort, media_type: str) -> None:
        """What ``port`` received stopped: the ports routed from it stop sending it."""
        for target in self.targets(port):
            target.mark_flow("out", media_type, False)

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

    def source_stopped_flowing(self, media_type: str) -> None:
        """The port's input stopped: the hub decides what stops with it."""
        self.mark_flow("in", media_type, False)
        self.hub.port_stopped_flowing(self, media_type)

    def produce_keyframe(self, media_type: str) -> None:
        """A sink of this port wants a keyframe: the hub decides who makes it."""
        self.hub.port_wants_keyframe(self, media_type)

    async def on_release(self) -> None:
        """The hub forgets the port first (its input leaves mixes and grids)."""
        self.hub.port_left(self)
        await super().on_release()

    # -- MixPort: what a mixing hub's media asks and tells (on the event loop) ---------------------

    def wants(self, kind: str) -> list[Codec] | None:
        """The codecs the port's sinks negotiated (``[]``: any); None without sinks."""
        media_type = kind.upper()
        if not self.has_sinks(media_type):
            return None
        return self.codecs_taken_by_sinks(media_type)

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


class MixingHub(Hub):
    """A hub that decodes its ports' media and sends each port a mix (``HubMedia``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.services.settings
        self.media = HubMedia(
            self.id.rsplit("/", 1)[-1][:8],
            MixFormat(
                self.framerate(),
                settings.media_flow_timeout,
                EncoderBitrates(
                    settings.encoder_bitrate,
                    settings.min_encoder_bitrate,
                    settings.max_encoder_bitrate,
                ),
            ),
            self._mix_ports,
            self.mix_of,
            self.layout(),
        )

    def framerate(self) -> int:
        """Pictures per second of the video output."""
        return 15

    def layout(self) -> Layout | None:
        """How the video output is composed (None: this hub routes video instead)."""
        return None

    def mix_of(self, port: MixPort, sends_audio: bool) -> Mix | None:
        """KMS's kmsaudiomixer: each port hears every other port (all of them if it sends no
        audio itself)."""
        return Mix(minus=port if sends_audio else None)

    def _mix_ports(self) -> list[MixPort]:
        return list(self.ports())

    def port_received(self, port: HubPort, media_type: str, packet: Any) -> None:
        """Audio and video entering a port go into the mixes and the picture."""
        if media_type in ("AUDIO", "VIDEO") and isinstance(packet, MediaPacket):
            port.mark_flow("in", media_type, True)
            self.media.feed(port, media_type.lower(), packet)

    def port_stopped_flowing(self, port: HubPort, media_type: str) -> None:
        """The mix goes on with the other ports (the mixing clock marks what stops)."""

    def port_wants_keyframe(self, port: HubPort, media_type: str) -> None:
        """The picture's encoder for the port's codec makes the next picture a keyframe."""
        if media_type == "VIDEO":
            self.media.keyframe_wanted(port)

    def port_left(self, port: HubPort) -> None:
        """The port's input leaves the mixes and the picture."""
        self.media.remove(port)

    def own_port(self, port: HubPort, name: str) -> HubPort:
        """``port``, checked to be one of this hub's.

        Raises:
            MediaObjectIllegalParamError: 40107 for a port of another hub.
        """
        if port.parent is not self:
            raise MediaObjectIllegalParamError(
                f"'{name}' must be a HubPort of this {self.TYPE}: {port.id} belongs to "
                f"{port.hub.id}"
            )
        return port

    async def on_release(self) -> None:
        """Stop the mixing threads."""
        await self.media.close()
        await super().on_release()


class Composite(MixingHub):
    """Mixes the audio of its ports (each port hears the others) and composes their video into
    a grid of ``width`` x ``height`` at ``framerate`` (KMD elements Composite)."""

    TYPE = "Composite"

    def framerate(self) -> int:
        """The ``framerate`` constructor parameter, else Composite.conf.ini's."""
        return self._configured("framerate", self.services.settings.composite_framerate)

    def layout(self) -> Layout | None:
        """A grid of ``width`` x ``height``: the constructor's, else Composite.conf.ini's."""
        settings = self.services.settings
        return GridLayout(
            self._configured("width", settings.composite_width),
            self._configured("height", settings.composite_height),
        )

    def _configured(self, name: str, configured: int) -> int:
        """The value the client gave at ``create``, else Composite.conf.ini's."""
        return int(self.params[name]) if name in self.given else configured


class Mixer(MixingHub):
    """KMD Mixer (KMS's ``selectablemixer``): ``connect(AUDIO, source, sink)`` adds the source's
    audio to the mix the sink port sends; ``connect(VIDEO, source, sink)`` routes the source's
    video to the sink port (one source at a time, not decoded)."""

    TYPE = "Mixer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.audio_sources: dict[HubPort, set[HubPort]] = {}
        self.video_source: dict[HubPort, HubPort] = {}
        super().__init__(*args, **kwargs)

    def connect(self, media: str, source: HubPort, sink: HubPort) -> None:
        """KMD Mixer.connect.

        Raises:
            UnsupportedMediaType: 40005 for DATA ("Invalid media type", as MixerImpl.cpp).
        """
        self.own_port(source, "source")
        self.own_port(sink, "sink")
        if media == "AUDIO":
            self.audio_sources.setdefault(sink, set()).add(source)
        elif media == "VIDEO":
            self.video_source[sink] = source
            sink.video_sinks_restarted()
        else:
            raise UnsupportedMediaType("Invalid media type")
        self.log.info("= %s %s -> %s", media, source.id, sink.id)

    def disconnect(self, media: str, source: HubPort, sink: HubPort) -> None:
        """KMD Mixer.disconnect: audio only, as KMS 7.3.

        Raises:
            UnsupportedMediaType: 40005 for VIDEO ("Video disconnection is not implemented yet",
                MixerImpl.cpp's answer) and DATA.
        """
        if media == "VIDEO":
            raise UnsupportedMediaType("Video disconnection is not implemented yet")
        if media != "AUDIO":
            raise UnsupportedMediaType("Invalid media type")
        self.audio_sources.get(sink, set()).discard(source)

    def mix_of(self, port: MixPort, sends_audio: bool) -> Mix | None:
        """The sources linked to the port, its own included if linked."""
        sources = self.audio_sources.get(port)  # type: ignore[call-overload]
        return Mix(sources=frozenset(sources)) if sources else None

    def targets(self, source: HubPort) -> list[HubPort]:
        """The ports whose video comes from ``source``."""
        return [p for p in self.ports() if self.video_source.get(p) is source]

    def port_received(self, port: HubPort, media_type: str, packet: Any) -> None:
        """Audio goes into the mixes; video is routed (``Hub.port_received``)."""
        if media_type == "VIDEO":
            Hub.port_received(self, port, media_type, packet)
        else:
            super().port_received(port, media_type, packet)

    def port_stopped_flowing(self, port: HubPort, media_type: str) -> None:
        """Video is routed (``Hub.port_stopped_flowing``); audio is mixed."""
        if media_type == "VIDEO":
            Hub.port_stopped_flowing(self, port, media_type)

    def port_wants_keyframe(self, port: HubPort, media_type: str) -> None:
        """Video is routed: the source port's producer makes the keyframe."""
        Hub.port_wants_keyframe(self, port, media_type)

    def port_left(self, port: HubPort) -> None:
        """The port leaves every link."""
        super().port_left(port)
        self.audio_sources.pop(port, None)
        self.video_source.pop(port, None)
        for sources in self.audio_sources.values():
            sources.discard(port)
        for sink in [s for s, src in self.video_source.items() if src is port]:
            del self.video_source[sink]


class AlphaBlending(MixingHub):
    """KMD AlphaBlending (KMS's ``alphablending``): the master port's picture sets the output
    size and is drawn whole; the others are scaled and placed by ``setPortProperties``; every
    port sends the blended video and the mix of the other ports' audio."""

    TYPE = "AlphaBlending"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.blend = BlendLayout()
        super().__init__(*args, **kwargs)

    def layout(self) -> Layout | None:
        """The blend: master and placements."""
        return self.blend

    def set_master(self, source: HubPort, z_order: int) -> None:
        """KMD setMaster: ``source`` is the background, drawn at ``zOrder``."""
        self.own_port(source, "source")
        self._set_blend(BlendLayout(source, z_order, self.blend.placements))
        self.log.info("= master %s (z-order %d)", source.id, z_order)

    def set_port_properties(
        self,
        relative_x: float,
        relative_y: float,
        z_order: int,
        relative_width: float,
        relative_height: float,
        port: HubPort,
    ) -> None:
        """KMD setPortProperties: position and size relative to the output (0..1), z-order."""
        self.own_port(port, "port")
        placement = Placement(relative_x, relative_y, relative_width, relative_height, z_order)
        placements = {**self.blend.placements, port: placement}
        self._set_blend(BlendLayout(self.blend.master, self.blend.master_z, placements))

    def port_left(self, port: HubPort) -> None:
        """The port leaves the blend."""
        super().port_left(port)
        placements = {p: v for p, v in self.blend.placements.items() if p is not port}
        master = None if self.blend.master is port else self.blend.master
        self._set_blend(BlendLayout(master, self.blend.master_z, placements))

    def _set_blend(self, blend: BlendLayout) -> None:
        self.blend = blend
        self.media.set_layout(blend)


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
        """Stop routing: the other ports stop sending what the source received."""
        if self.source is not None:
            for media_type in ("AUDIO", "VIDEO"):
                self.port_stopped_flowing(self.source, media_type)
        self.source = None

    def targets(self, source: HubPort) -> list[HubPort]:
        """Every other port, when ``source`` is the source."""
        if source is not self.source:
            return []
        return [p for p in self.ports() if p is not source]
