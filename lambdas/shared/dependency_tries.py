"""How many times a queued record has called its dependency: counted by the consumer, not by SQS.

SQS counts receives, and a receive is spent whether or not the record called anything: handed back
because the invocation had no time left for it (``batch_budget``), refused by an open circuit before the
circuit controller paused the consumer, or in flight when an invocation died. Counted against
``maxReceiveCount``, those walked records into the DLQ during a long or flapping outage although nothing
was wrong with them and the partner never saw them fail.

So a consumer that calls a critical dependency counts its own *tries*: receives on which it called the
dependency. A try is counted before the call (write-ahead: a try whose invocation dies mid-call still
counts) in the idempotency table, under the record's idempotency key (a redriven message is a new SQS
message with the same key). A call the circuit refused, or that never got an attempt in, is refunded.
After ``max_tries`` the record is quarantined (``retries_exhausted``, with the last failure) and its count
removed, so an operator's redrive starts afresh. The queue's ``maxReceiveCount``, larger, stays as the
backstop for records that fail without ever trying (the idempotency table down, a crash loop).

``lambdas.contracts.retries`` gives the n-th try one client attempt fewer than the one before, so the most
calls one message can cause is ``calls_over_receives(max_attempts, max_tries)`` (stacks/retry_budget.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

# Beside the Powertools idempotency records (``<prefix>#<hash>``) in the same table: another prefix.
TRIES_KEY_PREFIX: Final = "dependency-tries"
TRIES_ATTRIBUTE: Final = "tries"
LAST_FAILURE_ATTRIBUTE: Final = "last_failure"
EXPIRATION_ATTRIBUTE: Final = "expiration"  # the idempotency table's TTL attribute
MAX_FAILURE_TEXT: Final = 500


class TriesExhaustedError(Exception):
    """The record has called its dependency ``max_tries`` times and failed each time: quarantine it."""

    def __init__(self, tries: int, last_failure: str | None) -> None:
        super().__init__(f"{tries} tries failed; the last: {last_failure or 'unknown'}")
        self.tries = tries
        self.last_failure = last_failure


@dataclass(frozen=True)
class Try:
    number: int  # 1 for the record's first call
    last_failure: str | None


class DependencyTries:
    """The write-ahead try count of each record, keyed by its idempotency key."""

    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        *,
        max_tries: int,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb = dynamodb_client
        self._table = table_name
        self.max_tries = max_tries
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def begin(self, key: str) -> Try:
        """Count a try before calling; raises TriesExhaustedError when the record has had all of its."""
        item = self._dynamodb.update_item(
            TableName=self._table,
            Key=self._key(key),
            UpdateExpression="ADD #tries :one SET #expiration = :expiration",
            ExpressionAttributeNames={"#tries": TRIES_ATTRIBUTE, "#expiration": EXPIRATION_ATTRIBUTE},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expiration": {"N": str(int(self._clock()) + self._ttl_seconds)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        number = int(item[TRIES_ATTRIBUTE]["N"])
        last_failure = (item.get(LAST_FAILURE_ATTRIBUTE) or {}).get("S")
        if number > self.max_tries:
            raise TriesExhaustedError(number - 1, last_failure)
        return Try(number, last_failure)

    def failed(self, key: str, error: BaseException) -> bool:
        """Keep what the try failed with, for the quarantine's detail. Best effort, like ``refund``:
        the record's own failure is what the caller reports."""
        return self._best_effort(
            update_item=dict(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="SET #failure = :failure",
                ExpressionAttributeNames={"#failure": LAST_FAILURE_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":failure": {"S": f"{type(error).__name__}: {error}"[:MAX_FAILURE_TEXT]}
                },
            )
        )

    def refund(self, key: str) -> bool:
        """The try made no call (an open circuit, no time for a first attempt): it does not count. A
        refund that fails leaves one try too many counted: the record leaves a try early, never late."""
        return self._best_effort(
            update_item=dict(
                TableName=self._table,
                Key=self._key(key),
                UpdateExpression="ADD #tries :minus_one",
                ExpressionAttributeNames={"#tries": TRIES_ATTRIBUTE},
                ExpressionAttributeValues={":minus_one": {"N": "-1"}},
            )
        )

    def forget(self, key: str) -> bool:
        """After the quarantine: a redrive of the record gets its tries afresh. Best effort: the record is
        already safe in the DLQ; a count left behind only sends its redrive straight back there."""
        try:
            self._dynamodb.delete_item(TableName=self._table, Key=self._key(key))
        except (BotoCoreError, ClientError):
            return False
        return True

    def _best_effort(self, *, update_item: dict[str, Any]) -> bool:
        try:
            self._dynamodb.update_item(**update_item)
        except (BotoCoreError, ClientError):
            return False
        return True

    @staticmethod
    def _key(key: str) -> dict[str, Any]:
        return {"id": {"S": f"{TRIES_KEY_PREFIX}#{key}"}}
