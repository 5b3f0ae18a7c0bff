"""SDP offer/answer for SdpEndpoints (RFC 8829/3264), on top of ``protocol.sdp``.

Decides, per m-line, whether it is accepted, with which codecs, extensions and direction, and on
which transport (one per BUNDLE group, else one per m-line); and writes the local description.
Media-line rules follow KMS: at most ``numAudioMedias``/``numVideoMedias`` audio/video lines
(1 each by default), data channels only with ``useDataChannels``, codecs in the offerer's order.
As KMS's SDP agent (kms-core ``kmssdpagent.c`` and its media handlers), the answer repeats the
offered profile (``RTP/SAVPF`` or ``UDP/TLS/RTP/SAVPF``; ``UDP/DTLS/SCTP`` or ``DTLS/SCTP``), and
a refused m-line keeps the offered profile at port 0 with every offered format (no handler for
it), or with the first offered format only (no codec in common).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from emulator.media.codecs.served import CodecSpec, find_spec, is_dtmf, served
from protocol.errors import SdpEndPointProcessOfferError, SdpParseError
from protocol.sdp import Attribute, Codec, MediaSection, Origin, SessionDescription, effective

logger = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXTENSIONS = (
    MID_URI,
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "urn:ietf:params:rtp-hdrext:toffset",
    "urn:3gpp:video-orientation",
)
RTP_PROFILES = ("UDP/TLS/RTP/SAVPF", "RTP/SAVPF")
SCTP_PROFILES = ("UDP/DTLS/SCTP", "DTLS/SCTP")
SCTP_FORMAT = "webrtc-datachannel"
REVERSE = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


@dataclass
class LineTransport:
    """ICE and DTLS parameters of one transport, as written into the SDP."""

    ufrag: str
    pwd: str
    fingerprint: tuple[str, str]
    setup: str
    candidates: list[str] = field(default_factory=list)
    end_of_candidates: bool = False
    address: str = "0.0.0.0"
    port: int = 9


@dataclass
class MediaLine:
    """One negotiated m-line."""

    index: int
    kind: str
    mid: str
    accepted: bool
    transport: int = 0
    codecs: list[Codec] = field(default_factory=list)
    dtmf: Codec | None = None
    extensions: dict[str, int] = field(default_factory=dict)
    """Extension URI -> id, as negotiated on this line."""
    direction: str = "sendrecv"
    """This side's direction."""
    local_ssrc: int = 0
    remote_ssrcs: set[int] = field(default_factory=set)
    reason: str = ""
    proto: str = "UDP/TLS/RTP/SAVPF"
    """The m-line's profile: the offered one when answering, as KMS repeats it."""
    refused_formats: list[str] = field(default_factory=list)
    """The formats written on the m-line when it is refused (port 0)."""

    @property
    def sends(self) -> bool:
        """Whether this side sends on the line."""
        return self.accepted and self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        """Whether this side receives on the line."""
        return self.accepted and self.direction in ("sendrecv", "recvonly")

    def codec_for(self, payload_type: int) -> Codec | None:
        """The negotiated codec (or DTMF) of a payload type."""
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        if self.dtmf is not None and self.dtmf.payload_type == payload_type:
            return self.dtmf
        return None


@dataclass(frozen=True, slots=True)
class LocalPolicy:
    """What this endpoint accepts and how it directs media."""

    use_data_channels: bool = False
    recvonly: bool = False
    sendonly: bool = False
    num_audio: int = 1
    num_video: int = 1
    audio_codecs: tuple[str, ...] = ()
    """``SdpEndpoint.conf.json`` audioCodecs names; empty = every served codec."""
    video_codecs: tuple[str, ...] = ()
    """``SdpEndpoint.conf.json`` videoCodecs names; empty = every served codec."""

    def served(self, kind: str) -> list[CodecSpec]:
        """The codecs this endpoint negotiates for a media kind, in offer order."""
        return served(kind, self.audio_codecs if kind == "audio" else self.video_codecs)

    def served_names(self, kind: str) -> str:
        """The negotiable codecs of a kind, for error messages."""
        return ", ".join(s.name for s in self.served(kind) if s.name != "telephone-event")

    @property
    def direction(self) -> str:
        """The direction this side wants."""
        if self.recvonly:
            return "recvonly"
        if self.sendonly:
            return "sendonly"
        return "sendrecv"


