"""The codecs SdpEndpoints negotiate (KMS's ``SdpEndpoint.conf.json``, narrowed to what is served).

KMS 7.3.0 offers opus/48000/2, PCMU/8000, PCMA/8000, AMR/8000 and H265, AV1, VP9, VP8, H264. The
emulator forwards any negotiated codec untouched, and transcodes between those PyAV encodes and
decodes here: Opus, PCMU, PCMA, G722, VP8 and H264. Codecs it could only forward (VP9) come last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.sdp import Codec

VIDEO_FEEDBACK = ("goog-remb", "ccm fir", "nack", "nack pli")
AUDIO_FEEDBACK: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec the server can negotiate, with the payload type it uses when it offers."""

    kind: str
    name: str
    clock_rate: int
    channels: int | None = None
    payload_type: int = 96
    fmtp: str | None = None
    feedback: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity for matching: lower-case name, clock rate, channels (1 when absent)."""
        return (self.name.lower(), self.clock_rate, self.channels or 1)

    def as_codec(self, payload_type: int | None = None) -> Codec:
        """As an SDP codec, with this payload type or the offered one."""
        return Codec(
            payload_type=self.payload_type if payload_type is None else payload_type,
            name=self.name,
            clock_rate=self.clock_rate,
            channels=self.channels,
            fmtp=self.fmtp,
            rtcp_fb=list(self.feedback),
        )


AUDIO_CODECS = (
    CodecSpec("audio", "opus", 48000, 2, 111, "minptime=10;useinbandfec=1"),
    CodecSpec("audio", "PCMU", 8000, 1, 0),
    CodecSpec("audio", "PCMA", 8000, 1, 8),
    CodecSpec("audio", "G722", 8000, 1, 9),
    CodecSpec("audio", "telephone-event", 8000, 1, 101, "0-16"),
    CodecSpec("audio", "telephone-event", 48000, 1, 110, "0-16"),
)
VIDEO_CODECS = (
    CodecSpec("video", "VP8", 90000, None, 96, None, VIDEO_FEEDBACK),
    CodecSpec(
        "video",
        "H264",
        90000,
        None,
        102,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        VIDEO_FEEDBACK,
    ),
    CodecSpec("video", "VP9", 90000, None, 98, None, VIDEO_FEEDBACK),
)
SUPPORTED = {"audio": AUDIO_CODECS, "video": VIDEO_CODECS}


def codec_matches(spec: CodecSpec, configured: str) -> bool:
    """Whether a served codec is the one a ``SdpEndpoint.conf.json`` entry names
    (``"opus/48000/2"``, ``"PCMU/8000"``, ``"VP8/90000"``: name, clock rate, channels if given)."""
    name, _, rest = configured.strip().partition("/")
    clock, _, channels = rest.partition("/")
    if name.lower() != spec.name.lower() or (clock and clock != str(spec.clock_rate)):
        return False
    return not channels or channels == str(spec.channels or 1)


def served(kind: str, configured: tuple[str, ...] = ()) -> list[CodecSpec]:
    """The codecs of a media kind in offer order: those ``configured`` names, in its order, or
    every served codec when it is empty. telephone-event is always served (RFC 4733 DTMF)."""
    specs = SUPPORTED.get(kind, ())
    if not configured:
        return list(specs)
    chosen = [s for name in configured for s in specs if codec_matches(s, name)]
    return chosen + [s for s in specs if is_dtmf(s.as_codec()) and s not in chosen]


H264_MODES = ("0", "1")
"""RFC 6184 packetization modes taken: single NAL unit (0, the default without fmtp, as old
Android and SIP phones offer it) and non-interleaved (1, browsers); interleaved (2) is refused, as
GStreamer's payloaders do."""


def find_spec(kind: str, codec: Codec) -> CodecSpec | None:
    """The served codec matching an offered one by name, clock rate and channels (H264 in
    packetization mode 0 or 1)."""
    for spec in SUPPORTED.get(kind, ()):
        if spec.key != codec.key:
            continue
        if spec.name == "H264" and h264_mode(codec) not in H264_MODES:
            continue
        return spec
    return None


def h264_mode(codec: Codec) -> str:
    """An H264 codec's packetization-mode (RFC 6184 8.1: 0 when the fmtp does not say)."""
    return codec.parameters().get("packetization-mode", "0")


def is_dtmf(codec: Codec) -> bool:
    """RFC 4733 telephone-event."""
    return codec.name.lower() == "telephone-event"
