"""SQS event source mappings are left to the local cloud's poller (moto pushes them to Docker on send)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["install_sqs_event_source_handoff"]

_LOCK = threading.Lock()
_ORIGINAL: list[Any] = []


def install_sqs_event_source_handoff() -> None:
    """Leave SQS event source mappings to a poller outside moto instead of moto's push-on-send.

    Works around: when an *enabled* SQS event source mapping exists, moto's ``Queue.add_message``
    receives a batch inside ``SendMessage`` and calls ``LambdaBackend.send_sqs_batch`` -> Docker. Without
    Docker ``SendMessage`` itself answers HTTP 500 (``'LambdaFunction' object has no attribute
    '_DockerModel__docker_client'``), and each attempt also counts as a receive of the message, so
    the redrive policy would count phantom deliveries. (The in-process Lambda patch, ``inprocess_lambda``,
    does not reach this path: it serves Step Functions tasks only.)

    The patch keeps ``CreateEventSourceMapping`` (API or CloudFormation) creating and listing the mapping
    exactly as before, but removes it from the queue's push list right after creation, so ``SendMessage``
    only stores the message. ``localcloud.lambda_runtime.SqsEventSourcePoller`` then polls the queue
    with the mapping's own settings, as the Lambda service does.

    Verified by ``tests/e2e/test_deploy.py``: after deploying the template (mapping ``Enabled``),
    ``SendMessage`` to the mapped queue succeeds and the message is received with
    ``ApproximateReceiveCount`` 1; ``ListEventSourceMappings`` still returns the mapping. Idempotent.
    """
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    with _LOCK:
        if _ORIGINAL:
            return
        original = LambdaBackend.create_event_source_mapping
        _ORIGINAL.append(original)

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            if queue.queue_arn == mapping.event_source_arn:
                queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        return mapping

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]
