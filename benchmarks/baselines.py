"""The comparison systems of the throughput benchmark, each run as its own process.

    python -m benchmarks.baselines udp-relay      # bare asyncio UDP relay: the Python ceiling
    python -m benchmarks.baselines c-relay        # the emulator's compiled loop, nothing around it
    python -m benchmarks.baselines aiortc-relay   # what a user would write: decode + re-encode

Each prints ``control <port>`` once it listens; the load workers send it one JSON line per call.
``janus_config`` writes a minimal Janus 1.1 configuration (HTTP API and EchoTest on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any, cast

RECEIVE_SIZE = 4096
"""As the emulator's media sockets (emulator/media/net/poller.py): asyncio's 256 KiB default read
costs about 16 us per datagram (performance.md B1)."""
RECEIVE_BUFFER = 4 * 1024 * 1024


class RelayLeg(asyncio.DatagramProtocol):
    """One socket of a relayed call: what arrives goes out of the other leg's socket."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.other: RelayLeg | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: the selector loop's datagram transport is not a subclass of
        # asyncio.DatagramTransport (Python 3.11+), and a failed assert here is swallowed by
        # the loop, which left every read at asyncio's 256 KiB default (issue 17).
        self.transport = cast(asyncio.DatagramTransport, transport)
        transport.max_size = RECEIVE_SIZE  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        other = self.other
        if other is not None and other.transport is not None:
            other.transport.sendto(data, other.peer)


async def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def udp_relay_legs(request: dict[str, Any]) -> list[RelayLeg]:
    """Two sockets: A talks to the first and is heard by B from the second, and the reverse."""
    loop = asyncio.get_running_loop()
    legs = []
    for name in ("a", "b"):
        transport, leg = await loop.create_datagram_endpoint(RelayLeg, sock=await _udp_socket())
        leg.transport = transport
        leg.peer = tuple(request[name])
        legs.append(leg)
    legs[0].other, legs[1].other = legs[1], legs[0]
    return legs


async def udp_relay_call(request: dict[str, Any]) -> dict[str, Any]:
    """A relayed call (``udp_relay_legs``): the ports A and B send to."""
    legs = await udp_relay_legs(request)
    ports = [leg.transport.get_extra_info("sockname")[1] for leg in legs if leg.transport]
    return {"port_a": ports[0], "port_b": ports[1]}


class CompiledRelay:
    """The floor: the emulator's compiled forwarding loop (emulator/media/fastpath/_forward.c,
    read by the emulator's MediaPoller) with nothing around it. Per call two sockets; the first
    RTP packet of each SSRC (and STUN, DTLS, RTCP: everything else) is relayed by Python, which
    then routes that SSRC to the other leg unchanged (same SSRC, payload type, numbering and
    extensions; SRTP passes through as opaque payload, so the loop does no crypto here: the
    emulator's own figure includes libsrtp's unprotect and protect, which makes the comparison
    against this floor a strict one)."""

    def __init__(self) -> None:
        from emulator.media.fastpath import compiled_available, make_forwarder
        from emulator.media.net.poller import MediaPoller

        if not compiled_available():
            raise RuntimeError("the compiled loop is not built (make build)")
        self.forwarder = make_forwarder("compiled")
        self.poller = MediaPoller(asyncio.get_running_loop(), 0.001, self.forwarder)
        self.sockets: list[socket.socket] = []

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Two sockets, as ``udp_relay_call``: the ports A and B send to."""
        socks = [await _udp_socket() for _ in range(2)]
        self.sockets += socks
        peers = [tuple(request["a"]), tuple(request["b"])]
        legs = [_CompiledLeg(self, sock, peer) for sock, peer in zip(socks, peers, strict=True)]
        legs[0].other, legs[1].other = legs[1], legs[0]
        for leg in legs:
            self.poller.add(leg.fd, _never, leg)
            self.forwarder.set_source(leg.fd, 0, leg.peer)
        return {"port_a": socks[0].getsockname()[1], "port_b": socks[1].getsockname()[1]}


def _never() -> None:
    """A compiled relay's sockets are read by the forwarder only."""


IDENTITY_EXTENSIONS = {ext_id: ext_id for ext_id in range(1, 15)}


