"""ARM's request throttling, injected faults and the request log of the sandbox's ARM server.

Throttling follows ARM's regional token buckets (since 2024): one bucket per subscription and
principal for each of reads, writes and deletes; a request takes one token; an empty bucket
answers 429 with ``Retry-After``. Every response carries the remaining count in
``x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}``.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BucketLimits:
    """Capacity (burst) and refill rate per second of one bucket."""

    burst: float
    refill_per_second: float


@dataclass(frozen=True)
class ThrottleLimits:
    """ARM's published defaults: reads 250 refilling 25/s, writes and deletes 200 refilling 10/s."""

    reads: BucketLimits = BucketLimits(250, 25)
    writes: BucketLimits = BucketLimits(200, 10)
    deletes: BucketLimits = BucketLimits(200, 10)


@dataclass
class _Bucket:
    limits: BucketLimits
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.limits.burst, self.tokens + elapsed * self.limits.refill_per_second)
        self.stamp = now


@dataclass(frozen=True)
class ThrottleDecision:
    """Whether the request may proceed, the header to report and, if not, how long to wait."""

    allowed: bool
    header: str
    remaining: int
    retry_after: int = 0


class Throttle:
    """Token buckets keyed by (subscription, principal, operation class)."""

    def __init__(
        self,
        limits: ThrottleLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or ThrottleLimits()
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, subscription: str, principal: str, method: str) -> ThrottleDecision:
        """Take one token for a request; refuse with the seconds until one is available."""
        operation = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method, "writes")
        limits: BucketLimits = getattr(self.limits, operation)
        header = f"x-ms-ratelimit-remaining-subscription-{operation}"
        now = self._clock()
        with self._lock:
            key = (subscription.lower(), principal, operation)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(limits, limits.burst, now)
            bucket.refill(now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return ThrottleDecision(True, header, int(bucket.tokens))
            missing = 1 - bucket.tokens
            wait = missing / limits.refill_per_second if limits.refill_per_second else 60
            # Retry-After is whole seconds and never 0 (clients treat 0 as "no advice").
            return ThrottleDecision(False, header, 0, max(1, math.ceil(wait)))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


@dataclass
class FaultRule:
    """One injected fault, matched against the request path.

    ``latency_ms`` delays every matching request. ``status`` is the error to answer with.
    With ``count`` set, the next ``count`` matching requests fail (by ``status``, or by a
    connection reset when ``reset_rate`` is given without ``error_rate``); once they are used up
    the rule is gone. Without ``count``, each matching request fails at random with
    ``error_rate`` (status) or ``reset_rate`` (reset).
    """

    match: str = ".*"
    method: str | None = None
    latency_ms: float = 0.0
    status: int = 503
    error_rate: float = 0.0
    reset_rate: float = 0.0
    count: int | None = None
    retry_after: int | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.match)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return bool(self._pattern.search(path))

    def describe(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "method": self.method,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "error_rate": self.error_rate,
            "reset_rate": self.reset_rate,
            "count": self.count,
            "retry_after": self.retry_after,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What the fault injector wants done with one request."""

    latency: float = 0.0
    status: int | None = None
    reset: bool = False
    retry_after: int | None = None


class FaultInjector:
    """The rules posted to ``/_sandbox/faults``, applied to every other request."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from its JSON form; raises ``ValueError`` on a malformed one."""
        allowed = {f for f in FaultRule.__dataclass_fields__ if not f.startswith("_")}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = FaultRule(**spec)
        for rate in (rule.error_rate, rule.reset_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rates must be between 0 and 1")
        if rule.count is not None and rule.count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.describe() for rule in self._rules]

    def decide(self, method: str, path: str) -> FaultDecision:
        latency = 0.0
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(method, path):
                    continue
                latency += rule.latency_ms / 1000.0
                failure = self._failure(rule)
                if failure is not None:
                    status, reset = failure
                    return FaultDecision(
                        latency, None if reset else status, reset, rule.retry_after
                    )
        return FaultDecision(latency)

    def _failure(self, rule: FaultRule) -> tuple[int, bool] | None:
        if rule.count is not None:
            if rule.count <= 0:
                return None
            if rule.error_rate or rule.reset_rate:
                failure = self._draw(rule)
                if failure is None:
                    return None
            else:
                failure = (rule.status, False) if rule.status else None
                if failure is None:
                    return None
            rule.count -= 1
            if rule.count == 0 and not rule.latency_ms:
                self._rules.remove(rule)
            return failure
        return self._draw(rule)

    def _draw(self, rule: FaultRule) -> tuple[int, bool] | None:
        if rule.reset_rate and self._random.random() < rule.reset_rate:
            return (0, True)
        if rule.error_rate and self._random.random() < rule.error_rate:
            return (rule.status, False)
        return None


class RequestLog:
    """Every request the server answered (except its own ``/_sandbox/`` endpoints)."""

    def __init__(self, *, limit: int = 200_000) -> None:
        self._entries: list[dict[str, Any]] = []
        self._offset = 0
        self._limit = limit
        self._lock = threading.Lock()

    def record(
        self, *, method: str, path: str, status: int, api_version: str | None, **extra: Any
    ) -> None:
        entry = {
            "time": time.time(),
            "method": method,
            "path": path,
            "status": status,
            "api_version": api_version,
            **extra,
        }
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self._limit:
                # Keep indexes stable for ``?since=``: drop the oldest, remember how many.
                dropped = len(self._entries) - self._limit
                del self._entries[:dropped]
                self._offset += dropped

    def since(self, index: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            start = max(0, index - self._offset)
            return list(self._entries[start:])

    def clear(self) -> None:
        with self._lock:
            self._offset += len(self._entries)
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return self._offset + len(self._entries)
