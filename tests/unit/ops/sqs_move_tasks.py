"""SQS message move tasks for moto 5.2.5, which has none: StartMessageMoveTask, ListMessageMoveTasks.

Installed onto moto's SQS response class for the duration of a test (the ops CLI calls the real API
through boto3; only the server side is emulated here). Semantics kept from the SQS API reference:

* the source must be the dead-letter queue of at least one SQS queue (else InvalidParameterValue);
* one active task per source queue;
* without DestinationArn each message goes back to the queue it was dead-lettered from; a message sent
  to the DLQ directly has none, and then (as here) the task fails;
* messages keep body, message attributes and their original SentTimestamp; their receive count starts
  again, and they get a new MessageId (the SQS Developer Guide: redriven messages are new messages with a
  new message ID), so a consumer that keys on the messageId sees a redriven message as a new one.

Simplification: the move happens at once when the task starts (the rate is recorded, not applied), and the
task is COMPLETED by the first ListMessageMoveTasks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.responses import ActionResult
from moto.sqs.exceptions import SQSException
from moto.sqs.responses import SQSResponse

TASKS: dict[str, list[dict[str, Any]]] = {}  # source arn -> tasks, newest first


def _queue_by_arn(response: SQSResponse, arn: str) -> Any:
    name = arn.split(":")[-1]
    return response.sqs_backend.get_queue(name)


def _start(self: SQSResponse) -> ActionResult:
    source_arn = self._get_param("SourceArn")
    destination_arn = self._get_param("DestinationArn")
    rate = self._get_param("MaxNumberOfMessagesPerSecond")
    source = _queue_by_arn(self, source_arn)
    if not self.sqs_backend.list_dead_letter_source_queues(source.name):
        raise SQSException("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
    if any(t["Status"] == "RUNNING" for t in TASKS.get(source_arn, [])):
        raise SQSException("InvalidParameterValue", "There is already a task running.")
    handle = uuid.uuid4().hex
    moved, failure = 0, None
    destination = _queue_by_arn(self, destination_arn) if destination_arn else None
    to_move = list(source.messages)
    if destination is None:
        failure = "no original source queue recorded for a message sent directly to the DLQ"
    else:
        with source._messages_lock:
            for message in to_move:
                source._messages.remove(message)
        for message in to_move:
            # Arrives as a new delivery: otherwise the destination's redrive policy (maxReceiveCount)
            # would send it straight back to the DLQ on its first receive.
            message.approximate_receive_count = 0
            message.approximate_first_receive_timestamp = None
            message.id = str(uuid.uuid4())
            destination.add_message(message)
            moved += 1
    TASKS.setdefault(source_arn, []).insert(
        0,
        {
            "TaskHandle": handle,
            "Status": "RUNNING",
            "Final": "FAILED" if failure else "COMPLETED",
            "SourceArn": source_arn,
            "DestinationArn": destination_arn,
            "MaxNumberOfMessagesPerSecond": rate,
            "ApproximateNumberOfMessagesMoved": moved,
            "ApproximateNumberOfMessagesToMove": len(to_move),
            "FailureReason": failure,
            "StartedTimestamp": int(time.time() * 1000),
        },
    )
    return ActionResult({"TaskHandle": handle})


def _list(self: SQSResponse) -> ActionResult:
    source_arn = self._get_param("SourceArn")
    results = []
    for task in TASKS.get(source_arn, []):
        task["Status"] = task["Final"]
        public = {k: v for k, v in task.items() if k != "Final" and v is not None}
        if public["Status"] != "RUNNING":
            public.pop("TaskHandle", None)  # SQS returns the handle of running tasks only
        results.append(public)
    return ActionResult({"Results": results})


@contextmanager
def message_move_tasks() -> Iterator[dict[str, list[dict[str, Any]]]]:
    TASKS.clear()
    SQSResponse.start_message_move_task = _start  # type: ignore[attr-defined]
    SQSResponse.list_message_move_tasks = _list  # type: ignore[attr-defined]
    try:
        yield TASKS
    finally:
        del SQSResponse.start_message_move_task  # type: ignore[attr-defined]
        del SQSResponse.list_message_move_tasks  # type: ignore[attr-defined]
        TASKS.clear()
