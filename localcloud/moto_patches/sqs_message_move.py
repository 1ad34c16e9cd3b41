"""SQS ``StartMessageMoveTask`` / ``ListMessageMoveTasks`` (a DLQ redrive), which moto does not implement."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

__all__ = ["install_sqs_message_move_tasks"]

_LOCK = threading.Lock()
_INSTALLED: list[bool] = []
# Source queue ARN -> its tasks, newest first (what ListMessageMoveTasks answers).
_TASKS: dict[str, list[dict[str, Any]]] = {}


def install_sqs_message_move_tasks() -> None:
    """Let the operator's ``python -m ops dlq redrive`` run against the local cloud.

    Works around: moto 5.2.5 has no ``StartMessageMoveTask`` or ``ListMessageMoveTasks``: the server
    answers an unknown action, so a DLQ redrive (ops/dlq.py) cannot be shown locally.

    A task moves every message visible in the source queue to ``DestinationArn`` (required here: ops/dlq.py
    always names it), keeping body and message attributes and making new messages with new ids, as SQS
    does. It moves them
    synchronously inside the call and is COMPLETED when ``ListMessageMoveTasks`` first sees it (SQS moves
    asynchronously at ``MaxNumberOfMessagesPerSecond``: the rate is recorded, not honoured). Messages in
    flight in the source stay where they are, as on SQS.

    Verified by ``tests/unit/localcloud/test_message_move.py`` (bodies, attributes, new ids, COMPLETED with
    the counts) and ``tests/e2e/test_tour.py``: the redrive of the notifications DLQ the tour runs through
    ``python -m ops`` reports COMPLETED with the number of messages that were in the DLQ, and the
    redriven notification is then sent once.
    """
    from moto.sqs.models import sqs_backends
    from moto.sqs.responses import SQSResponse

    with _LOCK:
        if _INSTALLED:
            return
        _INSTALLED.append(True)

    def queue_name(arn: str) -> str:
        return arn.split(":")[-1]

    def move(backend: Any, source: str, destination: str) -> int:
        moved = 0
        while True:
            batch = backend.receive_message(source, 10, 0, 30, message_attribute_names=["All"])
            if not batch:
                return moved
            for message in batch:
                backend.send_message(
                    destination, message.body, message_attributes=dict(message.message_attributes)
                )
                backend.delete_message(source, message.receipt_handle)
                moved += 1

    def start_message_move_task(self: Any) -> Any:
        from moto.core.responses import ActionResult

        source_arn = self._get_param("SourceArn")
        destination_arn = self._get_param("DestinationArn")
        backend = sqs_backends[self.current_account][self.region]
        handle = str(uuid.uuid4())
        task: dict[str, Any] = {
            "TaskHandle": handle,
            "Status": "RUNNING",
            "SourceArn": source_arn,
            "DestinationArn": destination_arn,
            "StartedTimestamp": int(time.time() * 1000),
            "ApproximateNumberOfMessagesMoved": 0,
            "ApproximateNumberOfMessagesToMove": len(
                [m for m in backend.get_queue(queue_name(source_arn)).messages if m.visible]
            ),
        }
        rate = self._get_param("MaxNumberOfMessagesPerSecond")
        if rate:
            task["MaxNumberOfMessagesPerSecond"] = int(rate)
        with _LOCK:
            _TASKS.setdefault(source_arn, []).insert(0, task)
        moved = move(backend, queue_name(source_arn), queue_name(destination_arn))
        with _LOCK:
            task.update(Status="COMPLETED", ApproximateNumberOfMessagesMoved=moved)
        return ActionResult({"TaskHandle": handle})

    def list_message_move_tasks(self: Any) -> Any:
        from moto.core.responses import ActionResult

        source_arn = self._get_param("SourceArn")
        limit = int(self._get_param("MaxResults") or 1)
        with _LOCK:
            tasks = [dict(t) for t in _TASKS.get(source_arn, [])[:limit]]
        for task in tasks:
            if task["Status"] != "RUNNING":
                del task["TaskHandle"]  # SQS reports the handle of a running task only
        return ActionResult({"Results": tasks})

    SQSResponse.start_message_move_task = start_message_move_task  # type: ignore[attr-defined]
    SQSResponse.list_message_move_tasks = list_message_move_tasks  # type: ignore[attr-defined]
