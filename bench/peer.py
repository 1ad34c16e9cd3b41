"""Design (b), the peer most teams deploy: SQS -> Lambda with a DLQ, default settings, no breaker.

What the AWS Solutions Constructs ``aws-sqs-lambda`` pattern and the serverless-patterns templates give
out of the box, modelled in process:

* the queue: visibility timeout SQS's default (30 s, or the function timeout if longer, as CDK requires),
  a DLQ after ``maxReceiveCount`` 15 (the Solutions Constructs default);
* the event source mapping: batches of 10, no batching window, no ReportBatchItemFailures, no maximum
  concurrency. As Lambda documents it for standard queues: 5 concurrent batches when messages arrive,
  up to 300 more per minute while messages remain (not while invocations fail), at most 1,000;
* the handler: charges each record in turn with the producer's Idempotency-Key (so the dependency never
  charges twice) and the HTTP client's defaults (no retries); its timeout is the remaining function
  time. The first failure fails the invocation, and the whole batch, charged records included, comes
  back after the visibility timeout. No breaker, no backoff, no bulkhead.

Every duration is the architecture's, divided by the same compression.
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
from localcloud.fault_dependency import FaultDependency
from localcloud.scenarios import Scenario

MAX_RECEIVE_COUNT = 15  # aws-solutions-constructs' default redrive policy
SQS_DEFAULT_VISIBILITY_S = 30.0
BATCH_SIZE = 10
INITIAL_BATCHES = 5
SCALE_UP_PER_MINUTE = 300
MAX_BATCHES = 1_000
EMPTY_POLL_S = 0.05


@dataclass
class PeerMessage:
    n: int
    order: dict[str, Any]
    key: str
    sent: float  # seconds from the run's start
    receive_count: int = 0
    visible_at: float = 0.0
    deleted: bool = False
    dead_lettered: bool = False


class PeerQueue:
    """An SQS standard queue's delivery rules, in memory: visibility timeout, receive count, redrive."""

    def __init__(self, visibility_timeout_s: float, max_receive_count: int) -> None:
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receive_count = max_receive_count
        self.messages: list[PeerMessage] = []
        self._lock = threading.Lock()

    def send(self, message: PeerMessage) -> None:
        with self._lock:
            message.visible_at = message.sent
            self.messages.append(message)

    def receive(self, now: float, limit: int) -> list[PeerMessage]:
        """Up to ``limit`` visible messages; one received more than ``max_receive_count`` times goes to
        the DLQ instead of being delivered, as SQS's redrive policy does."""
        batch: list[PeerMessage] = []
        with self._lock:
            for message in self.messages:
                if len(batch) >= limit:
                    break
                if message.deleted or message.dead_lettered or message.visible_at > now:
                    continue
                if message.receive_count >= self.max_receive_count:
                    message.dead_lettered = True
                    continue
                message.receive_count += 1
                message.visible_at = now + self.visibility_timeout_s
                batch.append(message)
        return batch

    def delete(self, batch: list[PeerMessage]) -> None:
        with self._lock:
            for message in batch:
                message.deleted = True

    def depth(self) -> int:
        """Messages neither deleted nor dead-lettered (visible or in flight)."""
        with self._lock:
            return sum(1 for m in self.messages if not (m.deleted or m.dead_lettered))

    def dead_lettered(self) -> list[PeerMessage]:
        with self._lock:
            return [m for m in self.messages if m.dead_lettered]


