"""Choosing the time compression from how fast this machine emulates AWS calls."""

from __future__ import annotations

import math

from localcloud.calibration import DEFAULT_COMPRESS, choose_factor, measure_round_trip_ms, timeline_scale
from tests.conftest import cdk_context

CONTEXT = cdk_context(stage="dev")


def test_a_quiet_machine_gets_the_requested_compression() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, round_trip_p90_ms=5)

    assert calibration.factor == DEFAULT_COMPRESS
    assert "p90 5 ms" in calibration.reason


def test_a_slow_machine_gets_less_compression_so_a_batch_still_fits_the_timeout() -> None:
    calibration = choose_factor(CONTEXT, DEFAULT_COMPRESS, round_trip_p90_ms=60)

    # At /10 the consumer has 3 s; ten records x six calls x 60 ms (x1.5) alone need 5.4 s.
    assert 1 <= calibration.factor < DEFAULT_COMPRESS
    consumer = CONTEXT["service"]["consumers"]["orders"]
    # compressed_context rounds a compressed timeout up to whole seconds
    assert math.ceil(consumer["timeout_seconds"] / calibration.factor) * 1000 >= calibration.needed_timeout_ms
    assert calibration.reason.startswith("lowered from 10")


def test_the_slower_the_machine_the_lower_the_factor() -> None:
    factors = [choose_factor(CONTEXT, DEFAULT_COMPRESS, p90).factor for p90 in (1, 20, 40, 80, 160)]

    assert factors == sorted(factors, reverse=True)
    assert factors[-1] >= 1


def test_timelines_stretch_as_the_factor_shrinks() -> None:
    assert timeline_scale(0.4, DEFAULT_COMPRESS) == 0.4
    assert timeline_scale(0.4, 5) == 0.8


def test_the_round_trip_is_measured_on_the_emulator() -> None:
    assert 0 < measure_round_trip_ms(samples=10) < 10_000
