"""SessionEndpoint, SdpEndpoint and BaseRtpEndpoint: what WebRtcEndpoint and RtpEndpoint share.

Negotiation and RTP live in ``emulator/media``; these classes hold the KMD properties with KMS's
defaults (protocol.md section 4: ``minVideoSendBandwidth`` 100 kbps, ``maxVideoSendBandwidth`` 500
kbps, ``mtu`` from ``BaseRtpEndpoint.conf.ini``, states ``DISCONNECTED`` until media connects).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from emulator.media.codecs.transcoding import SinkTranscoding
from emulator.media.lab.capture import PcapWriter
from emulator.media.rtp.bitrate import receive_target, send_limit
from emulator.media.sdp.negotiation import MediaLine
from emulator.media.services import MediaServices, StreamMedia
from emulator.media.session.rtp import SessionTimeouts
from emulator.objects.media_element import ElementLink, Endpoint
from protocol.sdp import Codec
from protocol.types import complex_value

M = TypeVar("M", bound=StreamMedia)
STATE_EVENTS = {"mediaState": "MediaStateChanged", "connectionState": "ConnectionStateChanged"}

REMB_DEFAULTS = {
    "packetsRecvIntervalTop": 100,
    "exponentialFactor": 0.04,
    "linealFactorGrade": 30.0,
    "decrementFactor": 0.5,
    "thresholdFactor": 0.8,
    "upLosses": 12,
    "rembOnConnect": 300000,
}


class EndpointMedia(StreamMedia, Protocol):
    """What an RTP endpoint's media (``WebRtcMedia``, ``PlainRtpMedia``) offers its element."""

    transcoding: SinkTranscoding

    def send_keyframe_request(self) -> None:
        """PLI to the remote peer for the video it sends."""

    def await_keyframe(self, reason: str) -> None:
        """Ask the source for a keyframe until one has been sent to the peer."""

    def stop_keyframe_wait(self) -> None:
        """Stop asking (the video source went away)."""

    def stats(self, media_type: str | None) -> dict[str, Any]:
        """RTP stream stats entries by id."""

    def sending_line(self, kind: str) -> MediaLine | None:
        """The negotiated m-line this endpoint sends that kind on."""

    async def close(self) -> None:
        """Stop and free the sockets."""


class SessionEndpoint(Endpoint):
    """Abstract: an endpoint with a media session (``MediaSessionStarted``/``Terminated``)."""

    TYPE = "SessionEndpoint"


class SdpEndpoint(SessionEndpoint):
    """Abstract: an endpoint negotiated with SDP offer/answer."""

    TYPE = "SdpEndpoint"
    FEEDS_SINKS_FROM = "in"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {
        "maxAudioRecvBandwidth": 0,
        "maxVideoRecvBandwidth": 0,
    }