class _CompiledLeg:
    def __init__(self, relay: CompiledRelay, sock: socket.socket, peer: tuple[Any, ...]) -> None:
        self.relay = relay
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.other: _CompiledLeg | None = None

    def on_datagram(self, data: bytes, addr: Any) -> None:
        other = self.other
        if other is None:
            return
        other.sock.sendto(data, other.peer)
        if len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            self._route(data)

    def _route(self, data: bytes) -> None:
        other = self.other
        assert other is not None
        ssrc, pt = int.from_bytes(data[8:12], "big"), data[1] & 0x7F
        sequence, timestamp = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big")
        rewrite = (ssrc, pt, 0, 0, IDENTITY_EXTENSIONS)  # unchanged
        sink = (other.fd, other.peer, 0, *rewrite, 4096, 0, sequence, timestamp, 0.0, 1, 0)
        inbound = (0, 0, -1, 0, 0, 0.0, 0.0, False, 0.0)
        self.relay.forwarder.set_route(self.fd, ssrc, pt, 90000, inbound, [sink])

    def on_error(self, exc: OSError) -> None:
        """An ICMP error from a peer that went: ignored, as the asyncio relay does."""


class NaiveRelay:
    """One RTCPeerConnection per leg; each received track goes to the other leg via MediaRelay,
    so every frame is decoded and encoded again (aiortc's receiver and sender, unchanged)."""

    def __init__(self) -> None:
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.pcs: list[Any] = []

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer both offers, each leg sending what the other receives."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
        self.pcs += pcs
        tracks: list[list[Any]] = [[], []]
        for index, pc in enumerate(pcs):
            pc.on("track", lambda track, i=index: tracks[i].append(track))
        for pc, offer in zip(pcs, request["offers"], strict=True):
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for index, pc in enumerate(pcs):
            for track in tracks[1 - index]:
                pc.addTrack(self.relay.subscribe(track))
        answers = []
        for pc in pcs:
            await pc.setLocalDescription(await pc.createAnswer())
            answers.append(pc.localDescription.sdp)
        return {"answers": answers}


async def control_server(handler: Any) -> asyncio.Server:
    """A loopback control port: one JSON line in (a call request), ``handler``'s reply out."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await handler(json.loads(await reader.readline()))
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(client, "127.0.0.1", 0)


async def serve(kind: str) -> None:
    """Listen for call requests on a loopback control port."""
    handler: Any
    if kind == "udp-relay":
        handler = udp_relay_call
    elif kind == "c-relay":
        handler = CompiledRelay().call
    else:
        import aioice.ice

        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
        handler = NaiveRelay().call

    server = await control_server(handler)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"control {port}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


JANUS_PLUGINS = (
    "audiobridge duktape lua nosip recordplay sip streaming textroom videocall videoroom voicemail"
)
JANUS_TRANSPORTS = "mqtt nanomsg pfunix rabbitmq websockets"
JANUS_EVENTS = "gelf mqtt nanomsg rabbitmq sample ws"


def janus_config(folder: Path, http_port: int, rtp_ports: tuple[int, int]) -> Path:
    """A minimal Janus configuration: HTTP API and EchoTest on loopback, nothing else loaded."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = ",".join(f"libjanus_{name}.so" for name in JANUS_PLUGINS.split())
    transports = ",".join(f"libjanus_{name}.so" for name in JANUS_TRANSPORTS.split())
    events = ",".join(f"libjanus_{name}evh.so" for name in JANUS_EVENTS.split())
    (folder / "janus.jcfg").write_text(
        "general: {\n"
        f'  configs_folder = "{folder}"\n'
        "  debug_level = 3\n"
        "  session_timeout = 120\n"
        "}\n"
        "media: {\n"
        f'  rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"\n'
        "}\n"
        'nat: {\n  ice_enforce_list = "lo"\n}\n'
        'loggers: {\n  disable = "libjanus_jsonlog.so"\n}\n'
        f'plugins: {{\n  disable = "{plugins}"\n}}\n'
        f'transports: {{\n  disable = "{transports}"\n}}\n'
        f'events: {{\n  broadcast = false\n  disable = "{events}"\n}}\n'
    )
    (folder / "janus.transport.http.jcfg").write_text(
        "general: {\n"
        '  json = "plain"\n'
        '  base_path = "/janus"\n'
        "  http = true\n"
        f"  port = {http_port}\n"
        '  ip = "127.0.0.1"\n'
        "  https = false\n"
        "}\n"
        "admin: {\n  admin_http = false\n}\n"
    )
    (folder / "janus.plugin.echotest.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["udp-relay", "c-relay", "aiortc-relay"])
    args = parser.parse_args()
    asyncio.run(serve(args.kind))


if __name__ == "__main__":
    main()
