"""Real aiortc peers for media tests: a browser-like WebRTC client on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aioice import stun
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from aiortc.sdp import candidate_from_sdp

from emulator.media.legs.aiortc_adapter import ice_connection, nominated_pairs
from emulator.transport.client import EventStream, RemoteObject


@contextlib.contextmanager
def loopback_peers() -> Iterator[None]:
    """aiortc peers gather 127.0.0.1 only (aioice never gathers loopback by itself)."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


@dataclass
class ClientPeer:
    """An aiortc RTCPeerConnection with synthetic audio/video and frame counters."""

    audio: bool = True
    video: bool = True
    data: bool = False
    asks_keyframes: bool = True
    """False: a receiver that never sends PLI (as SIP video phones and recorders that do not
    ask), so that only the server's own keyframe requests can start its video."""
    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    frames: dict[str, int] = field(default_factory=dict)
    first_frame_at: dict[str, float] = field(default_factory=dict)
    """Wall-clock time (``time.time()``) of the first decoded frame of each kind."""
    messages: list[str | bytes] = field(default_factory=list)
    channel: RTCDataChannel | None = None
    remote_channels: list[RTCDataChannel] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ice(self) -> aioice.ice.Connection:
        """The aioice connection under the peer's (bundled) transport."""
        return ice_connection(self.pc.getTransceivers()[0].receiver.transport.transport)

    def __post_init__(self) -> None:
        if self.audio:
            self.pc.addTrack(AudioStreamTrack())
        if self.video:
            self.pc.addTrack(VideoStreamTrack())
        if self.data:
            self.channel = self.pc.createDataChannel("chat")
            self.channel.on("message", self._message)
        if not self.asks_keyframes:
            for receiver in self.pc.getReceivers():
                receiver._send_rtcp_pli = _no_pli  # type: ignore[method-assign]  # its PLI's only way out
        self.pc.on("track", self._track)
        self.pc.on("datachannel", self._datachannel)

    def _track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.first_frame_at.setdefault(track.kind, time.time())
                self.frames[track.kind] = self.frames.get(track.kind, 0) + 1
                self._arrived.set()

    def _message(self, message: str | bytes) -> None:
        self.messages.append(message)
        self._arrived.set()

    def _datachannel(self, channel: RTCDataChannel) -> None:
        self.remote_channels.append(channel)
        channel.on("message", self._message)
        self._arrived.set()

    async def offer(self) -> str:
        """Create and set the local offer; aiortc puts its candidates in it."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        """Set the server's answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def answer(self, offer: str) -> str:
        """Answer a server offer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def add_candidate(self, event: dict[str, Any]) -> None:
        """Add an IceCandidateFound event's candidate."""
        data = event["candidate"]
        candidate = candidate_from_sdp(data["candidate"].split(":", 1)[1])
        candidate.sdpMid = data["sdpMid"]
        candidate.sdpMLineIndex = data["sdpMLineIndex"]
        await self.pc.addIceCandidate(candidate)

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Wait until ``predicate(self)`` holds, woken by each frame or message."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        """Close the connection and its readers."""
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def trickle(peer: ClientPeer, candidates: EventStream, done: EventStream) -> None:
    """Feed the server's trickled candidates to the peer until IceGatheringDone."""
    await done.get(timeout=15)
    while not candidates.queue.empty():
        await peer.add_candidate(candidates.queue.get_nowait())


async def negotiate(endpoint: RemoteObject, peer: ClientPeer) -> None:
    """The Hello World exchange: processOffer, gatherCandidates, trickle the server's candidates."""
    candidates = await endpoint.subscribe("IceCandidateFound")
    done = await endpoint.subscribe("IceGatheringDone")
    answer = await endpoint.invoke("processOffer", offer=await peer.offer())
    await endpoint.invoke("gatherCandidates")
    await peer.accept_answer(answer)
    await trickle(peer, candidates, done)


