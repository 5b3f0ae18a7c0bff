"""Per-stream RTP state: what an endpoint received (RFC 3550 A.3/A.8) and what it sends.

``InboundStream`` counts, tracks sequence numbers, loss and interarrival jitter, and remembers the
last sender report for receiver reports. ``OutboundStream`` owns the sink's SSRC and the rewrite of
sequence numbers and timestamps, so that switching sources never breaks the receiver (the new
source continues where the previous one stopped), and keeps packets for NACK retransmission.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from aiortc.rtp import RtcpReceiverInfo

from emulator.media.rtp.packet import RtpView, sequence_delta

NTP_EPOCH_OFFSET = 2208988800
RETRANSMIT_BUFFER = 512
OCTETS_THROUGH_KEPT = 8192
"""Sent sequence numbers whose cumulative octets are kept for receiver reports (seconds of
video at the rates the server forwards; an older report falls back to the mean size)."""


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp."""
    now = time.time() + NTP_EPOCH_OFFSET
    return (int(now) << 32) | int((now % 1) * (1 << 32))


def middle_ntp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (LSR/DLSR units)."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(slots=True)
class WireCounters:
    """Datagrams and their bytes as they crossed the wire (SRTP/SRTCP protected), one direction
    of a transport: the transport's and candidate pair's packetsSent/bytesSent in getStats."""

    packets: int = 0
    octets: int = 0

    def count(self, octets: int, packets: int = 1) -> None:
        """Account datagrams."""
        self.packets += packets
        self.octets += octets


