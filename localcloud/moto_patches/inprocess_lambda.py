"""In-process Lambda functions for Step Functions tasks (moto runs Lambda functions only in Docker).

``register_inprocess_function`` routes Step Functions Lambda tasks (``arn:aws:states:::lambda:invoke``
and a plain function ARN as ``Resource``) to a Python handler in this process; see
``install_inprocess_lambda`` for the moto limitation and how it was verified. ``LambdaServiceFault``
raised by a registered handler makes the Lambda *service* fail the invoke
(``Lambda.TooManyRequestsException`` ...), for fault-injection tests. The local cloud reuses the
registry for its own Lambda runtime (``localcloud.lambda_runtime``) and EventBridge targets
(``localcloud.moto_patches.eventbridge_targets``).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FakeLambdaContext",
    "InProcessFunction",
    "LambdaServiceFault",
    "clear_inprocess_functions",
    "function_name_from_identifier",
    "get_inprocess_function",
    "install_inprocess_lambda",
    "invoke_inprocess",
    "register_inprocess_function",
    "unregister_inprocess_function",
]

Handler = Callable[[Any, Any], Any]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass
class FakeLambdaContext:
    """The subset of the Lambda Python runtime's context object that handlers and Powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    _deadline: float = field(repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class InProcessFunction:
    """A registered handler plus the function configuration its fake context reports."""

    name: str
    handler: Handler
    timeout_seconds: int = 30
    memory_mb: int = 128
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    invocations: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    def record(self, event: Any) -> None:
        with self._lock:
            self.invocations.append(event)

    def new_context(self) -> FakeLambdaContext:
        request_id = str(uuid.uuid4())
        return FakeLambdaContext(
            function_name=self.name,
            function_version="$LATEST",
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=f"inprocess/{request_id}",
            _deadline=time.monotonic() + self.timeout_seconds,
        )


class LambdaServiceFault(Exception):
    """Raise from a registered handler to make the *Lambda service* fail the invoke (fault injection).

    Step Functions then sees ``Lambda.<code>`` (e.g. ``Lambda.TooManyRequestsException``), the error a
    throttled or failing Lambda service produces, which a handler exception cannot produce: its name
    would be the bare class name.
    """

    def __init__(self, code: str, message: str = "", status_code: int = 500) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or f"Simulated Lambda service error {code}"
        self.status_code = status_code

    def to_client_error(self) -> Exception:
        from botocore.exceptions import ClientError

        return ClientError(
            {
                "Error": {"Code": self.code, "Message": self.message},
                "ResponseMetadata": {"HTTPStatusCode": self.status_code, "RequestId": str(uuid.uuid4())},
            },
            "Invoke",
        )


_REGISTRY: dict[str, InProcessFunction] = {}
_REGISTRY_LOCK = threading.Lock()
_ORIGINAL_INVOKE: Callable[..., Any] | None = None


def function_name_from_identifier(identifier: str) -> str:
    """The bare function name from any form Lambda's ``FunctionName`` accepts.

    ``name``, ``name:qualifier``, ``123456789012:function:name[:qualifier]`` and
    ``arn:aws:lambda:region:account:function:name[:qualifier]`` all give ``name``.
    """
    parts = identifier.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


def register_inprocess_function(
    name_or_arn: str,
    handler: Handler,
    *,
    timeout_seconds: int = 30,
    memory_mb: int = 128,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> InProcessFunction:
    """Route Step Functions invocations of ``name_or_arn`` to ``handler(event, context)``.

    Installs the patch on first use. Registering the same name again replaces the handler.
    Returns the registration, whose ``invocations`` list records every event the handler received.
    """
    install_inprocess_lambda()
    name = function_name_from_identifier(name_or_arn)
    function = InProcessFunction(
        name=name,
        handler=handler,
        timeout_seconds=timeout_seconds,
        memory_mb=memory_mb,
        region=region,
        account_id=account_id,
    )
    with _REGISTRY_LOCK:
        _REGISTRY[name] = function
    return function


def unregister_inprocess_function(name_or_arn: str) -> None:
    with _REGISTRY_LOCK:
        _REGISTRY.pop(function_name_from_identifier(name_or_arn), None)


def get_inprocess_function(name_or_arn: str) -> InProcessFunction | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.get(function_name_from_identifier(name_or_arn))


def clear_inprocess_functions() -> None:
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


def _error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The body the Python Lambda runtime returns for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        # Drop the frame of this module: the runtime's own frames are not in a real Lambda trace either.
        "stackTrace": traceback.format_tb(exc.__traceback__.tb_next if exc.__traceback__ else None),
    }


