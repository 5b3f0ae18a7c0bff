"""What the media plane shares across endpoints: the port range, the DTLS certificate, the
pollers reading media sockets, ICE timing, the transcoders, and the live media (for metrics
collected at scrape time and for fault injection). Everything here belongs to one server: two
servers in one process keep their own settings."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from aiortc import RTCCertificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.media.codecs.transcoding import Transcoders
from emulator.media.fastpath import compiled_available, make_forwarder
from emulator.media.lab.capture import CaptureBudget, CaptureService
from emulator.media.lab.impairment import Impairment
from emulator.media.legs.ice import IcePolicy
from emulator.media.legs.peer import TurnServer, parse_turn_url
from emulator.media.net.poller import MediaPollers
from emulator.media.net.ports import PortRange
from emulator.media.net.public_address import stun_mapped_address
from emulator.media.rtp.streams import InboundStream, OutboundStream
from emulator.media.sdp.negotiation import LocalPolicy
from emulator.settings import Settings

logger = logging.getLogger(__name__)


class StreamMedia(Protocol):
    """An endpoint's media with RTP streams in and out: WebRtcMedia and PlainRtpMedia. What
    metrics count and fault injection impairs."""

    impairments: dict[str, Impairment] | None
    """Fault injection by media kind on the sending side; None on the normal path."""

    @property
    def inbound(self) -> Mapping[int, InboundStream]:
        """Received streams by SSRC."""

    @property
    def outbound(self) -> Mapping[str, OutboundStream]:
        """Sent streams by kind."""

    @property
    def srtp_failures(self) -> int:
        """SRTP/SRTCP packets that failed authentication."""

    @property
    def drops(self) -> Mapping[str, int]:
        """Datagrams dropped on receipt, by reason (unvalidated source, bad SRTP, malformed)."""


MediaHook = Callable[[StreamMedia, "MediaOwnerIds"], None]
"""Called for every new endpoint media (fault injection installs its impairments)."""


@dataclass(frozen=True, slots=True)
class MediaOwnerIds:
    """Who an endpoint's media belongs to, for faults aimed at an endpoint or a pipeline."""

    endpoint: str
    pipeline: str
    ordinal: int
    """Order of creation in this server, from 0: seeds per-endpoint random choices."""


@dataclass
class MediaTotals:
    """RTP counters of a set of endpoints, by direction and kind (payload bytes, as getStats)."""

    packets: dict[tuple[str, str], int] = field(default_factory=dict)
    octets: dict[tuple[str, str], int] = field(default_factory=dict)
    srtp_failures: int = 0
    drops: dict[str, int] = field(default_factory=dict)

    def add_media(self, media: StreamMedia) -> None:
        """Add the counters of one endpoint's streams and transports."""
        for inbound in media.inbound.values():
            key = ("in", inbound.kind)
            self.packets[key] = self.packets.get(key, 0) + inbound.packets
            self.octets[key] = self.octets.get(key, 0) + inbound.octets
        for outbound in media.outbound.values():
            key = ("out", outbound.kind)
            self.packets[key] = self.packets.get(key, 0) + outbound.packets
            self.octets[key] = self.octets.get(key, 0) + outbound.octets
        self.srtp_failures += media.srtp_failures
        for reason, count in media.drops.items():
            self.drops[reason] = self.drops.get(reason, 0) + count

    def add(self, other: MediaTotals) -> None:
        """Add another total."""
        for key, value in other.packets.items():
            self.packets[key] = self.packets.get(key, 0) + value
        for key, value in other.octets.items():
            self.octets[key] = self.octets.get(key, 0) + value
        self.srtp_failures += other.srtp_failures
        for reason, count in other.drops.items():
            self.drops[reason] = self.drops.get(reason, 0) + count


