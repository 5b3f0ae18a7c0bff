"""SessionEndpoint, SdpEndpoint and BaseRtpEndpoint: what WebRtcEndpoint and RtpEndpoint share.

Negotiation and RTP live in ``emulator/media``; these classes hold the KMD properties with KMS's
defaults (protocol.md section 4: ``minVideoSendBandwidth`` 100 kbps, ``maxVideoSendBandwidth`` 500
kbps, ``mtu`` from ``BaseRtpEndpoint.conf.ini``, states ``DISCONNECTED`` until media connects).
"""

from __future__ import annotations

from typing import Any, ClassVar

from emulator.media.bitrate import receive_target, send_limit
from emulator.media.capture import PcapWriter
from emulator.media.services import MEDIA_SERVICE, MediaServices
from emulator.objects.media_element import Endpoint
from protocol.types import complex_value

REMB_DEFAULTS = {
    "packetsRecvIntervalTop": 100,
    "exponentialFactor": 0.04,
    "linealFactorGrade": 30.0,
    "decrementFactor": 0.5,
    "thresholdFactor": 0.8,
    "upLosses": 12,
    "rembOnConnect": 300000,
}


class SessionEndpoint(Endpoint):
    """Abstract: an endpoint with a media session (``MediaSessionStarted``/``Terminated``)."""

    TYPE = "SessionEndpoint"


class SdpEndpoint(SessionEndpoint):
    """Abstract: an endpoint negotiated with SDP offer/answer."""

    TYPE = "SdpEndpoint"
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
        """Close the capture file: it is complete once the element is gone."""
        self.stop_capture()
        await super().on_release()

    @property
    def media_services(self) -> MediaServices:
        """The media resources shared by every endpoint of the server."""
        services: MediaServices = self.services.extras[MEDIA_SERVICE]
        return services

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
