"""This process's own sockets, read from the OS socket tables in /proc (what tests check the
server's port range against)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

TCP_ESTABLISHED = "01"
TCP_TIME_WAIT = "06"


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _rows(protocol: str) -> Iterator[list[str]]:
    """The fields of this process's rows in /proc/net/<protocol> and <protocol>6."""
    inodes = _socket_inodes()
    for table in (f"/proc/net/{protocol}", f"/proc/net/{protocol}6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                yield fields


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def udp_ports_of_this_process() -> list[int]:
    """Local ports of this process's UDP sockets."""
    return [_port(fields[1]) for fields in _rows("udp")]


def tcp_connections_of_this_process() -> list[tuple[int, int]]:
    """(local port, remote port) of this process's established TCP connections."""
    return [
        (_port(fields[1]), _port(fields[2]))
        for fields in _rows("tcp")
        if fields[3] == TCP_ESTABLISHED
    ]


def time_wait_connections() -> list[tuple[int, int]]:
    """(local port, remote port) of the TCP connections in TIME_WAIT on this host (any process:
    a connection in TIME_WAIT belongs to nobody any more)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_TIME_WAIT:
                found.append((_port(fields[1]), _port(fields[2])))
    return found
