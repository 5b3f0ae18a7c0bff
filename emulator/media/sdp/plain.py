"""SDP offer/answer for RtpEndpoint: plain RTP (RFC 3264/3550/4566) as a PBX speaks it.

No ICE and no DTLS: each m-line has its own UDP port (even) and RTCP port (+1, or ``a=rtcp``,
RFC 3605), or RTCP on the RTP port with ``a=rtcp-mux`` (RFC 5761). Media is plain
``RTP/AVP``, or ``RTP/SAVP`` with ``a=crypto`` (SDES, RFC 4568) when the endpoint has a
``crypto`` suite. Hold is a direction (``sendonly``/``inactive``) or the RFC 2543 ``c=0.0.0.0``.
Codec choice reuses ``negotiation``: the served codecs, in the offerer's order. As KMS's
``RTP/AVPF`` handler (kms-core ``kmssdprtpavpfmediahandler.c``), the answer repeats the offered
profile, carries ``a=rtcp-fb`` only for a feedback profile (``RTP/AVPF``, ``RTP/SAVPF``), and an
m-line with no codec in common is refused (port 0) with the first offered format only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from emulator.media.sdp.negotiation import (
    LocalPolicy,
    MediaLine,
    _choose_codecs,
    intersect_direction,
    plan_offer,
    refuse_offered_port_0,
    take_slot,
)
from emulator.media.sdp.sdes import SdesConfig, choose_crypto
from protocol.errors import SdpParseError
from protocol.sdp import Crypto, MediaSection, SessionDescription

PLAIN_PROFILES = ("RTP/AVP", "RTP/AVPF")
"""KMS's RtpEndpoint without crypto: its RTP/AVPF handler takes exactly these two."""
SECURE_PROFILES = ("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF")
"""With SDES crypto KMS uses its RTP/SAVPF handler, whose pattern ``(UDP/TLS/)?RTP/SAVPF`` also
takes ``UDP/TLS/RTP/SAVPF`` (keyed by ``a=crypto``, no DTLS). ``RTP/SAVP``, which that pattern
does not match in kms-core's source, is still taken here: the SIP trunks and PBXs that use SDES
offer it, and 7.3.0's handler could not be read to confirm the refusal."""
HOLD_ADDRESSES = ("0.0.0.0", "::")


@dataclass
class RemoteTarget:
    """Where one m-line's media and RTCP go, as the remote SDP says."""

    rtp: tuple[str, int] | None
    """None on hold (``c=0.0.0.0``) or for a rejected line."""
    rtcp: tuple[str, int] | None
    mux: bool


@dataclass
class PlainLine:
    """One negotiated plain-RTP m-line: the codec plan, the remote target and the keys."""

    media: MediaLine
    proto: str
    offered_formats: list[str] = field(default_factory=list)
    remote: RemoteTarget = field(default_factory=lambda: RemoteTarget(None, None, False))
    mux: bool = False
    """RTCP on the RTP port (both sides agreed on ``a=rtcp-mux``)."""
    local_crypto: Crypto | None = None
    remote_key: bytes | None = None


def remote_target(description: SessionDescription, media: MediaSection) -> RemoteTarget:
    """The remote RTP/RTCP addresses of an m-line (``c=`` at media, else session level)."""
    mux = media.rtcp_mux
    address = _address(media.connection) or _address(description.connection)
    if media.rejected or not address or address in HOLD_ADDRESSES:
        return RemoteTarget(None, None, mux)
    rtp = (address, media.port)
    rtcp_line = media.rtcp
    if mux:
        rtcp = rtp
    elif rtcp_line is not None:
        rtcp = (rtcp_line[1] or address, rtcp_line[0])
    else:
        rtcp = (address, media.port + 1)
    return RemoteTarget(rtp, rtcp, mux)


def _address(connection: str | None) -> str | None:
    # "IN IP4 192.0.2.1/127" (multicast TTL) or a bare address, as protocol.sdp keeps it.
    if not connection:
        return None
    return connection.split()[-1].split("/")[0]


def plan_answer(
    offer: SessionDescription, policy: LocalPolicy, sdes: SdesConfig | None
) -> list[PlainLine]:
    """Decide every m-line of a remote offer: profile, codecs, direction, keys and target."""
    lines: list[PlainLine] = []
    counts = {"audio": 0, "video": 0}
    for index, section in enumerate(offer.media):
        mid = section.mid if section.mid is not None else str(index)
        media = MediaLine(index=index, kind=section.kind, mid=mid, accepted=False)
        line = PlainLine(media, section.proto, list(section.formats))
        lines.append(line)
        media.reason = _refusal(section, sdes, counts, policy)
        if media.reason:
            continue
        _choose_codecs(media, section, policy)
        if section.rejected:
            refuse_offered_port_0(media, section)
            line.offered_formats = media.refused_formats
            continue
        if not media.codecs:
            offered = ", ".join(c.name for c in section.codecs) or "none"
            have = policy.served_names(section.kind)
            media.reason = f"no common codec; offered {offered}, have {have}"
            line.offered_formats = section.formats[:1]
            continue
        if not section.proto.endswith("AVPF"):
            # No feedback in an RTP/AVP answer, whatever rtcp-fb the offer lists.
            for codec in [*media.codecs, *([media.dtmf] if media.dtmf else [])]:
                codec.rtcp_fb = []
        if sdes is not None:
            chosen = choose_crypto(section.cryptos, sdes.suite)
            if chosen is None:
                media.reason = f"no usable a=crypto line with suite {sdes.suite.sdp}"
                media.codecs = []
                continue
            line.local_crypto = sdes.crypto_line(chosen[0].tag)
            line.remote_key = chosen[1]
        media.accepted = True
        media.direction = intersect_direction(policy.direction, section.direction)
        media.remote_ssrcs = set(section.ssrcs)
        line.remote = remote_target(offer, section)
        line.mux = section.rtcp_mux
    return lines


