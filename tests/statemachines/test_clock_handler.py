"""lambdas/fulfilment/clock.py: the unix clock the circuit workflows read."""

from __future__ import annotations

import time

import pytest

from lambdas.fulfilment import clock


def test_now_and_named_offsets() -> None:
    result = clock.compute(
        {"plus": {"leaseExpiry": 60, "expiration": 3630}, "minus": {"dueThreshold": 30}}, 1_767_225_600.9
    )

    assert result == {
        "now": 1_767_225_600,
        "leaseExpiry": 1_767_225_660,
        "expiration": 1_767_229_230,
        "dueThreshold": 1_767_225_570,
    }


def test_handler_reads_the_real_clock_in_integer_seconds() -> None:
    before = int(time.time())
    result = clock.handler({"plus": {"later": 5}}, None)
    after = int(time.time())

    assert before <= result["now"] <= after
    assert isinstance(result["now"], int)
    assert result["later"] == result["now"] + 5
    assert clock.handler(None, None).keys() == {"now"}


def test_values_past_2038_are_exact() -> None:
    """Why the arithmetic is here: States.MathAdd only takes 32-bit integers on AWS."""
    assert clock.compute({"plus": {"x": 1}}, 2**31 + 10) == {"now": 2**31 + 10, "x": 2**31 + 11}


@pytest.mark.parametrize(
    "event",
    [
        {"plus": {"now": 1}},
        {"plus": {"x": 1.5}},
        {"plus": {"x": "5"}},
        {"plus": {"x": True}},
        {"plus": [1]},
        {"plus": {"x": 1}, "minus": {"x": 1}},
    ],
)
def test_malformed_events_are_rejected(event: dict) -> None:
    with pytest.raises(clock.ValidationError):
        clock.compute(event, 0)
