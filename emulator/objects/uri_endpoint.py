"""UriEndpoint (KMD core): the base of PlayerEndpoint and RecorderEndpoint.

A UriEndpoint reads or writes one URI. What they share, as KMS's ``UriEndpointImpl``: the ``uri``
(a path without a scheme is relative to ``UriEndpoint.conf.ini``'s ``defaultPath``, setting
``default_path``), the ``state`` (``STOP``, ``START``, ``PAUSE``) with ``UriEndpointStateChanged``
on every change, ``pause``/``stop``; what fails after the call returned is KMS's ``Error`` event
(``MediaElement.raise_error``: ``RESOURCE_ERROR_OPEN``, ``STREAM_ERROR_DECODE``...). Subclasses do
the media work in ``on_pause`` and ``on_stop``.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar

from emulator.objects.media_element import Endpoint
from protocol.errors import MediaObjectIllegalParamError, UriPathFileNotFound

STATES = ("STOP", "START", "PAUSE")
SCHEMES = ("file", "http", "https", "rtsp")


def resolve_uri(uri: str, default_path: str) -> str:
    """The absolute URI: one without a scheme is taken relative to ``default_path``.

    Raises:
        UriPathFileNotFound: 40600 for an empty URI or a scheme the endpoints cannot use.
    """
    text = uri.strip()
    if not text:
        raise UriPathFileNotFound("URI is empty: give file://, http(s):// or rtsp:// URI")
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if not scheme:
        return default_path.rstrip("/") + "/" + text.lstrip("/")
    if scheme not in SCHEMES:
        raise UriPathFileNotFound(
            f"URI scheme {scheme!r} is not supported in {text!r}: use {', '.join(SCHEMES)}"
        )
    return text


def file_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (percent-decoded), None for other schemes."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    return Path(urllib.parse.unquote(parts.netloc + parts.path))


def confine_file(uri: str, roots: str) -> None:
    """Refuse a ``file://`` URI that lies outside the ``file_roots`` folders (comma list; empty:
    anywhere, as KMS). ``..`` and symbolic links are resolved first, so neither leads out.

    Raises:
        MediaObjectIllegalParamError: 40107 naming the resolved path and the roots.
    """
    folders = [root.strip() for root in roots.split(",") if root.strip()]
    path = file_path(uri)
    if path is None or not folders:
        return
    resolved = Path(os.path.realpath(path))
    for folder in folders:
        if resolved.is_relative_to(os.path.realpath(folder)):
            return
    raise MediaObjectIllegalParamError(
        f"uri {uri!r} resolves to {str(resolved)!r}, outside the folders files may be read "
        f"from or written to ({', '.join(folders)}; setting file_roots)"
    )


class UriEndpoint(Endpoint):
    """Abstract: an endpoint reading or writing a URI."""

    TYPE = "UriEndpoint"
    STATE_EVENT: ClassVar[str] = "UriEndpointStateChanged"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default_path = self.services.settings.default_path
        self.properties["uri"] = resolve_uri(str(self.params.get("uri", "")), default_path)
        self.check_file_roots()
        self.properties["state"] = "STOP"

    def check_file_roots(self) -> None:
        """Refuse a ``file://`` URI outside ``file_roots`` (40107)."""
        confine_file(self.uri, self.services.settings.file_roots)

    @property
    def uri(self) -> str:
        """The absolute URI this endpoint reads or writes."""
        return str(self.properties["uri"])

    @property
    def state(self) -> str:
        """``STOP``, ``START`` or ``PAUSE``."""
        return str(self.properties["state"])

    def set_uri_state(self, state: str) -> None:
        """Change the state and raise ``UriEndpointStateChanged`` (nothing when unchanged)."""
        assert state in STATES
        if self.properties["state"] == state:
            return
        self.log.info("= state %s -> %s", self.properties["state"], state)
        self.properties["state"] = state
        self.emit(self.STATE_EVENT, state=state)

    # -- KMD operations ----------------------------------------------------------------------

    async def pause(self) -> None:
        """KMD pause: hold playing or recording where it is."""
        if self.state == "START":
            await self.on_pause()
            self.set_uri_state("PAUSE")

    async def stop(self) -> None:
        """KMD stop: end playing or recording (a recording's file is complete afterwards)."""
        if self.state != "STOP":
            await self.on_stop()
            self.set_uri_state("STOP")

    async def on_release(self) -> None:
        """Stop what runs before the element goes (a recording is finished, not lost)."""
        if self.state != "STOP":
            await self.on_stop()
            self.properties["state"] = "STOP"
        await super().on_release()

    # -- what subclasses do ------------------------------------------------------------------

    async def on_pause(self) -> None:
        """Hold the media work (subclasses)."""

    async def on_stop(self) -> None:
        """End the media work and free what it holds (subclasses)."""
