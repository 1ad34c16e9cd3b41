"""Workarounds for moto 5.2.5 limitations that the local cloud and the Step Functions tests rely on.

Each workaround is one small, reversible patch with a docstring saying which moto limitation it works
around and how it was verified. Nothing here changes what the AWS code under test does; it only lets
moto's own interpreter run it without Docker.

Current contents
----------------
``register_inprocess_function`` / ``install_inprocess_lambda``
    Step Functions Lambda tasks (``arn:aws:states:::lambda:invoke`` and a plain function ARN as
    ``Resource``) are routed to in-process Python handlers instead of moto's Docker-backed Lambda.
``install_aws_sdk_member_casing``
    ``arn:aws:states:::aws-sdk:*`` tasks accept and return Step Functions' member names (``Uuid``, not
    botocore's ``UUID``) as on AWS.
``LambdaServiceFault``
    Raised by a registered handler, it makes the Lambda *service* fail the invoke
    (``Lambda.TooManyRequestsException`` ...), for fault-injection tests.
``install_dynamodb_atomic_writes``
    DynamoDB item operations are serialised, so a conditional write is atomic as on AWS (moto checks
    the condition and writes without a lock: racing threads can all win).
``install_all``
    The patches above (what the local cloud and the Step Functions tests call once at start-up;
    ``register_inprocess_function`` only installs the first).

Local cloud section (deploying the synthesized template on moto's CloudFormation and running it;
verified by tests/e2e/test_deploy.py):

``install_cloudformation_resource_support``
    CloudFormation models moto lacks (``DynamoDB::GlobalTable``, ``SecretsManager::Secret``,
    ``Lambda::Alias``, ``Lambda::Url``, ``CloudWatch::Alarm``/``CompositeAlarm``) and fixes for
    ``SSM::Parameter`` without a name, ``Lambda::Version`` ``GetAtt Version``, ``Events::Archive`` names
    and patterns, ``Ref`` to buses and archives, state machine definitions with substitutions.
``install_sqs_event_source_handoff``
    ``SendMessage`` to a queue with an enabled event source mapping no longer tries Docker; the local
    cloud's poller delivers instead.
``register_stack_state_machines_for_execution``
    State machines created by CloudFormation become runnable in moto's executing backend.
``install_eventbridge_service_targets``
    EventBridge rules deliver to Step Functions and in-process Lambda targets.
``put_aws_public_parameter``
    AWS-published ``/aws/service/...`` SSM parameters a template resolves at deploy time.
``install_local_cloud_workarounds``
    ``install_all`` plus the section above.

Usage (in-process ``mock_aws`` or a ``ThreadedMotoServer`` in the same process, both work)::

    from localcloud.moto_workarounds import register_inprocess_function

    def charge(event, context):
        return {"charged": event["orderId"]}

    register_inprocess_function("charge", charge, timeout_seconds=30)
    # ... create and start a state machine whose task calls arn:aws:lambda:...:function:charge

Known moto 5.2.5 limitations we only *avoid* (no patch, listed so nobody trips on them):
  * QueryLanguage JSONata is parsed but cannot be evaluated: the JVM bridge is stubbed
    (``moto.stepfunctions.parser.asl.jsonata.jsonata._eval_jsonata`` stays ``None``), so any JSONata
    state fails with ``States.Runtime`` ``TypeError('NoneType' object is not callable)``.
  * ``$$.Execution.StartTime`` is a ``datetime`` object, not an ISO string: an execution whose output
    contains it breaks ``DescribeExecution`` (``TypeError: Object of type datetime is not JSON
    serializable``). ``$$.State.EnteredTime`` is a string, but ``isoformat()`` style
    (``2026-01-01T10:00:00.123456+00:00``), not AWS's ``2026-01-01T10:00:00.123Z``.
  * Retry ``IntervalSeconds``/``MaxDelaySeconds`` must be integers >= 1 (as on AWS) and moto really
    sleeps them; tests shrink them through ``tests/statemachines/asl.py`` instead of patching sleep.
  * aws-sdk task results keep botocore's ``datetime`` values (AWS returns strings); keep them out of
    execution output with ``ResultSelector``.
  * ``UpdateEventSourceMapping`` with an unknown UUID answers ``{}`` instead of
    ``ResourceNotFoundException``, so that failure path cannot be exercised on moto.
  * moto delivers SQS messages to an *enabled* event source mapping synchronously inside
    ``SendMessage`` through ``LambdaBackend.invoke`` (Docker), which the in-process patch does not
    cover: it only serves Step Functions tasks. Send to a mapped queue only while the mapping is
    disabled, or poll the queue yourself. (``install_sqs_event_source_handoff`` below removes this
    limitation; the local cloud installs it.)
"""

