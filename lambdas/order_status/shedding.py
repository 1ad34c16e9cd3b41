"""Load shedding for GET /orders/{id}: answer a fast 503 + Retry-After while the pipeline cannot move.

Two signals, each read with its own small timeout and cached for SHED_CACHE_SECONDS per execution
environment (so at most one read of each per environment per window, whatever the request rate):

* the dependency's circuit (the Powertools breaker record in the circuit table, partition key ``id`` =
  DEPENDENCY_NAME). OPEN: no order is being charged; Retry-After = seconds until the next probe is due
  (``opened_at`` + a whole number of BREAKER_RECOVERY_SECONDS: the controller probes once per window
  while the dependency stays down), at least 1. HALF_OPEN: a probe is running; Retry-After =
  until its lease ends (at most the recovery time).
* the order queue's backlog: SQS ``ApproximateNumberOfMessages`` (visible) above
  ORDER_QUEUE_BACKLOG_THRESHOLD; Retry-After = when the backlog will be under the threshold at the drain
  rate this environment measured (successive reads while the backlog shrank), at most
  SHED_RETRY_AFTER_SECONDS, which is also the answer while no drain has been seen.

Every Retry-After is then spread by up to JITTER (never earlier than the state says, never above its
bound), so the clients that were told at the same moment do not all come back at the same second.

Why backlog and not the age metric the queue-age alarm uses: ``ApproximateAgeOfOldestMessage`` is only in
CloudWatch, at one-minute resolution and a few minutes late, GetMetricData is billed per metric read and has
a low account-wide request quota that many execution environments would share. GetQueueAttributes answers in
milliseconds with the current number. An age threshold converts to a backlog threshold through the drain
rate (Little's law): backlog = drain rate x age, e.g. 20 orders/s x 300 s = 6000 messages.

Both checks fail open: a check that errors or times out does not shed (the status read goes on), and that
"unknown" is cached for the same window so a sick dependency is not asked again on every request. Why shed
reads at all when the pipeline is stuck: the answer would only be "accepted"/"processing" for every new
order, and clients polling for a change in a tight loop add load exactly when the system is degraded;
Retry-After tells them when an answer can change.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts import circuit as circuit_record
from lambdas.order_status.budget import Budget, BudgetExhaustedError, ClientPool

REASON_CIRCUIT_OPEN: Final = "circuit_open"
REASON_CIRCUIT_HALF_OPEN: Final = "circuit_half_open"
REASON_QUEUE_BACKLOG: Final = "queue_backlog"
JITTER: Final = 0.2  # a Retry-After is stretched by up to this share of itself
# Weight of the newest drain-rate sample: recent enough to follow a recovery, smooth enough to ride noise.
DRAIN_RATE_WEIGHT: Final = 0.5


@dataclass(frozen=True)
class Signal:
    """One check's result. ``until`` (wall-clock epoch seconds) lets a cached result keep an exact Retry-After."""

    shed: bool
    reason: str | None = None
    until: float | None = None
    retry_after_s: int | None = None
    error: str | None = None
    ceiling_s: int | None = None  # the most a Retry-After of this signal may say

    def retry_after(self, now: float, jitter: float = 0.0) -> int:
        """Seconds until the state can change, stretched by ``jitter`` (0..1) x JITTER, within the ceiling."""
        base = max(1.0, self.until - now) if self.until is not None else float(self.retry_after_s or 1)
        stretched = math.ceil(base * (1.0 + JITTER * jitter))
        return max(1, min(stretched, self.ceiling_s) if self.ceiling_s is not None else stretched)


HEALTHY: Final = Signal(shed=False)


@dataclass(frozen=True)
class Decision:
    shed: bool
    reason: str | None = None
    retry_after_s: int = 0


@dataclass
class _Cached:
    signal: Signal
    expires: float