def parse_description(text: str, what: str) -> SessionDescription:
    """Parse a remote SDP; empty text is KMS's "Empty offer not valid" (40201)."""
    if not text or not text.strip():
        raise SdpParseError(f"Empty {what} not valid")
    return SessionDescription.parse(text)


def intersect_direction(local: str, remote: str) -> str:
    """This side's direction given what it wants and what the remote offered."""
    allowed = REVERSE[remote]
    sends = local in ("sendrecv", "sendonly") and allowed in ("sendrecv", "sendonly")
    receives = local in ("sendrecv", "recvonly") and allowed in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (sends, receives), "inactive"
    )


def plan_answer(offer: SessionDescription, policy: LocalPolicy) -> list[MediaLine]:
    """Decide every m-line of a remote offer."""
    lines: list[MediaLine] = []
    counts = {"audio": 0, "video": 0, "application": 0}
    bundles = offer.bundle_groups
    for index, media in enumerate(offer.media):
        line = _plan_line(index, media, policy, counts)
        line.transport = _transport_of(line, bundles, index)
        if not line.accepted:
            logger.info("= rejected m-line %d (%s): %s", index, media.kind, line.reason)
        lines.append(line)
    return lines


def warn_if_all_refused(name: str, lines: list[MediaLine]) -> None:
    """As KMS's SDP agent, an offer none of whose m-lines can be taken is answered with every
    m-line at port 0, not refused: say why in the log, since the call will carry nothing."""
    if not any(line.accepted for line in lines):
        reasons = "; ".join(f"m-line {line.index}: {line.reason}" for line in lines)
        logger.warning("! %s refused every m-line of the offer: %s", name, reasons)


def _transport_of(line: MediaLine, bundles: list[list[str]], index: int) -> int:
    for number, group in enumerate(bundles):
        if line.mid in group:
            return -1 - number
    return index


def take_slot(kind: str, policy: LocalPolicy, counts: dict[str, int]) -> str:
    """Give an m-line of this kind one of the endpoint's media slots; why not, or "".

    As KMS's base SDP endpoint (``on_handler_required``): each audio, video or data channel
    m-line, in offer order, takes a media handler while ``numAudioMedias``/``numVideoMedias``
    (one data channel with ``useDataChannels``) last, before its profile, codecs or port are
    looked at: one refused for those still uses its slot, and the lines after the last slot are
    refused even when they could be taken.
    """
    limits = {
        "audio": policy.num_audio,
        "video": policy.num_video,
        "application": 1 if policy.use_data_channels else 0,
    }
    if kind not in limits:
        return f"unsupported media kind {kind}"
    if kind == "application" and not policy.use_data_channels:
        return "data channels are off (useDataChannels=false)"
    if counts.get(kind, 0) >= limits[kind]:
        setting = {"audio": "numAudioMedias", "video": "numVideoMedias"}.get(kind, "one")
        return f"no {kind} m-line left ({setting}: {limits[kind]}), taken by the ones before it"
    counts[kind] = counts.get(kind, 0) + 1
    return ""


