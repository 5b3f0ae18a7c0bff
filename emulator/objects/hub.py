"""Hub and HubPort (KMD core) and the hubs of the elements module.

A hub's ports are its children (ids ``<hub id>/<uuid>_kurento.HubPort``); media routing through a
hub belongs to the media plane.
"""

from __future__ import annotations

from emulator.objects.media_element import MediaElement
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import write_dot


class Hub(MediaObject):
    """Abstract: a media mixing or routing point with HubPorts."""

    TYPE = "Hub"

    def ports(self) -> list[HubPort]:
        """The hub's ports."""
        return [c for c in self.children.values() if isinstance(c, HubPort)]

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
    """Routes one port's media to another."""

    TYPE = "Dispatcher"
    NOT_YET = "media routing through Dispatcher is not available in this build"


class DispatcherOneToMany(Hub):
    """Routes one source port's media to every other port."""

    TYPE = "DispatcherOneToMany"
    NOT_YET = "media routing through DispatcherOneToMany is not available in this build"