class LoadShedder:
    def __init__(
        self,
        *,
        clients: ClientPool,
        circuit_table: str,
        circuit_name: str,
        recovery_seconds: int,
        queue_url: str,
        backlog_threshold: int,
        queue_retry_after_s: int,
        check_timeout_ms: int,
        max_attempts: int,
        cache_seconds: int,
        logger: Logger,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.clients = clients
        self.circuit_table = circuit_table
        self.circuit_name = circuit_name
        self.recovery_seconds = recovery_seconds
        self.queue_url = queue_url
        self.backlog_threshold = backlog_threshold
        self.queue_retry_after_s = queue_retry_after_s
        self.check_timeout_ms = check_timeout_ms
        self.max_attempts = max_attempts
        self.cache_seconds = cache_seconds
        self.logger = logger
        self.clock = clock
        self.wall_clock = wall_clock
        self.rand = rand
        self._cache: dict[str, _Cached] = {}
        # The backlog as last read (monotonic time, messages) and the drain rate measured from it.
        self._last_backlog: tuple[float, int] | None = None
        self.drain_per_s: float | None = None
        self.reads = {"circuit": 0, "queue": 0}

    def decide(self, budget: Budget) -> Decision:
        for name, check in (("circuit", self._circuit), ("queue", self._queue)):
            signal = self._cached(name, budget, check)
            if signal.shed:
                return Decision(True, signal.reason, signal.retry_after(self.wall_clock(), self.rand()))
        return Decision(False)

    def _cached(self, name: str, budget: Budget, check: Callable[[Budget], Signal]) -> Signal:
        cached = self._cache.get(name)
        now = self.clock()
        if cached is not None and now < cached.expires:
            return cached.signal
        self.reads[name] += 1
        try:
            signal = check(budget)
        except (BotoCoreError, ClientError, BudgetExhaustedError) as error:
            self.logger.warning(
                "load-shedding check failed; not shedding", extra={"check": name, "error": repr(error)}
            )
            signal = Signal(shed=False, error=repr(error))
        self._cache[name] = _Cached(signal, now + self.cache_seconds)
        return signal

    def _client(self, service: str, budget: Budget) -> Any:
        return self.clients.for_call(
            service, budget, cap_ms=self.check_timeout_ms, max_attempts=self.max_attempts
        )

    def _circuit(self, budget: Budget) -> Signal:
        response = self._client("dynamodb", budget).get_item(
            TableName=self.circuit_table,
            Key=circuit_record.item_key(self.circuit_name),
            # Eventually consistent, like the breaker's own reads; the cache window dwarfs the lag.
            ConsistentRead=False,
        )
        item = response.get("Item")
        if item is None:
            return HEALTHY  # the breaker writes nothing while the circuit has never opened
        state = item.get(circuit_record.RECORD_STATE, {}).get("S")
        now = self.wall_clock()
        if state == circuit_record.OPEN:
            opened_at = _number(item.get(circuit_record.RECORD_OPENED_AT))
            opened = opened_at if opened_at is not None else now
            # While the dependency stays down the circuit controller probes once per recovery window: the
            # answer can change at the next one, not at a probe time already past.
            windows = max(1, math.ceil((now - opened) / self.recovery_seconds))
            probe_due = opened + windows * self.recovery_seconds
            return Signal(
                shed=True, reason=REASON_CIRCUIT_OPEN, until=probe_due, ceiling_s=self.recovery_seconds
            )
        if state == circuit_record.HALF_OPEN:
            lease = _number(item.get(circuit_record.RECORD_PROBE_LEASE_EXPIRY))
            until = (
                min(lease, now + self.recovery_seconds) if lease is not None else now + self.recovery_seconds
            )
            return Signal(
                shed=True, reason=REASON_CIRCUIT_HALF_OPEN, until=until, ceiling_s=self.recovery_seconds
            )
        return HEALTHY

    def _queue(self, budget: Budget) -> Signal:
        attributes = (
            self._client("sqs", budget)
            .get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
            .get("Attributes", {})
        )
        backlog = int(attributes.get("ApproximateNumberOfMessages", "0"))
        self._measure_drain(backlog)
        if backlog > self.backlog_threshold:
            excess = backlog - self.backlog_threshold
            seconds = math.ceil(excess / self.drain_per_s) if self.drain_per_s else self.queue_retry_after_s
            return Signal(
                shed=True,
                reason=REASON_QUEUE_BACKLOG,
                retry_after_s=max(1, min(seconds, self.queue_retry_after_s)),
                ceiling_s=self.queue_retry_after_s,
            )
        return HEALTHY

    def _measure_drain(self, backlog: int) -> None:
        """Net drain (messages/s) between this read and the last, while the backlog shrank; a backlog
        that grew or stood still means no drain is known (the ceiling is then the honest answer)."""
        now = self.clock()
        if self._last_backlog is not None:
            then, before = self._last_backlog
            if now > then and backlog < before:
                sample = (before - backlog) / (now - then)
                previous = self.drain_per_s
                self.drain_per_s = (
                    sample
                    if previous is None
                    else DRAIN_RATE_WEIGHT * sample + (1 - DRAIN_RATE_WEIGHT) * previous
                )
            elif backlog >= before:
                self.drain_per_s = None
        self._last_backlog = (now, backlog)


def _number(value: dict[str, str] | None) -> float | None:
    if not value or "N" not in value:
        return None
    return float(value["N"])
