"""Waiting on real time in tests, where no clock can be injected (threads, emulator, HTTP servers).

The condition must become true on every outcome the test judges, right or wrong (wait for a terminal
state, then assert on it): the deadline only guards against a machine too slow to get there, and says
so instead of reporting a behaviour defect. Deadlines are generous because they cost nothing when the
condition holds early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

MACHINE_TOO_SLOW = "machine too slow to judge"
DEFAULT_TIMEOUT_S = 60.0


def wait_until(
    condition: Callable[[], T], *, what: str, timeout_s: float = DEFAULT_TIMEOUT_S, interval_s: float = 0.02
) -> T:
    """Poll ``condition`` until it returns a truthy value, and return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(
                f"{MACHINE_TOO_SLOW}: {what} not reached within {timeout_s:g}s (no behaviour verdict)"
            )
        time.sleep(interval_s)