@dataclass
class MediaServices:
    """Shared media resources, built once per server from the settings."""

    ports: PortRange
    certificate: RTCCertificate
    settings: Settings
    capture: CaptureService
    transcoders: Transcoders = field(default_factory=Transcoders)
    live: dict[StreamMedia, MediaOwnerIds] = field(default_factory=dict)
    retired: MediaTotals = field(default_factory=MediaTotals)
    """Counters of released endpoints, so that metric counters never go down."""
    on_new_media: MediaHook | None = None
    created: int = 0
    rtp_ports: PortRange | None = None
    """RtpEndpoint's own sub-range (``rtp_min_port..rtp_max_port``), else None: ``ports``."""
    pollers: MediaPollers = field(init=False)
    """Read this server's ICE host sockets in batches (``media_batch_ms``)."""
    external_ipv4: str = field(init=False)
    """``externalIPv4`` of new endpoints: the setting, or what ``auto`` discovered (empty while
    ``auto`` is not resolved, or when discovery failed)."""
    external_ipv6: str = field(init=False)
    """``externalIPv6``, as ``external_ipv4``."""

    def __post_init__(self) -> None:
        datapath = self.settings.datapath
        compiled = datapath == "compiled" and compiled_available()
        forwarder = partial(make_forwarder, datapath) if compiled else None  # else: Python
        self.pollers = MediaPollers(self.settings.media_batch_ms / 1000, forwarder)
        self.external_ipv4 = _unless_auto(self.settings.external_ipv4)
        self.external_ipv6 = _unless_auto(self.settings.external_ipv6)

    async def resolve_external_addresses(self) -> None:
        """Discover ``externalIPv4``/``externalIPv6`` set to ``auto``, from the STUN server
        (``stunServerAddress``). The official KMS image's entrypoint resolves ``auto`` before KMS
        starts (``getmyip.sh``, asking public DNS resolvers) and leaves the setting unset when it
        cannot; this server asks the configured STUN server instead, which a lab can run, and
        leaves the setting unset, with a warning, when there is none or it does not answer."""
        if _is_auto(self.settings.external_ipv4):
            self.external_ipv4 = await self._discover("IPv4")
        if _is_auto(self.settings.external_ipv6):
            self.external_ipv6 = await self._discover("IPv6")

    async def _discover(self, family: str) -> str:
        """The address the STUN server sees for ``family`` ("IPv4"/"IPv6"), "" on failure."""
        settings = self.settings
        name = f"externalIP{family[2:]}=auto"
        address = settings.stun_server_address
        server = (address, settings.stun_server_port)
        if not address:
            logger.warning(
                "%s: no stunServerAddress to discover it from (KMS's image asks public DNS "
                "resolvers; this server does not); left unset: set the address or a STUN server",
                name,
            )
            return ""
        if _ip_version(address) != int(family[3]):
            logger.warning(
                "%s: stunServerAddress %s is not %s, so it cannot tell the %s address; left unset",
                name,
                address,
                family,
                family,
            )
            return ""
        try:
            found = await stun_mapped_address(server, settings.external_address_timeout)
        except (OSError, TimeoutError) as exc:
            logger.warning(
                "%s: STUN server %s:%d gave no address (%s); left unset: host candidates "
                "carry their own addresses",
                name,
                address,
                server[1],
                exc or type(exc).__name__,
            )
            return ""
        logger.info("%s: %s (the address STUN server %s:%d sees)", name, found, *server)
        return found

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        live: dict[StreamMedia, MediaOwnerIds] | None = None,
        on_new_media: MediaHook | None = None,
    ) -> MediaServices:
        """The port range and the certificate (loaded, or generated now); ``live`` is the
        registry of endpoint media (shared with fault injection) and ``on_new_media`` is called
        for each media adopted into it."""
        certificate = (
            load_certificate(settings.pem_certificate)
            if settings.pem_certificate
            else RTCCertificate.generateCertificate()
        )
        ports = PortRange(settings.min_port, settings.max_port)
        for fingerprint in certificate.getFingerprints():
            if fingerprint.algorithm == "sha-256":
                logger.info("DTLS certificate fingerprint sha-256 %s", fingerprint.value)
        logger.info("media UDP port range %d-%d", ports.low, ports.high)
        capture = CaptureService(
            settings.capture_dir, settings.capture, CaptureBudget(settings.capture_max_bytes)
        )
        if settings.capture:
            logger.info("capturing endpoints matching %r to %s", settings.capture, capture.folder)
        rtp_ports = None
        if settings.rtp_min_port is not None and settings.rtp_max_port is not None:
            rtp_ports = PortRange(settings.rtp_min_port, settings.rtp_max_port, "RtpEndpoint")
            logger.info("RtpEndpoint UDP port range %d-%d", rtp_ports.low, rtp_ports.high)
        services = cls(
            ports,
            certificate,
            settings,
            capture,
            live={} if live is None else live,
            on_new_media=on_new_media,
            rtp_ports=rtp_ports,
        )
        services.log_advertised_addresses()
        return services

    def log_advertised_addresses(self) -> None:
        """Part of the start report: the addresses ICE host candidates will carry."""
        settings = self.settings
        local = self.ice_policy(settings.network_interfaces).addresses()
        logger.info(
            "ICE host candidates on %s", ", ".join(local) or "no address (check interfaces)"
        )
        for family, external in (("IPv4", self.external_ipv4), ("IPv6", self.external_ipv6)):
            if external:
                logger.info(
                    "advertised %s address: %s (externalIP%s)", family, external, family[2:]
                )
        if settings.stun_server_address:
            logger.info("STUN %s:%d", settings.stun_server_address, settings.stun_server_port)
        if settings.turn_url:
            logger.info("TURN %s", settings.turn_url.rpartition("@")[2])
        if settings.ice_relay_only:
            logger.info("relay candidates only (candonlyturn)")

    def adopt(self, media: StreamMedia, endpoint: str, pipeline: str) -> None:
        """Track a new endpoint's media (metrics) and let fault injection see it."""
        ids = MediaOwnerIds(endpoint, pipeline, self.created)
        self.created += 1
        self.live[media] = ids
        if self.on_new_media is not None:
            self.on_new_media(media, ids)

    def retire(self, media: StreamMedia) -> None:
        """A released endpoint: keep its counters in the totals."""
        if self.live.pop(media, None) is not None:
            self.retired.add_media(media)

    def totals(self) -> MediaTotals:
        """RTP counters of every endpoint since start, live and released."""
        total = MediaTotals()
        total.add(self.retired)
        for media in self.live:
            total.add_media(media)
        return total

    def sdp_policy(self, **endpoint: bool) -> LocalPolicy:
        """What an SdpEndpoint negotiates: ``SdpEndpoint.conf.json``'s m-line counts and codecs,
        with the endpoint's own flags (``use_data_channels``, ``recvonly``, ``sendonly``)."""
        settings = self.settings
        return LocalPolicy(
            num_audio=settings.num_audio_medias,
            num_video=settings.num_video_medias,
            audio_codecs=tuple(settings.audio_codecs),
            video_codecs=tuple(settings.video_codecs),
            **endpoint,
        )

    def ice_policy(self, network_interfaces: str, ipv6: bool | None = None) -> IcePolicy:
        """ICE for an endpoint's ``networkInterfaces``: its host candidate addresses, with this
        server's consent timing and pollers."""
        names = tuple(n.strip() for n in network_interfaces.split(",") if n.strip())
        settings = self.settings
        return IcePolicy(
            interfaces=names,
            ipv6=settings.ice_ipv6 if ipv6 is None else ipv6,
            consent_interval=settings.ice_consent_interval,
            consent_failures=settings.ice_consent_failures,
            pollers=self.pollers,
        )

    def turn(self, turn_url: str) -> TurnServer | None:
        """The TURN server of a turnURL (the endpoint's, else the server default)."""
        return parse_turn_url(turn_url)


def _is_auto(value: str) -> bool:
    return value.strip().lower() == "auto"


def _unless_auto(value: str) -> str:
    return "" if _is_auto(value) else value


def _ip_version(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 0


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
