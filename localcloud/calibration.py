"""How much this machine can compress time, and how much load it can carry: measured before synthesis.

The local cloud divides the stage's time settings by a factor so a scenario takes a minute, not ten.
What does not shrink with it is the work around each dependency call: every emulated AWS call costs real
CPU, and the whole local cloud (emulator, front door, partner twin, every consumer environment) shares
one interpreter. So before synthesizing, ``max_concurrency`` threads each make a batch's worth of
emulated DynamoDB calls at once, and from that:

* the factor is lowered until the compressed consumer timeout fits a full dependency attempt plus
  ``MIN_RECORDS`` records, with ``HEADROOM``;
* compressed, each invocation takes one record (batch size 1). The work around a call does not
  compress, so a compressed timeout holds about one record whose call failed slowly, where the cloud's
  30 s holds a failed record and many healthy ones; with more, an invocation would start a record only
  to find no time for the next, and every record it has no time for goes back to the queue having spent
  a receive: during a drain that walks records whose receives the fault already used into the DLQ,
  which the cloud would not do (seen under load with batches of 10, 5 and 2: 5 to 20 per scenario);
* the scenarios' load is slowed to ``UTILISATION`` of what the consumers can then process, so the queue
  drains between faults on this machine as it would in the cloud.

A record costs about ``RECORD_COST_RATIO`` times its share of the measured batch: the measurement calls
moto in process, while a record in the local cloud also crosses HTTP twice per call and shares the
interpreter with the front door, the partner twin and the pollers (fitted on 2-core machines, quiet and
busy). The report prints the choice and why.
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
RECORD_COST_RATIO = 8.0
MIN_RECORDS = 3
HEADROOM = 1.5
COMPRESSED_BATCH_SIZE = 1
UTILISATION = 0.6
PEAK_RATE = 10.0  # orders/s of the busiest scenario at the default compression
BATCHING_WINDOW_MS = 1_000.0  # the event source's batching window (not compressed)


@dataclass(frozen=True)
class Calibration:
    requested: float
    factor: float
    batch_ms: float  # measured: one batch's emulated calls, with every slot of the consumer busy
    record_ms: float  # estimated: one record in the local cloud
    rate_scale: float  # the scenarios' load, relative to their nominal rates at /10
    reason: str
    batch_size: int | None = None  # the consumers' compressed batch size (None: as configured)


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
    """The largest factor <= ``requested`` that fits ``MIN_RECORDS`` records, and the load that fits it."""
    consumer, dependency = _consumer(context)
    record_ms = RECORD_COST_RATIO * batch_ms / consumer["batch_size"]

    def attempt_ms(factor: float) -> float:
        # Compressed as localcloud.scenarios.compressed_context does (the margin is kept >= 500 ms).
        return (
            max(500.0, dependency["safety_margin_ms"] / factor)
            + dependency["connect_timeout_ms"] / factor
            + dependency["attempt_timeout_ms"] / factor
        )

    def timeout_ms(factor: float) -> float:
        return 1000.0 * max(minimum_timeout_s, math.ceil(consumer["timeout_seconds"] / factor))

    def fits(factor: float) -> bool:
        return timeout_ms(factor) >= HEADROOM * (attempt_ms(factor) + MIN_RECORDS * record_ms)

    candidates = [requested, *range(math.ceil(requested) - 1, 0, -1)]
    factor = float(next((f for f in candidates if fits(f)), 1))
    batch_size = consumer["batch_size"] if factor == 1 else min(consumer["batch_size"], COMPRESSED_BATCH_SIZE)
    per_invocation = max(
        1, min(batch_size, math.floor((timeout_ms(factor) - attempt_ms(factor)) / record_ms))
    )
    # A batch that fills at once does not wait for the batching window (a batch of one always does).
    window_ms = BATCHING_WINDOW_MS if per_invocation > 1 else 0.0
    capacity = consumer["max_concurrency"] * per_invocation / (per_invocation * record_ms + window_ms)
    rate = min(factor / DEFAULT_COMPRESS, UTILISATION * capacity * 1000.0 / PEAK_RATE)
    measured = (
        f"a batch's emulated calls took {batch_ms / 1000:.1f}s with all {consumer['max_concurrency']} "
        f"consumer slots busy (about {record_ms / 1000:.2f}s per record here)"
    )
    lowered = "" if factor == requested else f"lowered from {requested:g}: "
    batches = (
        f"batch size {batch_size} (of {consumer['batch_size']}: no record received without time for it)"
        if batch_size < consumer["batch_size"]
        else f"batch size {batch_size}"
    )
    reason = (
        f"{lowered}{measured}; consumer timeout {timeout_ms(factor) / 1000:.0f}s, {batches}, "
        f"load x{rate:.2f} of the nominal /10 rates (capacity about {capacity * 1000:.1f} orders/s)"
    )
    return Calibration(requested, factor, batch_ms, record_ms, rate, reason, batch_size)


def timeline_scale(scale: float, factor: float) -> float:
    """Scenario timelines are written for the default compression: stretch them as the factor shrinks."""
    return scale * DEFAULT_COMPRESS / factor


def rate_scale(factor: float) -> float:
    """And slow their load down as much, so a scenario sends the same orders in compressed time."""
    return factor / DEFAULT_COMPRESS


def calibrate(context: Mapping[str, Any], requested: float = DEFAULT_COMPRESS) -> Calibration:
    if requested <= 1:
        return Calibration(requested, requested, 0.0, 0.0, rate_scale(requested), "no compression asked for")
    consumer, _ = _consumer(context)
    # The slower of two measurements: a busy machine's noise should lower the factor, not raise it.
    batch_ms = max(
        measure_batch_ms(consumer["max_concurrency"], consumer["batch_size"] * CALLS_PER_RECORD)
        for _ in range(2)
    )
    return choose_factor(context, requested, batch_ms)