def _refusal(
    section: MediaSection, sdes: SdesConfig | None, counts: dict[str, int], policy: LocalPolicy
) -> str:
    if section.kind not in ("audio", "video"):
        return f"an RtpEndpoint takes audio and video m-lines, not {section.kind}"
    slot = take_slot(section.kind, policy, counts)
    if slot:
        return slot
    if sdes is None and section.proto not in PLAIN_PROFILES:
        return f"profile {section.proto}: this RtpEndpoint has no crypto, it needs RTP/AVP"
    if sdes is not None and section.proto not in SECURE_PROFILES:
        return f"profile {section.proto}: this RtpEndpoint has crypto, it needs RTP/SAVP"
    return ""


def plan_local_offer(
    policy: LocalPolicy, audio: bool, video: bool, sdes: SdesConfig | None
) -> list[PlainLine]:
    """The m-lines of a local offer: served codecs, ``a=rtcp-mux`` offered with ``a=rtcp``."""
    lines = []
    for media in plan_offer(replace(policy, use_data_channels=False), audio, video):
        media.extensions = {}
        media.transport = media.index
        if media.kind == "video":
            # The served list ends with codecs only WebRTC peers use; a video phone wants these.
            media.codecs = [c for c in media.codecs if c.name in ("VP8", "H264")]
        proto = "RTP/SAVP" if sdes is not None else "RTP/AVP"
        line = PlainLine(media, proto, mux=True)
        if sdes is not None:
            line.local_crypto = sdes.crypto_line(1)
        lines.append(line)
    return lines


def apply_answer(
    lines: list[PlainLine], answer: SessionDescription, sdes: SdesConfig | None
) -> None:
    """Narrow a local offer to the remote answer: codecs, direction, mux, keys and target.

    Raises:
        SdpParseError: the answer's m-lines do not match the offer's.
    """
    if len(answer.media) != len(lines):
        raise SdpParseError(f"answer has {len(answer.media)} m-lines, the offer had {len(lines)}")
    for line, section in zip(lines, answer.media, strict=True):
        media = line.media
        if section.kind != media.kind:
            raise SdpParseError(
                f"answer m-line {media.index} is {section.kind}, offered {media.kind}"
            )
        if section.rejected:
            media.accepted = False
            media.reason = "rejected by the answerer (port 0)"
            continue
        offered = {c.payload_type for c in media.codecs}
        media.codecs, media.dtmf = [], None
        _choose_codecs(media, section, LocalPolicy())  # the offer already applied the policy
        media.codecs = [c for c in media.codecs if c.payload_type in offered]
        if not media.codecs:
            media.accepted = False
            media.reason = "no codec accepted by the answerer"
            continue
        if sdes is not None:
            chosen = choose_crypto(section.cryptos, sdes.suite)
            if chosen is None:
                media.accepted = False
                media.reason = f"the answer has no usable a=crypto with suite {sdes.suite.sdp}"
                continue
            line.remote_key = chosen[1]
        media.direction = intersect_direction(media.direction, section.direction)
        media.remote_ssrcs = set(section.ssrcs)
        line.remote = remote_target(answer, section)
        line.mux = section.rtcp_mux


@dataclass(frozen=True, slots=True)
class LocalPorts:
    """The local ports of one m-line."""

    rtp: int
    rtcp: int


def write_description(
    lines: list[PlainLine],
    ports: dict[int, LocalPorts],
    *,
    address: str,
    session_id: int,
    session_version: int,
    cname: str,
) -> str:
    """The local SDP: ``o=`` version, ``c=`` address and one port pair per m-line."""
    family = "IP6" if ":" in address else "IP4"
    out = [
        "v=0",
        f"o=- {session_id} {session_version} IN {family} {address}",
        "s=Kurento Media Server",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for line in lines:
        media = line.media
        local = ports.get(media.index)
        if not media.accepted or local is None:
            formats = " ".join(line.offered_formats or ["0"])
            out.append(f"m={media.kind} 0 {line.proto} {formats}")
            continue
        codecs = [*media.codecs, *([media.dtmf] if media.dtmf else [])]
        formats = " ".join(str(c.payload_type) for c in codecs)
        out.append(f"m={media.kind} {local.rtp} {line.proto} {formats}")
        for codec in codecs:
            rtpmap = f"{codec.payload_type} {codec.name}/{codec.clock_rate}"
            if codec.channels and codec.channels > 1:
                rtpmap += f"/{codec.channels}"
            out.append(f"a=rtpmap:{rtpmap}")
            if codec.fmtp:
                out.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
            out.extend(f"a=rtcp-fb:{codec.payload_type} {fb}" for fb in codec.rtcp_fb)
        out.append(f"a=rtcp:{local.rtcp} IN {family} {address}")
        if line.mux:
            out.append("a=rtcp-mux")
        if line.local_crypto is not None:
            out.append(f"a=crypto:{line.local_crypto.to_value()}")
        out.append(f"a={media.direction}")
        if media.sends:
            out.append(f"a=ssrc:{media.local_ssrc} cname:{cname}")
    return "\r\n".join(out) + "\r\n"
