"""WebRtcEndpoint (KMD elements): ICE, DTLS-SRTP and data channels towards a browser.

The KMD interface and events live here; the media work is ``emulator.media.webrtc.WebRtcMedia``,
created at the first negotiation from the endpoint's properties at that moment (STUN, TURN,
external addresses and network interfaces set before ``processOffer`` apply, as in KMS).
"""

from __future__ import annotations

from typing import Any

from emulator.media.flow import MediaPacket
from emulator.media.lab.capture import PcapWriter, endpoint_tap
from emulator.media.legs.peer import PeerConfig, parse_turn_url
from emulator.media.webrtc import WebRtcMedia
from emulator.objects.sdp_endpoint import BaseRtpEndpoint
from protocol.errors import (
    IceGatherCandidatesError,
    MediaObjectIllegalParamError,
    MediaObjectOperationNotSupported,
    SdpEndPointNoLocalSdpError,
    SdpEndPointNoRemoteSdpError,
)
from protocol.types import complex_value


class DataMessage:
    """A data channel message travelling through the pipeline (DATA links)."""

    __slots__ = ("label", "message")

    def __init__(self, label: str, message: str | bytes) -> None:
        self.label = label
        self.message = message


class WebRtcEndpoint(BaseRtpEndpoint):
    """A WebRTC peer of the server."""

    TYPE = "WebRtcEndpoint"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.services.settings
        self.properties.update(
            stunServerAddress=settings.stun_server_address,
            stunServerPort=settings.stun_server_port,
            turnUrl=settings.turn_url,
            externalIPv4=self.media_services.external_ipv4,  # with ``auto`` resolved
            externalIPv6=self.media_services.external_ipv6,
            networkInterfaces=settings.network_interfaces,
            iceTcp=settings.ice_tcp,
        )
        self.media: WebRtcMedia | None = None

    # -- the media ---------------------------------------------------------------------------

    def _media(self) -> WebRtcMedia:
        if self.media is None:
            transcoders = self.media_services.transcoders
            media = WebRtcMedia(
                self._peer_config(),
                self,
                self.id,
                transcoders,
                self.session_timeouts(),
                int(self.properties["mtu"]),
            )
            self.media = self.adopted(media)
        return self.media

    def _peer_config(self) -> PeerConfig:
        shared = self.media_services
        props = self.properties
        try:
            turn = shared.turn(props["turnUrl"])
        except ValueError as exc:
            raise MediaObjectIllegalParamError(str(exc)) from exc
        stun = (props["stunServerAddress"], props["stunServerPort"])
        return PeerConfig(
            ports=shared.ports,
            ice=shared.ice_policy(props["networkInterfaces"]),
            certificate=shared.certificate,
            policy=shared.sdp_policy(
                use_data_channels=bool(self.params.get("useDataChannels")),
                recvonly=bool(self.params.get("recvonly")),
                sendonly=bool(self.params.get("sendonly")),
            ),
            stun=stun if stun[0] else None,
            turn=turn,
            relay_only=shared.settings.ice_relay_only,
            ice_tcp=bool(props["iceTcp"]),
            external_ipv4=props["externalIPv4"],
            external_ipv6=props["externalIPv6"],
        )

    # -- SdpEndpoint -----------------------------------------------------------------------

    async def process_offer(self, offer: str) -> str:
        """Answer a remote offer."""
        answer = await self._media().peer.process_offer(offer)
        self.session_started_now()
        return answer

    async def generate_offer(self, options: dict[str, Any] | None = None) -> str:
        """A local offer: audio and video unless OfferOptions says otherwise."""
        options = options or {}
        return await self._media().peer.generate_offer(
            audio=options.get("offerToReceiveAudio", True),
            video=options.get("offerToReceiveVideo", True),
        )

    async def process_answer(self, answer: str) -> str:
        """Apply the remote answer to the local offer."""
        local = await self._media().peer.process_answer(answer)
        self.session_started_now()
        return local

    def get_local_session_descriptor(self) -> str:
        """The local SDP, with the candidates gathered so far."""
        if self.media is None:
            raise SdpEndPointNoLocalSdpError("Local SDP not generated")
        return self.media.peer.local_description()

    def get_remote_session_descriptor(self) -> str:
        """The remote SDP."""
        if self.media is None:
            raise SdpEndPointNoRemoteSdpError("Remote SDP not set")
        return self.media.peer.remote_description()

    # -- WebRtcEndpoint ----------------------------------------------------------------------

    def set_turn_url(self, turn_url: str) -> None:
        """Set turnUrl, checking KMS's ``user:password@address:port?transport=...`` shape."""
        try:
            parse_turn_url(turn_url)
        except ValueError as exc:
            raise MediaObjectIllegalParamError(str(exc)) from exc
        self.properties["turnUrl"] = turn_url

    def gather_candidates(self) -> None:
        """Start gathering; candidates arrive as IceCandidateFound, then IceGatheringDone.

        Raises:
            IceGatherCandidatesError: 40400 before any SDP negotiation.
        """
        media = self.media
        if media is None or not media.peer.transports:
            raise IceGatherCandidatesError(
                "Error gathering candidates: no SDP negotiation yet (call processOffer or "
                "generateOffer first)"
            )
        media.peer.gather_candidates()

    async def add_ice_candidate(self, candidate: dict[str, Any]) -> None:
        """A remote candidate; kept until the remote description is known."""
        await self._media().peer.add_ice_candidate(
            candidate["candidate"], candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
        )

    def create_data_channel(
        self,
        label: str = "",
        ordered: bool = True,
        max_packet_life_time: int = -1,
        max_retransmits: int = -1,
        protocol: str = "",
    ) -> None:
        """Open a data channel towards the peer."""
        media = self._data_media()
        if max_packet_life_time >= 0 and max_retransmits >= 0:
            raise MediaObjectIllegalParamError(
                "Syntax error: set either maxPacketLifeTime or maxRetransmits, not both"
            )
        if media.peer.sctp is None:
            raise MediaObjectOperationNotSupported(
                "Data channels are not connected yet: wait for the DTLS connection"
            )
        media.peer.create_data_channel(
            label,
            ordered,
            max_packet_life_time if max_packet_life_time >= 0 else None,
            max_retransmits if max_retransmits >= 0 else None,
            protocol,
        )

    def close_data_channel(self, channel_id: int) -> None:
        """Close a data channel by id."""
        channel = self._data_media().channels.get(channel_id)
        if channel is not None:
            channel.close()

    def _data_media(self) -> WebRtcMedia:
        if not self.params.get("useDataChannels"):
            raise MediaObjectOperationNotSupported("Data channels are not supported")
        return self._media()

    def get_ice_candidate_pairs(self) -> list[dict[str, Any]]:
        """The selected candidate pair (``IceCandidatePair``)."""
        if self.media is None or self.media.selected is None:
            return []
        local, remote = self.media.selected
        return [
            complex_value(
                "IceCandidatePair",
                streamId="1",
                componentId=1,
                localCandidate=local,
                remoteCandidate=remote,
            )
        ]

    def get_ice_connection_state(self) -> list[dict[str, Any]]:
        """The ICE component state (``IceConnection``)."""
        if self.media is None or not self.media.ice_states:
            return []
        state = self.media.ice_states[-1]
        return [complex_value("IceConnection", streamId="1", componentId=1, state=state)]

    def get_dtls_connection_state(self) -> list[dict[str, Any]]:
        """The DTLS state (``DtlsConnection``)."""
        if self.media is None:
            return []
        return [
            complex_value(
                "DtlsConnection",
                streamId="1",
                componentId="1",
                connectionId="1",
                state=self.media.dtls_state,
            )
        ]

    # -- media path (MediaOwner) -------------------------------------------------------------

    def receive_media(self, media_type: str, packet: Any) -> None:
        """A packet from this endpoint's source: send it to the remote peer."""
        media = self.media
        if media is None:
            return
        if isinstance(packet, DataMessage):
            sent = media.send_data(packet.label, packet.message)
        elif isinstance(packet, MediaPacket):
            sent = media.send_media(packet)
        else:
            sent = False
        if sent:
            self.mark_flow("out", media_type, True)

    def capture_ready(self) -> bool:
        """Capture starts once DTLS is up on every transport."""
        return self.media is not None and self.properties["connectionState"] == "CONNECTED"

    def install_tap(self, writer: PcapWriter | None) -> None:
        """Tap every transport of the peer, addressed by its selected pair."""
        if self.media is not None:
            self.media.fast_drop()  # tapped packets take the Python path
            self.media.peer.set_tap(
                None
                if writer is None
                else lambda local, remote: endpoint_tap(writer, local, remote)
            )

    def remote_video_remb(self) -> int | None:
        """The remote receiver's last REMB for the video we send."""
        return self.media.remote_video_remb() if self.media is not None else None

    def data_received(self, label: str, message: str | bytes) -> None:
        """A message from the remote peer: send it down DATA links."""
        self.mark_flow("in", "DATA", True)
        self.forward("DATA", DataMessage(label, message))

    def element_stats(self) -> dict[str, Any]:
        """The endpoint entry, with latencies when the pipeline's ``latencyStats`` is on."""
        stats = super().element_stats()
        if self.media is not None and self.owner.properties.get("latencyStats"):
            self.media.fast_sync()  # the compiled loop's latencies too
            latencies = self.media.latency.media_latency_stats()
            stats.update(inputLatency=latencies, E2ELatency=latencies)
        return stats
