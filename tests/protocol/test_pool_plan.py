"""Pool decisions without sockets: the kurentoservers list, round-robin, backoff, filters."""

from __future__ import annotations

import pytest

from protocol.pool import (
    DnsServerList,
    PoolConfigError,
    PoolPlan,
    ServerEntry,
    parse_kurentoservers,
)

A, B, C = (f"ws://10.21.3.1{n}:8888/kurento" for n in (1, 2, 3))


def test_kurentoservers_parses_the_controller_format() -> None:
    """The controllers' list, with its 0/1 flags, becomes entries (flags default to 0)."""
    entries = parse_kurentoservers(
        f'[{{"url": "{A}", "candkillipv6": 1, "candkilltcp": 0, "candonlyturn": 0}},'
        f' {{"url": "{B}"}}]'
    )
    assert entries == [ServerEntry(A, candkillipv6=True), ServerEntry(B)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "non-empty list"),
        ([{"uri": A}], r"kurentoservers\[0\].url should be a ws:// or wss:// URL"),
        ([{"url": "http://x"}], "ws:// or wss://"),
        ([{"url": A, "candkilltcp": 2}], r"kurentoservers\[0\].candkilltcp should be 0 or 1"),
        ([{"url": A}, {"url": A}], "listed twice"),
        ("[", "not JSON"),
    ],
)
def test_kurentoservers_rejects_unusable_entries(data: object, message: str) -> None:
    """Every unusable list is refused with the entry and the fix named."""
    with pytest.raises(PoolConfigError, match=message):
        parse_kurentoservers(data)


def test_plan_round_robin_skips_servers_that_are_down() -> None:
    """New calls cycle over the servers that are up, and include a server again once it is back."""
    plan = PoolPlan([ServerEntry(A), ServerEntry(B), ServerEntry(C)])
    for url in (A, B, C):
        plan.mark_up(url)
    assert [plan.pick().url for _ in range(4)] == [A, B, C, A]  # type: ignore[union-attr]
    plan.mark_down(B, "connection refused", now=100.0)
    assert [plan.pick().url for _ in range(4)] == [C, A, C, A]  # type: ignore[union-attr]
    plan.mark_up(B)
    assert [plan.pick().url for _ in range(3)] == [B, C, A]  # type: ignore[union-attr]
    assert plan.pick(exclude=frozenset({B, C})) == ServerEntry(A)


def test_plan_backoff_doubles_up_to_the_maximum() -> None:
    """A server that keeps failing is retried after 0.5, 1, 2, 4 s..., capped; up resets it."""
    plan = PoolPlan([ServerEntry(A)], retry_initial=0.5, retry_max=3.0)
    delays = []
    for _ in range(5):
        plan.mark_down(A, "connection refused", now=10.0)
        delays.append(plan.retry_delay(A, now=10.0))
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert plan.next_deadline() == 13.0
    assert plan.pick() is None
    assert plan.mark_up(A) and plan.retry_delay(A, now=10.0) == 0.0
    plan.mark_down(A, "no answer", now=20.0)
    assert plan.retry_delay(A, now=20.0) == 0.5


def test_candidate_filters_follow_the_cand_flags() -> None:
    """candkillipv6 drops IPv6, candkilltcp drops TCP, candonlyturn keeps relay candidates only."""
    host4 = "candidate:1 1 UDP 2122260223 192.168.1.2 54400 typ host"
    host6 = "candidate:2 1 UDP 2122262783 2001:db8::2 54401 typ host"
    tcp = "candidate:3 1 TCP 1518280447 192.168.1.2 9 typ host tcptype active"
    relay = "candidate:4 1 UDP 41885439 203.0.113.5 50000 typ relay raddr 0.0.0.0 rport 0"
    every = [host4, host6, tcp, relay]

    def kept(entry: ServerEntry) -> list[str]:
        return [c for c in every if entry.candidate_filter(c)]

    assert kept(ServerEntry(A)) == every
    assert kept(ServerEntry(A, candkillipv6=True)) == [host4, tcp, relay]
    assert kept(ServerEntry(A, candkilltcp=True)) == [host4, host6, relay]
    only_turn = ServerEntry(A, candonlyturn=True)
    assert kept(only_turn) == [relay] and only_turn.relay_only
    assert not ServerEntry(A).candidate_filter("garbage")


def test_set_listed_keeps_state_of_servers_that_stay_and_skips_those_that_left() -> None:
    a, b, c = (ServerEntry(f"ws://10.0.0.{n}:8888/kurento") for n in (1, 2, 3))
    plan = PoolPlan([a, b])
    plan.mark_up(a.url)
    plan.mark_down(b.url, "connection refused", now=0.0)
    added, removed = plan.set_listed([b, c])
    assert (added, removed) == ([c], [a])
    assert plan.health(b.url).failures == 1, "a server that stays keeps its backoff"
    assert plan.pick() is None, "the server that left gets no new call, though it is up"
    assert plan.up_urls() == [] and plan.listed_urls() == [b.url, c.url]
    plan.mark_up(c.url)
    assert [plan.pick(), plan.pick()] == [c, c]
    added, removed = plan.set_listed([a, b, c])
    assert (added, removed) == ([a], [])
    assert {plan.pick(), plan.pick()} == {a, c}


def test_set_listed_retries_a_returning_server_at_once() -> None:
    a = ServerEntry("ws://10.0.0.1:8888/kurento")
    plan = PoolPlan([a], retry_initial=1, retry_max=30)
    for now in range(5):
        plan.mark_down(a.url, "refused", now=float(now))
    plan.set_listed([])
    assert plan.next_deadline() is None, "no retry of a server off the list"
    plan.set_listed([a])
    assert plan.retry_delay(a.url, now=5.0) == 0.0


def test_dns_server_list_builds_sorted_urls_with_flags() -> None:
    servers = DnsServerList("kurento-emulator.kurento.svc.cluster.local", candkilltcp=True)
    assert servers.srv_name == "_kurento._tcp.kurento-emulator.kurento.svc.cluster.local"
    entries = servers.entries([("10.0.0.2", 8888), ("fd00::1", 8888), ("10.0.0.2", 8888)])
    assert [e.url for e in entries] == ["ws://10.0.0.2:8888/kurento", "ws://[fd00::1]:8888/kurento"]
    assert all(e.candkilltcp and not e.candkillipv6 for e in entries)
    with pytest.raises(PoolConfigError):
        DnsServerList("kms.test", scheme="http")
