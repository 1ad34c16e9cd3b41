"""How many calls a retry layer makes: the rules the functions apply and the synth-time retry budget
(stacks/retry_budget.py) counts.

The queue's redelivery is itself a retry layer: a record that failed a whole logical call (every client
attempt) comes back and is called again. Retrying in full on every receive multiplies the two layers
(3 attempts x 6 receives = 18 calls for one message: the seeds' retry storm, rebuilt by configuration).
So the first receive gets the client's ``max_attempts`` and each later one one fewer, down to a single
attempt: from then on the redelivery, with its backoff (``retry_visibility``), is the retry.

The AWS SDK's attempts are a retry layer too: the functions build their botocore ``Config`` from the
figures here, so the budget counts what the clients do.
"""

from __future__ import annotations

from typing import Final

# The DynamoDB tables every consumer touches per record (idempotency, circuit state): small key lookups,
# so a second is plenty, and two standard-mode attempts cover a throttle (lambdas/shared/stores.py).
TABLE_CONNECT_TIMEOUT_SECONDS: Final = 1
TABLE_READ_TIMEOUT_SECONDS: Final = 1
TABLE_TOTAL_MAX_ATTEMPTS: Final = 2
# The workflow starter's Step Functions client (lambdas/workflow_starter/clients.py).
STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS: Final = 3


def attempts_on_receive(max_attempts: int, receive_count: int) -> int:
    """Client attempts for a record on its ``receive_count``-th receive (1-based)."""
    return max(1, max_attempts - max(0, receive_count - 1))


def calls_over_receives(max_attempts: int, max_receive_count: int) -> int:
    """The most dependency calls one message can cause before the queue dead-letters it."""
    return sum(attempts_on_receive(max_attempts, n) for n in range(1, max_receive_count + 1))
