"""What the media plane shares across endpoints: port range, DTLS certificate, transcoders."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCCertificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.media.capture import CaptureBudget, CaptureService
from emulator.media.ice import AddressPolicy, apply_consent_timing
from emulator.media.peer import TurnServer, parse_turn_url
from emulator.media.ports import PortRange
from emulator.media.transcoding import Transcoders
from emulator.settings import Settings

logger = logging.getLogger(__name__)

MEDIA_SERVICE = "media"
"""Key of ``MediaServices`` in ``ObjectServices.extras``."""


@dataclass
class MediaServices:
    """Shared media resources, built once per server from the settings."""

    ports: PortRange
    certificate: RTCCertificate
    settings: Settings
    capture: CaptureService
    transcoders: Transcoders = field(default_factory=Transcoders)

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaServices:
        """The port range and the certificate (loaded, or generated now)."""
        certificate = (
            load_certificate(settings.pem_certificate)
            if settings.pem_certificate
            else RTCCertificate.generateCertificate()
        )
        ports = PortRange(settings.min_port, settings.max_port)
        apply_consent_timing(settings.ice_consent_interval, settings.ice_consent_failures)
        for fingerprint in certificate.getFingerprints():
            if fingerprint.algorithm == "sha-256":
                logger.info("DTLS certificate fingerprint sha-256 %s", fingerprint.value)
        logger.info("media UDP port range %d-%d", ports.low, ports.high)
        capture = CaptureService(
            settings.capture_dir, settings.capture, CaptureBudget(settings.capture_max_bytes)
        )
        if settings.capture:
            logger.info("capturing endpoints matching %r to %s", settings.capture, capture.folder)
        return cls(ports, certificate, settings, capture)

    def address_policy(self, network_interfaces: str, ipv6: bool | None = None) -> AddressPolicy:
        """Host candidate addresses for an endpoint's ``networkInterfaces``."""
        names = tuple(n.strip() for n in network_interfaces.split(",") if n.strip())
        return AddressPolicy(
            interfaces=names, ipv6=self.settings.ice_ipv6 if ipv6 is None else ipv6
        )

    def turn(self, turn_url: str) -> TurnServer | None:
        """The TURN server of a turnURL (the endpoint's, else the server default)."""
        return parse_turn_url(turn_url)


def load_certificate(path: Path) -> RTCCertificate:
    """An ECDSA certificate and key from one PEM (aiortc's DTLS needs an EC key).

    Raises:
        ValueError: the PEM is unreadable or its key is not ECDSA.
    """
    data = path.read_bytes()
    cert = x509.load_pem_x509_certificate(data)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(
            f"{path}: DTLS needs an ECDSA key (pemCertificateECDSA); RSA is not supported"
        )
    return RTCCertificate(key, cert)
