"""The noisy-neighbour model: two consumers drawing on one shared concurrency pool.

Lambda functions in an account share one concurrency limit unless a function reserves its own. Here the
pool has ``size`` slots. The healthy consumer runs ``size`` worker threads, each a closed loop of calls to
its own (healthy) dependency twin; worker ``i`` may only run while ``i < size - busy()``, where ``busy()``
is what the sick consumer holds at that moment:

* naive design: every nested function invocation of the chain holds a slot (two per request: function A
  and function B), with no cap;
* this architecture: the real order consumer's busy environments on the local cloud (its SQS poller's
  in-flight invocations, capped by the event source's maximum concurrency / reserved concurrency).

The healthy consumer's completions per second before vs during the fault is the measured number.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import requests

from lambdas.contracts.api import CHARGES_PATH, IDEMPOTENCY_KEY_HEADER
from localcloud.fault_dependency import FaultDependency


class HealthyConsumer:
    """Closed-loop workers calling a healthy dependency while the pool has room for them."""

    def __init__(self, size: int, busy: Callable[[], int], dependency: FaultDependency) -> None:
        self.size = size
        self.busy = busy
        self.dependency = dependency
        self.completions: list[float] = []  # time.monotonic() of each successful call
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> HealthyConsumer:
        for index in range(self.size):
            thread = threading.Thread(target=self._work, args=(index,), name=f"healthy-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def rate(self, start: float, end: float) -> float:
        """Completions per second between two time.monotonic() instants."""
        if end <= start:
            return 0.0
        with self._lock:
            return sum(1 for t in self.completions if start <= t < end) / (end - start)

    def _work(self, index: int) -> None:
        session = requests.Session()
        url = self.dependency.base_url + CHARGES_PATH
        while not self._stop.is_set():
            if index >= self.size - self.busy():
                self._stop.wait(0.01)
                continue
            body: dict[str, str | int] = {
                "orderId": f"healthy-{uuid.uuid4().hex[:12]}",
                "amountCents": 100,
                "currency": "EUR",
            }
            try:
                response = session.post(
                    url, json=body, headers={IDEMPOTENCY_KEY_HEADER: uuid.uuid4().hex}, timeout=2
                )
            except requests.RequestException:
                continue
            if response.status_code < 300:
                with self._lock:
                    self.completions.append(time.monotonic())
        session.close()