class BaseRtpEndpoint(SdpEndpoint):
    """Abstract: an SDP endpoint that carries RTP."""

    TYPE = "BaseRtpEndpoint"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {
        "minVideoRecvBandwidth": 0,
        "minVideoSendBandwidth": 100,
        "maxVideoSendBandwidth": 500,
        "mediaState": "DISCONNECTED",
        "connectionState": "DISCONNECTED",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.properties["mtu"] = self.services.settings.mtu
        self.properties["rembParams"] = complex_value("RembParams", **REMB_DEFAULTS)
        self.capture: PcapWriter | None = None
        self.session_started = False

    media: EndpointMedia | None = None
    """Created at the first negotiation (subclasses narrow the type)."""

    # -- session and states ------------------------------------------------------------------

    def session_started_now(self) -> None:
        """``MediaSessionStarted``, once, at the first completed negotiation."""
        if not self.session_started:
            self.session_started = True
            self.emit("MediaSessionStarted")

    def set_state(self, name: str, value: str) -> None:
        """Change mediaState/connectionState and raise its event; a connection that goes
        DISCONNECTED ends the media session (``MediaSessionTerminated``)."""
        old = self.properties[name]
        if old == value:
            return
        self.properties[name] = value
        self.log.info("= %s %s -> %s", name, old, value)
        self.emit(STATE_EVENTS[name], oldState=old, newState=value)
        if name == "connectionState" and value == "DISCONNECTED":
            self.emit("MediaSessionTerminated")
        if name == "connectionState":
            self.update_capture()

    # -- media path (MediaOwner) -------------------------------------------------------------

    def produce_keyframe(self, media_type: str) -> None:
        """A sink wants a keyframe: ask the remote peer (PLI)."""
        if self.media is not None and media_type == "VIDEO":
            self.media.send_keyframe_request()

    def video_source_changed(self) -> None:
        """A new video source: what we send our peer waits for its keyframe."""
        if self.media is not None:
            self.media.await_keyframe("a new video source")

    def video_sink_ready(self) -> None:
        """Our media can send video now (transport up, PBX answered): whatever the source sent
        before never reached the peer, so it starts with a keyframe."""
        if self.media is not None and self.graph.source_of(self, "VIDEO") is not None:
            self.media.await_keyframe("the transport came up")

    def keyframe_wanted(self, media_type: str) -> None:
        """The remote peer wants a keyframe of what we send: ask our source."""
        self.ask_keyframe(media_type)

    def request_keyframe(self) -> None:
        """KMD requestKeyframe: ask the upstream producer for a video keyframe."""
        self.ask_keyframe("VIDEO")

    def on_source_removed(self, link: ElementLink) -> None:
        """No more media of that type from the link: leave its transcoder, stop waiting for a
        keyframe."""
        if self.media is not None:
            self.media.transcoding.stop(link.media_type.lower())
            if link.media_type == "VIDEO":
                self.media.stop_keyframe_wait()

    def get_stats(self, media_type: str | None = None) -> dict[str, Any]:
        """The endpoint entry plus the media's stats from packet flow."""
        stats = super().get_stats(media_type)
        if self.media is not None:
            stats.update(self.media.stats(media_type))
        return stats

    # -- media capture ---------------------------------------------------------------------

    def update_capture(self) -> None:
        """Start or stop the pcap capture as the server filter and the ``capture`` tag say;
        it starts once the media is connected (the file names the selected addresses)."""
        service = self.media_services.capture
        wanted = service.wanted(self.id, self.name, self.tags)
        if wanted and self.capture is None and self.capture_ready():
            self.capture = service.open(self.id)
            self.install_tap(self.capture)
        elif not wanted and self.capture is not None:
            self.stop_capture()

    def stop_capture(self) -> None:
        """Remove the tap and close the file."""
        if self.capture is not None:
            self.install_tap(None)
            self.capture.close()
            self.capture = None

    def capture_ready(self) -> bool:
        """Whether the media transport is up, so that a tap can be installed."""
        return False

    def install_tap(self, writer: PcapWriter | None) -> None:
        """Show the media's plain packets to the writer (None: to nobody)."""

    def add_tag(self, key: str, value: str) -> None:
        """Add or replace a tag (``capture`` switches the pcap capture)."""
        super().add_tag(key, value)
        self.update_capture()

    def remove_tag(self, key: str) -> None:
        """Remove a tag (``capture`` switches the pcap capture)."""
        super().remove_tag(key)
        self.update_capture()

    async def on_release(self) -> None:
        """Close the media (sockets, ports), then the capture file: complete once it is gone."""
        if self.media is not None:
            await self.media.close()  # a plain RTP leg sends its RTCP BYE first
            self.media_services.retire(self.media)
        self.stop_capture()
        await super().on_release()

    def source_encoding_changed(self) -> None:
        """The video transcoded for this endpoint follows its source's new bounds."""
        if self.media is not None:
            self.media.transcoding.bounds_changed()

    def session_timeouts(self) -> SessionTimeouts:
        """Flow and media-state timeouts from the settings, for the endpoint's media."""
        return SessionTimeouts.from_settings(self.services.settings)

    def adopted(self, media: M) -> M:
        """The endpoint's new media, counted by the metrics and open to fault injection."""
        pipeline = self.pipeline
        self.media_services.adopt(media, self.id, pipeline.id if pipeline is not None else "")
        return media

    @property
    def media_services(self) -> MediaServices:
        """The media resources shared by every endpoint of the server."""
        return self.services.media_services

    def codecs_taken(self, media_type: str) -> list[Codec]:
        """The codecs the remote peer negotiated on the m-line we send ``media_type`` on."""
        line = self.media.sending_line(media_type.lower()) if self.media is not None else None
        return list(line.codecs) if line is not None else []

    def remote_video_remb(self) -> int | None:
        """The last REMB (bps) from the remote receiver of our video: 0 before any, None when
        this endpoint sends no video."""
        return None

    def video_send_limit(self) -> int | None:
        """What we can send our remote peer: its REMB within min/maxVideoSendBandwidth."""
        remb = self.remote_video_remb()
        if remb is None:
            return None
        props = self.properties
        start = int(props["rembParams"]["rembOnConnect"])
        return send_limit(
            remb, start, props["minVideoSendBandwidth"], props["maxVideoSendBandwidth"]
        )

    def video_receive_target(self) -> int | None:
        """The REMB (bps) for our remote sender: our sinks' lowest figure, within
        min/maxVideoRecvBandwidth."""
        props = self.properties
        return receive_target(
            self.sink_video_limits(), props["minVideoRecvBandwidth"], props["maxVideoRecvBandwidth"]
        )