def _plan_line(
    index: int, media: MediaSection, policy: LocalPolicy, counts: dict[str, int]
) -> MediaLine:
    mid = media.mid if media.mid is not None else str(index)
    line = MediaLine(index=index, kind=media.kind, mid=mid, accepted=False, proto=media.proto)
    line.refused_formats = list(media.formats)
    line.reason = take_slot(media.kind, policy, counts)
    if line.reason:
        return line
    if media.kind == "application" and media.rejected:
        line.reason = "rejected by the offerer (port 0)"
    elif media.kind == "application":
        _plan_data_channel(line, media)
    elif media.proto not in RTP_PROFILES:
        line.reason = f"profile {media.proto} is not WebRTC (needs UDP/TLS/RTP/SAVPF)"
    else:
        _choose_codecs(line, media, policy)
        if media.rejected:
            refuse_offered_port_0(line, media)
        elif line.codecs:
            line.accepted = True
            line.direction = intersect_direction(policy.direction, media.direction)
            line.extensions = {uri: ext_id for ext_id, _, uri in media.extmaps if uri in EXTENSIONS}
            line.remote_ssrcs = set(media.ssrcs)
        else:
            offered = ", ".join(c.name for c in media.codecs) or "none"
            have = policy.served_names(media.kind)
            line.reason = f"no common codec; offered {offered}, have {have}"
            # KMS's RTP/AVP handler (kms-core bug 627's fix) keeps the first offered format.
            line.refused_formats = media.formats[:1]
    return line


def refuse_offered_port_0(line: MediaLine, media: MediaSection) -> None:
    """An m-line offered with port 0 (RFC 3264 8.2): KMS answers it "as usual", then at port 0,
    so with the formats it would have taken (the first offered one when none)."""
    taken = [*line.codecs, *([line.dtmf] if line.dtmf else [])]
    line.refused_formats = [str(c.payload_type) for c in taken] or media.formats[:1]
    line.codecs, line.dtmf = [], None
    line.reason = "rejected by the offerer (port 0)"


def _plan_data_channel(line: MediaLine, media: MediaSection) -> None:
    """The data channel m-line, as KMS's SCTP handler takes it (RFC 8841 only).

    Raises:
        SdpEndPointProcessOfferError: 40205 for a data channel line in the pre-RFC 8841 form
            (``DTLS/SCTP 5000`` with ``a=sctpmap``) while data channels are on: KMS's handler
            fails the whole offer ("Cannot process SCTP: Invalid SDP offer").
    """
    if media.proto not in SCTP_PROFILES:
        line.reason = f"unsupported application profile {media.proto}"
    elif media.formats[:1] != [SCTP_FORMAT] or not media.has("sctp-port"):
        raise SdpEndPointProcessOfferError(
            f"Error processing offer: the data channel m-line ({media.proto} "
            f"{' '.join(media.formats)}) needs the format {SCTP_FORMAT} and a=sctp-port "
            "(RFC 8841); the older a=sctpmap form is not accepted"
        )
    else:
        line.accepted = True


def _choose_codecs(line: MediaLine, media: MediaSection, policy: LocalPolicy) -> None:
    events: list[Codec] = []
    allowed = policy.served(media.kind)
    for codec in media.codecs:
        if is_dtmf(codec):
            events.append(codec)
            continue
        spec = find_spec(media.kind, codec)
        if spec is not None and spec in allowed:
            line.codecs.append(_local_copy(codec, spec))
    # Browsers list telephone-event/48000 before /8000: take the one at the clock rate of the
    # first codec, so that RFC 4733 events bridge to a PBX's PCMU/PCMA leg without conversion.
    clock = line.codecs[0].clock_rate if line.codecs else 0
    chosen = next((e for e in events if e.clock_rate == clock), events[0] if events else None)
    if chosen is not None:
        line.dtmf = _local_copy(chosen, find_spec(media.kind, chosen))


def _local_copy(codec: Codec, spec: CodecSpec | None) -> Codec:
    feedback = [fb for fb in codec.rtcp_fb if spec is None or fb in spec.feedback]
    return Codec(
        payload_type=codec.payload_type,
        name=codec.name,
        clock_rate=codec.clock_rate,
        channels=codec.channels,
        fmtp=codec.fmtp,
        rtcp_fb=feedback,
    )


