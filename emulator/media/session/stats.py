"""``getStats`` entries of RTP endpoints, in KMS's complex types (core KMD, ``Stats`` tree).

RTP streams come from the per-SSRC counters (``streams.py``); the remote side of each outbound
stream (``isRemote``) from the receiver reports the peer sends; the connection-level entries
(``session``, ``transport``, ``candidatepair``, local and remote candidates, data channels) only
when no media type is asked for, since they belong to no media type. Ids are stable UUIDs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from emulator.media.rtp.streams import InboundStream, OutboundStream, WireCounters
from protocol.sdp import IceCandidateLine

KINDS = {"audio": "AUDIO", "video": "VIDEO"}
CANDIDATE_TYPES = {"host": "host", "srflx": "serverreflexive", "prflx": "peerreflexive"}


def stats_id(name: str, *parts: object) -> str:
    """A stable id for one stats entry of an endpoint."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join([name, *map(str, parts)])))


def _entry(type_name: str, kind: str, key: str, now_ms: int, **fields: Any) -> dict[str, Any]:
    return {
        "__module__": "kurento",
        "__type__": type_name,
        "id": key,
        "type": kind,
        "timestampMillis": now_ms,
        **fields,
    }


def _rtp_common(ssrc: int, associate: str, remote: bool, transport: str) -> dict[str, Any]:
    return {
        "ssrc": str(ssrc),
        "associateStatsId": associate,
        "isRemote": remote,
        "mediaTrackId": "",
        "transportId": transport,
        "codecId": "",
        "sliCount": 0,
    }


@dataclass
class ChannelCounters:
    """Messages and bytes through one data channel."""

    label: str
    protocol: str
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    bytes_received: int = 0

    def count(self, message: str | bytes, sent: bool) -> None:
        """Account one message."""
        size = len(message.encode() if isinstance(message, str) else message)
        if sent:
            self.messages_sent += 1
            self.bytes_sent += size
        else:
            self.messages_received += 1
            self.bytes_received += size


@dataclass
class LatencyMeter:
    """Time packets spend inside the server, from arrival at the source leg to leaving this leg."""

    sums: dict[str, list[float]]

    def __init__(self) -> None:
        self.sums = {}

    def add(self, kind: str, seconds: float) -> None:
        """Account one forwarded packet."""
        total = self.sums.get(kind)
        if total is None:
            total = self.sums[kind] = [0.0, 0.0]
        total[0] += seconds
        total[1] += 1

    def add_many(self, kind: str, seconds: float, count: int) -> None:
        """Account ``count`` packets that spent ``seconds`` in all (the compiled forwarder's)."""
        total = self.sums.get(kind)
        if total is None:
            total = self.sums[kind] = [0.0, 0.0]
        total[0] += seconds
        total[1] += count

    def media_latency_stats(self) -> list[dict[str, Any]]:
        """``MediaLatencyStat`` per media type, ``avg`` in nanoseconds (GStreamer clock units)."""
        return [
            {
                "__module__": "kurento",
                "__type__": "MediaLatencyStat",
                "name": f"sink_{kind}_default",
                "type": KINDS[kind],
                "avg": total / count * 1e9,
            }
            for kind, (total, count) in sorted(self.sums.items())
            if count and kind in KINDS
        ]


@dataclass
class ConnectionView:
    """What the connection-level entries are built from."""

    name: str
    selected: tuple[str, str] | None
    dtls_state: str
    channels_opened: int
    channels_closed: int
    channels: dict[int, tuple[ChannelCounters, str]]
    """Channel id -> (counters, readyState)."""
    round_trip: float
    ice_state: str = "CONNECTED"
    """The last IceComponentStateChanged state."""
    available_outgoing: float = 0.0
    """What the remote receiver lets us send (its last REMB, bps; 0 before any)."""
    available_incoming: float = 0.0
    """What we let the remote sender send (our last REMB, bps; 0 when we send none)."""


def inbound_stats(
    name: str, stream: InboundStream, srtp_failures: int, now_ms: int
) -> dict[str, Any]:
    """``RTCInboundRTPStreamStats`` of a received SSRC (``remb``: the REMB we send for it)."""
    key = stats_id(name, "in", stream.ssrc)
    return _entry(
        "RTCInboundRTPStreamStats",
        "inboundrtp",
        key,
        now_ms,
        **_rtp_common(stream.ssrc, "", False, stats_id(name, "transport")),
        firCount=stream.fir_sent,
        pliCount=stream.pli_sent,
        nackCount=stream.nack_sent,
        remb=stream.remb,
        packetsLost=stream.lost,
        fractionLost=stream.fraction_lost,
        packetsReceived=stream.packets,
        bytesReceived=stream.octets,
        jitter=stream.jitter_seconds,
        srtpFailures=srtp_failures,
    )


