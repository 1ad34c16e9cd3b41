"""Choosing the time compression from how fast this machine runs a batch's emulated AWS calls."""

from __future__ import annotations

import math

from localcloud.calibration import DEFAULT_COMPRESS, choose_factor, measure_batch_ms, timeline_scale
from tests.conftest import cdk_context

CONTEXT = cdk_context(stage="dev")
CONSUMER = CONTEXT["service"]["consumers"]["orders"]


def test_a_quiet_machine_gets_the_requested_compression() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=300)

    assert calibration.factor == DEFAULT_COMPRESS
    assert "took 0.3s" in calibration.reason


def test_a_busy_machine_gets_less_compression_so_a_batch_still_fits_the_timeout() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, batch_ms=2_000)

    # At /10 the consumer has 3 s; the batch alone needs 1.5 x 1.5 x 2 s = 4.5 s.
    assert 1 <= calibration.factor < DEFAULT_COMPRESS
    # compressed_context rounds a compressed timeout up to whole seconds
    assert math.ceil(CONSUMER["timeout_seconds"] / calibration.factor) * 1000 >= calibration.needed_timeout_ms
    assert calibration.reason.startswith("lowered from 10")


def test_the_slower_the_machine_the_lower_the_factor() -> None:
    factors = [choose_factor(CONTEXT, DEFAULT_COMPRESS, ms).factor for ms in (100, 800, 1_600, 3_200, 30_000)]

    assert factors == sorted(factors, reverse=True)
    assert factors[0] == DEFAULT_COMPRESS and factors[-1] == 1


def test_timelines_stretch_as_the_factor_shrinks() -> None:
    assert timeline_scale(0.4, DEFAULT_COMPRESS) == 0.4
    assert timeline_scale(0.4, 5) == 0.8


def test_a_batch_is_measured_with_every_slot_busy() -> None:
    one = measure_batch_ms(concurrency=1, calls=20)
    assert 0 < one < 60_000
