"""RtpEndpoint (KMD elements): plain RTP/SDP, optionally SDES-SRTP, towards a PBX.

The KMD interface and events live here; the media work is ``emulator.media.plain_rtp``. Unlike
WebRtcEndpoint (and KMS, which answers 40208), a negotiated RtpEndpoint accepts a new offer: a PBX
re-INVITEs to put a call on hold, move it to another address or change codec, and expects the same
local ports with the next ``o=`` version in the answer.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.lab.capture import PcapWriter
from emulator.media.plain_rtp import PlainRtpConfig, PlainRtpMedia
from emulator.media.sdp.sdes import SdesConfig, sdes_from_param
from emulator.objects.sdp_endpoint import BaseRtpEndpoint


class RtpEndpoint(BaseRtpEndpoint):
    """A plain RTP peer of the server (a PBX, a SIP phone, an RTP tool)."""

    TYPE = "RtpEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sdes: SdesConfig | None = sdes_from_param(self.params.get("crypto"))
        self.media: PlainRtpMedia | None = None

    # -- the media ---------------------------------------------------------------------------

    def _media(self) -> PlainRtpMedia:
        if self.media is None:
            transcoders = self.media_services.transcoders
            timeouts, mtu = self.session_timeouts(), int(self.properties["mtu"])
            media = PlainRtpMedia(self._config(), self, self.id, transcoders, timeouts, mtu)
            self.media = self.adopted(media)
        return self.media

    # -- capture (BaseRtpEndpoint hooks) ------------------------------------------------------

    def capture_ready(self) -> bool:
        """Capture starts at the first negotiation: the legs' ports exist from then on."""
        return self.media is not None and self.media.negotiated

    def install_tap(self, writer: PcapWriter | None) -> None:
        """Show every leg's clear RTP/RTCP to the writer (None: to nobody)."""
        if self.media is not None:
            self.media.tap = writer

    def _config(self) -> PlainRtpConfig:
        shared = self.media_services
        settings = shared.settings
        ipv6 = bool(self.params.get("useIpv6"))
        bind = settings.rtp_address or _first_address(
            shared.ice_policy(settings.network_interfaces, ipv6=ipv6).addresses(), ipv6
        )
        external = shared.external_ipv6 if ipv6 else shared.external_ipv4
        return PlainRtpConfig(
            ports=shared.rtp_ports or shared.ports,
            bind_address=bind,
            advertised_address=external or bind,
            sdes=self.sdes,
            latching=settings.rtp_latching,
            policy=shared.sdp_policy(),
            pollers=shared.pollers,
        )

    # -- SdpEndpoint -----------------------------------------------------------------------

    async def process_offer(self, offer: str) -> str:
        """Answer a remote offer (or re-offer)."""
        answer = await self._media().process_offer(offer)
        self.session_started_now()
        self.update_capture()
        return answer

    async def generate_offer(self, options: dict[str, Any] | None = None) -> str:
        """A local offer: audio and video unless OfferOptions says otherwise."""
        options = options or {}
        return await self._media().generate_offer(
            audio=options.get("offerToReceiveAudio", True),
            video=options.get("offerToReceiveVideo", True),
        )

    async def process_answer(self, answer: str) -> str:
        """Apply the remote answer to the local offer."""
        local = await self._media().process_answer(answer)
        self.session_started_now()
        self.update_capture()
        return local

    def get_local_session_descriptor(self) -> str:
        """The local SDP."""
        return self._media().negotiation.local()

    def get_remote_session_descriptor(self) -> str:
        """The remote SDP."""
        return self._media().negotiation.remote()

    # -- media path (MediaOwner) -------------------------------------------------------------

    def receive_media(self, media_type: str, packet: Any) -> None:
        """A packet from this endpoint's source: send it to the remote RTP peer."""
        media = self.media
        if media is not None and isinstance(packet, MediaPacket) and media.send_media(packet):
            self.mark_flow("out", media_type, True)

    def data_received(self, label: str, message: str | bytes) -> None:
        """Plain RTP has no data channels."""

    def get_stats(self, media_type: str | None = None) -> dict[str, Any]:
        """The endpoint entry (with the symmetric-RTP drop count) plus RTP stream stats."""
        stats = super().get_stats(media_type)
        if self.media is not None:
            stats[self.id]["foreignSourceDrops"] = self.media.dropped_foreign
            stats[self.id]["srtpFailures"] = self.media.srtp_failures
        return stats


def _first_address(addresses: list[str], ipv6: bool) -> str:
    """The address a PBX can reach: the first non-loopback one of the family, else loopback."""
    family = [a for a in addresses if (":" in a) == ipv6]
    for address in family:
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return family[0] if family else ("::1" if ipv6 else "127.0.0.1")