def outbound_stats(name: str, stream: OutboundStream, now_ms: int) -> dict[str, dict[str, Any]]:
    """``RTCOutboundRTPStreamStats`` of a sent SSRC, and its remote side once reported.

    The remote entry is an ``RTCInboundRTPStreamStats`` with ``isRemote`` true (the pre-standard
    shape KMS's types keep): loss and jitter as the peer's receiver reports give them.
    """
    key = stats_id(name, "out", stream.ssrc)
    remote_key = stats_id(name, "remote-in", stream.ssrc)
    reported = stream.reports > 0
    transport = stats_id(name, "transport")
    # What the remote receiver told us about this stream, the same on both entries.
    feedback = {
        "firCount": stream.fir_received,
        "pliCount": stream.pli_received,
        "nackCount": stream.nack_received,
        "remb": stream.remb,
        "packetsLost": stream.packets_lost,
        "fractionLost": stream.fraction_lost,
    }
    entries = {
        key: _entry(
            "RTCOutboundRTPStreamStats",
            "outboundrtp",
            key,
            now_ms,
            **_rtp_common(stream.ssrc, remote_key if reported else "", False, transport),
            **feedback,
            packetsSent=stream.packets,
            bytesSent=stream.octets,
            targetBitrate=float(stream.remb),
            roundTripTime=stream.round_trip,
        )
    }
    if reported:
        entries[remote_key] = _entry(
            "RTCInboundRTPStreamStats",
            "inboundrtp",
            remote_key,
            now_ms,
            **_rtp_common(stream.ssrc, key, True, transport),
            **feedback,
            packetsReceived=stream.remote_packets,
            bytesReceived=stream.remote_octets,
            jitter=stream.remote_jitter,
        )
    return entries


def connection_stats(
    view: ConnectionView, sent: WireCounters, received: WireCounters, now_ms: int
) -> dict[str, dict[str, Any]]:
    """Session, transport, selected candidate pair, its candidates and the data channels
    (``sent``/``received``: the SRTP/SRTCP datagrams the DTLS transports carried)."""
    name = view.name
    entries: dict[str, dict[str, Any]] = {}

    def add(entry: dict[str, Any]) -> None:
        entries[entry["id"]] = entry

    session = stats_id(name, "session")
    add(
        _entry(
            "RTCPeerConnectionStats",
            "session",
            session,
            now_ms,
            dataChannelsOpened=view.channels_opened,
            dataChannelsClosed=view.channels_closed,
        )
    )
    pair_key = stats_id(name, "pair") if view.selected else ""
    add(
        _entry(
            "RTCTransportStats",
            "transport",
            stats_id(name, "transport"),
            now_ms,
            bytesSent=sent.octets,
            bytesReceived=received.octets,
            packetsSent=sent.packets,
            packetsReceived=received.packets,
            rtcpTransportStatsId="",
            activeConnection=view.dtls_state == "CONNECTED",
            selectedCandidatePairId=pair_key,
            localCertificateId="",
            remoteCertificateId="",
        )
    )
    if view.selected:
        for entry in _pair_entries(view, pair_key, sent, received, now_ms):
            add(entry)
    for channel_id, (counters, state) in view.channels.items():
        add(_channel_entry(name, channel_id, counters, state, now_ms))
    return entries


PAIR_STATES = {"CONNECTED": "succeeded", "READY": "succeeded", "FAILED": "failed"}
"""The selected pair's ``state`` (W3C RTCStatsIceCandidatePairState) from the ICE state."""


def _pair_entries(
    view: ConnectionView, pair_key: str, sent: WireCounters, received: WireCounters, now_ms: int
) -> list[dict[str, Any]]:
    assert view.selected is not None
    local, remote = (IceCandidateLine.parse(c) for c in view.selected)
    local_key = stats_id(view.name, "local", local.address, local.port)
    remote_key = stats_id(view.name, "remote", remote.address, remote.port)
    connected = view.dtls_state == "CONNECTED"
    pair = _entry(
        "RTCIceCandidatePairStats",
        "candidatepair",
        pair_key,
        now_ms,
        transportId=stats_id(view.name, "transport"),
        localCandidateId=local_key,
        remoteCandidateId=remote_key,
        state=PAIR_STATES.get(view.ice_state, "in-progress"),
        priority=_pair_priority(local.priority, remote.priority),
        nominated=True,  # the selected pair is the one ICE nominated
        writable=connected,
        readable=connected,
        bytesSent=sent.octets,
        bytesReceived=received.octets,
        packetsSent=sent.packets,
        packetsReceived=received.packets,
        roundTripTime=view.round_trip,
        availableOutgoingBitrate=view.available_outgoing,
        availableIncomingBitrate=view.available_incoming,
    )
    return [
        pair,
        _candidate_entry(local, local_key, "localcandidate", now_ms),
        _candidate_entry(remote, remote_key, "remotecandidate", now_ms),
    ]


def _pair_priority(controlling: int, controlled: int) -> int:
    """RFC 8445 section 6.1.2.3, the server taking the controlled role as KMS does."""
    low, high = sorted((controlling, controlled))
    return (1 << 32) * low + 2 * high + (1 if controlled > controlling else 0)


def _candidate_entry(
    candidate: IceCandidateLine, key: str, kind: str, now_ms: int
) -> dict[str, Any]:
    return _entry(
        "RTCIceCandidateAttributes",
        kind,
        key,
        now_ms,
        ipAddress=candidate.address,
        portNumber=candidate.port,
        transport=candidate.transport.lower(),
        candidateType=CANDIDATE_TYPES.get(candidate.type, "relayed"),
        priority=candidate.priority,
        addressSourceUrl="",
    )


def _channel_entry(
    name: str, channel_id: int, counters: ChannelCounters, state: str, now_ms: int
) -> dict[str, Any]:
    return _entry(
        "RTCDataChannelStats",
        "datachannel",
        stats_id(name, "datachannel", channel_id),
        now_ms,
        label=counters.label,
        protocol=counters.protocol,
        datachannelid=channel_id,
        state=state,
        messagesSent=counters.messages_sent,
        bytesSent=counters.bytes_sent,
        messagesReceived=counters.messages_received,
        bytesReceived=counters.bytes_received,
    )