@dataclass
class InboundStream:
    """One SSRC received by an endpoint."""

    ssrc: int
    clock_rate: int
    kind: str
    packets: int = 0
    octets: int = 0
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    jitter: float = 0.0
    transit: float | None = None
    expected_prior: int = 0
    received_prior: int = 0
    last_sr_ntp: int = 0
    last_sr_arrival: float = 0.0
    last_arrival: float = 0.0
    nack_sent: int = 0
    pli_sent: int = 0
    fir_sent: int = 0
    remb: int = 0
    fraction_lost: float = 0.0
    """Of the last report interval."""
    last_keyframe_request: float = 0.0

    def received(self, view: RtpView, arrival: float) -> None:
        """Account one packet (sequence, loss and jitter bookkeeping)."""
        self.packets += 1
        self.octets += len(view.data) - view.header_end
        self.last_arrival = arrival
        if self.base_seq < 0:
            self.base_seq = self.max_seq = view.sequence
        else:
            delta = sequence_delta(view.sequence, self.max_seq)
            if delta > 0:
                if view.sequence < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = view.sequence
        transit = arrival * self.clock_rate - view.timestamp
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16
        self.transit = transit

    def keyframe_requested(self, fir: bool, now: float) -> None:
        """Count a PLI or FIR sent for this stream (``pliCount``/``firCount`` in getStats)."""
        if fir:
            self.fir_sent += 1
        else:
            self.pli_sent += 1
        self.last_keyframe_request = now

    @property
    def expected(self) -> int:
        """Packets expected from the sequence numbers seen."""
        if self.base_seq < 0:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (never negative)."""
        return max(self.expected - self.packets, 0)

    @property
    def jitter_seconds(self) -> float:
        """Interarrival jitter in seconds."""
        return self.jitter / self.clock_rate

    def report_block(self, now: float) -> RtcpReceiverInfo:
        """A reception report block for this stream (RFC 3550 6.4.1)."""
        expected_interval = self.expected - self.expected_prior
        received_interval = self.packets - self.received_prior
        self.expected_prior, self.received_prior = self.expected, self.packets
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        self.fraction_lost = fraction / 256
        dlsr = 0
        if self.last_sr_arrival:
            dlsr = int((now - self.last_sr_arrival) * 65536)
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=min(self.lost, 0x7FFFFF),
            highest_sequence=(self.cycles + self.max_seq) & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=middle_ntp(self.last_sr_ntp),
            dlsr=dlsr & 0xFFFFFFFF,
        )


@dataclass
class SourceOffsets:
    """How one source's sequence numbers and timestamps map onto the sink's."""

    seq_offset: int
    ts_offset: int


@dataclass
class OutboundStream:
    """What an endpoint sends on one m-line: its own SSRC and continuous numbering."""

    ssrc: int
    clock_rate: int
    kind: str
    sequence: int = field(default_factory=lambda: random.getrandbits(16))
    last_timestamp: int = 0
    last_sent_at: float = 0.0
    packets: int = 0
    octets: int = 0
    source: object | None = None
    offsets: SourceOffsets | None = None
    fraction_lost: float = 0.0
    packets_lost: int = 0
    remote_jitter: float = 0.0
    round_trip: float = 0.0
    nack_received: int = 0
    pli_received: int = 0
    fir_received: int = 0
    remb: int = 0
    reports: int = 0
    history: OrderedDict[int, bytes] = field(default_factory=OrderedDict)
    first_sequence: int | None = None
    """The first sequence number sent: where the peer's extended sequence numbers start."""
    octets_through: dict[int, int] = field(default_factory=dict)
    """Sequence number -> payload octets sent up to and including it (the last ones only)."""
    remote_packets: int = 0
    """Packets the peer received, as its last receiver report gives them."""
    remote_octets: int = 0
    """Payload octets of those packets (see ``apply_report``)."""

    def next_numbers(self, source: object, view: RtpView, now: float) -> tuple[int, int]:
        """The sequence number and timestamp this packet gets, re-basing on a source switch."""
        if source is not self.source or self.offsets is None:
            self.source = source
            elapsed = int((now - self.last_sent_at) * self.clock_rate) if self.packets else 0
            next_ts = (self.last_timestamp + max(elapsed, 1)) & 0xFFFFFFFF
            self.offsets = SourceOffsets(
                seq_offset=(self.sequence + 1 - view.sequence) & 0xFFFF,
                ts_offset=(next_ts - view.timestamp) & 0xFFFFFFFF,
            )
        sequence = (view.sequence + self.offsets.seq_offset) & 0xFFFF
        timestamp = (view.timestamp + self.offsets.ts_offset) & 0xFFFFFFFF
        if sequence_delta(sequence, self.sequence) > 0 or not self.packets:
            self.sequence = sequence
            self.last_timestamp = timestamp
        return sequence, timestamp

    def split_packet(self) -> None:
        """The current source's packet was split: its next piece, and every later packet of
        that source, takes one more sequence number (``emulator/media/rtp/fragmentation.py``)."""
        if self.offsets is not None:
            self.offsets.seq_offset = (self.offsets.seq_offset + 1) & 0xFFFF

    def skip_packet(self) -> None:
        """The current source's packet was swallowed (a fragment gathered, a NAL unit dropped):
        later packets of that source take one sequence number less, so that none is missing."""
        if self.offsets is not None:
            self.offsets.seq_offset = (self.offsets.seq_offset - 1) & 0xFFFF

    def sent(self, sequence: int, packet: bytes, payload_bytes: int, now: float) -> None:
        """Account a sent packet and keep it for retransmission."""
        self.packets += 1
        self.octets += payload_bytes
        self.last_sent_at = now
        if self.first_sequence is None:
            self.first_sequence = sequence
        through = self.octets_through
        through[sequence] = self.octets
        if len(through) > 2 * OCTETS_THROUGH_KEPT:  # trimmed in batches: this is the hot path
            self.octets_through = dict(list(through.items())[-OCTETS_THROUGH_KEPT:])
        if self.kind == "video":
            self.history[sequence] = packet
            if len(self.history) > RETRANSMIT_BUFFER:
                self.history.popitem(last=False)

    def apply_report(self, block: RtcpReceiverInfo, now_ntp_middle: int) -> None:
        """Take the remote receiver's report about this stream (loss, jitter, RTT)."""
        self.reports += 1
        self.fraction_lost = block.fraction_lost / 256
        self.packets_lost = block.packets_lost
        self.remote_jitter = block.jitter / self.clock_rate
        if block.lsr:
            rtt = (now_ntp_middle - block.lsr - block.dlsr) & 0xFFFFFFFF
            self.round_trip = rtt / 65536
        self._count_remote(block)

    def _count_remote(self, block: RtcpReceiverInfo) -> None:
        """What the peer received: RFC 3550 6.4.1's extended highest sequence number, from our
        first one, less the cumulative loss; its octets are what we sent up to that sequence,
        less the lost packets at the mean payload size (a report counts no octets)."""
        if not self.packets:
            return
        if self.first_sequence is None:  # sent by a path that keeps no per-sequence record
            through = self.packets
        else:
            through = block.highest_sequence - self.first_sequence + 1
        self.remote_packets = max(min(through, self.packets) - block.packets_lost, 0)
        mean = self.octets / self.packets
        sent_through = self.octets_through.get(block.highest_sequence & 0xFFFF)
        if sent_through is None:  # older than what is kept: estimate from the mean
            sent_through = round(mean * min(through, self.packets))
        self.remote_octets = max(sent_through - round(mean * block.packets_lost), 0)
