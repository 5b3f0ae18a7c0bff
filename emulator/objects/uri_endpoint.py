"""UriEndpoint, PlayerEndpoint, RecorderEndpoint and HttpPostEndpoint (KMD core and elements).

The emulator keeps their control-plane state (uri, state) but does not play, record or accept HTTP
uploads: those operations answer 40006 NOT_IMPLEMENTED naming what is missing.
"""

from __future__ import annotations

from typing import Any

from emulator.objects.media_element import Endpoint
from emulator.objects.sdp_endpoint import SessionEndpoint


class UriEndpoint(Endpoint):
    """Abstract: an endpoint reading or writing a URI."""

    TYPE = "UriEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.properties["uri"] = self.params.get("uri", "")
        self.properties["state"] = "STOP"


class PlayerEndpoint(UriEndpoint):
    """Plays a URI into the pipeline."""

    TYPE = "PlayerEndpoint"
    NOT_YET = "playing media files and streams is not supported by kurento-emulator"


class RecorderEndpoint(UriEndpoint):
    """Records what it receives to a URI."""

    TYPE = "RecorderEndpoint"
    NOT_YET = "recording to files is not supported by kurento-emulator"


class HttpEndpoint(SessionEndpoint):
    """Abstract: media over HTTP."""

    TYPE = "HttpEndpoint"
    NOT_YET = "HTTP media endpoints are not supported by kurento-emulator"


class HttpPostEndpoint(HttpEndpoint):
    """Receives media uploaded with HTTP POST."""

    TYPE = "HttpPostEndpoint"
