"""Session timekeeping without a clock: every call takes ``now`` (seconds, monotonic).

- ``ReplayCache``: KMS answers a repeated (sessionId, request id) within 20 s with the cached reply
  instead of executing it again (``ServerMethods::preProcess/postProcess``, ``REQUEST_TIMEOUT``).
- ``SessionActivity``: KMS's garbage collector (``MediaSet::doGarbageCollection``): each period it
  clears the "in use" flag of every session; a session whose flag was already clear is collected.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable

from protocol.jsonrpc import RequestId


class ReplayCache:
    """Replies by (session id, request id), kept for ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, Hashable], tuple[float, str]] = OrderedDict()

    def get(self, session_id: str, request_id: RequestId, now: float) -> str | None:
        """The cached reply text, or None when absent or expired."""
        self.expire(now)
        entry = self._entries.get((session_id, _key(request_id)))
        return entry[1] if entry is not None else None

    def put(self, session_id: str, request_id: RequestId, reply: str, now: float) -> None:
        """Remember a reply unless one is already cached (KMS keeps the first)."""
        key = (session_id, _key(request_id))
        if key in self._entries:
            return
        self._entries[key] = (now + self.ttl, reply)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def expire(self, now: float) -> None:
        """Drop entries older than the TTL (entries are in insertion = expiry order)."""
        while self._entries:
            _, (deadline, _reply) = next(iter(self._entries.items()))
            if deadline > now:
                break
            self._entries.popitem(last=False)

    def next_deadline(self) -> float | None:
        """When the oldest entry expires."""
        if not self._entries:
            return None
        return next(iter(self._entries.values()))[0]

    def __len__(self) -> int:
        return len(self._entries)


def _key(request_id: RequestId) -> Hashable:
    # KMS reads the id as a string: 5 and "5" are the same request.
    return str(request_id)


class SessionActivity:
    """The "in use" flag per session that KMS's collector works from."""

    def __init__(self) -> None:
        self._in_use: dict[str, bool] = {}

    def touch(self, session_id: str) -> None:
        """Mark a session in use (any reference taken, or an open connection bound to it)."""
        self._in_use[session_id] = True

    def touch_all(self, session_ids: Iterable[str]) -> None:
        """Mark several sessions in use."""
        for session_id in session_ids:
            self.touch(session_id)

    def knows(self, session_id: str) -> bool:
        """Whether the session exists (``keepAlive``/``connect`` answer 40007 otherwise)."""
        return session_id in self._in_use

    def forget(self, session_id: str) -> None:
        """Drop a session (closed or collected)."""
        self._in_use.pop(session_id, None)

    def collect(self) -> list[str]:
        """Run one collector pass: return the idle sessions (and forget them), clear the rest."""
        idle = [s for s, in_use in self._in_use.items() if not in_use]
        for session_id in idle:
            del self._in_use[session_id]
        for session_id in self._in_use:
            self._in_use[session_id] = False
        return idle

    def sessions(self) -> list[str]:
        """Known session ids."""
        return list(self._in_use)
