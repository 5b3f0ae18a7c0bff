"""Types of the compiled forwarding loop (_forward.c); see emulator/media/fastpath/__init__.py."""

from collections.abc import Sequence
from typing import Any

RECEIVE_SIZE: int
MAX_SINKS: int

def set_srtp_functions(protect: int, unprotect: int, /) -> None: ...

class Forwarder:
    read: int
    def add_socket(self, fd: int, /) -> None: ...
    def set_source(self, fd: int, srtp: int, source: tuple[Any, ...] | None, /) -> None: ...
    def remove_socket(self, fd: int, /) -> None: ...
    def set_route(
        self,
        fd: int,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        inbound: tuple[Any, ...],
        sinks: list[tuple[Any, ...]],
        /,
    ) -> None: ...
    # route_state: the streams' figures, "wire_octets" (datagram bytes received since the push)
    # and "sinks": per sink its stream's figures, "send_errors", "wire_octets" (protected bytes
    # sent), "latency_sum" (seconds) and "latency_count"; remove_route adds each sink's
    # "history" (list[bytes], the clear packets kept for NACKs, oldest first).
    def remove_route(self, fd: int, ssrc: int, /) -> dict[str, Any] | None: ...
    def route_state(self, fd: int, ssrc: int, /) -> dict[str, Any] | None: ...
    def history(self, fd: int, ssrc: int, sink: int, sequence: int, /) -> bytes | None: ...
    def forward(
        self, fds: Sequence[Any], limit: int = 128, /
    ) -> list[tuple[int, bytes | None, Any]]: ...
    def counters(self) -> dict[str, int]: ...
