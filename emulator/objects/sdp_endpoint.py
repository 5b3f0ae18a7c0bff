"""SessionEndpoint, SdpEndpoint and BaseRtpEndpoint: what WebRtcEndpoint and RtpEndpoint share.

Negotiation and RTP live in ``emulator/media``; these classes hold the KMD properties with KMS's
defaults (protocol.md section 4: ``minVideoSendBandwidth`` 100 kbps, ``maxVideoSendBandwidth`` 500
kbps, ``mtu`` from ``BaseRtpEndpoint.conf.ini``, states ``DISCONNECTED`` until media connects).
"""

from __future__ import annotations

from typing import Any, ClassVar

from emulator.media.bitrate import receive_target, send_limit
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