def plan_offer(policy: LocalPolicy, audio: bool, video: bool) -> list[MediaLine]:
    """The m-lines of a local offer: audio, video, then data channels."""
    lines: list[MediaLine] = []
    # numAudioMedias/numVideoMedias 0 (an audio-only SdpEndpoint.conf.json) offer no such line.
    for kind, wanted in (
        ("audio", audio and policy.num_audio),
        ("video", video and policy.num_video),
    ):
        if not wanted:
            continue
        specs = policy.served(kind)
        codecs = [spec.as_codec() for spec in specs if spec.name != "telephone-event"]
        if not codecs:
            logger.warning("no %s codec to offer: none of the configured ones is served", kind)
            continue
        line = MediaLine(index=len(lines), kind=kind, mid=str(len(lines)), accepted=True)
        line.codecs = codecs
        dtmf = [s for s in specs if s.name == "telephone-event" and s.clock_rate == 8000]
        line.dtmf = dtmf[0].as_codec() if dtmf else None
        line.extensions = {uri: number for number, uri in enumerate(EXTENSIONS[:3], start=1)}
        line.direction = policy.direction
        lines.append(line)
    if policy.use_data_channels:
        index = len(lines)
        lines.append(
            MediaLine(index, "application", str(index), accepted=True, proto=SCTP_PROFILES[0])
        )
    for line in lines:
        line.transport = -1
    return lines


def apply_answer(lines: list[MediaLine], answer: SessionDescription) -> None:
    """Narrow an offer's plan to what the remote answer accepted.

    Raises:
        SdpParseError: the answer does not match the offer's m-lines.
    """
    if len(answer.media) != len(lines):
        raise SdpParseError(f"answer has {len(answer.media)} m-lines, the offer had {len(lines)}")
    for line, media in zip(lines, answer.media, strict=True):
        if media.kind != line.kind:
            raise SdpParseError(f"answer m-line {line.index} is {media.kind}, offered {line.kind}")
        if media.rejected:
            line.accepted = False
            line.reason = "rejected by the answerer (port 0)"
            continue
        if line.kind == "application":
            continue
        offered = {c.payload_type: c for c in line.codecs}
        line.codecs = [
            _local_copy(c, find_spec(line.kind, c))
            for c in media.codecs
            if c.payload_type in offered and not is_dtmf(c)
        ]
        dtmf = [c for c in media.codecs if is_dtmf(c)]
        line.dtmf = dtmf[0] if dtmf else None
        if not line.codecs:
            line.accepted = False
            line.reason = "no codec accepted by the answerer"
        line.direction = intersect_direction(line.direction, media.direction)
        line.extensions = {uri: ext_id for ext_id, _, uri in media.extmaps if uri in EXTENSIONS}
        line.remote_ssrcs = set(media.ssrcs)


def write_description(
    lines: list[MediaLine],
    transports: dict[int, LineTransport],
    *,
    session_version: int,
    session_id: int,
    cname: str,
    stream_id: str,
    sctp_port: int = 5000,
) -> SessionDescription:
    """The local SDP for a plan (offer or answer)."""
    description = SessionDescription(
        version=0,
        origin=Origin("-", str(session_id), str(session_version), "IN", "IP4", "0.0.0.0"),
        session_name="Kurento Media Server",
        connection=None,
        connection_line=None,
        timing=["0 0"],
        attributes=[],
        bandwidths=[],
        info=None,
        uri=None,
        emails=[],
        phones=[],
        media=[],
    )
    groups: dict[int, list[str]] = {}
    for line in lines:
        if line.accepted and line.transport < 0:
            groups.setdefault(line.transport, []).append(line.mid)
    for mids in groups.values():
        description.attributes.append(Attribute("group", "BUNDLE " + " ".join(mids)))
    description.attributes.append(Attribute("msid-semantic", f" WMS {stream_id}"))
    for line in lines:
        description.media.append(_write_line(line, transports, cname, stream_id, sctp_port))
    return description


