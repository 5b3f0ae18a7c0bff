"""Media capture: an endpoint's decrypted RTP and RTCP, both directions, in a pcap file.

With SRTP a network capture shows ciphertext; this one is written after decryption (inbound) and
before encryption (outbound). Each packet gets fake IPv4 (or IPv6) and UDP headers carrying the
real addresses and ports, so Wireshark and tshark decode it (``-d udp.port==N,rtp`` or
``--enable-heuristic rtp_udp``). Classic pcap (not pcapng): a global header, then one record per
packet; LINKTYPE_RAW, so no fake Ethernet addresses are needed.

One ``CaptureBudget`` per server bounds the bytes all capture files may take together; a file
that reaches the bound stops growing (logged once) and stays a valid pcap.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

LINKTYPE_RAW = 101
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
Address = tuple[str, int]


@dataclass
class CaptureBudget:
    """Bytes every capture file of the server may still take."""

    limit: int
    used: int = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False when the limit would be passed."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True


@dataclass(frozen=True, slots=True)
class CapturePolicy:
    """Which endpoints capture (server option) and where the files go."""

    folder: Path
    pattern: str
    """``*`` for every endpoint, else a name pattern (fnmatch); empty = only by tag."""
    budget: CaptureBudget

    def wants(self, name: str) -> bool:
        """Whether an endpoint of that name captures from the start."""
        return bool(self.pattern) and fnmatch.fnmatchcase(name, self.pattern)

    def path_for(self, element_id: str) -> Path:
        """``<pipeline id>_<element id>.pcap`` with the ids' characters made file-safe."""
        pipeline, _, element = element_id.partition("/")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{pipeline}_{element or pipeline}")
        return self.folder / f"{safe}.pcap"


def _ip_header(source: Address, target: Address, length: int, ident: int) -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(target[0])
    if src.version == 4 and dst.version == 4:
        header = bytearray(
            _IPV4.pack(0x45, 0, 20 + length, ident & 0xFFFF, 0, 64, 17, 0, src.packed, dst.packed)
        )
        words = struct.unpack("!10H", header)
        total = sum(words)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into("!H", header, 10, ~total & 0xFFFF)
        return bytes(header)
    src6 = src if src.version == 6 else ipaddress.IPv6Address(f"::ffff:{src}")
    dst6 = dst if dst.version == 6 else ipaddress.IPv6Address(f"::ffff:{dst}")
    return _IPV6.pack(6 << 28, length, 17, 64, src6.packed, dst6.packed)


class PcapWriter:
    """One endpoint's capture file; implements ``plain_rtp.PacketTap``."""

    def __init__(self, path: Path, budget: CaptureBudget) -> None:
        self.path = path
        self.budget = budget
        self.packets = 0
        self.skipped = 0
        self._ident = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = path.open("wb")
        header = _GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)
        budget.take(len(header))
        self._file.write(header)
        logger.info("= capture to %s", path)

    def packet(self, outgoing: bool, data: bytes, local: Address, remote: Address) -> None:
        """Append one packet, as sent from ``local`` to ``remote`` or the other way."""
        if self._file is None:
            return
        source, target = (local, remote) if outgoing else (remote, local)
        udp = _UDP.pack(source[1], target[1], 8 + len(data), 0)
        self._ident += 1
        frame = _ip_header(source, target, len(udp) + len(data), self._ident) + udp + data
        now = time.time()
        record = _RECORD.pack(int(now), int((now % 1) * 1_000_000), len(frame), len(frame))
        if not self.budget.take(len(record) + len(frame)):
            if not self.skipped:
                logger.warning(
                    "! capture %s stopped growing: the capture disk budget (%d bytes) is used up",
                    self.path,
                    self.budget.limit,
                )
            self.skipped += 1
            return
        self._file.write(record + frame)
        self.packets += 1

    def close(self) -> None:
        """Flush and close: the file is complete."""
        if self._file is not None:
            self._file.close()
            self._file = None
            logger.info(
                "x capture %s closed: %d packets (%d over budget)",
                self.path,
                self.packets,
                self.skipped,
            )