from __future__ import annotations

import functools
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FakeLambdaContext",
    "InProcessFunction",
    "LambdaServiceFault",
    "clear_inprocess_functions",
    "function_name_from_identifier",
    "get_inprocess_function",
    "inprocess_functions",
    "install_all",
    "install_aws_sdk_member_casing",
    "install_dynamodb_atomic_writes",
    "install_inprocess_lambda",
    "register_inprocess_function",
    "uninstall_aws_sdk_member_casing",
    "uninstall_dynamodb_atomic_writes",
    "uninstall_inprocess_lambda",
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

    @property
    def invocation_count(self) -> int:
        with self._lock:
            return len(self.invocations)

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


@contextmanager
def inprocess_functions(
    handlers: dict[str, Handler], **options: Any
) -> Iterator[dict[str, InProcessFunction]]:
    """Register several handlers for the duration of a ``with`` block."""
    registered = {name: register_inprocess_function(name, fn, **options) for name, fn in handlers.items()}
    try:
        yield registered
    finally:
        for name in registered:
            unregister_inprocess_function(name)


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


def _invoke_inprocess(function: InProcessFunction, parameters: dict) -> dict[str, Any]:
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

    Verified by ``tests/statemachines/test_moto_workarounds.py``: both Resource forms reach the handler
    with the Payload as event; a raised ``class DependencyUnavailableError(Exception)`` shows in the
    history as ``TaskFailed``/``LambdaFunctionFailed`` with error ``DependencyUnavailableError`` and a
    Cause holding ``errorMessage``; Retry on that name re-invokes the handler; an unregistered function
    still goes to moto (and fails without Docker); the same state machine runs under a
    ``ThreadedMotoServer``.

    Idempotent; ``uninstall_inprocess_lambda`` restores the original.
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
        return _invoke_inprocess(function, parameters)

    lambda_eval_utils._invoke_lambda_function = _invoke_lambda_function


