"""Handlers for the runtime tests: each SQS record's body says what to do with it.

``ok`` succeeds; ``fail`` is reported in ``batchItemFailures``; ``raise`` raises (the whole batch
fails); ``bad-id`` reports an identifier that is not in the batch; ``sleep:<s>`` sleeps first.
Every invocation is recorded in ``CALLS`` with the bodies it got and the concurrency it saw.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

CALLS: list[dict[str, Any]] = []
_lock = threading.Lock()
_running = 0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _running
    with _lock:
        _running += 1
        concurrency = _running
    remaining_ms = context.get_remaining_time_in_millis()
    try:
        failures = []
        bodies = [record["body"] for record in event["Records"]]
        for record in event["Records"]:
            body = record["body"]
            if body.startswith("sleep:"):
                time.sleep(float(body.split(":", 1)[1]))
            elif body == "fail":
                failures.append({"itemIdentifier": record["messageId"]})
            elif body == "bad-id":
                failures.append({"itemIdentifier": "not-in-this-batch"})
            elif body == "raise":
                raise RuntimeError("the handler failed")
        return {"batchItemFailures": failures}
    finally:
        with _lock:
            CALLS.append(
                {
                    "bodies": bodies,
                    "message_ids": [r["messageId"] for r in event["Records"]],
                    "receive_counts": [
                        int(r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]
                    ],
                    "concurrency": concurrency,
                    "remaining_ms": remaining_ms,
                    "color": os.environ.get("COLOR"),
                    "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
                }
            )
            _running -= 1


def color(event: Any, context: Any) -> dict[str, Any]:
    """Returns what the environment says, after a pause that lets other invocations interleave."""
    first = os.environ.get("COLOR")
    time.sleep(0.01)
    return {"color": first, "again": os.environ.get("COLOR"), "region": os.environ.get("AWS_REGION")}