@dataclass
class PeerRun:
    scenario: Scenario
    dependency: FaultDependency
    function_timeout_s: float
    compress: float  # Lambda's scaling rate runs on the compressed clock too
    slots: int | None = None  # shared concurrency pool (noisy neighbour); None: the account's
    seed: int = 7
    queue: PeerQueue = field(init=False)
    in_flight: int = 0  # invocations running now
    peak_in_flight: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    load_ended_s: float = 0.0
    drained_at_s: float | None = None
    depth_samples: list[tuple[float, int]] = field(default_factory=list)
    t0: float = 0.0

    def __post_init__(self) -> None:
        visibility = max(SQS_DEFAULT_VISIBILITY_S / self.compress, self.function_timeout_s)
        self.queue = PeerQueue(visibility, MAX_RECEIVE_COUNT)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random(self.seed)
        self._allowed = INITIAL_BATCHES
        self._errors_since_scale = 0
        self._threads: list[threading.Thread] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- the function ------------------------------------------------------------------------------

    def handler(self, session: requests.Session, batch: list[PeerMessage]) -> bool:
        """True when every record was charged; the first failure fails the invocation."""
        deadline = time.monotonic() + self.function_timeout_s
        for message in batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return False  # killed at its timeout
            try:
                response = session.post(
                    self.dependency.base_url + CHARGES_PATH,
                    json={k: message.order[k] for k in ("orderId", "amountCents", "currency")},
                    headers={IDEMPOTENCY_KEY_HEADER: message.key},
                    timeout=left,
                )
            except requests.RequestException:
                return False
            if response.status_code >= 300:
                return False
        return True

    # -- the event source mapping ------------------------------------------------------------------

    def _slot(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            batch = self.queue.receive(self.now(), BATCH_SIZE)
            if not batch:
                self._stop.wait(EMPTY_POLL_S)
                continue
            with self._lock:
                self.in_flight += 1
                self.invocations += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            ok = False
            try:
                ok = self.handler(session, batch)
            finally:
                with self._lock:
                    self.in_flight -= 1
                    if not ok:
                        self.failed_invocations += 1
                        self._errors_since_scale += 1
            if ok:
                self.queue.delete(batch)

    def _scale(self) -> None:
        """Every compressed second: up to 300/min more batches while messages wait and nothing failed."""
        step = max(1, round(SCALE_UP_PER_MINUTE / 60))
        self._start_slots()
        while not self._stop.wait(1.0 / self.compress):
            waiting = self.queue.depth()
            with self._lock:
                self.depth_samples.append((self.now(), waiting))
                if waiting > self.in_flight * BATCH_SIZE and not self._errors_since_scale:
                    self._allowed = min(MAX_BATCHES, self._allowed + step)
                self._errors_since_scale = 0
            self._start_slots()

    def _start_slots(self) -> None:
        """One thread per concurrent batch allowed (within the shared pool, if any); never stopped early:
        Lambda scales back only once traffic is low, which an idle slot's empty polls model."""
        wanted = self._allowed if self.slots is None else min(self._allowed, self.slots)
        while len(self._threads) < wanted:
            thread = threading.Thread(target=self._slot, daemon=True, name=f"peer-slot-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> None:
        """The same schedule as the other designs: ``load_rate`` orders/s for ``load_s`` seconds, then
        wait for the queue to empty: every message charged or dead-lettered, which its whole receive
        budget (+ slack) always reaches."""
        self.t0 = time.monotonic()
        scaling = threading.Thread(target=self._scale, daemon=True, name="peer-scaling")
        scaling.start()
        prefix = f"peer-{uuid.uuid4().hex[:6]}"
        interval = 1.0 / self.scenario.load_rate
        n = 0
        try:
            while n * interval < self.scenario.load_s:
                delay = n * interval - self.now()
                if delay > 0:
                    time.sleep(delay)
                order_id = f"{prefix}-{n:05d}"
                order = {
                    "orderId": order_id,
                    "amountCents": self._rng.randrange(100, 20_000),
                    "currency": "EUR",
                }
                self.queue.send(PeerMessage(n, order, f"key-{order_id}", self.now()))
                n += 1
            self.load_ended_s = self.now()
            budget = self.queue.max_receive_count * (
                self.queue.visibility_timeout_s + self.function_timeout_s
            )
            deadline = self.load_ended_s + budget + 10
            while self.now() < deadline:
                if self.queue.depth() == 0:
                    self.drained_at_s = self.now()
                    break
                time.sleep(0.1)
        finally:
            self._stop.set()
            deadline = time.monotonic() + self.function_timeout_s + 1
            for thread in [scaling, *self._threads]:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
