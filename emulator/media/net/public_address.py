"""This host's public address as a STUN server sees it (RFC 5389 Binding), for
``externalIPv4``/``externalIPv6`` set to ``auto``: the server-reflexive address of a socket is the
address peers outside a NAT reach the host at."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from aioice import stun


class _BindingClient(asyncio.DatagramProtocol):
    """Waits for the Binding success response to one transaction."""

    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return  # not STUN: a stray datagram on this socket
        if message.transaction_id != self.transaction_id or self.answer.done():
            return
        mapped = message.attributes.get("XOR-MAPPED-ADDRESS") or message.attributes.get(
            "MAPPED-ADDRESS"
        )
        if message.message_class == stun.Class.RESPONSE and mapped:
            self.answer.set_result(str(mapped[0]))
        else:
            self.answer.set_exception(OSError(f"STUN error response {message.attributes}"))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: no STUN server there
        if not self.answer.done():
            self.answer.set_exception(exc)


async def stun_mapped_address(server: tuple[str, int], timeout: float) -> str:
    """The address ``server`` sees this host's datagrams come from.

    The request is retransmitted with RFC 5389's doubling intervals (from 0.5 s) until
    ``timeout``.

    Raises:
        OSError: the server refused, answered with an error, or the socket failed.
        TimeoutError: no answer within ``timeout`` seconds.
    """
    host, port = server
    ipv6 = ipaddress.ip_address(host).version == 6
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: _BindingClient(request.transaction_id),
        remote_addr=(host, port),
        family=socket.AF_INET6 if ipv6 else socket.AF_INET,
    )
    try:
        async with asyncio.timeout(timeout):
            interval = 0.5
            while True:
                transport.sendto(bytes(request))
                done, _ = await asyncio.wait({client.answer}, timeout=interval)
                if done:
                    return client.answer.result()
                interval *= 2
    finally:
        transport.close()
