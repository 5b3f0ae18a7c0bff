"""WebRtcEndpoint (KMD elements): ICE, DTLS-SRTP and data channels towards a browser."""

from __future__ import annotations

from typing import Any, ClassVar

from emulator.objects.sdp_endpoint import BaseRtpEndpoint


class WebRtcEndpoint(BaseRtpEndpoint):
    """A WebRTC peer of the server; its media plane is provided by ``emulator.media``."""

    TYPE = "WebRtcEndpoint"
    NOT_YET = "WebRTC negotiation and media (ICE, DTLS-SRTP) are not available in this build"
    PROPERTY_DEFAULTS: ClassVar[dict[str, Any]] = {
        "stunServerAddress": "",
        "stunServerPort": 3478,
        "turnUrl": "",
        "externalIPv4": "",
        "externalIPv6": "",
        "networkInterfaces": "",
        "iceTcp": True,
        "ICECandidatePairs": [],
        "IceConnectionState": [],
        "DtlsConnectionState": [],
    }
