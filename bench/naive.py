"""Design (a), the naive one: a synchronous chain API -> function A -> function B -> dependency.

In-process, each layer is a function call on the client's request thread (one thread per request, so
concurrency is unbounded up to what the load asks for):

* the API layer waits for function A; the client gets 504 once ``api_limit_s`` (API Gateway's 29 s
  integration limit, scaled like the rest of the run) has passed, while the chain keeps running, as a
  Lambda function does after API Gateway has given up on it;
* function A calls function B up to 3 times (immediately, no backoff, no jitter) on any failure;
* function B POSTs the charge to the dependency up to 3 times, same policy; its HTTP timeout is whatever
  is left of the function's timeout (``function_timeout_s``); a function past its timeout stops (it
  would be killed), so nothing retries after it;
* no breaker, no bulkhead, no queue. Function B makes one Idempotency-Key per invocation (its own retries
  reuse it; function A's retries of B invoke B again and so send a new key: nobody passed a key end to end).

With the dependency failing fast, one request costs up to 3 x 3 = 9 dependency calls.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from lambdas.contracts.api import CHARGES_PATH, IDEMPOTENCY_KEY_HEADER
from localcloud.fault_dependency import FaultDependency, Phase
from localcloud.scenarios import Scenario

ATTEMPTS_PER_LAYER = 3


class _FunctionTimeout(Exception):
    pass


@dataclass
class _Request:
    n: int
    order_id: str
    sent: float  # monotonic
    answered: float | None = None
    status: int | None = None


@dataclass
class NaiveRun:
    scenario: Scenario
    dependency: FaultDependency
    api_limit_s: float
    function_timeout_s: float
    seed: int = 7
    slots: int | None = None  # shared concurrency pool (noisy neighbour); None: unbounded
    orders: list[_Request] = field(default_factory=list)
    in_flight: int = 0  # function invocations running now (A and B each count)
    peak_in_flight: int = 0
    waiting_on_dependency: int = 0  # function B invocations running now
    peak_waiting_on_dependency: int = 0
    throttled: int = 0
    t0: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._rng = random.Random(self.seed)

    # -- the chain ----------------------------------------------------------------------------------

    def _enter(self) -> bool:
        with self._lock:
            if self.slots is not None and self.in_flight >= self.slots:
                self.throttled += 1
                return False
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return True

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def function_b(self, order: dict[str, Any]) -> dict[str, Any]:
        if not self._enter():
            raise RuntimeError("throttled")
        with self._lock:
            self.waiting_on_dependency += 1
            self.peak_waiting_on_dependency = max(self.peak_waiting_on_dependency, self.waiting_on_dependency)
        try:
            deadline = time.monotonic() + self.function_timeout_s
            key = uuid.uuid4().hex
            last: Exception | None = None
            for _attempt in range(ATTEMPTS_PER_LAYER):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _FunctionTimeout("function B timed out")
                try:
                    response = self._session().post(
                        self.dependency.base_url + CHARGES_PATH,
                        json={k: order[k] for k in ("orderId", "amountCents", "currency")},
                        headers={IDEMPOTENCY_KEY_HEADER: key},
                        timeout=left,
                    )
                except requests.RequestException as exc:
                    last = exc
                    continue
                if response.status_code < 300:
                    result: dict[str, Any] = response.json()
                    return result
                last = RuntimeError(f"dependency answered {response.status_code}")
            raise last or RuntimeError("no attempt")
        finally:
            with self._lock:
                self.waiting_on_dependency -= 1
            self._leave()

    def function_a(self, order: dict[str, Any]) -> dict[str, Any]:
        if not self._enter():
            raise RuntimeError("throttled")
        try:
            deadline = time.monotonic() + self.function_timeout_s
            last: Exception | None = None
            for _attempt in range(ATTEMPTS_PER_LAYER):
                if time.monotonic() >= deadline:
                    raise _FunctionTimeout("function A timed out")
                try:
                    return self.function_b(order)
                except Exception as exc:
                    last = exc
            raise last or RuntimeError("no attempt")
        finally:
            self._leave()

    def api(self, request: _Request, order: dict[str, Any]) -> None:
        """The API layer on the client's thread: the answer time is capped by the API limit."""
        try:
            self.function_a(order)
            status = 200
        except Exception:
            status = 502
        finished = time.monotonic()
        if finished - request.sent > self.api_limit_s:
            request.answered, request.status = request.sent + self.api_limit_s, 504
        else:
            request.answered, request.status = finished, status

    # -- load ---------------------------------------------------------------------------------------

    def run(self, on_started: threading.Event | None = None) -> None:
        """Same schedule as the local cloud's load: ``load_rate`` orders/s for ``load_s`` seconds."""
        threads: list[threading.Thread] = []
        interval = 1.0 / self.scenario.load_rate
        self.t0 = time.monotonic()
        if on_started is not None:
            on_started.set()
        n = 0
        prefix = f"naive-{uuid.uuid4().hex[:6]}"
        while n * interval < self.scenario.load_s:
            delay = self.t0 + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            order = {
                "orderId": f"{prefix}-{n:05d}",
                "amountCents": self._rng.randrange(100, 20_000),
                "currency": "EUR",
            }
            request = _Request(n, str(order["orderId"]), time.monotonic())
            self.orders.append(request)
            thread = threading.Thread(target=self.api, args=(request, order), daemon=True)
            threads.append(thread)
            thread.start()
            n += 1
        # Bounded: each layer stops at its function timeout, so a chain never outlives two of them.
        deadline = time.monotonic() + 2 * self.function_timeout_s + 5
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def phases_of(scenario: Scenario) -> list[Phase]:
    """The scenario's fault script (times from the twin's start())."""
    return list(scenario.phases)
