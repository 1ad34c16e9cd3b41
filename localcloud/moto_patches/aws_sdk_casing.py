"""aws-sdk Step Functions tasks use Step Functions' member names (``Uuid``, not botocore's ``UUID``)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["install_aws_sdk_member_casing", "uninstall_aws_sdk_member_casing"]

_LOCK = threading.Lock()
_ORIGINAL_AWS_SDK_NORMALISERS: tuple[Any, Any] | None = None


def _operation_model(task: Any) -> Any:
    """The botocore operation model behind an aws-sdk task (``None`` if botocore does not know it)."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    service = task._get_boto_service_name()
    action = task.resource.api_action.lower()
    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return None
    for operation_name in model.operation_names:
        if operation_name.lower() == action:
            return model.operation_model(operation_name)
    return None


def install_aws_sdk_member_casing() -> None:
    """Make aws-sdk integration tasks use Step Functions' member names, as AWS does.

    Works around: Step Functions' AWS SDK integrations name request and response members the way the
    AWS Java SDK v2 does, in PascalCase with acronyms folded (``Uuid`` for Lambda's ``UUID``, ``Etag``
    for S3's ``ETag``), while moto 5.2.5 hands the task's ``Parameters`` to boto3 verbatim and returns
    boto3's response verbatim: ``StateTaskService._normalise_parameters`` / ``_normalise_response`` are
    no-ops in moto's port of the interpreter, although the binding helpers they are meant to call
    (``_to_boto_request`` / ``_from_boto_response``, matching names case- and underscore-insensitively
    against the botocore shape) are present. So ``{"Uuid.$": ...}`` for
    ``aws-sdk:lambda:updateEventSourceMapping`` fails on moto with ``States.Runtime`` ``'Uuid'``, and a
    definition written with botocore's ``UUID`` would pass on moto but not be what AWS expects.

    The patch wires those two no-ops on ``StateTaskServiceAwsSdk`` only (optimized integrations such as
    ``dynamodb:*``, ``sqs:*``, ``lambda:invoke`` keep their own, already correct, behaviour) to the
    helpers, with the operation's input and output shapes from botocore. Response timestamps stay
    ``datetime`` objects as moto returns them: select only the fields you need (``ResultSelector``) so
    none reaches an execution's output, which moto could not serialize.

    Verified by ``tests/statemachines/test_moto_patches.py``: without the patch a task with
    ``Uuid`` fails with ``States.Runtime``; with it the event source mapping is updated and the result
    exposes ``Uuid`` and ``State``; the controller tests disable and re-enable a real moto mapping.

    Idempotent; ``uninstall_aws_sdk_member_casing`` restores the originals.
    """
    global _ORIGINAL_AWS_SDK_NORMALISERS
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    with _LOCK:
        if _ORIGINAL_AWS_SDK_NORMALISERS is not None:
            return
        _ORIGINAL_AWS_SDK_NORMALISERS = (
            StateTaskServiceAwsSdk.__dict__.get("_normalise_parameters"),
            StateTaskServiceAwsSdk.__dict__.get("_normalise_response"),
        )

    def _normalise_parameters(self: Any, parameters: dict, *args: Any, **kwargs: Any) -> None:
        operation = _operation_model(self)
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def _normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        operation = _operation_model(self)
        if operation is not None and operation.output_shape is not None:
            self._from_boto_response(response, operation.output_shape)

    StateTaskServiceAwsSdk._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceAwsSdk._normalise_response = _normalise_response  # type: ignore[method-assign]


def uninstall_aws_sdk_member_casing() -> None:
    global _ORIGINAL_AWS_SDK_NORMALISERS
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    with _LOCK:
        if _ORIGINAL_AWS_SDK_NORMALISERS is None:
            return
        for name, original in zip(
            ("_normalise_parameters", "_normalise_response"), _ORIGINAL_AWS_SDK_NORMALISERS, strict=True
        ):
            if original is None:
                delattr(StateTaskServiceAwsSdk, name)  # fall back to the inherited no-op
            else:
                setattr(StateTaskServiceAwsSdk, name, original)
        _ORIGINAL_AWS_SDK_NORMALISERS = None
