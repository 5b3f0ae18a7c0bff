"""SDP (RFC 8866): a tolerant, exact model for WebRTC peers and plain-RTP PBXs.

``SessionDescription.parse(text).to_string()`` reproduces every line (with CRLF endings), unknown
attributes included, in order. Accessors read what negotiation needs from the attributes. Every
parse failure is a ``SdpParseError`` (40201) naming the line number and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from protocol.errors import SdpParseError

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
    18: ("G729", 8000, 1),
    26: ("JPEG", 90000, None),
    31: ("H261", 90000, None),
    34: ("H263", 90000, None),
}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_RTPMAP = re.compile(r"^(\d+)\s+([^/\s]+)/(\d+)(?:/(\d+))?\s*$")


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
    """The ``o=`` line."""

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
        """``fmtp`` as a dict (``a=b;c=d``); a bare token maps to ``""``."""
        params: dict[str, str] = {}
        for item in (self.fmtp or "").split(";"):
            key, sep, value = item.strip().partition("=")
            if key:
                params[key] = value if sep else ""
        return params


@dataclass
class Crypto:
    """An SDES ``a=crypto`` line (RFC 4568)."""

    tag: int
    suite: str
    key_params: str
    session_params: str | None = None

    @property
    def key_base64(self) -> str:
        """The ``inline:`` key without lifetime and MKI."""
        return self.key_params.removeprefix("inline:").split("|", 1)[0]

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
        """Parse ``candidate:...`` (with or without the prefix).

        Raises:
            ValueError: the reason it is not a candidate.
        """
        bits = value.strip().removeprefix("a=").removeprefix("candidate:").split()
        if len(bits) < 8 or bits[6] != "typ":
            raise ValueError(
                "expected 'foundation component transport priority address port typ type'"
            )
        try:
            component, priority, port = int(bits[1]), int(bits[3]), int(bits[5])
        except ValueError as exc:
            raise ValueError("component, priority and port must be numbers") from exc
        if not 0 <= port <= 65535 or not 1 <= component <= 256:
            raise ValueError(f"port {port} or component {component} out of range")
        candidate = cls(bits[0], component, bits[2], priority, bits[4], port, bits[7])
        rest = bits[8:]
        if len(rest) % 2:
            raise ValueError("extension attributes must come in name/value pairs")
        for name, item in zip(rest[::2], rest[1::2], strict=True):
            if name == "raddr":
                candidate.related_address = item
            elif name == "rport":
                if not item.isdigit():
                    raise ValueError("rport must be a number")
                candidate.related_port = int(item)
            elif name == "tcptype":
                candidate.tcptype = item
            else:
                candidate.extensions.append((name, item))
        return candidate

    def to_sdp(self) -> str:
        """``candidate:...`` as browsers write it."""
        parts = [
            f"candidate:{self.foundation}",
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        for name, item in self.extensions:
            parts += [name, item]
        return " ".join(parts)


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
        """Every value of an attribute."""
        return [a.value or "" for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        """Whether the attribute is present."""
        return any(a.name == name for a in self.attributes)

    def set(self, name: str, value: str | None) -> None:
        """Replace every occurrence with one attribute (in the first one's place)."""
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
    """One ``m=`` section and its lines."""

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

    @property
    def rejected(self) -> bool:
        """Port 0: the line is rejected or disabled."""
        return self.port == 0

    @property
    def mid(self) -> str | None:
        """``a=mid``."""
        return self.get("mid")

    @property
    def direction(self) -> str:
        """The media direction (sendrecv when none is given)."""
        for attribute in self.attributes:
            if attribute.name in DIRECTIONS:
                return attribute.name
        return "sendrecv"

    @property
    def codecs(self) -> list[Codec]:
        """Payload types in m-line order, static ones included."""
        maps: dict[int, Codec] = {}
        for value in self.get_all("rtpmap"):
            found = _RTPMAP.match(value)
            if found:
                pt = int(found.group(1))
                channels = int(found.group(4)) if found.group(4) else None
                maps[pt] = Codec(pt, found.group(2), int(found.group(3)), channels)
        codecs: list[Codec] = []
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            codec = maps.get(pt)
            if codec is None and pt in STATIC_PAYLOAD_TYPES:
                name, clock, channels = STATIC_PAYLOAD_TYPES[pt]
                codec = Codec(pt, name, clock, channels)
            if codec is not None:
                codec.fmtp = self._by_payload("fmtp", pt)
                codec.rtcp_fb = self._all_by_payload("rtcp-fb", pt)
                codecs.append(codec)
        return codecs

    def _by_payload(self, name: str, pt: int) -> str | None:
        values = self._all_by_payload(name, pt)
        return values[0] if values else None

    def _all_by_payload(self, name: str, pt: int) -> list[str]:
        found = []
        for value in self.get_all(name):
            head, _, rest = value.partition(" ")
            if head == str(pt) or (head == "*" and name == "rtcp-fb"):
                found.append(rest.strip())
        return found

    @property
    def extmaps(self) -> list[tuple[int, str | None, str]]:
        """``a=extmap``: (id, direction, uri)."""
        found = []
        for value in self.get_all("extmap"):
            bits = value.split()
            if len(bits) < 2:
                continue
            ext_id, _, direction = bits[0].partition("/")
            if ext_id.isdigit():
                found.append((int(ext_id), direction or None, bits[1]))
        return found

    @property
    def ssrcs(self) -> dict[int, dict[str, str]]:
        """``a=ssrc`` attributes by SSRC."""
        found: dict[int, dict[str, str]] = {}
        for value in self.get_all("ssrc"):
            ssrc, _, rest = value.partition(" ")
            if not ssrc.isdigit():
                continue
            name, _, item = rest.partition(":")
            found.setdefault(int(ssrc), {})
            if name:
                found[int(ssrc)][name.strip()] = item.strip()
        return found

    @property
    def ssrc_groups(self) -> list[tuple[str, list[int]]]:
        """``a=ssrc-group``: (semantics, SSRCs)."""
        groups = []
        for value in self.get_all("ssrc-group"):
            bits = value.split()
            if bits:
                groups.append((bits[0], [int(b) for b in bits[1:] if b.isdigit()]))
        return groups

    @property
    def candidates(self) -> list[IceCandidateLine]:
        """``a=candidate`` lines (validated at parse time)."""
        return [IceCandidateLine.parse(v) for v in self.get_all("candidate")]

    @property
    def end_of_candidates(self) -> bool:
        """``a=end-of-candidates``."""
        return self.has("end-of-candidates")

    @property
    def ice_ufrag(self) -> str | None:
        """``a=ice-ufrag``."""
        return self.get("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """``a=ice-pwd``."""
        return self.get("ice-pwd")

    @property
    def ice_options(self) -> str | None:
        """``a=ice-options``."""
        return self.get("ice-options")

    @property
    def fingerprints(self) -> list[tuple[str, str]]:
        """``a=fingerprint``: (algorithm, value)."""
        return _fingerprints(self.get_all("fingerprint"))

    @property
    def setup(self) -> str | None:
        """``a=setup``."""
        return self.get("setup")

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux``."""
        return self.has("rtcp-mux")

    @property
    def rtcp(self) -> tuple[int, str | None] | None:
        """``a=rtcp:port [IN IP4 address]``."""
        value = self.get("rtcp")
        if not value:
            return None
        bits = value.split()
        if not bits[0].isdigit():
            return None
        return int(bits[0]), bits[3] if len(bits) >= 4 else None

    @property
    def cryptos(self) -> list[Crypto]:
        """``a=crypto`` lines."""
        found = []
        for value in self.get_all("crypto"):
            bits = value.split(maxsplit=3)
            if len(bits) >= 3 and bits[0].isdigit():
                found.append(
                    Crypto(int(bits[0]), bits[1], bits[2], bits[3] if len(bits) > 3 else None)
                )
        return found

    @property
    def sctp_port(self) -> int | None:
        """``a=sctp-port`` (or the legacy ``a=sctpmap`` port)."""
        value = self.get("sctp-port")
        if value is None:
            value = (self.get("sctpmap") or "").split(" ")[0] or None
        return int(value) if value is not None and value.isdigit() else None

    @property
    def max_message_size(self) -> int | None:
        """``a=max-message-size``."""
        value = self.get("max-message-size")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def msid(self) -> str | None:
        """``a=msid``."""
        return self.get("msid")

    def to_lines(self) -> list[str]:
        """The section's lines."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [f"m={self.kind} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
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
    """A whole SDP."""

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
    """Session lines kept verbatim (``r=``, ``z=``, ``k=``)."""

    @property
    def bundle_groups(self) -> list[list[str]]:
        """``a=group:BUNDLE`` mids."""
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
        """Parse SDP text.

        Raises:
            SdpParseError: with the 1-based line number and the line.
        """
        try:
            return _Parser(text).parse()
        except SdpParseError:
            raise
        except Exception as exc:  # never let a parser bug escape as anything else
            raise SdpParseError(f"SDP could not be parsed: {exc}") from exc

    def to_string(self) -> str:
        """The SDP text, CRLF line endings."""
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
    """Line-by-line SDP parser that knows where it is."""

    def __init__(self, text: str) -> None:
        self.lines = [(n, line.rstrip()) for n, line in enumerate(text.splitlines(), start=1)]
        self.lines = [(n, line) for n, line in self.lines if line.strip()]

    def error(self, number: int, reason: str, line: str) -> SdpParseError:
        return SdpParseError(f"SDP line {number}: {reason}: {line!r}")

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise SdpParseError("Empty SDP")
        number, first = self.lines[0]
        if first != "v=0":
            raise self.error(number, "the first line must be v=0", first)
        session = SessionDescription(0, Origin("-", "0", "0", "IN", "IP4", "0.0.0.0"), "-")
        session.timing = []
        current: MediaSection | None = None
        seen_origin = False
        for number, line in self.lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise self.error(number, "expected <type>=<value>", line)
            kind, value = line[0], line[2:]
            if kind == "m":
                current = self._media(number, line, value)
                session.media.append(current)
            elif current is not None:
                self._media_line(current, number, line, kind, value)
            else:
                seen_origin |= kind == "o"
                self._session_line(session, number, line, kind, value)
        if not seen_origin:
            raise SdpParseError("SDP has no o= line")
        return session

    def _session_line(
        self, session: SessionDescription, number: int, line: str, kind: str, value: str
    ) -> None:
        if kind == "o":
            bits = value.split()
            if len(bits) != 6:
                raise self.error(number, "o= needs 6 fields", line)
            session.origin = Origin(*bits)
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
            session.connection = self._address(number, line, value)
        elif kind == "b":
            session.bandwidths.append(value)
        elif kind == "t":
            session.timing.append(value)
        elif kind in "rzk":
            session.extra.append(line)
        elif kind == "a":
            session.attributes.append(_attribute(value))
        else:
            raise self.error(number, f"unknown line type {kind!r}", line)

    def _media(self, number: int, line: str, value: str) -> MediaSection:
        bits = value.split()
        if len(bits) < 4:
            raise self.error(number, "m= needs media, port, protocol and formats", line)
        port_text, _, count = bits[0 + 1].partition("/")
        if not port_text.isdigit() or (count and not count.isdigit()):
            raise self.error(number, "the port must be a number", line)
        formats = bits[3:]
        if "RTP" in bits[2]:
            for fmt in formats:
                if not fmt.isdigit() or int(fmt) > 127:
                    raise self.error(number, f"payload type {fmt!r} is not 0-127", line)
        return MediaSection(
            bits[0], int(port_text), int(count) if count else None, bits[2], formats
        )

    def _media_line(
        self, media: MediaSection, number: int, line: str, kind: str, value: str
    ) -> None:
        if kind == "c":
            media.connection_line = value
            media.connection = self._address(number, line, value)
        elif kind == "b":
            media.bandwidths.append(value)
        elif kind == "i":
            media.info = value
        elif kind == "k":
            media.key_line = value
        elif kind == "a":
            attribute = _attribute(value)
            if attribute.name == "rtpmap" and not _RTPMAP.match(attribute.value or ""):
                raise self.error(number, "malformed rtpmap", line)
            if attribute.name == "candidate":
                try:
                    IceCandidateLine.parse(attribute.value or "")
                except ValueError as exc:
                    raise self.error(number, f"malformed candidate ({exc})", line) from exc
            media.attributes.append(attribute)
        else:
            raise self.error(number, f"line type {kind!r} is not allowed in a media section", line)

    def _address(self, number: int, line: str, value: str) -> str:
        bits = value.split()
        if len(bits) < 3:
            raise self.error(number, "c= needs network type, address type and address", line)
        return bits[2].split("/")[0]


def _attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name, rest if sep else None)


def _fingerprints(values: list[str]) -> list[tuple[str, str]]:
    found = []
    for value in values:
        algorithm, _, digest = value.strip().partition(" ")
        if digest:
            found.append((algorithm.lower(), digest.strip()))
    return found


def effective(session: SessionDescription, media: MediaSection, name: str) -> str | None:
    """An attribute at media level, else at session level (ice-ufrag, fingerprint, setup, ...)."""
    value = media.get(name)
    return value if value is not None else session.get(name)


def media_address(session: SessionDescription, media: MediaSection) -> str | None:
    """The connection address of a media section (its own c=, else the session's)."""
    return media.connection if media.connection is not None else session.connection
