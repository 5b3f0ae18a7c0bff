"""Per-endpoint capture of decrypted RTP and RTCP to pcap files, for analysis in Wireshark.

With SRTP a network capture shows ciphertext; these files hold what the endpoint decrypted (and what
it sent before encryption), each packet wrapped in IPv4 or IPv6 and UDP headers carrying the real
addresses and ports of the selected candidate pair, so that ``tshark -d udp.port==P,rtp`` (or the
``rtp_udp`` heuristic, tried first with ``-o udp.try_heuristic_first:TRUE``) decodes the streams.
Files are named by pipeline and element id, written as packets come and closed complete when the
element is released. ``CaptureBudget`` bounds the disk space all files take together: past it,
packets are counted as dropped, not written.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
"""pcap 2.4, microsecond timestamps, LINKTYPE_RAW (101): each record starts with an IP header."""
RECORD = struct.Struct("<IIII")
TAG = "capture"
"""Element tag switching capture on ("true") or off ("false"), whatever the server filter says."""
ON_VALUES = ("true", "on", "1", "yes")
OFF_VALUES = ("false", "off", "0", "no")

Address = tuple[str, int]


@dataclass
class CaptureBudget:
    """Bytes all capture files may take together (0 = unbounded)."""

    limit: int
    used: int = 0
    exhausted_logged: bool = False

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (logged once) when the budget is spent."""
        if self.limit and self.used + size > self.limit:
            if not self.exhausted_logged:
                self.exhausted_logged = True
                logger.warning(
                    "! capture disk budget of %d bytes reached: packets are no longer written "
                    "(raise capture_max_bytes)",
                    self.limit,
                )
            return False
        self.used += size
        return True


def udp_datagram(payload: bytes, source: Address, destination: Address) -> bytes:
    """``payload`` inside an IPv4 or IPv6 header and a UDP header (checksum 0: not computed)."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    udp = struct.pack("!HHHH", source[1], destination[1], 8 + len(payload), 0) + payload
    if src.version == 4 and dst.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src.packed, dst.packed
        )
        return header + udp
    src6 = src if src.version == 6 else ipaddress.IPv6Address(f"::ffff:{src}")
    dst6 = dst if dst.version == 6 else ipaddress.IPv6Address(f"::ffff:{dst}")
    return struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src6.packed + dst6.packed + udp


@dataclass
class PcapWriter:
    """One pcap file, written as packets come."""

    path: Path
    budget: CaptureBudget
    packets: int = 0
    dropped: int = 0
    _file: BinaryIO | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._file.write(PCAP_HEADER)
        self.budget.used += len(PCAP_HEADER)

    def write(self, payload: bytes, source: Address, destination: Address) -> None:
        """Append one UDP datagram with the current time."""
        if self._file is None:
            return
        datagram = udp_datagram(payload, source, destination)
        if not self.budget.take(RECORD.size + len(datagram)):
            self.dropped += 1
            return
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        self._file.write(RECORD.pack(seconds, micros, len(datagram), len(datagram)))
        self._file.write(datagram)
        self.packets += 1

    def packet(self, outgoing: bool, data: bytes, local: Address, remote: Address) -> None:
        """Append a packet of a leg between ``local`` and ``remote`` in its direction."""
        if outgoing:
            self.write(data, local, remote)
        else:
            self.write(data, remote, local)

    def close(self) -> None:
        """Flush and close: the file is complete."""
        if self._file is not None:
            self._file.close()
            self._file = None
            logger.info("= capture %s closed: %d packets", self.path, self.packets)


PacketTap = Callable[[bytes, bool], None]
"""``tap(plain_packet, outbound)``: called with every RTP/RTCP packet an endpoint handles."""


def endpoint_tap(writer: PcapWriter, local: Address, remote: Address) -> PacketTap:
    """A tap writing both directions of one endpoint's transport."""

    return lambda packet, outbound: writer.packet(outbound, packet, local, remote)


@dataclass
class CaptureService:
    """Which endpoints capture, and where their files go (settings ``capture*``)."""

    folder: Path
    pattern: str
    budget: CaptureBudget

    def wanted(self, element_id: str, name: str, tags: dict[str, str]) -> bool:
        """The element's ``capture`` tag decides; else the server filter: ``*`` for every
        endpoint, a regular expression matched against the id, the name and ``key=value`` tags,
        or empty for none."""
        tag = tags.get(TAG, "").strip().lower()
        if tag in ON_VALUES:
            return True
        if tag in OFF_VALUES or not self.pattern:
            return False
        if self.pattern == "*":
            return True
        subjects = [element_id, name, *(f"{k}={v}" for k, v in tags.items())]
        return any(re.search(self.pattern, subject) for subject in subjects)

    def open(self, element_id: str) -> PcapWriter:
        """A new file for the element: ``<folder>/<pipeline id>/<element id>.pcap``."""
        pipeline, _, element = element_id.partition("/")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", element or pipeline)
        path = self.folder / re.sub(r"[^A-Za-z0-9_.-]", "_", pipeline) / f"{safe}.pcap"
        if path.exists():
            path = path.with_name(f"{safe}-{time.time_ns()}.pcap")
        logger.info("= capture %s -> %s", element_id, path)
        return PcapWriter(path, self.budget)
