"""HttpEndpoint and HttpPostEndpoint (KMD elements): media uploaded with HTTP POST.

As KMS's ``HttpEndpointImpl``/``HttpPostEndpointImpl`` and its ``KmsHttpEPServer``:

- at creation the endpoint registers ``/<uuid>`` on the server's HTTP endpoint listener
  (``HttpEndpoint.conf.ini``: ``serverAddress``, ``serverPort`` 9091, ``announcedAddress``) and
  ``getUrl`` returns ``http://<announced address>:<port>/<uuid>``; a listener that cannot bind
  fails the create with 40300 HTTP_END_POINT_REGISTRATION_ERROR;
- the first POST raises ``MediaSessionStarted``; its body (multipart/form-data, the first part
  with a filename, or a raw body) is demuxed as it arrives and its VP8/H.264/Opus streams are
  sent to the connected sinks at the pace of their timestamps; ``EndOfStream`` when it has played;
- after an upload ends, the URL waits ``disconnectionTimeout`` seconds for the same client (its
  ``HttpEPCookie``) to POST again; then it expires: ``MediaSessionTerminated``, the URL is
  unregistered (404) and ``getUrl`` returns ``""``;
- a body that is not a media container gets HTTP 415 and KMS's ``Error`` event on the element
  (``STREAM_ERROR_TYPE_NOT_FOUND``); a body that breaks off inside gets ``STREAM_ERROR_DEMUX``.

Media is always sent as it was encoded (as with ``useEncodedMedia``): a sink that joins between
keyframes waits for the container's next keyframe.
"""

from __future__ import annotations

import asyncio
from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.http_post import DemuxError, HttpPostMedia, UploadRefused, UploadSink
from emulator.objects.sdp_endpoint import SessionEndpoint
from protocol.errors import HttpEndPointRegistrationError

MEDIA_TYPES = {"audio": "AUDIO", "video": "VIDEO"}


class HttpEndpoint(SessionEndpoint):
    """Abstract: media over HTTP, at a URL of the server's HTTP endpoint listener."""

    TYPE = "HttpEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disconnection_timeout = float(self.params.get("disconnectionTimeout", 2))
        self.session_started = False
        self.url = ""

    def get_url(self) -> str:
        """KMD getUrl: where clients send their requests; ``""`` once the URL expired."""
        return self.url


class HttpPostEndpoint(HttpEndpoint):
    """Receives a media file uploaded with HTTP POST and plays it into the pipeline."""

    TYPE = "HttpPostEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.media: HttpPostMedia | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._endpoints = self.services.http_endpoints
        try:
            self.url = self._endpoints.register(self)
        except OSError as exc:
            self.graph.remove(self)  # the create fails: the element never existed
            raise HttpEndPointRegistrationError(
                f"Cannot register HttpPostEndPoint: the HTTP endpoint listener cannot bind "
                f"({exc}); check http_endpoint_address and http_endpoint_port"
            ) from exc
        self.log.info("= url %s", self.url)

    # -- UploadTarget (called by the listener) --------------------------------------------------

    def open_upload(self) -> UploadSink:
        """A POST begins: its body becomes this endpoint's media.

        Raises:
            UploadRefused: 409 while an earlier upload still plays.
        """
        if self.media is not None and self.media.running:
            raise UploadRefused(409, "an upload is already streaming to this endpoint")
        self._cancel_expiry()
        self.media = HttpPostMedia(self, self.id.rsplit("/", 1)[-1][:8])
        if not self.session_started:
            self.session_started = True
            self.emit("MediaSessionStarted")
        return self.media

    # -- MediaListener (HttpPostMedia, on the event loop) ---------------------------------------

    def media_packets(self, kind: str, packets: list[MediaPacket]) -> None:
        """One frame's packets: to every sink of that media type."""
        media_type = MEDIA_TYPES[kind]
        if self.has_sinks(media_type):
            self.mark_flow("out", media_type, True)
        for packet in packets:
            self.forward(media_type, packet)

    def media_ended(self) -> None:
        """The body has played: ``EndOfStream``, and the URL waits for a reconnection."""
        self.own_media_ended()
        self._arm_expiry()

    def media_failed(self, error: DemuxError) -> None:
        """Not media, or broken off: KMS's ``Error`` event; the URL waits for another try."""
        error_type = "STREAM_ERROR_DEMUX" if error.opened else "STREAM_ERROR_TYPE_NOT_FOUND"
        self.stop_flowing_out()
        self.raise_error(error_type, str(error))
        self._arm_expiry()

    # -- keyframes -------------------------------------------------------------------------------

    def produce_keyframe(self, media_type: str) -> None:
        """A sink wants a keyframe: the file's next one is the earliest (nothing to ask)."""

    # -- the URL's life --------------------------------------------------------------------------

    def _arm_expiry(self) -> None:
        self._cancel_expiry()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self.disconnection_timeout, self._expire)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _expire(self) -> None:
        """No reconnection within ``disconnectionTimeout``: the URL goes, the session ends."""
        self._expiry = None
        self.log.info("= url expired after %.1f s without a connection", self.disconnection_timeout)
        self._unregister()
        if self.session_started:
            self.session_started = False
            self.emit("MediaSessionTerminated")

    def _unregister(self) -> None:
        if self.url:
            self._endpoints.unregister(self.url)
            self.url = ""

    async def on_release(self) -> None:
        """Stop playing and give the URL back."""
        self._cancel_expiry()
        self._unregister()
        if self.media is not None:
            await self.media.stop()
        await super().on_release()
