"""How many calls a queued record may make to its dependency on each receive, and over all of them.

The queue's redelivery is itself a retry layer: a record that failed a whole logical call (every client
attempt) comes back and is called again. Retrying in full on every receive multiplies the two layers
(3 attempts x 6 receives = 18 calls for one message: the seeds' retry storm, rebuilt by configuration).
So the first receive gets the client's ``max_attempts`` and each later one one fewer, down to a single
attempt: from then on the redelivery, with its backoff (``retry_visibility``), is the retry.

The synth-time retry budget (``stacks/retry_budget.py``) counts a consumer's worst case with
``calls_over_receives``, the rule the consumers apply with ``attempts_on_receive``.
"""

from __future__ import annotations

from typing import Any

RECEIVE_COUNT_ATTRIBUTE = "ApproximateReceiveCount"


def attempts_on_receive(max_attempts: int, receive_count: int) -> int:
    """Client attempts for a record on its ``receive_count``-th receive (1-based)."""
    return max(1, max_attempts - max(0, receive_count - 1))


def calls_over_receives(max_attempts: int, max_receive_count: int) -> int:
    """The most dependency calls one message can cause before the queue dead-letters it."""
    return sum(attempts_on_receive(max_attempts, n) for n in range(1, max_receive_count + 1))


def receive_count(record: Any) -> int:
    """An SQS record's ``ApproximateReceiveCount`` (1 if absent)."""
    return int((record.get("attributes") or {}).get(RECEIVE_COUNT_ATTRIBUTE, 1))
