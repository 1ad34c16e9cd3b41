"""Choosing the time compression and the load from how fast this machine runs a batch's emulated calls."""

from __future__ import annotations

import math

from localcloud.calibration import (
    COMPRESSED_BATCH_SIZE,
    DEFAULT_COMPRESS,
    HEADROOM,
    MIN_RECORDS,
    choose_factor,
    measure_batch_ms,
    timeline_scale,
)
from localcloud.scenarios import compressed_context
from tests.conftest import cdk_context

CONTEXT = cdk_context(stage="dev")
CONSUMER = CONTEXT["service"]["consumers"]["orders"]


def test_a_fast_machine_gets_the_requested_compression_and_the_nominal_load() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=100)

    assert calibration.factor == DEFAULT_COMPRESS
    assert calibration.rate_scale == 1.0
    assert "took 0.1s" in calibration.reason


def test_a_busy_machine_gets_less_compression_so_records_still_fit_the_timeout() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=1_600)

    assert 1 <= calibration.factor < DEFAULT_COMPRESS
    timeout_ms = math.ceil(CONSUMER["timeout_seconds"] / calibration.factor) * 1000
    assert timeout_ms >= HEADROOM * MIN_RECORDS * calibration.record_ms
    assert calibration.reason.startswith("lowered from 10")


def test_the_load_follows_what_the_consumers_can_process_here() -> None:
    quiet, busy = (choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=ms) for ms in (600, 1_600))

    # Never more than the stretched timeline asks for, and less on a slower machine.
    assert quiet.rate_scale <= quiet.factor / DEFAULT_COMPRESS
    assert busy.rate_scale < quiet.rate_scale


def test_the_slower_the_machine_the_lower_the_factor() -> None:
    factors = [choose_factor(CONTEXT, DEFAULT_COMPRESS, ms).factor for ms in (100, 800, 1_600, 3_200, 30_000)]

    assert factors == sorted(factors, reverse=True)
    assert factors[0] == DEFAULT_COMPRESS and factors[-1] == 1


def test_timelines_stretch_as_the_factor_shrinks() -> None:
    assert timeline_scale(0.4, DEFAULT_COMPRESS) == 0.4
    assert timeline_scale(0.4, 5) == 0.8


def test_a_batch_is_measured_on_the_emulator() -> None:
    assert 0 < measure_batch_ms(concurrency=2, calls=10) < 60_000


def test_compressed_each_invocation_takes_one_record_and_uncompressed_the_configured_batch() -> None:
    """Records an invocation has no time for go back having spent a receive: compressed, a batch would
    not fit, and a drain would walk records into the DLQ that the cloud would process."""
    for batch_ms in (100, 600, 1_600):
        assert choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=batch_ms).batch_size == COMPRESSED_BATCH_SIZE
    assert choose_factor(CONTEXT, 1, batch_ms=100).batch_size == CONSUMER["batch_size"]


def test_the_compressed_context_carries_the_batch_size_to_every_consumer() -> None:
    context, overrides = compressed_context(CONTEXT, DEFAULT_COMPRESS, batch_size=3)
    consumers = context["service"]["consumers"]
    assert {name: c["batch_size"] for name, c in consumers.items()} == dict.fromkeys(consumers, 3)
    assert {o.key for o in overrides} >= {f"service.consumers.{name}.batch_size" for name in consumers}
    unchanged, _ = compressed_context(CONTEXT, DEFAULT_COMPRESS)
    assert unchanged["service"]["consumers"]["orders"]["batch_size"] == CONSUMER["batch_size"]