def _write_line(
    line: MediaLine,
    transports: dict[int, LineTransport],
    cname: str,
    stream_id: str,
    sctp_port: int,
) -> MediaSection:
    transport = transports.get(line.transport)
    if not line.accepted:
        media = _section(line.kind, 0, line.proto, line.refused_formats or ["0"])
    elif line.kind == "application":
        media = _section("application", 9, line.proto, [SCTP_FORMAT])
    else:
        formats = [str(c.payload_type) for c in line.codecs]
        if line.dtmf is not None:
            formats.append(str(line.dtmf.payload_type))
        media = _section(line.kind, 9, line.proto, formats)
    media.connection = "0.0.0.0"
    media.connection_line = "IN IP4 0.0.0.0"
    if transport is not None and line.accepted:
        media.port = transport.port
        family = "IP6" if ":" in transport.address else "IP4"
        media.connection = transport.address
        media.connection_line = f"IN {family} {transport.address}"
        _add_transport(media, transport)
    media.add("mid", line.mid)
    if line.kind == "application":
        if line.accepted:
            media.add("sctp-port", str(sctp_port))
            media.add("max-message-size", "262144")
        return media
    for uri, ext_id in line.extensions.items():
        media.add("extmap", f"{ext_id} {uri}")
    media.add(line.direction if line.accepted else "inactive", None)
    media.add("rtcp-mux", None)
    for codec in [*line.codecs, *([line.dtmf] if line.dtmf else [])]:
        _add_codec(media, codec)
    if line.sends:
        media.add("ssrc", f"{line.local_ssrc} cname:{cname}")
        media.add("ssrc", f"{line.local_ssrc} msid:{stream_id} {stream_id}-{line.kind}")
    return media


def _section(kind: str, port: int, proto: str, formats: list[str]) -> MediaSection:
    return MediaSection(
        kind=kind,
        port=port,
        port_count=None,
        proto=proto,
        formats=formats,
        connection=None,
        connection_line=None,
        bandwidths=[],
        attributes=[],
        info=None,
    )


def _add_transport(media: MediaSection, transport: LineTransport) -> None:
    media.add("rtcp", "9 IN IP4 0.0.0.0")
    media.add("ice-ufrag", transport.ufrag)
    media.add("ice-pwd", transport.pwd)
    media.add("ice-options", "trickle")
    media.add("fingerprint", f"{transport.fingerprint[0]} {transport.fingerprint[1]}")
    media.add("setup", transport.setup)
    for candidate in transport.candidates:
        media.add("candidate", candidate.removeprefix("candidate:"))
    if transport.end_of_candidates:
        media.add("end-of-candidates", None)


def _add_codec(media: MediaSection, codec: Codec) -> None:
    rtpmap = f"{codec.payload_type} {codec.name}/{codec.clock_rate}"
    if codec.channels and codec.channels > 1:
        rtpmap += f"/{codec.channels}"
    media.add("rtpmap", rtpmap)
    for feedback in codec.rtcp_fb:
        media.add("rtcp-fb", f"{codec.payload_type} {feedback}")
    if codec.fmtp:
        media.add("fmtp", f"{codec.payload_type} {codec.fmtp}")


def remote_ice(description: SessionDescription, media: MediaSection) -> tuple[str, str] | None:
    """The remote ufrag and password of an m-line (media level, else session level); None when
    either is missing. KMS answers such an offer (its SDP agent does not look) and then only
    warns "Cannot set remote media credentials": its ICE never checks the peer."""
    ufrag = effective(description, media, "ice-ufrag")
    pwd = effective(description, media, "ice-pwd")
    if not ufrag or not pwd:
        return None
    return ufrag, pwd


def remote_dtls(
    description: SessionDescription, media: MediaSection
) -> tuple[list[tuple[str, str]], str]:
    """The remote fingerprints (empty when the offer has none: KMS answers it, and its DTLS
    accepts whatever certificate the peer shows) and setup role of an m-line."""
    fingerprints = media.fingerprints or _session_fingerprints(description)
    setup = effective(description, media, "setup") or "actpass"
    return fingerprints, setup


def _session_fingerprints(description: SessionDescription) -> list[tuple[str, str]]:
    found = []
    for value in description.get_all("fingerprint"):
        algorithm, _, digest = value.partition(" ")
        found.append((algorithm, digest.strip()))
    return found


def new_session_id() -> int:
    """An origin session id (NTP-like, as most stacks use)."""
    return int(time.time() * 1000) & 0x7FFFFFFFFFFFFFFF
