"""Choosing the time compression and the load from how fast this machine runs a batch's emulated calls."""

from __future__ import annotations

import math

from localcloud.calibration import (
    DEFAULT_COMPRESS,
    HEADROOM,
    MIN_RECORDS,
    choose_factor,
    measure_batch_ms,
    timeline_scale,
)
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