@contextlib.asynccontextmanager
async def client_peer(**kwargs: Any) -> AsyncIterator[ClientPeer]:
    """A ClientPeer closed at the end."""
    peer = ClientPeer(**kwargs)
    try:
        yield peer
    finally:
        await peer.close()


async def _no_pli(media_ssrc: int) -> None:
    """A receiver's PLI that is never sent."""


@dataclass
class KeyframeRequests:
    """The PLI/FIR a peer's video sender got: how many, and how many it ignored."""

    ignore: int = 0
    count: int = 0
    ignored: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` requests have arrived."""
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._arrived.clear()
                await self._arrived.wait()


def watch_keyframe_requests(peer: ClientPeer, ignore: int = 0) -> KeyframeRequests:
    """Count the keyframe requests of the peer's video sender; ignore the first ``ignore`` of
    them, as if they were lost on the way.

    aiortc's sender turns every PLI/FIR into ``_send_keyframe()``; wrapping that one method of
    this sender is the narrowest way to see and lose requests without a proxy.
    """
    sender = next(s for s in peer.pc.getSenders() if s.kind == "video")
    original = sender._send_keyframe
    requests = KeyframeRequests(ignore)

    def send_keyframe() -> None:
        requests.count += 1
        requests._arrived.set()
        if requests.ignored < requests.ignore:
            requests.ignored += 1
            return
        original()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]
    return requests


async def negotiate_connected(endpoint: RemoteObject, peer: ClientPeer) -> None:
    """Negotiate and wait until the endpoint's transport is up (it can send media now)."""
    states = await endpoint.subscribe("ConnectionStateChanged")
    await negotiate(endpoint, peer)
    async with asyncio.timeout(20):
        while (await states.get(timeout=20))["newState"] != "CONNECTED":
            pass


class NominatingSocket(asyncio.DatagramProtocol):
    """A second socket of a connected client peer, from which it nominates a new pair to the
    server (a signed Binding request with USE-CANDIDATE, as a controlling agent with aggressive
    nomination sends); it answers the server's own checks of that pair only if ``answers``."""

    def __init__(self, peer: ClientPeer, answers: bool) -> None:
        self.ice = peer.ice
        self.server = nominated_pairs(self.ice)[1].remote_addr
        """The server's socket of the pair selected first: the new pair's other end."""
        self.answers = answers
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = asyncio.Event()
        self.checked = asyncio.Event()
        """The server's own check of the new pair arrived."""
        self.media = asyncio.Event()
        """SRTP (not SRTCP) arrived: the server sends its media here."""

    @property
    def port(self) -> int:
        """This socket's port."""
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def nominate(self) -> None:
        """Send the nominating check."""
        assert self.transport is not None and self.ice.remote_password is not None
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{self.ice.remote_username}:{self.ice.local_username}"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(self.ice.remote_password.encode())
        request.add_fingerprint()
        self.transport.sendto(bytes(request), self.server)

    def send(self, data: bytes) -> None:
        """A datagram to the server's socket."""
        assert self.transport is not None
        self.transport.sendto(data, self.server)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[0] > 3:
            if 128 <= data[0] < 192 and not 192 <= data[1] <= 223:  # RFC 5761: RTP, not RTCP
                self.media.set()
            return
        message = stun.parse_message(data)
        if message.message_class == stun.Class.RESPONSE:
            self.answered.set()
        elif message.message_class == stun.Class.REQUEST:
            self.checked.set()
            if self.answers and self.transport is not None:
                self.transport.sendto(self._success(message, addr), addr)

    def _success(self, request: stun.Message, addr: Any) -> bytes:
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
        response.add_message_integrity(self.ice.local_password.encode())
        response.add_fingerprint()
        return bytes(response)


@contextlib.asynccontextmanager
async def nominating_socket(peer: ClientPeer, answers: bool) -> AsyncIterator[NominatingSocket]:
    """A :class:`NominatingSocket` on 127.0.0.1, closed on exit."""
    transport, socket = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: NominatingSocket(peer, answers), local_addr=("127.0.0.1", 0)
    )
    try:
        yield socket
    finally:
        transport.close()
