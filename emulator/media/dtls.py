"""The seam over aiortc's DTLS transport: decrypted RTP/RTCP go to the emulator, not to receivers.

aiortc routes every SRTP packet to an ``RTCRtpReceiver`` that decodes it; an SFU must not decode.
``MediaDtlsTransport`` overrides the two handlers that receive decrypted packets and hands them to a
callback, counts SRTP authentication failures (aiortc only logs them at debug level), and sends
RTP/RTCP synchronously through the ICE connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceTransport
from aiortc.rtcdtlstransport import State

from emulator.media.capture import PacketTap
from emulator.media.ice import RangedConnection
from emulator.media.rtp import is_rtcp

logger = logging.getLogger(__name__)

PacketHandler = Callable[[bytes], None]


class CountingSrtpSession:
    """A libsrtp session that counts the packets it rejects."""

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session
        self.failures = 0

    def unprotect(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTP packet."""
        try:
            return bytes(self.session.unprotect(data))
        except pylibsrtp.Error:
            self.failed()
            raise

    def unprotect_rtcp(self, data: bytes) -> bytes:
        """Decrypt and authenticate an SRTCP packet."""
        try:
            return bytes(self.session.unprotect_rtcp(data))
        except pylibsrtp.Error:
            self.failed()
            raise

    def failed(self) -> None:
        """Count (and log now and then) a packet that failed authentication."""
        self.failures += 1
        if self.failures in (1, 10, 100, 1000) or self.failures % 10000 == 0:
            logger.warning("! SRTP authentication failed %d time(s): packet dropped", self.failures)


class MediaDtlsTransport(RTCDtlsTransport):
    """DTLS-SRTP whose decrypted packets go to ``on_rtp``/``on_rtcp``."""

    def __init__(self, transport: RTCIceTransport, certificates: list[RTCCertificate]) -> None:
        super().__init__(transport, certificates)
        self.on_rtp: PacketHandler = _ignore
        self.on_rtcp: PacketHandler = _ignore
        self.rx_counter: CountingSrtpSession | None = None
        self.ready = False
        """DTLS is connected and SRTP keyed (kept as a flag: ``state`` builds a string)."""
        self.sent_packets = 0
        self.sent_bytes = 0
        self.tap: PacketTap | None = None
        """Sees every plain RTP/RTCP packet both ways (media capture), when set."""
        connection = transport._connection
        assert isinstance(connection, RangedConnection)
        self.connection = connection
        """The ICE connection under this transport (aiortc's gatherer made it, once)."""

    def _setup_srtp(self) -> None:
        super()._setup_srtp()
        self.rx_counter = CountingSrtpSession(self._rx_srtp)
        self._rx_srtp = self.rx_counter  # type: ignore[assignment]

    def _set_state(self, state: State) -> None:
        self.ready = state == State.CONNECTED and self._tx_srtp is not None
        super()._set_state(state)

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication."""
        return self.rx_counter.failures if self.rx_counter is not None else 0

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.on_rtp(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        if self.tap is not None:
            self.tap(data, False)
        self.on_rtcp(data)

    def send_now(self, data: bytes) -> bool:
        """Protect and send an RTP or RTCP packet at once; False before DTLS is up."""
        if not is_rtcp(data):
            return self.send_rtp(data)
        if not self.ready:
            return False
        if self.tap is not None:
            self.tap(data, True)
        return self._sent(self._tx_srtp.protect_rtcp(data))

    def send_rtp(self, data: bytes) -> bool:
        """``send_now`` for a packet known to be RTP (the forwarding path)."""
        if not self.ready:
            return False
        if self.tap is not None:
            self.tap(data, True)
        return self._sent(self._tx_srtp.protect(data))

    def _sent(self, protected: bytes) -> bool:
        if not self.connection.send_now(protected):
            return False
        self.sent_packets += 1
        self.sent_bytes += len(protected)
        return True


def _ignore(_: bytes, *__: Any) -> None:
    """Default handler before the endpoint installs its own."""
