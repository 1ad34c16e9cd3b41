"""How much this machine can compress time: measured before the stack is synthesized.

The local cloud divides the stage's time settings by a factor so a scenario takes a minute, not ten.
What must not shrink with it is the work a handler does around its dependency calls: every emulated
AWS call costs real CPU time, the consumer's environments share one interpreter (so its
``max_concurrency`` batches compete for one core), and on a busy machine all of it takes several times
longer. So before synthesizing, that is measured: ``max_concurrency`` threads each make a batch's worth
of emulated DynamoDB calls at once, and the factor is lowered until the compressed function timeout
still fits that batch time (times ``HTTP_OVERHEAD`` for the emulator's HTTP round trips) plus a full
dependency attempt, with ``HEADROOM``. The report prints the choice and why.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_COMPRESS = 10.0
# Emulated AWS calls a consumer makes per record around its dependency call (order status accepted,
# processing, done; idempotency in progress, completed; the batch's share of the rest).
CALLS_PER_RECORD = 6
# The measurement calls moto in process; the local cloud reaches it over HTTP on loopback.
HTTP_OVERHEAD = 1.5
HEADROOM = 1.5


@dataclass(frozen=True)
class Calibration:
    requested: float
    factor: float
    batch_ms: float  # measured: one batch's emulated calls, with every slot of the consumer busy
    needed_timeout_ms: float
    reason: str


def measure_batch_ms(concurrency: int, calls: int) -> float:
    """Wall time for ``concurrency`` threads each making ``calls`` emulated DynamoDB writes at once (ms)."""
    import boto3
    from moto import mock_aws

    def client() -> Any:
        return boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="calibration", aws_secret_access_key="x"
        )

    with mock_aws():
        client().create_table(
            TableName="calibration",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients = [client() for _ in range(concurrency)]
        durations: list[float] = []
        lock = threading.Lock()

        def batch(slot: int) -> None:
            started = time.monotonic()
            for n in range(calls):
                clients[slot].put_item(
                    TableName="calibration", Item={"id": {"S": f"{slot}-{n}"}, "v": {"S": "x" * 200}}
                )
            with lock:
                durations.append(time.monotonic() - started)

        threads = [threading.Thread(target=batch, args=(slot,)) for slot in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return max(durations) * 1000.0


def _consumer(context: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    service = context["service"]
    consumer = service["consumers"]["orders"]
    return consumer, service["dependencies"][consumer["dependency"]]


def choose_factor(
    context: Mapping[str, Any], requested: float, batch_ms: float, *, minimum_timeout_s: float = 3
) -> Calibration:
    """The largest factor <= ``requested`` whose compressed order consumer still fits a measured batch."""
    consumer, dependency = _consumer(context)

    def needed_ms(factor: float) -> float:
        attempt_ms = (
            max(500.0, dependency["safety_margin_ms"] / factor)
            + dependency["connect_timeout_ms"] / factor
            + dependency["attempt_timeout_ms"] / factor
        )
        return HEADROOM * (attempt_ms + HTTP_OVERHEAD * batch_ms)

    def timeout_ms(factor: float) -> float:
        return 1000.0 * max(minimum_timeout_s, math.ceil(consumer["timeout_seconds"] / factor))

    candidates = [requested, *range(math.ceil(requested) - 1, 0, -1)]
    factor = float(next((f for f in candidates if timeout_ms(f) >= needed_ms(f)), 1))
    needed = needed_ms(factor)
    measured = (
        f"a batch's emulated calls took {batch_ms / 1000:.1f}s with all {consumer['max_concurrency']} "
        f"consumer slots busy, so a batch needs about {needed / 1000:.1f}s (with headroom)"
    )
    if factor == requested:
        reason = f"{measured}; the consumer's timeout is {timeout_ms(factor) / 1000:.0f}s"
    else:
        reason = f"lowered from {requested:g}: {measured}; the consumer's timeout is now {timeout_ms(factor) / 1000:.0f}s"
    return Calibration(requested, factor, batch_ms, needed, reason)


def timeline_scale(scale: float, factor: float) -> float:
    """Scenario timelines are written for the default compression: stretch them as the factor shrinks."""
    return scale * DEFAULT_COMPRESS / factor


def rate_scale(factor: float) -> float:
    """And slow their load down as much, so a scenario sends the same orders in compressed time."""
    return factor / DEFAULT_COMPRESS


def calibrate(context: Mapping[str, Any], requested: float = DEFAULT_COMPRESS) -> Calibration:
    if requested <= 1:
        return Calibration(requested, requested, 0.0, 0.0, "no compression asked for")
    consumer, _ = _consumer(context)
    # The slower of two measurements: a busy machine's noise should lower the factor, not raise it.
    batch_ms = max(
        measure_batch_ms(consumer["max_concurrency"], consumer["batch_size"] * CALLS_PER_RECORD)
        for _ in range(2)
    )
    return choose_factor(context, requested, batch_ms)
