"""Video bitrate policy for REMB between legs (BaseRtpEndpoint KMD, "Bitrate management").

A forwarding server does not encode, so it controls bitrate the way KMS does for passthrough
video: each sink leg knows how much its remote receiver takes (the REMB it gets, else
``rembOnConnect``) within its ``min/maxVideoSendBandwidth``; the source leg sends its remote
sender a REMB with the lowest of its sinks' figures, within its ``min/maxVideoRecvBandwidth``.
Properties are in kbps, REMB in bps.
"""

from __future__ import annotations

MIN_RECV_KBPS = 30
"""KMD minVideoRecvBandwidth: "the actual minimum value is 30 kbps, even if a lower value is
set"."""


def send_limit(remote_remb: int, remb_on_connect: int, min_kbps: int, max_kbps: int) -> int:
    """What a sink leg can send to its remote peer, in bps.

    The remote receiver's REMB has priority over the configured minimum (KMD: "Kurento will always
    give priority to bitrate limitations specified by remote peers"); ``max_kbps`` 0 is unlimited.
    """
    value = remote_remb if remote_remb > 0 else max(remb_on_connect, min_kbps * 1000)
    return min(value, max_kbps * 1000) if max_kbps > 0 else value


def receive_target(sink_limits: list[int], min_kbps: int, max_kbps: int) -> int | None:
    """The REMB a source leg sends its remote sender, in bps; None when nothing limits it."""
    if not sink_limits and max_kbps <= 0:
        return None
    value = min(sink_limits) if sink_limits else max_kbps * 1000
    if max_kbps > 0:
        value = min(value, max_kbps * 1000)
    return max(value, max(min_kbps, MIN_RECV_KBPS) * 1000)
