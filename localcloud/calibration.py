"""How much this machine can compress time: measured before the stack is synthesized.

The local cloud divides the stage's time settings by a factor so a scenario takes a minute, not ten.
What must not shrink with it is the work a handler does around its dependency calls: every emulated
AWS call costs real CPU time, and on a busy machine several times more. So before synthesizing, the
emulator's round trip is measured (in process, DynamoDB writes and reads as the consumer makes them),
and the factor is lowered until the compressed function timeout still fits a full dependency attempt
plus a whole batch's worth of emulated calls, with room to spare. The report prints the choice and why.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_COMPRESS = 10.0
# Emulated AWS calls a consumer makes per record around its dependency call (order status accepted,
# processing, done; idempotency in progress, completed) and what the headroom multiplies them by.
CALLS_PER_RECORD = 6
HEADROOM = 1.5
SAMPLES = 40


@dataclass(frozen=True)
class Calibration:
    requested: float
    factor: float
    round_trip_p90_ms: float
    needed_timeout_ms: float
    reason: str


def measure_round_trip_ms(samples: int = SAMPLES) -> float:
    """p90 of one emulated DynamoDB call (put or get), in milliseconds, on this machine right now."""
    import boto3
    from moto import mock_aws

    timings: list[float] = []
    with mock_aws():
        dynamodb = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="calibration", aws_secret_access_key="x"
        )
        dynamodb.create_table(
            TableName="calibration",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(samples):
            started = time.monotonic()
            dynamodb.put_item(TableName="calibration", Item={"id": {"S": str(n)}, "v": {"S": "x" * 200}})
            dynamodb.get_item(TableName="calibration", Key={"id": {"S": str(n)}}, ConsistentRead=True)
            timings.append((time.monotonic() - started) * 1000.0 / 2)
    return statistics.quantiles(timings, n=10)[-1]


def choose_factor(
    context: Mapping[str, Any], requested: float, round_trip_p90_ms: float, *, minimum_timeout_s: float = 3
) -> Calibration:
    """The largest factor <= ``requested`` whose compressed order consumer still fits its batch.

    Needed: one full attempt (safety margin + connect + attempt timeout, compressed) plus, for every
    record of a batch, ``CALLS_PER_RECORD`` emulated calls at the measured p90, times ``HEADROOM``.
    """
    service = context["service"]
    consumer = service["consumers"]["orders"]
    dependency = service["dependencies"][consumer["dependency"]]
    per_batch_ms = consumer["batch_size"] * CALLS_PER_RECORD * round_trip_p90_ms

    def needed_ms(factor: float) -> float:
        attempt_ms = (
            max(500.0, dependency["safety_margin_ms"] / factor)
            + dependency["connect_timeout_ms"] / factor
            + dependency["attempt_timeout_ms"] / factor
        )
        return HEADROOM * (attempt_ms + per_batch_ms)

    def timeout_ms(factor: float) -> float:
        return 1000.0 * max(minimum_timeout_s, math.ceil(consumer["timeout_seconds"] / factor))

    candidates = [requested, *range(math.ceil(requested) - 1, 0, -1)]
    factor = float(next((f for f in candidates if timeout_ms(f) >= needed_ms(f)), 1))
    needed = needed_ms(factor)
    if factor == requested:
        reason = (
            f"emulated AWS call p90 {round_trip_p90_ms:.0f} ms: a batch needs about {needed / 1000:.1f}s "
            f"(with headroom) of the consumer's {timeout_ms(factor) / 1000:.0f}s timeout"
        )
    else:
        reason = (
            f"lowered from {requested:g}: emulated AWS call p90 {round_trip_p90_ms:.0f} ms on this machine, "
            f"so a batch needs about {needed / 1000:.1f}s (with headroom); the consumer's timeout is now "
            f"{timeout_ms(factor) / 1000:.0f}s"
        )
    return Calibration(requested, factor, round_trip_p90_ms, needed, reason)


def timeline_scale(scale: float, factor: float) -> float:
    """Scenario timelines are written for the default compression: stretch them as the factor shrinks."""
    return scale * DEFAULT_COMPRESS / factor


def calibrate(context: Mapping[str, Any], requested: float = DEFAULT_COMPRESS) -> Calibration:
    if requested <= 1:
        return Calibration(requested, requested, 0.0, 0.0, "no compression asked for")
    return choose_factor(context, requested, measure_round_trip_ms())
