"""MediaObject: what every Kurento object shares (KMD core ``MediaObject``).

Objects never see JSON: dispatch hands them validated Python values (by KMD parameter name, turned
into snake_case keyword arguments) and serialises what they return.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from emulator.media.http_post import HttpEndpoints
from emulator.media.services import MediaServices
from emulator.settings import Settings
from protocol.errors import MediaObjectTagKeyNotFound
from protocol.types import TypeRegistry, complex_value

EventEmitter = Callable[["MediaObject", str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ObjectServices:
    """What objects may use of the server: narrow, passed to every object at creation."""

    types: TypeRegistry
    settings: Settings
    emit: EventEmitter
    media_services: MediaServices
    """The media plane's shared resources: port range, certificate, transcoders, capture."""
    http_endpoints: HttpEndpoints
    """The HTTP endpoint listener: HttpPostEndpoints register their upload URLs there."""


class ObjectLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each line with the object's type and short id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Add the object prefix."""
        extra = self.extra or {}
        return f"{extra.get('prefix', '')} {msg}", kwargs


class MediaObject:
    """Base of every Kurento object: identity, name, tags, parent and children."""

    TYPE: ClassVar[str] = "MediaObject"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {}
    """Values of plain stored properties (KMD name -> default); merged along the class tree."""
    NOT_YET: ClassVar[str] = ""
    """Why this class's own operations are missing, for the 40006 message; empty if complete."""

    def __init__(
        self,
        services: ObjectServices,
        object_id: str,
        parent: MediaObject | None,
        params: dict[str, Any],
        given: frozenset[str] = frozenset(),
    ) -> None:
        self.services = services
        self.id = object_id
        self.parent = parent
        self.children: dict[str, MediaObject] = {}
        self.params = params
        """The constructor's values by KMD name, KMD defaults filled in for absent ones."""
        self.given = given
        """The constructor parameters the client actually sent (a config file may stand in for
        the others, as Composite.conf.ini does for the Composite's size)."""
        self.name = object_id
        self.tags: dict[str, str] = {}
        self.send_tags_in_events = False
        self.creation_time = int(time.time())
        self.released = False
        self.properties: dict[str, Any] = {}
        for cls in reversed(type(self).__mro__):
            self.properties.update(copy.deepcopy(getattr(cls, "PROPERTY_DEFAULTS", {})))
        short = object_id.rsplit("/", 1)[-1][:8]
        self.log = ObjectLogger(
            logging.getLogger(f"emulator.objects.{self.TYPE}"), {"prefix": f"{self.TYPE} {short}"}
        )

    @property
    def pipeline(self) -> MediaObject | None:
        """The pipeline this object belongs to (a pipeline is its own)."""
        node: MediaObject | None = self
        while node is not None:
            if node.TYPE == "MediaPipeline":
                return node
            node = node.parent
        return None

    def emit(self, event: str, **fields: Any) -> None:
        """Raise an event from this object (delivered to the sessions subscribed to it)."""
        if not self.released:
            self.services.emit(self, event, fields)

    def event_tags(self) -> list[dict[str, Any]]:
        """``tags`` of this object's events: filled only with ``sendTagsInEvents``."""
        return self.get_tags() if self.send_tags_in_events else []

    async def on_release(self) -> None:
        """Free what the object holds (sockets, tasks); called once, children first."""

    # -- KMD MediaObject properties -------------------------------------------------------------

    def get_media_pipeline(self) -> MediaObject | None:
        """``mediaPipeline`` (a pipeline returns itself)."""
        return self.pipeline

    def get_parent(self) -> MediaObject | None:
        """``parent``: null for pipelines."""
        return self.parent

    def get_id(self) -> str:
        """``id``."""
        return self.id

    def get_children(self) -> list[MediaObject]:
        """``children``: direct children."""
        return list(self.children.values())

    def get_name(self) -> str:
        """``name``: the id until set."""
        return self.name

    def set_name(self, name: str) -> None:
        """Set ``name``."""
        self.name = name

    def get_send_tags_in_events(self) -> bool:
        """``sendTagsInEvents``."""
        return self.send_tags_in_events

    def set_send_tags_in_events(self, send_tags_in_events: bool) -> None:
        """Set ``sendTagsInEvents``."""
        self.send_tags_in_events = send_tags_in_events

    def get_creation_time(self) -> int:
        """``creationTime``: UNIX seconds."""
        return self.creation_time

    # -- KMD MediaObject methods ----------------------------------------------------------------

    def add_tag(self, key: str, value: str) -> None:
        """Add or replace a tag."""
        self.tags[key] = value

    def remove_tag(self, key: str) -> None:
        """Remove a tag; a missing key is not an error (KMS)."""
        self.tags.pop(key, None)

    def get_tag(self, key: str) -> str:
        """A tag's value.

        Raises:
            MediaObjectTagKeyNotFound: 40110 for a key never added.
        """
        if key not in self.tags:
            raise MediaObjectTagKeyNotFound(f"Tag key not found: {key!r}")
        return self.tags[key]

    def get_tags(self) -> list[dict[str, Any]]:
        """Every tag as ``Tag`` values, sorted by key (KMS keeps them in a std::map)."""
        return [complex_value("Tag", key=k, value=v) for k, v in sorted(self.tags.items())]
