"""The flow and media-state timeouts come from the settings (``media_flow_timeout``,
``media_state_timeout``), not from constants."""

from __future__ import annotations

import time
from typing import Any

from emulator.app import running_emulator
from emulator.media.rtp.packet import RtpView
from emulator.media.rtp.streams import InboundStream
from emulator.media.session.rtp import RtpSession, SessionTimeouts
from emulator.transport.client import KurentoClient
from tests.conftest import make_settings


class _Owner:
    """Records the flow changes a session reports."""

    def __init__(self) -> None:
        self.flows: list[tuple[str, str, bool]] = []

    def mark_flow(self, direction: str, media_type: str, flowing: bool) -> None:
        self.flows.append((direction, media_type, flowing))

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _session_silent_for(seconds: float, timeouts: SessionTimeouts) -> _Owner:
    owner = _Owner()
    session = RtpSession(owner, "endpoint", None, timeouts)  # type: ignore[arg-type]
    stream = InboundStream(1234, 48000, "audio")
    stream.received(RtpView(b"\x80" * 12, 111, False, 1, 0, 1234, 12, -1), 0.0)
    session.inbound[1234] = stream
    now = time.monotonic()
    stream.last_arrival = now - seconds
    session._check_flows(now)
    return owner


def test_flow_timeout_is_the_sessions_own() -> None:
    """Five silent seconds end the flow with the default 2 s, not with 10 s configured."""
    assert ("in", "AUDIO", False) in _session_silent_for(5, SessionTimeouts()).flows
    assert _session_silent_for(5, SessionTimeouts(flow=10)).flows == []


async def test_endpoints_take_the_timeouts_from_the_settings() -> None:
    """An RtpEndpoint's media (and a WebRtcEndpoint's, built the same way) gets the server's
    configured timeouts."""
    settings = make_settings(
        media_flow_timeout=7.5, media_state_timeout=12, network_interfaces="lo"
    )
    async with (
        running_emulator(settings) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("RtpEndpoint")
        await endpoint.invoke("generateOffer")
        media = server.media_set.lookup(endpoint.id).media  # type: ignore[attr-defined]
        assert media.timeouts == SessionTimeouts(flow=7.5, rtcp=12)
