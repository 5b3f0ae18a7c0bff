"""Where an SdpEndpoint stands in SDP offer/answer, with KMS's errors: one object for both kinds.

KMS's ``SdpEndpointImpl`` rules: ``processOffer`` and ``generateOffer`` fail with 40208 while a
local offer waits for its answer; ``processAnswer`` fails with 40209 without a local offer and
40210 for a second answer; the descriptors fail with 40202/40203-style errors (``protocol.errors``)
before they exist. A WebRtcEndpoint negotiates once (KMS answers 40208 to any later offer); an
RtpEndpoint takes re-offers, since a PBX re-INVITEs for hold, transfer and codec changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import (
    SdpEndPointAlreadyNegotiated,
    SdpEndPointAnswerAlreadyProccesed,
    SdpEndPointNoLocalSdpError,
    SdpEndPointNoRemoteSdpError,
    SdpEndPointNotOfferGenerated,
)


@dataclass
class OfferAnswer:
    """The negotiation state of one endpoint and its local and remote SDP."""

    renegotiates: bool
    """Whether a new offer is taken once negotiated (RtpEndpoint: yes; WebRtcEndpoint: no)."""
    local_sdp: str | None = None
    remote_sdp: str | None = None
    offer_pending: bool = False
    """A local offer waits for its answer."""
    answered: bool = False
    """The answer to our last offer was processed."""

    def check_new_offer(self) -> None:
        """Before ``processOffer`` or ``generateOffer``.

        Raises:
            SdpEndPointAlreadyNegotiated: 40208 while an offer is pending, or once negotiated
                when the endpoint does not renegotiate.
        """
        if self.offer_pending:
            raise SdpEndPointAlreadyNegotiated(
                "Endpoint already negotiated: a local offer is waiting for processAnswer"
            )
        if self.remote_sdp is not None and not self.renegotiates:
            raise SdpEndPointAlreadyNegotiated("Endpoint already negotiated")

    def check_answer(self) -> None:
        """Before ``processAnswer``.

        Raises:
            SdpEndPointNotOfferGenerated: 40209 without a local offer.
            SdpEndPointAnswerAlreadyProccesed: 40210 for a second answer.
        """
        if self.offer_pending:
            return
        if self.answered:
            raise SdpEndPointAnswerAlreadyProccesed("Answer already processed")
        raise SdpEndPointNotOfferGenerated(
            "Offer not generated. It is not possible to process an answer."
        )

    def offer_answered(self, remote: str, local: str) -> None:
        """A remote offer was answered."""
        self.remote_sdp, self.local_sdp = remote, local
        self.answered = False

    def offer_made(self, local: str) -> None:
        """A local offer was generated; it waits for its answer."""
        self.local_sdp = local
        self.offer_pending = True

    def answer_taken(self, remote: str) -> None:
        """The remote answer to our offer was applied."""
        self.remote_sdp = remote
        self.offer_pending = False
        self.answered = True

    def local(self) -> str:
        """The local SDP (``getLocalSessionDescriptor``).

        Raises:
            SdpEndPointNoLocalSdpError: before any negotiation.
        """
        if self.local_sdp is None:
            raise SdpEndPointNoLocalSdpError("Local SDP not generated")
        return self.local_sdp

    def remote(self) -> str:
        """The remote SDP (``getRemoteSessionDescriptor``).

        Raises:
            SdpEndPointNoRemoteSdpError: before the remote SDP is known.
        """
        if self.remote_sdp is None:
            raise SdpEndPointNoRemoteSdpError("Remote SDP not set")
        return self.remote_sdp
