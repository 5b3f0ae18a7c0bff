"""The seam over aiortc's DTLS transport: decrypted RTP/RTCP go to the emulator, not to receivers.

aiortc routes every SRTP packet to an ``RTCRtpReceiver`` that decodes it; an SFU must not decode.
``MediaDtlsTransport`` hands decrypted packets to callbacks (``aiortc_adapter.DtlsTransportSeam``
overrides aiortc's handlers), counts SRTP authentication failures (aiortc only logs them at debug
level), and sends RTP/RTCP synchronously through the ICE connection.
"""

from __future__ import annotations

import logging

import pylibsrtp
from aiortc import RTCCertificate, RTCIceTransport

from emulator.media.lab.capture import PacketTap
from emulator.media.legs.aiortc_adapter import DtlsTransportSeam
from emulator.media.legs.ice import RangedConnection
from emulator.media.rtp.packet import is_rtcp
from emulator.media.rtp.streams import WireCounters

logger = logging.getLogger(__name__)


UNPROTECT_ERRORS = (pylibsrtp.Error, ValueError)
"""What pylibsrtp raises for a packet it cannot take: libsrtp's errors, and ValueError for one
longer than its 1500-byte buffer. aiortc's receive loop catches only the first; anything else it
sees closes the DTLS transport, so one oversized datagram from the peer would end the call."""


class CountingSrtpSession:
    """A libsrtp session that counts the packets it rejects."""

    def __init__(self, session: pylibsrtp.Session, received: WireCounters) -> None:
        self.session = session
        self.failures = 0
        self.received = received
        """What it let through (the transport's received counters)."""

    def unprotect(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTP packet.

        Raises:
            pylibsrtp.Error: it failed (counted); aiortc's receive loop drops the packet.
        """
        try:
            clear = bytes(self.session.unprotect(data))
        except UNPROTECT_ERRORS as exc:
            self.failed()
            raise pylibsrtp.Error(str(exc)) from exc
        self.received.count(len(data))
        return clear

    def unprotect_rtcp(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTCP packet (raises as ``unprotect``)."""
        try:
            clear = bytes(self.session.unprotect_rtcp(data))
        except UNPROTECT_ERRORS as exc:
            self.failed()
            raise pylibsrtp.Error(str(exc)) from exc
        self.received.count(len(data))
        return clear

    def failed(self) -> None:
        """Count (and log now and then) a packet that failed authentication."""
        self.failures += 1
        if self.failures in (1, 10, 100, 1000) or self.failures % 10000 == 0:
            logger.warning("! SRTP authentication failed %d time(s): packet dropped", self.failures)


class MediaDtlsTransport(DtlsTransportSeam):
    """DTLS-SRTP whose decrypted packets go to ``on_rtp``/``on_rtcp``."""

    def __init__(self, transport: RTCIceTransport, certificates: list[RTCCertificate]) -> None:
        super().__init__(transport, certificates)
        self.rx_counter: CountingSrtpSession | None = None
        self.sent = WireCounters()
        """SRTP/SRTCP datagrams sent, those the compiled forwarder sent included (added at
        every sync, ``session/datapath.py``)."""
        self.received = WireCounters()
        """SRTP/SRTCP datagrams received and authenticated, the forwarder's included."""
        self.tap: PacketTap | None = None
        """Sees every plain RTP/RTCP packet both ways (media capture), when set."""
        connection = self.ice_connection
        assert isinstance(connection, RangedConnection)
        self.connection = connection
        """The ICE connection under this transport (aiortc's gatherer made it, once)."""

    def receive_session(self, session: pylibsrtp.Session) -> CountingSrtpSession:
        """Count what the keyed receiving session rejects."""
        self.rx_counter = CountingSrtpSession(session, self.received)
        return self.rx_counter

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication."""
        return self.rx_counter.failures if self.rx_counter is not None else 0

    def send_now(self, data: bytes) -> bool:
        """Protect and send an RTP or RTCP packet at once; False before DTLS is up."""
        if not is_rtcp(data):
            return self.send_rtp(data)
        if not self.ready:
            return False
        if self.tap is not None:
            self.tap(data, True)
        return self._sent(self.tx_session.protect_rtcp(data))

    def send_rtp(self, data: bytes) -> bool:
        """``send_now`` for a packet known to be RTP (the forwarding path)."""
        if not self.ready:
            return False
        if self.tap is not None:
            self.tap(data, True)
        return self._sent(self.tx_session.protect(data))

    def _sent(self, protected: bytes) -> bool:
        if not self.connection.send_now(protected):
            return False
        self.sent.count(len(protected))
        return True
