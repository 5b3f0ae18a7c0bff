"""Replay cache and session collector bookkeeping, driven by ``now``."""

from __future__ import annotations

from protocol.sessions import ReplayCache, SessionActivity


def test_replay_cache_returns_reply_within_ttl() -> None:
    """A repeated (session, id) within 20 s gets the first reply."""
    cache = ReplayCache(ttl=20.0)
    cache.put("s", 7, "first", now=100.0)
    cache.put("s", 7, "second", now=101.0)
    assert cache.get("s", 7, now=119.9) == "first"


def test_replay_cache_forgets_after_ttl() -> None:
    """After the TTL the request is executed again."""
    cache = ReplayCache(ttl=20.0)
    cache.put("s", 7, "first", now=100.0)
    assert cache.get("s", 7, now=120.0) is None
    assert len(cache) == 0


def test_replay_cache_keys_by_session_and_string_id() -> None:
    """Ids are compared as strings, per session."""
    cache = ReplayCache(ttl=20.0)
    cache.put("s", 7, "reply", now=0.0)
    assert cache.get("s", "7", now=1.0) == "reply"
    assert cache.get("other", 7, now=1.0) is None


def test_session_activity_collects_after_a_full_idle_period() -> None:
    """A session touched before a pass survives it and is collected at the next idle pass."""
    activity = SessionActivity()
    activity.touch("a")
    activity.touch("b")
    assert activity.collect() == []
    activity.touch("a")
    assert activity.collect() == ["b"]
    assert activity.knows("a") and not activity.knows("b")
