"""Settings: every option of the server, with KMS's defaults.

One object, passed down explicitly; each component takes only its part. Every timer is a field here,
so that tests shorten it instead of patching constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KMS_MAX_MESSAGE_SIZE = 32 * 1024 * 1024  # websocketpp's default max_message_size


class Settings(BaseSettings):
    """Effective configuration of one server process."""

    model_config = SettingsConfigDict(
        env_prefix="KURENTO_EMULATOR_", frozen=True, extra="forbid", validate_default=True
    )

    # -- control plane (kurento.conf.json: mediaServer.net.websocket) --------------------------
    host: str = Field("0.0.0.0", description="Address the WebSocket listeners bind")
    port: int | None = Field(8888, description="ws:// port; None turns the listener off")
    secure_port: int | None = Field(8433, description="wss:// port; None turns it off")
    path: str = Field("kurento", description="WebSocket path (without the leading /)")
    certificate: Path | None = Field(
        None, description="PEM with certificate and private key; self-signed when unset"
    )
    certificate_password: str | None = Field(None, description="Password of the PEM's key")
    max_message_size: int = Field(
        KMS_MAX_MESSAGE_SIZE, description="Largest JSON-RPC message accepted, in characters"
    )
    max_unsent_bytes: int = Field(
        2 * KMS_MAX_MESSAGE_SIZE,
        ge=1,
        description="Most characters of replies and events queued for one connection that its "
        "client has not read; past it the connection is closed with 1008",
    )

    # -- sessions (mediaServer.resources) ------------------------------------------------------
    gc_period: float = Field(
        240.0, description="garbageCollectorPeriod: seconds between session collector passes"
    )
    disable_request_cache: bool = Field(False, description="disableRequestCache")
    request_cache_ttl: float = Field(20.0, description="Seconds a reply stays in the replay cache")
    metadata: dict[str, object] = Field(
        default_factory=dict, description="kurento.conf.json 'metadata', returned by getMetadata"
    )

    # -- media (BaseRtpEndpoint.conf.ini) -------------------------------------------------------
    min_port: int = Field(1024, description="Lowest UDP port for media sockets (minPort)")
    max_port: int = Field(65535, description="Highest UDP port for media sockets (maxPort)")
    mtu: int = Field(1200, description="MTU of RTP packets (mtu)")

    # -- RtpEndpoint (the PBX leg) --------------------------------------------------------------
    rtp_min_port: int | None = Field(
        None, description="Lowest UDP port of RtpEndpoints; unset = the min_port..max_port range"
    )
    rtp_max_port: int | None = Field(
        None, description="Highest UDP port of RtpEndpoints; unset = the min_port..max_port range"
    )
    rtp_address: str = Field(
        "", description="Address RtpEndpoints bind and write in c=; empty = first of the interfaces"
    )
    rtp_latching: bool = Field(
        False, description="Latch onto the first RTP source (RFC 7362); off = drop other sources"
    )

    # -- SDP negotiation (SdpEndpoint.conf.json) and elements (MediaElement.conf.ini) ------------
    num_audio_medias: int = Field(1, description="numAudioMedias: audio m-lines accepted per SDP")
    num_video_medias: int = Field(1, description="numVideoMedias: video m-lines accepted per SDP")
    audio_codecs: list[str] = Field(
        default_factory=list,
        description="audioCodecs names (opus/48000/2, PCMU/8000, ...) in preference order; "
        "empty = every served codec",
    )
    video_codecs: list[str] = Field(
        default_factory=list, description="videoCodecs names (VP8/90000, H264/90000); empty = all"
    )
    encoder_bitrate: int = Field(300000, description="encoderBitrate default of MediaElements")
    min_encoder_bitrate: int = Field(0, description="minEncoderBitrate default")
    max_encoder_bitrate: int = Field(0, description="maxEncoderBitrate default (0 = unlimited)")

    # -- mixing hubs (Composite.conf.ini) --------------------------------------------------------
    composite_width: int = Field(
        800, gt=0, description="width of a Composite's grid when its create does not give one"
    )
    composite_height: int = Field(
        600, gt=0, description="height of a Composite's grid when its create does not give one"
    )
    composite_framerate: int = Field(
        15, gt=0, description="pictures per second of a Composite when its create gives none"
    )

    # -- WebRTC (WebRtcEndpoint.conf.ini) -----------------------------------------------------
    stun_server_address: str = Field("", description="stunServerAddress (IP address)")
    stun_server_port: int = Field(3478, description="stunServerPort")
    turn_url: str = Field(
        "", description="turnURL: user:password@address:port?transport=udp|tcp|tls"
    )
    external_ipv4: str = Field("", description="externalIPv4 advertised in host candidates")
    external_ipv6: str = Field("", description="externalIPv6 advertised in host candidates")
    external_address_timeout: float = Field(
        3.0, description="seconds the STUN lookup of externalIPv4/IPv6=auto may take at start"
    )
    network_interfaces: str = Field(
        "", description="networkInterfaces: comma list of interface names; empty = all"
    )
    ice_tcp: bool = Field(
        True, description="iceTcp: gather passive and active TCP host candidates (RFC 6544)"
    )
    ice_ipv6: bool = Field(True, description="gather IPv6 host candidates (candkillipv6 off)")
    ice_relay_only: bool = Field(False, description="only relay candidates (candonlyturn)")
    ice_consent_interval: float = Field(
        5.0, description="seconds between ICE consent checks (RFC 7675)"
    )
    ice_consent_failures: int = Field(
        6, description="missed consent checks before the peer is considered gone"
    )
    media_workers: int = Field(
        1,
        ge=0,
        description="media worker processes, each pipeline in one of them (0: one per core; "
        "1: media in the server's own process)",
    )
    default_path: str = Field(
        "file:///var/lib/kurento/",
        description="where a PlayerEndpoint/RecorderEndpoint URI without a scheme is taken from "
        "(UriEndpoint.conf.ini defaultPath)",
    )
    http_endpoint_address: str = Field(
        "",
        description="address the HTTP endpoint listener (HttpPostEndpoint uploads) binds; empty "
        "= all (HttpEndpoint.conf.ini serverAddress)",
    )
    http_endpoint_port: int = Field(
        9091,
        description="port of the HTTP endpoint listener, opened at the first HttpPostEndpoint; "
        "0 picks a free port (HttpEndpoint.conf.ini serverPort)",
    )
    http_endpoint_announced_address: str = Field(
        "",
        description="host written in getUrl; empty = http_endpoint_address, else the first "
        "non-loopback IPv4 address (HttpEndpoint.conf.ini announcedAddress)",
    )
    player_ca_file: Path | None = Field(
        None,
        description="PEM of the certificate authorities a PlayerEndpoint trusts for https:// "
        "sources; unset = the system's bundle (KMS's souphttpsrc verifies too)",
    )
    gaps_fix: Literal["NONE", "GENPTS", "FILL_IF_TRANSCODING"] = Field(
        "NONE",
        description="how RecorderEndpoint fixes timestamp gaps in what it records "
        "(RecorderEndpoint.conf.ini gapsFix)",
    )
    media_flow_timeout: float = Field(
        2.0,
        gt=0,
        description="seconds without packets before MediaFlowIn/OutStateChanged says NOT_FLOWING",
    )
    media_state_timeout: float = Field(
        5.0,
        gt=0,
        description="seconds without RTCP before MediaStateChanged says DISCONNECTED "
        "(KMS: about 5 s)",
    )
    media_batch_ms: float = Field(
        1.0,
        ge=0,
        description="milliseconds media sockets wait after a read so that later datagrams are "
        "read in one batch (0: read each datagram as it arrives)",
    )
    datapath: Literal["compiled", "python"] = Field(
        "compiled",
        description="the per-packet forwarding loop: compiled (emulator/media/fastpath/_forward.c, "
        "where it was built; else Python, said at start) or python",
    )
    pem_certificate: Path | None = Field(
        None, description="pemCertificateECDSA: DTLS certificate+key; generated when unset"
    )

    # -- media capture (decrypted RTP/RTCP to pcap) ------------------------------------------
    capture: str = Field(
        "",
        description="endpoints captured to pcap: '*' all, a regex on id, name or key=value tag, "
        "empty none (an element's tag capture=true/false overrides)",
    )
    capture_dir: Path = Field(Path("captures"), description="folder of the capture files")
    capture_max_bytes: int = Field(
        1 << 30, description="disk all capture files may take together, in bytes (0 = no bound)"
    )
    # -- operations: admin listener, shutdown, fault injection (emulator/observability/) ---------
    admin_port: int | None = Field(
        8890, description="Admin HTTP port (/healthz, /readyz, /metrics); None turns it off"
    )
    admin_host: str = Field(
        "", description="Admin bind address; empty = all interfaces, loopback with fault_injection"
    )
    shutdown_timeout: float = Field(
        10.0, description="Seconds SIGTERM/SIGINT may take to answer, release and close"
    )
    blocking_threads: int = Field(
        4,
        ge=1,
        description="threads for the calls the event loop must not wait for (file probes, "
        "image loads, memory trims), all started with the server",
    )
    memory_trim_interval: float = Field(
        5.0,
        ge=0,
        description="after objects are released, give freed heap memory back to the OS "
        "(glibc malloc_trim) at most once per this many seconds; 0 turns it off",
    )
    fault_injection: bool = Field(
        False, description="Serve the admin fault API (/faults, /restart)"
    )
    faults: list[dict[str, Any]] = Field(
        default_factory=list, description="Fault rules active from the start (JSON list)"
    )
    fault_seed: int = Field(0, description="Seed of the fault injector's random choices")
    fault_api_remote: bool = Field(
        False,
        description="Serve the fault API (/faults, /restart) to clients outside loopback too; "
        "off: they get 403 even when admin_host binds every interface",
    )

    # -- access control (KMS has none: every default below keeps it open) -----------------------
    access_token: str | None = Field(
        None, description="Required ?access_token= on the WebSocket URL; unset = no check (KMS)"
    )
    allowed_origins: str = Field(
        "", description="Comma list of Origin headers accepted; empty = any (KMS)"
    )
    max_sessions: int | None = Field(
        None, description="Most sessions at once; a create that would open one more gets 40009"
    )
    max_objects_per_session: int | None = Field(
        None, description="Most objects one session references; past it create gets 40009"
    )
    max_subscriptions_per_session: int | None = Field(
        None, description="Most event subscriptions one session holds; past it subscribe gets 40009"
    )
    file_roots: str = Field(
        "",
        description="Comma list of folders the file:// URIs of PlayerEndpoint and "
        "RecorderEndpoint must lie in (after resolving .. and symlinks); empty = anywhere (KMS)",
    )
    recorder_max_bytes: int = Field(
        0, ge=0, description="Largest file one recording may write, in bytes (0 = no bound)"
    )

    # -- logging ---------------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Python log level of the emulator's loggers")

    @field_validator("path")
    @classmethod
    def _strip_path(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("port", "secure_port", "admin_port", "http_endpoint_port")
    @classmethod
    def _check_port(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 65535:
            raise ValueError(f"port {value} is outside 0..65535")
        return value

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if not 1 <= self.min_port <= self.max_port <= 65535:
            raise ValueError(
                f"media port range {self.min_port}..{self.max_port} is empty or outside "
                "1..65535: set min_port <= max_port"
            )
        if (self.rtp_min_port is None) != (self.rtp_max_port is None):
            raise ValueError("set both rtp_min_port and rtp_max_port, or neither")
        low, high = self.rtp_min_port, self.rtp_max_port
        if low is not None and high is not None and not 1 <= low < high <= 65535:
            raise ValueError(
                f"RTP port range {low}..{high} is empty or outside 1..65535: "
                "set rtp_min_port < rtp_max_port (an even/odd pair is needed)"
            )
        if self.gc_period <= 0:
            raise ValueError("gc_period must be positive (seconds)")
        if self.shutdown_timeout <= 0:
            raise ValueError("shutdown_timeout must be positive (seconds)")
        for name in ("max_sessions", "max_objects_per_session", "max_subscriptions_per_session"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be at least 1 (leave it unset for no limit)")
        return self
