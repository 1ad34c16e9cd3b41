"""An SQS record's receive count: how many attempts a record gets on this receive is the contract's rule
(``lambdas.contracts.retries.attempts_on_receive``), which the synth-time retry budget counts too."""

from __future__ import annotations

from typing import Any

RECEIVE_COUNT_ATTRIBUTE = "ApproximateReceiveCount"


def receive_count(record: Any) -> int:
    """An SQS record's ``ApproximateReceiveCount`` (1 if absent)."""
    return int((record.get("attributes") or {}).get(RECEIVE_COUNT_ATTRIBUTE, 1))
