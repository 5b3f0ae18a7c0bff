"""RtpEndpoints in /metrics and under fault injection, as WebRtcEndpoints are."""

from __future__ import annotations

import base64
import secrets

from protocol.sdp import SessionDescription
from tests.conftest import make_settings
from tests.media.rtp_peers import RtpSender, peer_sdp, udp_peer
from tests.observability.admin_http import http, metric, server_with_admin

PACKETS = 20
SDES = {"__module__": "kurento", "__type__": "SDES", "crypto": "AES_128_CM_HMAC_SHA1_80"}


async def test_rtp_endpoint_counted_in_metrics_and_impaired_by_faults() -> None:
    """An RtpEndpoint looped to itself echoes a PBX's packets: /metrics counts them in and
    out (and keeps counting them once the endpoint is released), an ``rtp`` delay rule delays
    what it sends, and an SDES endpoint's authentication failures reach the SRTP counter."""
    settings = make_settings(
        network_interfaces="lo",
        admin_port=0,
        admin_host="127.0.0.1",
        fault_injection=True,
        faults=[{"kind": "rtp", "media": "AUDIO", "delay": 0.02}],
    )
    async with server_with_admin(settings) as (_, admin, client):
        pipeline = await client.create("MediaPipeline")
        echo = await pipeline.create("RtpEndpoint")
        await echo.connect(echo, "AUDIO")
        secure = await pipeline.create("RtpEndpoint", crypto=SDES)
        async with udp_peer() as pbx, udp_peer() as intruder:
            answer = await echo.invoke("processOffer", offer=peer_sdp(pbx.port))
            target = ("127.0.0.1", SessionDescription.parse(answer).media[0].port)
            sender = RtpSender(0)
            for _ in range(PACKETS):
                pbx.send(sender.packet(), target)
            echoed = [await pbx.next_rtp() for _ in range(PACKETS)]
            key = base64.b64encode(secrets.token_bytes(30)).decode()
            offer = peer_sdp(
                intruder.port,
                proto="RTP/SAVP",
                crypto=f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}",
            )
            answer = await secure.invoke("processOffer", offer=offer)
            secure_port = SessionDescription.parse(answer).media[0].port
            intruder.send(RtpSender(0).packet(), ("127.0.0.1", secure_port))  # not SRTP
            stats = await secure.invoke("getStats")
            assert stats[secure.id]["srtpFailures"] == 1
        assert {v.payload_type for v in echoed} == {0}
        _, text = await http(admin.url, "/metrics")
        assert metric(text, "kurento_rtp_packets_total", direction="in", kind="audio") == PACKETS
        assert metric(text, "kurento_rtp_packets_total", direction="out", kind="audio") == PACKETS
        assert metric(text, "kurento_rtp_bytes_total", direction="in", kind="audio") == (
            PACKETS * 160
        )
        assert metric(text, "kurento_srtp_failures_total") == 1
        assert metric(text, "kurento_fault_rtp_packets_total", action="delayed") == PACKETS
        assert metric(text, "kurento_faults_injected_total", kind="rtp") == 2  # per endpoint
        await echo.release()
        await secure.release()
        _, text = await http(admin.url, "/metrics")
        assert metric(text, "kurento_rtp_packets_total", direction="out", kind="audio") == PACKETS
        assert metric(text, "kurento_srtp_failures_total") == 1
