"""One time budget per request, and botocore clients whose timeouts and retries fit in what is left of it.

A request starts with ``min(REQUEST_BUDGET_MS, remaining function time - RESPONSE_MARGIN_MS)``. Before each
downstream call the caller asks for an allotment (its cap, or less if less is left) and gets a client whose
``connect_timeout``, ``read_timeout`` and ``total_max_attempts`` are chosen so that the worst case of all
attempts *and* botocore's backoff sleeps between them fits in that allotment:

    attempts x (connect + read) + sum of the longest backoffs before attempts 2..n  <=  allotment

botocore's standard retry mode sleeps ``rand(0, 1) x min(scale x 2**(i-1), 20 s)`` before retry i, where the
scale is 1 s for throttling errors (less for others), so the longest sleep before retry i is
``min(2**(i-1), 20)`` seconds: with a small allotment that leaves room for a single attempt only.

Caveats: ``read_timeout`` bounds each socket read, not the whole response (a peer trickling bytes could
stretch it; AWS endpoints do not), DNS resolution is not bounded by ``connect_timeout``, and a service's
``x-amz-retry-after`` hint may add up to 5 s to a backoff (DynamoDB and SQS do not send it).

Clients are cached per (service, timeouts): with a steady budget every call reuses one client per service,
and only calls made when the budget is nearly spent create a smaller one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.config import Config

from lambdas.shared import aws

# Attempts shorter than this are not worth making: fewer attempts (or none) instead.
MIN_ATTEMPT_MS: Final = 100
# Timeouts are rounded down to this step, so the client cache stays small.
STEP_MS: Final = 50
CONNECT_CAP_MS: Final = 500
MAX_BACKOFF_MS: Final = 20_000
THROTTLING_BACKOFF_SCALE_MS: Final = 1_000


class BudgetExhaustedError(Exception):
    """Not enough of the request's budget is left to make the call at all."""


@dataclass
class Budget:
    total_ms: float
    started: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def start(
        cls,
        budget_ms: int,
        remaining_ms: int,
        margin_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> Budget:
        return cls(total_ms=float(min(budget_ms, remaining_ms - margin_ms)), started=clock(), clock=clock)

    def elapsed_ms(self) -> float:
        return (self.clock() - self.started) * 1000.0

    def left_ms(self) -> float:
        return self.total_ms - self.elapsed_ms()

    def allot(self, cap_ms: int) -> float:
        """What one call may use: its cap, or what is left of the budget if that is less."""
        return max(0.0, min(float(cap_ms), self.left_ms()))


@dataclass(frozen=True)
class CallTimeouts:
    connect_ms: int
    read_ms: int
    attempts: int

    @property
    def worst_case_ms(self) -> int:
        return self.attempts * (self.connect_ms + self.read_ms) + backoff_allowance_ms(self.attempts)

    def botocore_config(self) -> Config:
        return Config(
            connect_timeout=self.connect_ms / 1000.0,
            read_timeout=self.read_ms / 1000.0,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
        )


def backoff_allowance_ms(attempts: int) -> int:
    """The longest botocore (standard mode) can sleep in total between ``attempts`` attempts."""
    return sum(
        min(THROTTLING_BACKOFF_SCALE_MS * 2 ** (retry - 1), MAX_BACKOFF_MS) for retry in range(1, attempts)
    )


def timeouts_for(allotment_ms: float, *, max_attempts: int) -> CallTimeouts:
    """The most attempts (up to ``max_attempts``) whose worst case fits in ``allotment_ms``.

    Raises BudgetExhaustedError when not even one attempt of MIN_ATTEMPT_MS fits.
    """
    for attempts in range(max_attempts, 0, -1):
        per_attempt = (allotment_ms - backoff_allowance_ms(attempts)) / attempts
        per_attempt = float(int(per_attempt // STEP_MS) * STEP_MS)
        if per_attempt < MIN_ATTEMPT_MS:
            continue
        connect = min(CONNECT_CAP_MS, int(per_attempt / 2 // STEP_MS) * STEP_MS)
        return CallTimeouts(connect_ms=connect, read_ms=int(per_attempt) - connect, attempts=attempts)
    raise BudgetExhaustedError(f"{allotment_ms:.0f} ms left: not enough for one {MIN_ATTEMPT_MS} ms attempt")


@dataclass
class ClientPool:
    """boto3 clients by (service, timeouts), created on first use and kept for the execution environment."""

    session: Any = field(default_factory=aws.session)
    _clients: dict[tuple[str, CallTimeouts], Any] = field(default_factory=dict)

    def client(self, service: str, timeouts: CallTimeouts) -> Any:
        key = (service, timeouts)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, config=timeouts.botocore_config())
        return self._clients[key]

    def for_call(self, service: str, budget: Budget, *, cap_ms: int, max_attempts: int) -> Any:
        """A client for one call whose worst case fits in ``min(cap_ms, budget left)``."""
        return self.client(service, timeouts_for(budget.allot(cap_ms), max_attempts=max_attempts))

    def __len__(self) -> int:
        return len(self._clients)
