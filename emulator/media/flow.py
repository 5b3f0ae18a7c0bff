"""What flows between media elements, and how it leaves the server: the media seam.

Every element that produces or consumes media speaks these types, so that a new element (a
player, a recorder, a mixer, a filter) plugs into the pipeline without a copy of anyone's send
path:

- ``MediaPacket``: an encoded RTP packet travelling through the pipeline, with its codec and the
  stream it came from (the source's ``InboundStream``, or a transcoder's output stream);
- ``FrameSink``: what takes decoded media (``av.AudioFrame``/``av.VideoFrame``); the transcoder's
  decoder feeds its encoder through it, and elements that process media subscribe the same way;
- ``MediaLeg``: how a protected RTP packet leaves the server towards one remote peer (a DTLS-SRTP
  transport, an SDES/plain UDP leg; later a file or a mixer). ``RtpSession`` rewrites each packet
  for its sink once and hands it to the leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from emulator.media.rtp.packet import RtpView
from emulator.media.rtp.streams import InboundStream
from protocol.sdp import Codec


@dataclass(slots=True)
class MediaPacket:
    """An encoded RTP packet travelling through the pipeline, with what a sink needs to send it.

    ``source`` identifies the stream the packet belongs to (a sink's sequence numbers and
    timestamps are re-based when it changes) and counts it; ``arrival`` is when the packet (or
    the one a transcoder made it from) entered the server, for latency stats.
    """

    kind: str
    view: RtpView
    codec: Codec
    source: InboundStream
    extensions: dict[int, str]
    """Source extension id -> URI (empty when the packet carries none worth mapping)."""
    arrival: float


class MediaLeg(Protocol):
    """One way out of the server for a sink's RTP: protect (SRTP, where keyed) and send."""

    def send_rtp(self, data: bytes) -> bool:
        """Send a clear RTP packet; False when it could not leave (transport not up yet)."""


class FrameSink(Protocol):
    """Takes decoded media: the transcoder's encoder first; recorders, mixers and filters plug
    in the same way.

    Called on the thread that decodes (a transcoder's worker thread): an implementation that
    touches event-loop state posts to the loop.
    """

    def frame(self, frame: Any, position: int) -> None:
        """One decoded ``av.AudioFrame``/``av.VideoFrame``; ``position`` is its source RTP
        timestamp, unwrapped (a monotonic count in the source's clock)."""
