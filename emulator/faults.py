"""Fault injection for test authors: seeded, reproducible faults, changeable at run time.

A rule is a JSON object with a ``kind`` and, optionally, a target and a ``count``:

- ``rtp``: ``loss`` (0..1), ``delay`` and ``jitter`` (seconds) on what an endpoint (WebRtcEndpoint
  or RtpEndpoint) sends, for one ``media`` (``AUDIO``/``VIDEO``) or both, on one ``endpoint``, one
  ``pipeline`` or every endpoint;
- ``rpc_delay``: answer matching requests ``delay`` (+- ``jitter``) seconds late;
- ``rpc_error``: answer matching requests with the KMS error ``code`` (and ``message``) without
  running them;
- ``ice_blackhole``: WebRtcEndpoints negotiated from now on ignore STUN, so ICE never connects.

RPC rules match on ``method`` (JSON-RPC: ``create``, ``invoke``, ...), ``operation`` (an ``invoke``
operation such as ``processOffer``) and ``type`` (the type created, or the type of the object in the
request). ``count`` limits a rule to the next N matches ("make the next processOffer fail"); it is
removed once used up. For the same endpoint and media, the last matching ``rtp`` rule wins.

Every random choice comes from an RNG seeded with ``fault_seed``, the rule id and the endpoint's
order of creation, so a run with the same seed and the same calls drops the same packets.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from emulator.media.lab.impairment import Impairment, ImpairmentCounters
from emulator.media.services import MediaOwnerIds, StreamMedia
from emulator.media.webrtc import WebRtcMedia
from protocol.errors import RpcError, error_class_for_code

logger = logging.getLogger(__name__)

KINDS = ("rtp", "rpc_delay", "rpc_error", "ice_blackhole")
MEDIA_KINDS = ("rtp", "ice_blackhole")
"""Rules that act on media: with media workers, the workers apply them."""
MEDIA = {"AUDIO": "audio", "VIDEO": "video"}
FIELDS: dict[str, set[str]] = {
    "rtp": {"endpoint", "pipeline", "media", "loss", "delay", "jitter"},
    "rpc_delay": {"method", "operation", "type", "delay", "jitter", "count"},
    "rpc_error": {"method", "operation", "type", "code", "message", "count"},
    "ice_blackhole": {"endpoint", "pipeline", "count"},
}


class FaultError(ValueError):
    """A fault rule that cannot be used; the message names the field and the fix."""


@dataclass(slots=True)
class FaultRule:
    """One fault, as given (see the module docstring for the fields)."""

    id: int
    kind: str
    endpoint: str | None = None
    pipeline: str | None = None
    media: str | None = None
    method: str | None = None
    operation: str | None = None
    type: str | None = None
    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    code: int | None = None
    message: str | None = None
    count: int | None = None
    applied: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The rule as JSON, without unset fields."""
        data = asdict(self)
        data.pop("rng")
        return {k: v for k, v in data.items() if v is not None and (v or k in ("id", "applied"))}

    def matches_media(self, ids: MediaOwnerIds) -> bool:
        """Whether an endpoint is targeted."""
        return self.endpoint in (None, ids.endpoint) and self.pipeline in (None, ids.pipeline)

    def matches_request(self, method: str, params: Mapping[str, Any] | None) -> bool:
        """Whether a request is targeted."""
        params = params or {}
        if self.method is not None and self.method != method:
            return False
        if self.operation is not None and (
            method != "invoke" or params.get("operation") != self.operation
        ):
            return False
        if self.type is not None:
            named = params.get("type") if method == "create" else None
            target = params.get("object")
            of_object = target.rsplit("_kurento.", 1)[-1] if isinstance(target, str) else None
            return self.type in (named, of_object)
        return True


