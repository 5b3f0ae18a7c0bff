"""Impairment: seeded RTP loss, delay and jitter where an endpoint sends (fault injection).

Applied on the sending side only, after the packet was rewritten for the leg, so that a drop looks
to the remote peer like loss on the network (a gap in sequence numbers, the packet still counted
as sent) and a delay keeps the packet's RTP timestamp. Retransmissions answering NACKs and RTCP
are not impaired. Endpoints without a fault never reach this module (their media's
``impairments`` stays None).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from emulator.media.sdp.negotiation import MediaLine

Sender = Callable[[MediaLine, bytes], bool]


@dataclass
class ImpairmentCounters:
    """What the impairments of one fault injector did (shared by its endpoints)."""

    dropped: int = 0
    delayed: int = 0


class Impairment:
    """netem-like loss and delay of one media kind of one endpoint, from its own seeded RNG."""

    __slots__ = ("counters", "delay", "jitter", "loss", "rng", "tag")

    def __init__(
        self,
        loss: float,
        delay: float,
        jitter: float,
        rng: random.Random,
        counters: ImpairmentCounters,
        tag: object = None,
    ) -> None:
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.rng = rng
        self.counters = counters
        self.tag = tag
        """Who installed it (the fault rule id), to keep it when rules change."""

    def send(self, send: Sender, line: MediaLine, data: bytes) -> bool:
        """Drop, delay or send one packet; True unless sending now failed."""
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.counters.dropped += 1
            return True
        wait = self.delay
        if self.jitter:
            wait += rng.uniform(-self.jitter, self.jitter)
        if wait <= 0:
            return send(line, data)
        self.counters.delayed += 1
        # Delays larger than the packet interval reorder packets, as netem with jitter does.
        asyncio.get_running_loop().call_later(wait, send, line, data)
        return True
