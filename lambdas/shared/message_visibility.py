"""Changing when received SQS messages become visible again: the one way a consumer hands a record back.

Used to release records an invocation had no time for (``batch_budget``) and to back off records that
failed because of their dependency (``retry_visibility``). Never a re-send: a new message would restart
the receive count and Lambda's recursive-loop detection stops SQS -> Lambda -> SQS chains.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# ChangeMessageVisibilityBatch takes at most ten entries.
SQS_BATCH_LIMIT: Final = 10


class MessageVisibility:
    """``change`` records' visibility (seconds from now), grouped per source queue, ten per call."""

    def __init__(self, sqs_client: Any) -> None:
        self._sqs = sqs_client
        self._queue_urls: dict[str, str] = {}

    def change(self, entries: Iterable[tuple[SQSRecord, int]]) -> tuple[dict[str, int], list[str]]:
        """Returns (messageId -> seconds for every change made, problems). Never raises: a change that
        fails costs only time (the record returns after the visibility timeout it already has)."""
        by_queue: dict[str, list[tuple[SQSRecord, int]]] = {}
        for record, seconds in entries:
            by_queue.setdefault(record.event_source_arn, []).append((record, seconds))
        changed: dict[str, int] = {}
        problems: list[str] = []
        for queue_arn, queued in by_queue.items():
            try:
                queue_url = self._queue_url(queue_arn)
                for start in range(0, len(queued), SQS_BATCH_LIMIT):
                    chunk = queued[start : start + SQS_BATCH_LIMIT]
                    response = self._sqs.change_message_visibility_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {
                                "Id": str(i),
                                "ReceiptHandle": record.receipt_handle,
                                "VisibilityTimeout": seconds,
                            }
                            for i, (record, seconds) in enumerate(chunk)
                        ],
                    )
                    for success in response.get("Successful", []):
                        record, seconds = chunk[int(success["Id"])]
                        changed[record.message_id] = seconds
                    problems.extend(
                        f"{chunk[int(f['Id'])][0].message_id}: {f.get('Code')} {f.get('Message', '')}".strip()
                        for f in response.get("Failed", [])
                    )
            except Exception as exc:
                problems.append(f"{queue_arn}: {type(exc).__name__}: {exc}")
        return changed, problems

    def _queue_url(self, queue_arn: str) -> str:
        # arn:<partition>:sqs:<region>:<account>:<name>; looked up once per environment.
        if queue_arn not in self._queue_urls:
            account, name = queue_arn.split(":")[4:6]
            self._queue_urls[queue_arn] = self._sqs.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account
            )["QueueUrl"]
        return self._queue_urls[queue_arn]