def parse_rule(data: Any, rule_id: int, seed: int) -> FaultRule:
    """A validated rule from its JSON object.

    Raises:
        FaultError: unknown kind or field, or a value out of range.
    """
    if not isinstance(data, Mapping):
        raise FaultError(f"a fault rule is a JSON object, not {type(data).__name__}")
    kind = data.get("kind")
    if kind not in FIELDS:
        raise FaultError(f"fault 'kind' {kind!r} is unknown: use one of {', '.join(KINDS)}")
    unknown = set(data) - FIELDS[kind] - {"kind"}
    if unknown:
        raise FaultError(
            f"{kind} faults take {', '.join(sorted(FIELDS[kind]))}; "
            f"unknown field(s): {', '.join(sorted(unknown))}"
        )
    rule = FaultRule(rule_id, kind, rng=random.Random(f"{seed}/{rule_id}"))
    for name in ("endpoint", "pipeline", "method", "operation", "type", "message"):
        if name in data:
            if not isinstance(data[name], str) or not data[name]:
                raise FaultError(f"{kind} fault: {name!r} should be a non-empty string")
            setattr(rule, name, data[name])
    for name in ("loss", "delay", "jitter"):
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise FaultError(f"{kind} fault: {name!r} should be a number >= 0")
            setattr(rule, name, float(value))
    if rule.loss > 1:
        raise FaultError(f"{kind} fault: 'loss' is a fraction of packets, 0 to 1")
    if "media" in data:
        if data["media"] not in MEDIA:
            raise FaultError(f"{kind} fault: 'media' should be AUDIO or VIDEO")
        rule.media = data["media"]
    if "count" in data:
        count = data["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FaultError(f"{kind} fault: 'count' should be an integer >= 1")
        rule.count = count
    if kind == "rpc_error":
        code = data.get("code")
        if (
            isinstance(code, bool)
            or not isinstance(code, int)
            or error_class_for_code(code) is None
        ):
            raise FaultError(
                f"rpc_error fault: 'code' {code!r} is not an error code of protocol/errors.py "
                "(for example 40201 SDP_PARSE_ERROR, 40009 NOT_ENOUGH_RESOURCES)"
            )
        rule.code = code
    if kind == "rtp" and not (rule.loss or rule.delay or rule.jitter):
        raise FaultError("rtp fault: set at least one of 'loss', 'delay', 'jitter'")
    if kind == "rpc_delay" and not (rule.delay or rule.jitter):
        raise FaultError("rpc_delay fault: set 'delay' (seconds)")
    return rule


class FaultController:
    """The active fault rules of one server, applied to requests (``before_execute``,
    ``before_reply``) and to endpoints' media (``media_adopted``, the media services' hook)."""

    def __init__(
        self,
        live_media: Mapping[StreamMedia, MediaOwnerIds],
        seed: int = 0,
        rules: Iterable[Any] = (),
    ) -> None:
        self.live_media = live_media
        """Every endpoint's media now (the media services' registry, shared at construction)."""
        self.seed = seed
        self.rules: list[FaultRule] = []
        self.impairments = ImpairmentCounters()
        self.injected: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._next_id = 1
        self.add(list(rules))

    # -- rules -----------------------------------------------------------------------------------

    def add(self, data: Any) -> list[FaultRule]:
        """Add one rule or a list of rules (all or none); returns them with their ids.

        Raises:
            FaultError: a rule is invalid (nothing is added).
        """
        items = data if isinstance(data, list) else [data]
        added = [parse_rule(item, self._next_id + n, self.seed) for n, item in enumerate(items)]
        self._next_id += len(added)
        self.rules.extend(added)
        for rule in added:
            logger.warning("! fault rule added: %s", rule.to_json())
        self._reapply()
        return added

    def remove(self, rule_id: int) -> bool:
        """Remove one rule by id; False if there is none."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        if len(self.rules) == before:
            return False
        logger.warning("! fault rule %d removed", rule_id)
        self._reapply()
        return True

    def clear(self) -> None:
        """Remove every rule: the server behaves normally again."""
        self.rules.clear()
        logger.warning("! every fault rule removed")
        self._reapply()

    def replace(self, data: Any) -> None:
        """Make the rules exactly ``data``, a list of rules with their ``id``s (``PUT /faults``:
        how a server gives its media workers its media rules). A rule whose id is already here
        is kept as it is, with its random state and what it has applied.

        Raises:
            FaultError: a rule is invalid or has no integer id (nothing is changed).
        """
        if not isinstance(data, list):
            raise FaultError("PUT /faults takes a JSON list of rules, each with its 'id'")
        kept = {rule.id: rule for rule in self.rules}
        rules = []
        for item in data:
            rule_id = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(rule_id, bool) or not isinstance(rule_id, int) or rule_id < 1:
                raise FaultError("each rule of PUT /faults needs its integer 'id' (>= 1)")
            fields = {k: v for k, v in item.items() if k not in ("id", "applied")}
            rules.append(kept.get(rule_id) or parse_rule(fields, rule_id, self.seed))
        self.rules = rules
        self._next_id = max([self._next_id - 1, *(rule.id for rule in rules)]) + 1
        self._reapply()

    def media_rules(self) -> list[dict[str, Any]]:
        """The rules that act on media (rtp, ice_blackhole), with their ids."""
        return [r.to_json() for r in self.rules if r.kind in MEDIA_KINDS]

    def to_json(self) -> dict[str, Any]:
        """Seed, rules and what was injected so far."""
        return {
            "seed": self.seed,
            "rules": [r.to_json() for r in self.rules],
            "injected": dict(self.injected),
            "rtpDropped": self.impairments.dropped,
            "rtpDelayed": self.impairments.delayed,
        }

    def _used(self, rule: FaultRule) -> None:
        rule.applied += 1
        self.injected[rule.kind] += 1
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self.rules.remove(rule)
                logger.info("= fault rule %d used up, removed", rule.id)

    # -- requests (RpcDispatcher.faults) --------------------------------------------------------

    async def before_execute(self, method: str, params: dict[str, Any] | None) -> None:
        """Raise the error of the first matching ``rpc_error`` rule.

        Raises:
            RpcError: the configured code, instead of running the request.
        """
        for rule in self.rules:
            if rule.kind == "rpc_error" and rule.matches_request(method, params):
                assert rule.code is not None
                cls = error_class_for_code(rule.code)
                assert cls is not None
                self._used(rule)
                message = rule.message or f"Fault injected by kurento-emulator (rule {rule.id})"
                logger.warning("! fault rule %d: %s answered %d", rule.id, method, rule.code)
                error: RpcError = cls(message)
                raise error

    async def before_reply(self, method: str, params: dict[str, Any] | None) -> None:
        """Wait as long as the matching ``rpc_delay`` rules say."""
        wait = 0.0
        for rule in list(self.rules):
            if rule.kind == "rpc_delay" and rule.matches_request(method, params):
                wait += max(0.0, rule.delay + rule.rng.uniform(-rule.jitter, rule.jitter))
                self._used(rule)
        if wait > 0:
            await asyncio.sleep(wait)

    # -- media -------------------------------------------------------------------------------

    def media_adopted(self, media: StreamMedia, ids: MediaOwnerIds) -> None:
        """A new endpoint's media: ignore STUN if an ice_blackhole rule says so, impair it."""
        rules = self.rules if isinstance(media, WebRtcMedia) else []  # no ICE on RtpEndpoints
        for rule in list(rules):
            if rule.kind == "ice_blackhole" and rule.matches_media(ids):
                assert isinstance(media, WebRtcMedia)
                media.peer.drop_stun = True
                self._used(rule)
                logger.warning("! fault rule %d: %s ignores STUN", rule.id, ids.endpoint)
                break
        self._impair(media, ids)

    def _reapply(self) -> None:
        for media, ids in self.live_media.items():
            self._impair(media, ids)

    def _impair(self, media: StreamMedia, ids: MediaOwnerIds) -> None:
        """Install the impairments of the last matching rtp rule per kind, keeping RNG state."""
        current = media.impairments or {}
        chosen: dict[str, Impairment] = {}
        for kind in MEDIA.values():
            rule = next(
                (
                    r
                    for r in reversed(self.rules)
                    if r.kind == "rtp"
                    and r.matches_media(ids)
                    and (r.media is None or MEDIA[r.media] == kind)
                ),
                None,
            )
            if rule is None:
                continue
            existing = current.get(kind)
            if existing is not None and existing.tag == rule.id:
                chosen[kind] = existing
                continue
            rule.applied += 1
            self.injected["rtp"] += 1  # one per endpoint and media impaired
            rng = random.Random(f"{self.seed}/{rule.id}/{ids.ordinal}/{kind}")
            chosen[kind] = Impairment(
                rule.loss, rule.delay, rule.jitter, rng, self.impairments, tag=rule.id
            )
        media.impairments = chosen or None


def merged_with_workers(local: dict[str, Any], workers: Iterable[Any]) -> dict[str, Any]:
    """``to_json`` of a server with media workers: its own, with what the workers' media rules
    injected (``applied`` per rule, ``injected``, ``rtpDropped``, ``rtpDelayed``) added."""
    merged = {**local, "injected": dict(local["injected"])}
    rules = {rule["id"]: dict(rule) for rule in local["rules"]}
    for worker in workers:
        if not isinstance(worker, dict):
            continue
        for kind, count in worker.get("injected", {}).items():
            if kind in MEDIA_KINDS:
                merged["injected"][kind] = merged["injected"].get(kind, 0) + count
        for name in ("rtpDropped", "rtpDelayed"):
            merged[name] = merged.get(name, 0) + worker.get(name, 0)
        for rule in worker.get("rules", []):
            if rule.get("id") in rules:
                ours = rules[rule["id"]]
                ours["applied"] = ours.get("applied", 0) + rule.get("applied", 0)
    merged["rules"] = list(rules.values())
    return merged
