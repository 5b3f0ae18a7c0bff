"""SDP (RFC 8866): a tolerant, exact model for WebRTC peers and plain-RTP PBXs.

``SessionDescription.parse(text).to_string()`` reproduces every line (with CRLF endings), unknown
attributes included, in order. Lines are written in RFC 8866 order, so the rare peer that orders
them otherwise gets them back reordered; ``o=`` and ``m=`` fields are rejoined with single spaces.
Accessors read what negotiation needs from the attributes. Every parse failure is a
``SdpParseError`` (40201) naming the 1-based line number and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from protocol.errors import SdpParseError

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, None),
    18: ("G729", 8000, None),
    26: ("JPEG", 90000, None),
    31: ("H261", 90000, None),
    34: ("H263", 90000, None),
}
"""RFC 3551 table 4/5 payload types that peers (Asterisk, Cisco) offer without ``a=rtpmap``."""

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
TCP_TYPES = ("active", "passive", "so")
SESSION_TYPES = frozenset("osiuepcbtrzka")
MEDIA_TYPES = frozenset("icbka")

# ASCII digits only, and few of them: int() also takes "٣", and raises on 5000-digit strings.
_DIGITS = re.compile(r"[0-9]{1,20}")
_RTPMAP = re.compile(r"([0-9]+)\s+([^/\s]+)/([0-9]+)(?:/([0-9]+))?")


def _number(text: str, maximum: int) -> int | None:
    """A decimal number of at most ``maximum``, or None."""
    if _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None


@dataclass
class Attribute:
    """One ``a=`` line: ``name`` and, for ``a=name:value``, its value."""

    name: str
    value: str | None

    def to_line(self) -> str:
        """The ``a=`` line."""
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


@dataclass
class Origin:
    """The ``o=`` line (RFC 8866 section 5.2)."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    def to_line(self) -> str:
        """The ``o=`` line."""
        return (
            f"o={self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Codec:
    """A payload type of an m-line, from ``rtpmap``/``fmtp``/``rtcp-fb`` or a static type."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None
    rtcp_fb: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity for matching: lower-case name, clock rate, channels (1 when absent)."""
        return (self.name.lower(), self.clock_rate, self.channels or 1)

    def parameters(self) -> dict[str, str]:
        """``fmtp`` as a dict (``a=b;c=d``); a bare token (``0-16``) maps to ``""``."""
        params: dict[str, str] = {}
        for item in (self.fmtp or "").split(";"):
            key, sep, value = item.strip().partition("=")
            if key:
                params[key] = value if sep else ""
        return params


def parse_rtpmap(value: str) -> Codec | None:
    """``a=rtpmap`` (``96 opus/48000/2``) as a codec without fmtp, or None if malformed."""
    found = _RTPMAP.fullmatch(value.strip())
    if found is None:
        return None
    payload_type = _number(found.group(1), 127)
    clock_rate = _number(found.group(3), 2**32 - 1)
    channels = _number(found.group(4), 255) if found.group(4) else None
    if payload_type is None or clock_rate is None or (found.group(4) and channels is None):
        return None
    return Codec(payload_type, found.group(2), clock_rate, channels)


@dataclass
class Crypto:
    """An SDES ``a=crypto`` line (RFC 4568 section 9.1)."""

    tag: int
    suite: str
    key_params: str
    session_params: str | None = None

    @property
    def key_base64(self) -> str:
        """The first ``inline:`` key without its ``|lifetime|MKI:length`` parts."""
        return self.key_params.split(";", 1)[0].removeprefix("inline:").split("|", 1)[0]

    def to_value(self) -> str:
        """The attribute value."""
        value = f"{self.tag} {self.suite} {self.key_params}"
        return f"{value} {self.session_params}" if self.session_params else value


@dataclass
class IceCandidateLine:
    """An ICE candidate (RFC 8839 section 5.1)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    extensions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str) -> IceCandidateLine:
        """Parse ``candidate:...``, with or without that prefix (or ``a=``).

        Raises:
            ValueError: the reason it is not a candidate.
        """
        bits = value.strip().removeprefix("a=").removeprefix("candidate:").split()
        if len(bits) < 8:
            raise ValueError(
                f"{len(bits)} fields, expected at least 8: "
                "foundation component transport priority address port typ type"
            )
        if bits[6] != "typ":
            raise ValueError(f"the 7th field is {bits[6]!r}, expected 'typ'")
        candidate = cls(
            foundation=bits[0],
            component=_field(bits[1], "component", 1, 256),
            transport=_transport(bits[2]),
            priority=_field(bits[3], "priority", 0, 2**32 - 1),
            address=bits[4],
            port=_field(bits[5], "port", 0, 65535),
            type=_candidate_type(bits[7]),
        )
        candidate._read_extensions(bits[8:])
        return candidate

    def _read_extensions(self, rest: list[str]) -> None:
        if len(rest) % 2:
            raise ValueError(f"extension {rest[-1]!r} has no value (they come in name/value pairs)")
        for name, item in zip(rest[::2], rest[1::2], strict=True):
            if name == "raddr":
                self.related_address = item
            elif name == "rport":
                self.related_port = _field(item, "rport", 0, 65535)
            elif name == "tcptype":
                if item not in TCP_TYPES:
                    raise ValueError(f"tcptype {item!r} is not one of {', '.join(TCP_TYPES)}")
                self.tcptype = item
            else:
                self.extensions.append((name, item))

    def to_sdp(self) -> str:
        """``candidate:...`` as browsers write it (raddr, rport, tcptype, then extensions)."""
        parts = [f"candidate:{self.foundation}", str(self.component), self.transport]
        parts += [str(self.priority), self.address, str(self.port), "typ", self.type]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        for name, item in self.extensions:
            parts += [name, item]
        return " ".join(parts)


def _field(text: str, name: str, low: int, high: int) -> int:
    """A numeric candidate field in ``low..high``."""
    value = _number(text, high)
    if value is None or value < low:
        raise ValueError(f"{name} {text!r} is not a number in {low}-{high}")
    return value


def _transport(text: str) -> str:
    # libnice (behind KMS) accepts UDP and TCP in any case; keep the peer's spelling.
    if text.lower() not in ("udp", "tcp"):
        raise ValueError(f"transport {text!r} is not UDP or TCP")
    return text


def _candidate_type(text: str) -> str:
    if text not in CANDIDATE_TYPES:
        raise ValueError(f"type {text!r} is not one of {', '.join(CANDIDATE_TYPES)}")
    return text


class _Attributes:
    """Attribute access shared by sessions and media sections."""

    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """The first value of an attribute (``""`` for a flag), or None."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value if attribute.value is not None else ""
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of an attribute, in order (``""`` for flags)."""
        return [a.value or "" for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        """Whether the attribute is present."""
        return any(a.name == name for a in self.attributes)

    def set(self, name: str, value: str | None) -> None:
        """Replace every occurrence with one attribute, in the first one's place."""
        for index, attribute in enumerate(self.attributes):
            if attribute.name == name:
                self.attributes[index] = Attribute(name, value)
                self.attributes = [
                    a for i, a in enumerate(self.attributes) if a.name != name or i == index
                ]
                return
        self.add(name, value)

    def add(self, name: str, value: str | None) -> None:
        """Append an attribute."""
        self.attributes.append(Attribute(name, value))

    def remove(self, name: str) -> None:
        """Remove every occurrence of an attribute."""
        self.attributes = [a for a in self.attributes if a.name != name]


@dataclass
class MediaSection(_Attributes):
    """One ``m=`` section and its lines (RFC 8866 section 5.14)."""

    kind: str
    port: int
    port_count: int | None
    proto: str
    formats: list[str]
    connection: str | None = None
    connection_line: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    info: str | None = None
    key_line: str | None = None
    """The obsolete ``k=`` line, kept verbatim."""

    @property
    def is_rtp(self) -> bool:
        """Whether the profile is RTP (formats are payload types): RTP/AVP, UDP/TLS/RTP/SAVPF."""
        return _is_rtp(self.proto)

    @property
    def rejected(self) -> bool:
        """Port 0: the line is rejected or disabled (or, with ``a=bundle-only``, bundled)."""
        return self.port == 0

    @property
    def bundle_only(self) -> bool:
        """``a=bundle-only`` (RFC 8843): port 0 here means "use the BUNDLE transport"."""
        return self.has("bundle-only")

    @property
    def mid(self) -> str | None:
        """``a=mid``."""
        return self.get("mid")

    @property
    def direction(self) -> str:
        """The media direction (sendrecv when none is given)."""
        return _direction(self.attributes) or "sendrecv"

    @property
    def codecs(self) -> list[Codec]:
        """Payload types in m-line order, static ones included; unknown dynamic ones skipped."""
        if not self.is_rtp:
            return []
        maps: dict[int, Codec] = {}
        for value in self.get_all("rtpmap"):
            codec = parse_rtpmap(value)
            if codec is not None:
                maps.setdefault(codec.payload_type, codec)
        codecs: dict[int, Codec] = {}
        for fmt in self.formats:
            pt = _number(fmt, 127)
            if pt is None or pt in codecs:
                continue
            codec = maps.get(pt)
            if codec is None and pt in STATIC_PAYLOAD_TYPES:
                codec = Codec(pt, *STATIC_PAYLOAD_TYPES[pt])
            if codec is not None:
                codec.fmtp = next(iter(self._by_payload("fmtp", pt)), None)
                codec.rtcp_fb = self._by_payload("rtcp-fb", pt)
                codecs[pt] = codec
        return list(codecs.values())

    def _by_payload(self, name: str, pt: int) -> list[str]:
        """Values of ``a=name:<pt> rest`` (and ``a=rtcp-fb:* rest``), without the payload type."""
        found = []
        for value in self.get_all(name):
            head, _, rest = value.strip().partition(" ")
            if _number(head, 127) == pt or (head == "*" and name == "rtcp-fb"):
                found.append(rest.strip())
        return found

    @property
    def extmaps(self) -> list[tuple[int, str | None, str]]:
        """``a=extmap`` (RFC 8285): (id, direction, uri); malformed ones are skipped."""
        found = []
        for value in self.get_all("extmap"):
            bits = value.split()
            ext_id, _, direction = bits[0].partition("/") if bits else ("", "", "")
            number = _number(ext_id, 255)
            if number is not None and len(bits) >= 2:
                found.append((number, direction or None, bits[1]))
        return found

    @property
    def ssrcs(self) -> dict[int, dict[str, str]]:
        """``a=ssrc`` (RFC 5576) attributes by SSRC: ``{ssrc: {"cname": ..., "msid": ...}}``."""
        found: dict[int, dict[str, str]] = {}
        for value in self.get_all("ssrc"):
            head, _, rest = value.strip().partition(" ")
            ssrc = _number(head, 2**32 - 1)
            if ssrc is None:
                continue
            name, _, item = rest.partition(":")
            attributes = found.setdefault(ssrc, {})
            if name.strip():
                attributes.setdefault(name.strip(), item.strip())
        return found

    @property
    def ssrc_groups(self) -> list[tuple[str, list[int]]]:
        """``a=ssrc-group``: (semantics, SSRCs), e.g. ``("FID", [video, rtx])``."""
        groups = []
        for value in self.get_all("ssrc-group"):
            bits = value.split()
            if bits:
                ssrcs = [_number(b, 2**32 - 1) for b in bits[1:]]
                groups.append((bits[0], [s for s in ssrcs if s is not None]))
        return groups

    @property
    def candidates(self) -> list[IceCandidateLine]:
        """``a=candidate`` lines (parse() has checked them)."""
        return [IceCandidateLine.parse(v) for v in self.get_all("candidate")]

    @property
    def end_of_candidates(self) -> bool:
        """``a=end-of-candidates``."""
        return self.has("end-of-candidates")

    @property
    def ice_ufrag(self) -> str | None:
        """``a=ice-ufrag`` of this section (see ``effective`` for the session fallback)."""
        return self.get("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """``a=ice-pwd`` of this section."""
        return self.get("ice-pwd")

    @property
    def ice_options(self) -> str | None:
        """``a=ice-options`` of this section (``trickle``)."""
        return self.get("ice-options")

    @property
    def fingerprints(self) -> list[tuple[str, str]]:
        """``a=fingerprint``: (lower-case algorithm, digest)."""
        return _fingerprints(self.get_all("fingerprint"))

    @property
    def setup(self) -> str | None:
        """``a=setup`` (RFC 4145): actpass, active, passive or holdconn."""
        return self.get("setup")

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux``."""
        return self.has("rtcp-mux")

    @property
    def rtcp(self) -> tuple[int, str | None] | None:
        """``a=rtcp:port [IN IP4 address]`` (RFC 3605), or None if absent or malformed."""
        bits = (self.get("rtcp") or "").split()
        port = _number(bits[0], 65535) if bits else None
        if port is None:
            return None
        return port, bits[3] if len(bits) >= 4 else None

    @property
    def cryptos(self) -> list[Crypto]:
        """``a=crypto`` lines (SDES-SRTP); malformed ones are skipped."""
        found = []
        for value in self.get_all("crypto"):
            bits = value.split(maxsplit=3)
            tag = _number(bits[0], 999999999) if bits else None
            if tag is not None and len(bits) >= 3:
                found.append(Crypto(tag, bits[1], bits[2], bits[3] if len(bits) > 3 else None))
        return found

    @property
    def sctp_port(self) -> int | None:
        """``a=sctp-port`` (RFC 8841), else the port of a legacy ``a=sctpmap``."""
        value = self.get("sctp-port")
        if value is None:
            value = (self.get("sctpmap") or "").split(" ")[0]
        return _number(value.strip(), 65535)

    @property
    def max_message_size(self) -> int | None:
        """``a=max-message-size``."""
        return _number((self.get("max-message-size") or "").strip(), 2**64 - 1)

    @property
    def msid(self) -> str | None:
        """``a=msid`` (RFC 8830): ``stream track``."""
        return self.get("msid")

    def to_lines(self) -> list[str]:
        """The section's lines, in RFC 8866 order."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [" ".join([f"m={self.kind}", port, self.proto, *self.formats])]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.connection_line is not None:
            lines.append(f"c={self.connection_line}")
        lines += [f"b={b}" for b in self.bandwidths]
        if self.key_line is not None:
            lines.append(f"k={self.key_line}")
        lines += [a.to_line() for a in self.attributes]
        return lines


@dataclass
class SessionDescription(_Attributes):
    """A whole SDP (RFC 8866 section 5)."""

    version: int
    origin: Origin
    session_name: str
    connection: str | None = None
    connection_line: str | None = None
    timing: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[Attribute] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    info: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    media: list[MediaSection] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Session lines kept verbatim (``r=``, ``z=``, ``k=``), written after the ``t=`` lines."""

    @property
    def bundle_groups(self) -> list[list[str]]:
        """The mids of each ``a=group:BUNDLE`` (RFC 8843)."""
        groups = []
        for value in self.get_all("group"):
            bits = value.split()
            if bits and bits[0] == "BUNDLE":
                groups.append(bits[1:])
        return groups

    @property
    def ice_lite(self) -> bool:
        """``a=ice-lite``."""
        return self.has("ice-lite")

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse SDP text with LF or CRLF line endings.

        Raises:
            SdpParseError: ``"Empty SDP"``, or the 1-based line number, the reason and the line.
        """
        try:
            return _Parser(text).parse()
        except SdpParseError:
            raise
        except Exception as exc:  # a parser bug must still reach the client as 40201
            raise SdpParseError(f"SDP could not be parsed: {type(exc).__name__}: {exc}") from exc

    def to_string(self) -> str:
        """The SDP text in RFC 8866 line order, with CRLF line endings and a final CRLF."""
        lines = [f"v={self.version}", self.origin.to_line(), f"s={self.session_name}"]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [f"e={e}" for e in self.emails]
        lines += [f"p={p}" for p in self.phones]
        if self.connection_line is not None:
            lines.append(f"c={self.connection_line}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"t={t}" for t in self.timing]
        lines += self.extra
        lines += [a.to_line() for a in self.attributes]
        for media in self.media:
            lines += media.to_lines()
        return "\r\n".join(lines) + "\r\n"


class _Parser:
    """Line-by-line SDP parser that knows which line it is on."""

    def __init__(self, text: str) -> None:
        # Split on LF only: str.splitlines() would also split on \x85, \u2028 and friends,
        # which may appear inside s= or i= text and would shift the reported line numbers.
        numbered = enumerate(text.removeprefix("\ufeff").split("\n"), start=1)
        self.lines = [(n, line.rstrip()) for n, line in numbered if line.strip()]
        self.session = SessionDescription(0, Origin("-", "0", "0", "IN", "IP4", "0.0.0.0"), "-")
        self.session.timing = []
        self.seen: set[str] = set()
        self.current: MediaSection | None = None

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise SdpParseError("Empty SDP")
        number, line = self.lines[0]
        if line != "v=0":
            raise _error(number, "the first line must be v=0", line)
        if len(self.lines) < 2 or not self.lines[1][1].startswith("o="):
            number, line = self.lines[1] if len(self.lines) > 1 else self.lines[0]
            raise _error(number, "the line after v=0 must be o=", line)
        for number, line in self.lines[1:]:
            try:
                self._line(number, line)
            except SdpParseError:
                raise
            except Exception as exc:  # a parser bug: still 40201, and still naming the line
                raise _error(number, f"unexpected {type(exc).__name__} ({exc})", line) from exc
        return self.session

    def _line(self, number: int, line: str) -> None:
        if len(line) < 2 or line[1] != "=":
            raise _error(number, "expected <type>=<value>", line)
        kind, value = line[0], line[2:]
        if kind == "m":
            self.current = _media(number, line, value)
            self.session.media.append(self.current)
            self.seen = set()
        elif self.current is not None:
            self._media_line(self.current, number, line, kind, value)
        elif kind in SESSION_TYPES:
            self._session_line(number, line, kind, value)
        elif kind == "v":
            raise _error(number, "v= may only be the first line", line)
        else:
            raise _error(number, f"unknown line type {kind!r}", line)

    def _once(self, number: int, line: str, kind: str) -> None:
        """Refuse a second single-valued line rather than silently drop one of them."""
        if kind in self.seen:
            raise _error(number, f"duplicate {kind}= line", line)
        self.seen.add(kind)

    def _session_line(self, number: int, line: str, kind: str, value: str) -> None:
        session = self.session
        if kind in "osiuc":
            self._once(number, line, kind)
        if kind == "o":
            session.origin = _origin(number, line, value)
        elif kind == "s":
            session.session_name = value
        elif kind == "i":
            session.info = value
        elif kind == "u":
            session.uri = value
        elif kind == "e":
            session.emails.append(value)
        elif kind == "p":
            session.phones.append(value)
        elif kind == "c":
            session.connection_line = value
            session.connection = _address(number, line, value)
        elif kind == "b":
            session.bandwidths.append(value)
        elif kind == "t":
            session.timing.append(value)
        elif kind == "a":
            session.attributes.append(_attribute(value))
        else:  # r=, z=, k=
            session.extra.append(line)

    def _media_line(
        self, media: MediaSection, number: int, line: str, kind: str, value: str
    ) -> None:
        if kind not in MEDIA_TYPES:
            raise _error(number, f"line type {kind!r} is not allowed after an m= line", line)
        if kind in "ick":
            self._once(number, line, kind)
        if kind == "c":
            media.connection_line = value
            media.connection = _address(number, line, value)
        elif kind == "b":
            media.bandwidths.append(value)
        elif kind == "i":
            media.info = value
        elif kind == "k":
            media.key_line = value
        else:
            media.attributes.append(_media_attribute(number, line, value))


def _error(number: int, reason: str, line: str) -> SdpParseError:
    return SdpParseError(f"SDP line {number}: {reason}: {line!r}")


def _origin(number: int, line: str, value: str) -> Origin:
    bits = value.split()
    if len(bits) != 6:
        raise _error(number, f"o= needs 6 fields, got {len(bits)}", line)
    return Origin(*bits)


def _is_rtp(proto: str) -> bool:
    return "RTP/" in proto.upper()


def _media(number: int, line: str, value: str) -> MediaSection:
    bits = value.split()
    if len(bits) < 4:
        raise _error(number, "m= needs media, port, protocol and at least one format", line)
    port_text, slash, count_text = bits[1].partition("/")
    port = _number(port_text, 65535)
    count = _number(count_text, 65535) if slash else None
    if port is None or (slash and not count):
        raise _error(number, f"port {bits[1]!r} is not a number (or number/count)", line)
    formats = bits[3:]
    if _is_rtp(bits[2]):
        for fmt in formats:
            if _number(fmt, 127) is None:
                raise _error(number, f"payload type {fmt!r} is not 0-127", line)
    return MediaSection(bits[0], port, count, bits[2], formats)


def _media_attribute(number: int, line: str, value: str) -> Attribute:
    attribute = _attribute(value)
    if attribute.name == "rtpmap" and parse_rtpmap(attribute.value or "") is None:
        raise _error(number, "malformed rtpmap (expected '<pt> <name>/<rate>[/<channels>]')", line)
    if attribute.name == "candidate":
        try:
            IceCandidateLine.parse(attribute.value or "")
        except ValueError as exc:
            raise _error(number, f"malformed candidate ({exc})", line) from exc
    return attribute


def _address(number: int, line: str, value: str) -> str:
    bits = value.split()
    if len(bits) < 3:
        raise _error(number, "c= needs network type, address type and address", line)
    # Multicast c= lines carry /ttl/count after the address (RFC 8866 section 5.7).
    return bits[2].split("/")[0]


def _attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name, rest if sep else None)


def _direction(attributes: list[Attribute]) -> str | None:
    for attribute in attributes:
        if attribute.name in DIRECTIONS and attribute.value is None:
            return attribute.name
    return None


def _fingerprints(values: list[str]) -> list[tuple[str, str]]:
    found = []
    for value in values:
        algorithm, _, digest = value.strip().partition(" ")
        if digest.strip():
            found.append((algorithm.lower(), digest.strip()))
    return found


def effective(session: SessionDescription, media: MediaSection, name: str) -> str | None:
    """An attribute at media level, else at session level (ice-ufrag, fingerprint, setup, ...)."""
    value = media.get(name)
    return value if value is not None else session.get(name)


def effective_direction(session: SessionDescription, media: MediaSection) -> str:
    """The media direction, else the session-level one (RFC 8866 section 6.7), else sendrecv."""
    return _direction(media.attributes) or _direction(session.attributes) or "sendrecv"


def media_address(session: SessionDescription, media: MediaSection) -> str | None:
    """The connection address of a media section (its own c=, else the session's)."""
    return media.connection if media.connection is not None else session.connection