def uninstall_inprocess_lambda() -> None:
    """Restore moto's original Lambda invocation path (registrations are kept)."""
    global _ORIGINAL_INVOKE
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    with _REGISTRY_LOCK:
        if _ORIGINAL_INVOKE is None:
            return
        lambda_eval_utils._invoke_lambda_function = _ORIGINAL_INVOKE
        _ORIGINAL_INVOKE = None


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

    Verified by ``tests/statemachines/test_moto_workarounds.py``: without the patch a task with
    ``Uuid`` fails with ``States.Runtime``; with it the event source mapping is updated and the result
    exposes ``Uuid`` and ``State``; the controller tests disable and re-enable a real moto mapping.

    Idempotent; ``uninstall_aws_sdk_member_casing`` restores the originals.
    """
    global _ORIGINAL_AWS_SDK_NORMALISERS
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    with _REGISTRY_LOCK:
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

    with _REGISTRY_LOCK:
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


_DYNAMODB_ITEM_LOCK = threading.RLock()
_DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)
_ORIGINAL_DYNAMODB_OPERATIONS: dict[str, Callable[..., Any]] = {}


def install_dynamodb_atomic_writes() -> None:
    """Make each DynamoDB item operation atomic, as DynamoDB's conditional writes are.

    Works around: moto 5.2.5's ``DynamoDBBackend.update_item`` / ``put_item`` / ``delete_item`` /
    ``transact_write_items`` evaluate the ``ConditionExpression`` and then write, with no lock between.
    Threads of one process (Step Functions executions, the local cloud's consumer slots, the threaded
    server's request handlers) interleave there, so several callers racing a condition such as
    ``attribute_not_exists(owner)`` can all succeed: the breaker's half-open election let two probers
    through, and idempotency records could be claimed twice. On AWS exactly one wins.

    The patch runs those operations, and the reads (so a read never sees half an update), under one
    process-wide re-entrant lock. Verified by ``tests/statemachines/test_moto_workarounds.py``: with a
    tiny thread switch interval, threads racing one conditional write produce exactly one winner per
    item (without the patch, almost every round had several).

    Idempotent; ``uninstall_dynamodb_atomic_writes`` restores the originals.
    """
    from moto.dynamodb.models import DynamoDBBackend

    with _DYNAMODB_ITEM_LOCK:
        if _ORIGINAL_DYNAMODB_OPERATIONS:
            return
        for name in _DYNAMODB_ITEM_OPERATIONS:
            original = getattr(DynamoDBBackend, name)
            _ORIGINAL_DYNAMODB_OPERATIONS[name] = original
            setattr(DynamoDBBackend, name, _serialised(original))


def _serialised(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def _locked(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_ITEM_LOCK:
            return operation(*args, **kwargs)

    return _locked


def uninstall_dynamodb_atomic_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    with _DYNAMODB_ITEM_LOCK:
        for name, original in _ORIGINAL_DYNAMODB_OPERATIONS.items():
            setattr(DynamoDBBackend, name, original)
        _ORIGINAL_DYNAMODB_OPERATIONS.clear()


def install_all() -> None:
    """Every workaround in this section (idempotent)."""
    install_inprocess_lambda()
    install_aws_sdk_member_casing()
    install_dynamodb_atomic_writes()


# ==================================================================================================
# Local cloud: deploying the synthesized CDK template on moto's CloudFormation, and running it
# (added for localcloud.deploy / localcloud.lambda_runtime; verified by tests/e2e/test_deploy.py)
# ==================================================================================================

_LOCAL_CLOUD_LOCK = threading.Lock()
_LOCAL_CLOUD_ORIGINALS: dict[str, Any] = {}


def _cfn_models() -> tuple[type, ...]:
    """CloudFormation models for resource types moto 5.2.5 has no model for (built lazily: importing
    ``moto.core`` at module import time would slow every user of this module down)."""
    from moto.core.common_models import CloudFormationModel

    class CfnGlobalTable(CloudFormationModel):
        """``AWS::DynamoDB::GlobalTable`` (what CDK's ``TableV2`` synthesizes), as a single-region table.

        Returns moto's own ``Table``, so ``Ref`` gives the table name and ``Fn::GetAtt Arn`` / ``StreamArn``
        work as for ``AWS::DynamoDB::Table``. ``TimeToLiveSpecification`` is applied; replicas other than
        the stack's region, per-replica settings and ``WriteProvisionedThroughputSettings`` are ignored.
        """

        @staticmethod
        def cloudformation_name_type() -> str:
            return "TableName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::DynamoDB::GlobalTable"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr in ("Arn", "StreamArn", "TableId")

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.dynamodb.models import dynamodb_backends
            from moto.dynamodb.models.table import Table

            properties = cloudformation_json["Properties"]
            as_table = {
                "Properties": {
                    "KeySchema": properties["KeySchema"],
                    "AttributeDefinitions": properties["AttributeDefinitions"],
                    "GlobalSecondaryIndexes": properties.get("GlobalSecondaryIndexes", []),
                    "LocalSecondaryIndexes": properties.get("LocalSecondaryIndexes", []),
                    "StreamSpecification": properties.get("StreamSpecification"),
                    "BillingMode": properties.get("BillingMode", "PROVISIONED"),
                }
            }
            table = Table.create_from_cloudformation_json(resource_name, as_table, account_id, region_name)
            ttl = properties.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb_backends[account_id][region_name].update_time_to_live(resource_name, ttl)
            return table

    class CfnSecret(CloudFormationModel):
        """``AWS::SecretsManager::Secret`` with ``SecretString`` or ``GenerateSecretString``.

        ``Ref`` and ``Fn::GetAtt Id`` give the secret ARN, as on AWS. The generated value uses moto's
        ``GetRandomPassword`` with the template's options (JSON template + key included).
        """

        def __init__(self, arn: str, name: str) -> None:
            self.arn = arn
            self.name = name

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SecretsManager::Secret"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Id"

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "Id":
                return self.arn
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.secretsmanager.models import secretsmanager_backends

            backend = secretsmanager_backends[account_id][region_name]
            properties = cloudformation_json["Properties"]
            value = properties.get("SecretString")
            if value is None:
                options = properties.get("GenerateSecretString") or {}
                generated = json.loads(
                    backend.get_random_password(
                        password_length=int(options.get("PasswordLength", 32)),
                        exclude_characters=options.get("ExcludeCharacters", ""),
                        exclude_numbers=_truthy(options.get("ExcludeNumbers")),
                        exclude_punctuation=_truthy(options.get("ExcludePunctuation")),
                        exclude_uppercase=_truthy(options.get("ExcludeUppercase")),
                        exclude_lowercase=_truthy(options.get("ExcludeLowercase")),
                        include_space=_truthy(options.get("IncludeSpace")),
                        require_each_included_type=_truthy(options.get("RequireEachIncludedType", True)),
                    )
                )["RandomPassword"]
                if options.get("SecretStringTemplate") and options.get("GenerateStringKey"):
                    document = json.loads(options["SecretStringTemplate"])
                    document[options["GenerateStringKey"]] = generated
                    value = json.dumps(document)
                else:
                    value = generated
            created = backend.create_secret(
                name=resource_name,
                secret_string=value,
                secret_binary=None,
                description=properties.get("Description"),
                tags=properties.get("Tags"),
                kms_key_id=properties.get("KmsKeyId"),
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
            arn = (json.loads(created) if isinstance(created, str) else created)["ARN"]
            return cls(arn, resource_name)

    class CfnLambdaAlias(CloudFormationModel):
        """``AWS::Lambda::Alias``: created through moto's ``CreateAlias``; ``Ref`` / ``AliasArn`` = alias ARN."""

        def __init__(self, arn: str) -> None:
            self.arn = arn

        @property
        def physical_resource_id(self) -> str:
            return self.arn

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::Alias"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "AliasArn"

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "AliasArn":
                return self.arn
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.awslambda.utils import get_backend

            properties = cloudformation_json["Properties"]
            alias = get_backend(account_id, region_name).create_alias(
                name=properties["Name"],
                function_name=properties["FunctionName"],
                function_version=str(properties["FunctionVersion"]),
                description=properties.get("Description", ""),
                routing_config=properties.get("RoutingConfig"),
            )
            return cls(alias.arn)

    class CfnLambdaUrl(CloudFormationModel):
        """``AWS::Lambda::Url``: moto's ``CreateFunctionUrlConfig``; ``FunctionUrl`` ends with "/" like AWS's.

        The URL is moto's placeholder (``https://<id>.lambda-url.<region>.on.aws``): nothing answers it.
        """

        def __init__(self, url: str, function_arn: str) -> None:
            self.url = url
            self.function_arn = function_arn

        @property
        def physical_resource_id(self) -> str:
            return self.function_arn

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::Lambda::Url"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr in ("FunctionArn", "FunctionUrl")

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "FunctionUrl":
                return self.url
            if attribute_name == "FunctionArn":
                return self.function_arn
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.awslambda.utils import get_backend

            properties = cloudformation_json["Properties"]
            target = properties["TargetFunctionArn"]  # an alias ARN when the template sets a qualifier
            unqualified = target.rsplit(":", 1)[0] if target.count(":") == 7 else target
            function = get_backend(account_id, region_name).get_function(unqualified)
            config = function.create_url_config(
                {
                    "AuthType": properties.get("AuthType"),
                    "Cors": properties.get("Cors"),
                    "InvokeMode": properties.get("InvokeMode"),
                }
            )
            return cls(config.url.rstrip("/") + "/", target)

    class CfnMetricAlarm(CloudFormationModel):
        """``AWS::CloudWatch::Alarm`` created through moto's ``PutMetricAlarm`` (single metric or ``Metrics``
        math); ``Ref`` = alarm name, ``Fn::GetAtt Arn`` = alarm ARN. moto never evaluates alarms."""

        def __init__(self, name: str, arn: str) -> None:
            self.name = name
            self.arn = arn

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> Any:
            if attribute_name == "Arn":
                return self.arn
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.cloudwatch.models import (
                Dimension,
                Metric,
                MetricDataQuery,
                MetricStat,
                cloudwatch_backends,
            )

            p = cloudformation_json["Properties"]
            queries = None
            if p.get("Metrics"):
                queries = []
                for query in p["Metrics"]:
                    stat = query.get("MetricStat")
                    metric_stat = None
                    if stat:
                        metric = stat["Metric"]
                        metric_stat = MetricStat(
                            metric=Metric(
                                metric_name=metric["MetricName"],
                                namespace=metric.get("Namespace"),
                                dimensions=[
                                    Dimension(name=d["Name"], value=d["Value"])
                                    for d in metric.get("Dimensions", [])
                                ],
                            ),
                            period=str(stat.get("Period")),
                            stat=stat.get("Stat"),
                            unit=stat.get("Unit"),
                        )
                    queries.append(
                        MetricDataQuery(
                            query_id=query["Id"],
                            label=query.get("Label"),
                            period=query.get("Period"),
                            return_data=query.get("ReturnData"),
                            expression=query.get("Expression"),
                            metric_stat=metric_stat,
                        )
                    )
            alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=p.get("AlarmName") or resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p.get("ComparisonOperator"),
                evaluation_periods=p.get("EvaluationPeriods"),
                period=p.get("Period"),
                threshold=p.get("Threshold"),
                statistic=p.get("Statistic"),
                description=p.get("AlarmDescription"),
                dimensions=p.get("Dimensions", []),
                alarm_actions=p.get("AlarmActions", []),
                metric_data_queries=queries,
                datapoints_to_alarm=p.get("DatapointsToAlarm"),
                extended_statistic=p.get("ExtendedStatistic"),
                ok_actions=p.get("OKActions", []),
                insufficient_data_actions=p.get("InsufficientDataActions", []),
                unit=p.get("Unit"),
                actions_enabled=_truthy(p.get("ActionsEnabled", True)),
                treat_missing_data=p.get("TreatMissingData"),
                evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
                threshold_metric_id=p.get("ThresholdMetricId"),
                tags=p.get("Tags"),
            )
            return cls(alarm.name, alarm.alarm_arn)

    # CloudFormationModel listed again: moto finds models through CloudFormationModel.__subclasses__().
    class CfnCompositeAlarm(CfnMetricAlarm, CloudFormationModel):
        """``AWS::CloudWatch::CompositeAlarm`` (moto stores it as an alarm with a ``rule``)."""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::CompositeAlarm"

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: dict,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            from moto.cloudwatch.models import cloudwatch_backends

            p = cloudformation_json["Properties"]
            alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=p.get("AlarmName") or resource_name,
                namespace="",
                metric_name="",
                comparison_operator="",
                evaluation_periods=0,
                period=0,
                threshold=0.0,
                statistic="",
                description=p.get("AlarmDescription"),
                dimensions=[],
                alarm_actions=p.get("AlarmActions", []),
                ok_actions=p.get("OKActions", []),
                insufficient_data_actions=p.get("InsufficientDataActions", []),
                actions_enabled=_truthy(p.get("ActionsEnabled", True)),
                rule=p.get("AlarmRule"),
                tags=p.get("Tags"),
            )
            return cls(alarm.name, alarm.alarm_arn)

    return CfnGlobalTable, CfnSecret, CfnLambdaAlias, CfnLambdaUrl, CfnMetricAlarm, CfnCompositeAlarm


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def install_cloudformation_resource_support() -> None:
    """Let moto's CloudFormation create every resource of this repository's synthesized template.

    Works around these moto 5.2.5 CloudFormation gaps, each found by ``create_stack`` with the
    template ``stacks.application.build_app`` synthesizes (moto answered HTTP 500 or created nothing):

    * No model for ``AWS::DynamoDB::GlobalTable`` (CDK ``TableV2``), ``AWS::SecretsManager::Secret``,
      ``AWS::Lambda::Alias`` or ``AWS::Lambda::Url``: the resource was skipped with a warning, and every
      ``Ref``/``Fn::GetAtt`` to it (table names in environment variables, the event source mapping's
      ``FunctionName`` = alias) broke the resources that use it. Models are added (see ``_cfn_models``).
    * ``AWS::SSM::Parameter`` without ``Name`` crashed (``'NoneType' object has no attribute 'lower'``):
      CloudFormation generates a name; moto passed ``None``. The generated name is used now. Its ``Tags``
      (a JSON *map* in this resource type) crashed moto, which expects a list; a map is converted.
    * ``Fn::GetAtt <AWS::Lambda::Version>.Version`` crashed (``LambdaVersion`` has no
      ``get_cfn_attribute``); it is added.
    * ``AWS::Events::Archive`` without ``ArchiveName``: moto generated a name longer than the 48
      characters its own ``CreateArchive`` accepts; it is shortened the way CloudFormation does (stack name
      cut, random suffix kept). Its ``EventPattern`` (a JSON object in templates) crashed moto, which
      expects a string; it is serialised.
    * ``Ref`` to an ``AWS::Events::EventBus`` returned the Python object (``<moto.events.models.EventBus
      object ...>``) instead of the bus name, so a ``PutEvents`` request template built with it named a
      bus that does not exist. ``EventBus.physical_resource_id`` returns the name, as on AWS. Same bug
      and fix for ``AWS::Events::Archive`` (its ``Ref`` is the archive name).
    * No model for ``AWS::CloudWatch::Alarm`` / ``CompositeAlarm``: skipped, which is harmless until
      something references one (the dashboard's ``Fn::GetAtt Alarm.Arn``): then ``CreateStack`` failed
      with "Fn::GetAtt references undefined resource". Alarms are created with ``PutMetricAlarm`` now
      (composite ones with their rule), so ``DescribeAlarms`` lists them; moto never evaluates them.
    * ``AWS::KMS::Key`` with ``Tags`` crashed (``KeyError: 'TagKey'``): CloudFormation's tags are
      ``Key``/``Value`` pairs, moto's KMS tagger wants ``TagKey``/``TagValue``; they are converted, and a
      ``KeyPolicy`` object is serialised as ``CreateKey`` would receive it.
    * ``AWS::StepFunctions::StateMachine`` only read ``DefinitionString``: ``Definition`` (object),
      ``DefinitionSubstitutions`` (``${Name}`` placeholders, what CDK's ``DefinitionBody.fromFile`` plus
      substitutions produce) and ``DefinitionS3Location`` (read back from the emulated S3 bucket) are now
      resolved into the definition before moto stores it.

    Still skipped by moto (harmless for running the data path; ``DeployedStack.not_emulated`` lists them):
    ``AWS::SQS::QueuePolicy``, ``AWS::SNS::TopicPolicy``, ``AWS::Logs::QueryDefinition``,
    ``AWS::Lambda::EventInvokeConfig`` (the scheduled reconciler's; the local cloud runs no schedules),
    ``AWS::ApiGateway::Stage``, ``Model``, ``RequestValidator``, ``GatewayResponse`` and ``Account`` (the
    local front door reads the API's pieces from the template itself).

    Verified by ``tests/e2e/test_deploy.py``: the synthesized stack reaches ``CREATE_COMPLETE`` with a
    physical id for each of these resources, the consumer's environment holds the real table names,
    secret ARN and DLQ URL, the event source mapping points at the ``live`` alias's version with the
    template's batch size / window / maximum concurrency, the archive exists and the ``EventBusName``
    output is the bus name; a small template with ``DefinitionSubstitutions`` creates a runnable state
    machine. Idempotent.
    """
    from moto.awslambda.models import LambdaVersion
    from moto.cloudformation import parsing
    from moto.events.models import Archive, EventBus
    from moto.kms.models import Key
    from moto.ssm.models import Parameter
    from moto.stepfunctions.models import StateMachine

    with _LOCAL_CLOUD_LOCK:
        if "cloudformation" in _LOCAL_CLOUD_ORIGINALS:
            return
        _LOCAL_CLOUD_ORIGINALS["cloudformation"] = {
            "models": _cfn_models(),
            "parameter_create": Parameter.__dict__["create_from_cloudformation_json"],
            "archive_create": Archive.__dict__["create_from_cloudformation_json"],
            "state_machine_create": StateMachine.__dict__["create_from_cloudformation_json"],
            "key_create": Key.__dict__["create_from_cloudformation_json"],
            "generate_resource_name": parsing.generate_resource_name,
            "version_getatt": LambdaVersion.__dict__.get("get_cfn_attribute"),
            "bus_physical_id": EventBus.__dict__.get("physical_resource_id"),
        }
        originals = _LOCAL_CLOUD_ORIGINALS["cloudformation"]

    parameter_create = originals["parameter_create"].__func__
    archive_create = originals["archive_create"].__func__
    state_machine_create = originals["state_machine_create"].__func__
    key_create = originals["key_create"].__func__
    generate_resource_name = originals["generate_resource_name"]

    def create_parameter(
        cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        properties.setdefault("Name", resource_name)
        if isinstance(properties.get("Tags"), dict):
            properties["Tags"] = [{"Key": k, "Value": v} for k, v in properties["Tags"].items()]
        return parameter_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_key(cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any) -> Any:
        properties = cloudformation_json["Properties"]
        properties["Tags"] = [
            {"TagKey": tag.get("Key", tag.get("TagKey")), "TagValue": tag.get("Value", tag.get("TagValue"))}
            for tag in properties.get("Tags") or []
        ]
        if isinstance(properties.get("KeyPolicy"), dict):
            properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
        return key_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_archive(cls: Any, resource_name: str, cloudformation_json: dict, *args: Any, **kw: Any) -> Any:
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        return archive_create(cls, resource_name, cloudformation_json, *args, **kw)

    def create_state_machine(
        cls: Any, resource_name: str, cloudformation_json: dict, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        definition = properties.get("DefinitionString")
        if definition is None and "Definition" in properties:
            definition = json.dumps(properties["Definition"])
        if definition is None and "DefinitionS3Location" in properties:
            from moto.s3.models import s3_backends

            location = properties["DefinitionS3Location"]
            key = s3_backends[account_id][get_partition(region_name)].get_object(
                location["Bucket"], location["Key"]
            )
            definition = key.value.decode("utf-8")  # type: ignore[union-attr]
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            definition = (definition or "").replace("${" + name + "}", str(value))
        if definition is not None:
            properties["DefinitionString"] = definition
        return state_machine_create(cls, resource_name, cloudformation_json, account_id, region_name, **kw)

    def generate_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = generate_resource_name(resource_type, stack_name, logical_id)
        if resource_type == "AWS::Events::Archive" and len(name) > 48:
            suffix = name.rsplit("-", 1)[1]
            name = f"{name[: 47 - len(suffix)]}-{suffix}"
        return name

    def version_getatt(self: Any, attribute_name: str) -> Any:
        if attribute_name == "Version":
            return str(self.version)
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    Parameter.create_from_cloudformation_json = classmethod(create_parameter)  # type: ignore[method-assign,assignment]
    Archive.create_from_cloudformation_json = classmethod(create_archive)  # type: ignore[method-assign,assignment]
    Key.create_from_cloudformation_json = classmethod(create_key)  # type: ignore[method-assign,assignment]
    StateMachine.create_from_cloudformation_json = classmethod(create_state_machine)  # type: ignore[method-assign,assignment]
    parsing.generate_resource_name = generate_name
    LambdaVersion.get_cfn_attribute = version_getatt  # type: ignore[attr-defined]
    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    Archive.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    _refresh_cfn_model_cache()


def _refresh_cfn_model_cache() -> None:
    # moto builds its type -> model map once from CloudFormationModel.__subclasses__() (lru_cache).
    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()


def get_partition(region_name: str) -> str:
    from moto.utilities.utils import get_partition as moto_get_partition

    return str(moto_get_partition(region_name))


def install_sqs_event_source_handoff() -> None:
    """Leave SQS event source mappings to a poller outside moto instead of moto's push-on-send.

    Works around: when an *enabled* SQS event source mapping exists, moto's ``Queue.add_message``
    receives a batch inside ``SendMessage`` and calls ``LambdaBackend.send_sqs_batch`` -> Docker. Without
    Docker ``SendMessage`` itself answers HTTP 500 (``'LambdaFunction' object has no attribute
    '_DockerModel__docker_client'``), and each attempt also counts as a receive of the message, so
    the redrive policy would count phantom deliveries. (The in-process Lambda patch above does not reach
    this path: it serves Step Functions tasks only.)

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

    with _LOCAL_CLOUD_LOCK:
        if "esm" in _LOCAL_CLOUD_ORIGINALS:
            return
        original = LambdaBackend.create_event_source_mapping
        _LOCAL_CLOUD_ORIGINALS["esm"] = original

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            if queue.queue_arn == mapping.event_source_arn:
                queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        return mapping

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]


def register_stack_state_machines_for_execution(account_id: str, region_name: str) -> list[str]:
    """Copy every state machine of moto's plain Step Functions backend into its executing backend.

    Works around: with ``{"stepfunctions": {"execute_state_machine": true}}`` moto serves the Step
    Functions API from a second backend (``stepfunctions_parser_backends``), but CloudFormation creates
    state machines in the first one (``stepfunctions_backends``), so ``StartExecution`` on a state
    machine of the deployed stack answers ``StateMachineDoesNotExist``. Re-creating each one (same
    name, hence same ARN, same definition, role, type, logging and tracing configuration) in the
    executing backend makes it runnable; the executing backend validates the definition on the way.

    Call it after ``CreateStack`` and after enabling execution. Returns the ARNs registered (existing ones
    are left as they are). Verified by ``tests/e2e/test_deploy.py`` with a state machine created by
    CloudFormation whose execution reaches ``SUCCEEDED``.
    """
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    plain = stepfunctions_backends[account_id][region_name]
    executing = stepfunctions_parser_backends[account_id][region_name]
    known = {machine.arn for machine in executing.state_machines}
    registered = []
    for machine in list(plain.state_machines):
        if machine.arn in known:
            continue
        executing.create_state_machine(
            name=machine.name,
            definition=machine.definition,
            roleArn=machine.roleArn,
            tags=plain.get_tags_list_for_state_machine(machine.arn) or None,
            loggingConfiguration=machine.loggingConfiguration,  # type: ignore[arg-type]
            tracingConfiguration=machine.tracingConfiguration,  # type: ignore[arg-type]
            sm_type=machine.type,
        )
        registered.append(machine.arn)
    return registered


def install_local_cloud_workarounds() -> None:
    """What ``localcloud`` installs before deploying: ``install_all`` plus this section (idempotent)."""
    install_all()
    install_cloudformation_resource_support()
    install_sqs_event_source_handoff()
    install_eventbridge_service_targets()


def put_aws_public_parameter(account_id: str, region_name: str, name: str, value: str) -> None:
    """Store an AWS-published SSM parameter (``/aws/service/...``) that moto does not ship.

    Works around: CDK resolves some values through public parameters at deploy time (a template
    ``Parameter`` of type ``AWS::SSM::Parameter::Value<String>`` whose default is e.g.
    ``/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x``). moto only bundles a few public
    trees (AMIs, regions, services), so ``CreateStack`` crashed resolving the parameter
    (``'NoneType' object has no attribute 'value'``), and its ``PutParameter`` refuses the reserved
    ``/aws`` prefix (``AccessDeniedException``), so the value cannot be put through the API either.
    The parameter is added to the backend the way moto adds its own bundled public parameters.

    Verified by ``tests/e2e/test_deploy.py``: with the value seeded by ``localcloud.deploy`` the
    synthesized stack deploys, and ``GetParameter`` returns it.
    """
    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ssm_backends

    backend = ssm_backends[account_id][region_name]
    versions = backend._parameters[name]
    versions.append(
        Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description="AWS-published parameter (stand-in seeded by the local cloud)",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=len(versions) + 1,
            data_type="text",
            tier="Standard",
        )
    )


def install_eventbridge_service_targets() -> None:
    """Deliver EventBridge rule matches to Step Functions and (in-process) Lambda targets.

    Works around: moto's ``Rule.send_to_targets`` delivers only to log groups, archives, SQS queues,
    other buses and API destinations; any other target raises ``NotImplementedError`` inside
    ``PutEvents``, so the *producer's* ``PutEvents`` call fails with HTTP 500 (seen when the order
    consumer published ``CircuitOpened`` to the bus whose rule targets the circuit-controller state
    machine).

    Now a ``arn:aws:states:...:stateMachine:NAME`` target starts an execution in moto's executing Step
    Functions backend (see ``register_stack_state_machines_for_execution``), and an
    ``arn:aws:lambda:...:function:NAME`` target is invoked asynchronously when ``NAME`` is registered
    with ``register_inprocess_function``; each with the target's ``Input`` (constant), ``InputPath`` or
    ``InputTransformer`` applied to the event, as EventBridge does. Other targets go to moto's original
    code. Delivery failures are swallowed (EventBridge retries asynchronously and, after its retry
    policy, sends to the target's DLQ; that retry loop is not emulated).

    Verified by ``tests/e2e/test_deploy.py``: an event put on a deployed bus whose rule targets a state
    machine starts one execution with the event (or the transformed input) as its input, and
    ``PutEvents`` succeeds.
    """
    import contextlib
    import copy

    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser

    with _LOCAL_CLOUD_LOCK:
        if "events_targets" in _LOCAL_CLOUD_ORIGINALS:
            return
        original = Rule.send_to_targets
        _LOCAL_CLOUD_ORIGINALS["events_targets"] = original

    def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
        if "Input" in target:
            return str(target["Input"])
        if "InputTransformer" in target:
            transformer = target["InputTransformer"]
            return str(
                EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=event,  # type: ignore[arg-type]
                )
            )
        document: Any = event
        path = target.get("InputPath")
        if path:
            for part in path.lstrip("$").strip(".").split("."):
                document = document.get(part) if isinstance(document, dict) and part else document
        return json.dumps(document, default=str)

    def deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = str(target["Arn"])
        service = arn.split(":")[2]
        payload = target_input(target, event)
        if service == "states":
            from moto.stepfunctions.parser.models import stepfunctions_parser_backends

            backend = stepfunctions_parser_backends[rule.account_id][rule.region_name]
            # A fresh name per delivery, as EventBridge does (moto would treat two unnamed starts as one).
            backend.start_execution(arn, name=str(uuid.uuid4()), execution_input=payload)
        elif service == "lambda":
            function = get_inprocess_function(arn)
            if function is not None:
                threading.Thread(
                    target=_invoke_inprocess,
                    args=(function, {"Payload": payload}),
                    name=f"events-to-{function.name}",
                    daemon=True,
                ).start()

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        handled = [
            t for t in self.targets if str(t.get("Arn", "")).split(":")[2:3] in (["states"], ["lambda"])
        ]
        if handled and self.event_pattern.matches_event(original_event):
            event = dict(original_event)
            if isinstance(event.get("time"), int | float):
                event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(event["time"])))
            for target in handled:
                # EventBridge delivers asynchronously: a target's failure never fails PutEvents.
                with contextlib.suppress(Exception):
                    deliver(self, target, event)
        if len(handled) == len(self.targets):
            return
        if handled:
            others = copy.copy(self)
            others.targets = [t for t in self.targets if t not in handled]
            original(others, original_event, transform_input)
        else:
            original(self, original_event, transform_input)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
