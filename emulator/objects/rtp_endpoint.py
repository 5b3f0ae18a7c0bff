"""RtpEndpoint (KMD elements): plain RTP/SDP, optionally SDES-SRTP, towards a PBX."""

from __future__ import annotations

from emulator.objects.sdp_endpoint import BaseRtpEndpoint


class RtpEndpoint(BaseRtpEndpoint):
    """A plain RTP peer of the server; its media plane is provided by ``emulator.media``."""

    TYPE = "RtpEndpoint"
    NOT_YET = "plain RTP negotiation and media are not available in this build"