def _decode_payload(raw: Any) -> Any:
    if raw is None:
        return {}
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        return json.loads(raw) if raw else {}
    if hasattr(raw, "read"):
        return _decode_payload(raw.read())
    return raw


def invoke_inprocess(function: InProcessFunction, parameters: dict) -> dict[str, Any]:
    """Run the handler the way the Lambda service would answer ``Invoke`` (RequestResponse)."""
    event = _decode_payload(parameters.get("Payload"))
    function.record(event)
    context = function.new_context()
    response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    try:
        result = function.handler(event, context)
        # Round-trip through JSON like the runtime does, so a handler returning something Lambda
        # could not serialize fails here too instead of passing silently.
        response["Payload"] = json.loads(json.dumps(result))
    except LambdaServiceFault as fault:
        raise fault.to_client_error() from fault
    except Exception as exc:
        response["FunctionError"] = "Unhandled"
        response["Payload"] = _error_payload(exc, context.aws_request_id)
    return response


def install_inprocess_lambda() -> None:
    """Patch moto's Step Functions interpreter so Lambda tasks can run in-process handlers.

    Works around: moto runs Lambda functions only in Docker (``LambdaFunction._invoke_lambda``
    imports ``docker`` and starts a container), and this workplace has no Docker, so a Step Functions
    Lambda task on moto fails before any handler code runs.

    Where moto invokes Lambda for Step Functions (moto 5.2.5): both task forms end in
    ``moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils``:

      * ``"Resource": "arn:aws:lambda:...:function:NAME"`` -> ``StateTaskLambda._eval_execution``
      * ``"Resource": "arn:aws:states:::lambda:invoke"`` -> ``StateTaskServiceLambda._eval_service_task``

    and both call ``execute_lambda_function_integration(env, parameters, region, ...)``, which calls the
    module-level ``_invoke_lambda_function(parameters, region, state_credentials)``. That function builds
    a boto3 Lambda client (``boto_client_for``: the in-process ``mock_aws`` stubber when it is active,
    otherwise ``http://localhost:$MOTO_PORT``) and calls ``invoke(**parameters)``.

    The patch replaces only ``lambda_eval_utils._invoke_lambda_function``: a registered function name
    (from a name, partial ARN or full ARN, qualifier ignored) is answered in-process with the response
    shape Lambda returns (``StatusCode``, ``ExecutedVersion``, ``Payload`` and, for an exception,
    ``FunctionError: "Unhandled"`` with ``errorType`` = the exception class name). moto then does what
    AWS does with that response: ``errorType`` becomes the Step Functions error name, so ``Retry`` /
    ``Catch`` on a custom error name work, and the error payload becomes the ``Cause``. Unregistered
    names fall through to moto's original code path unchanged.

    Because the patch is in the interpreter, not in the transport, it behaves the same under
    ``mock_aws`` and under a ``ThreadedMotoServer`` running in this process (the server executes state
    machines in threads of this process). Other integrations (DynamoDB, SQS, aws-sdk) are untouched;
    under the threaded server they reach it through ``MOTO_PORT``, which must therefore be set to the
    server's port (moto's own requirement, not this patch's).

    What it does not emulate: the function's timeout is not enforced on the handler (the Task's
    ``TimeoutSeconds`` is, by moto, which raises ``States.Timeout``); ``InvocationType`` other than
    ``RequestResponse`` is not used by our state machines and is passed to moto unchanged.

    Verified by ``tests/statemachines/test_moto_patches.py``: both Resource forms reach the handler with the
    Payload as event; a raised ``class DependencyUnavailableError(Exception)`` shows in the
    history as ``TaskFailed``/``LambdaFunctionFailed`` with error ``DependencyUnavailableError`` and a
    Cause holding ``errorMessage``; Retry on that name re-invokes the handler; an unregistered function
    still goes to moto (and fails without Docker); the same state machine runs under a
    ``ThreadedMotoServer``.

    Idempotent.
    """
    global _ORIGINAL_INVOKE
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    with _REGISTRY_LOCK:
        if _ORIGINAL_INVOKE is not None:
            return
        original = lambda_eval_utils._invoke_lambda_function
        _ORIGINAL_INVOKE = original

    def _invoke_lambda_function(parameters: dict, region: str, state_credentials: Any) -> Any:
        function = get_inprocess_function(str(parameters.get("FunctionName", "")))
        invocation_type = parameters.get("InvocationType", "RequestResponse")
        if function is None or invocation_type != "RequestResponse":
            return original(parameters=parameters, region=region, state_credentials=state_credentials)
        return invoke_inprocess(function, parameters)

    lambda_eval_utils._invoke_lambda_function = _invoke_lambda_function
