"""The workflows' clock: unix seconds now, plus named instants relative to now.

Event::

    {"plus": {"leaseExpiry": 60, "expiration": 3630}, "minus": {"dueThreshold": 30}}

Result::

    {"now": 1767225600, "leaseExpiry": 1767225660, "expiration": 1767229230, "dueThreshold": 1767225570}

The arithmetic happens here rather than with ``States.MathAdd`` in the state machine because AWS accepts
only 32-bit integers there, and unix seconds pass 2**31 in January 2038. Integer seconds, like
``opened_at`` in the Powertools circuit breaker record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

RESERVED = "now"


class ValidationError(ValueError):
    """The event is not ``{"plus": {name: int}, "minus": {name: int}}``."""


def _offsets(event: Mapping[str, Any], key: str) -> dict[str, int]:
    raw = event.get(key) or {}
    if not isinstance(raw, Mapping):
        raise ValidationError(f"'{key}' must be an object of name -> seconds")
    offsets: dict[str, int] = {}
    for name, seconds in raw.items():
        if name == RESERVED:
            raise ValidationError(f"'{RESERVED}' is reserved")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds != int(seconds):
            raise ValidationError(f"'{key}.{name}' must be a whole number of seconds, got {seconds!r}")
        offsets[name] = int(seconds)
    return offsets


def compute(event: Mapping[str, Any], now: float) -> dict[str, int]:
    plus = _offsets(event, "plus")
    minus = _offsets(event, "minus")
    clash = plus.keys() & minus.keys()
    if clash:
        raise ValidationError(f"names in both 'plus' and 'minus': {sorted(clash)}")
    current = int(now)
    result = {RESERVED: current}
    result.update({name: current + seconds for name, seconds in plus.items()})
    result.update({name: current - seconds for name, seconds in minus.items()})
    return result


def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, int]:
    return compute(event or {}, time.time())
