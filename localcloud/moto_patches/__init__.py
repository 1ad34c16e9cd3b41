"""Patches for moto 5.2.5 limitations that the local cloud and the Step Functions tests rely on.

Each patch is one small, reversible change with a docstring saying which moto limitation it works
around and how it was verified. Nothing here changes what the AWS code under test does; it only lets
moto's own interpreter run it without Docker. One module per concern:

Step Functions test support (``install_all``; the Step Functions tests and the local cloud call it once):

``inprocess_lambda``
    Step Functions Lambda tasks (``arn:aws:states:::lambda:invoke`` and a plain function ARN as
    ``Resource``) are routed to in-process Python handlers (``register_inprocess_function``) instead of
    moto's Docker-backed Lambda; ``LambdaServiceFault`` raised by a handler makes the Lambda *service*
    fail the invoke (``Lambda.TooManyRequestsException`` ...), for fault-injection tests.
``aws_sdk_casing``
    ``arn:aws:states:::aws-sdk:*`` tasks accept and return Step Functions' member names (``Uuid``, not
    botocore's ``UUID``) as on AWS.
``dynamodb_atomic_writes``
    DynamoDB item operations are serialised, so a conditional write is atomic as on AWS (moto checks
    the condition and writes without a lock: racing threads can all win).

The local cloud (deploying the synthesized template on moto's CloudFormation and running it;
``install_local_cloud_workarounds`` = ``install_all`` plus these; verified by tests/e2e/test_deploy.py):

``cloudformation`` (models in ``cloudformation_models``)
    CloudFormation models moto lacks (``DynamoDB::GlobalTable``, ``SecretsManager::Secret``,
    ``Lambda::Alias``, ``Lambda::Url``, ``CloudWatch::Alarm``/``CompositeAlarm``) and fixes for
    ``SSM::Parameter`` without a name, ``Lambda::Version`` ``GetAtt Version``, ``Events::Archive`` names
    and patterns, ``Ref`` to buses and archives, state machine definitions with substitutions.
``sqs_event_source``
    ``SendMessage`` to a queue with an enabled event source mapping no longer tries Docker; the local
    cloud's poller delivers instead.
``stack_state_machines``
    State machines created by CloudFormation become runnable in moto's executing backend.
``eventbridge_targets``
    EventBridge rules deliver to Step Functions and in-process Lambda targets.
``eventbridge_replay``
    ``StartReplay`` replays its window to the rules it names, never to the archive's own rule.
``sqs_message_move``
    ``StartMessageMoveTask`` / ``ListMessageMoveTasks`` (a DLQ redrive: ``python -m ops dlq redrive``).
``ssm_public_parameters``
    AWS-published ``/aws/service/...`` SSM parameters a template resolves at deploy time.

Usage (in-process ``mock_aws`` or a ``ThreadedMotoServer`` in the same process, both work)::

    from localcloud.moto_patches.inprocess_lambda import register_inprocess_function

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
    disabled, or poll the queue yourself. (``sqs_event_source.install_sqs_event_source_handoff``
    removes this limitation; the local cloud installs it.)

Importing the package does not import moto (that would slow every user down): each patch imports what
it patches when it is installed, and ``cloudformation_models``, whose classes register with moto as
they are defined, is imported by ``install_cloudformation_resource_support`` only.
"""

from __future__ import annotations

from localcloud.moto_patches.aws_sdk_casing import install_aws_sdk_member_casing
from localcloud.moto_patches.cloudformation import install_cloudformation_resource_support
from localcloud.moto_patches.dynamodb_atomic_writes import install_dynamodb_atomic_writes
from localcloud.moto_patches.eventbridge_replay import install_eventbridge_replay_window
from localcloud.moto_patches.eventbridge_targets import install_eventbridge_service_targets
from localcloud.moto_patches.inprocess_lambda import install_inprocess_lambda
from localcloud.moto_patches.sqs_event_source import install_sqs_event_source_handoff
from localcloud.moto_patches.sqs_message_move import install_sqs_message_move_tasks

__all__ = ["install_all", "install_local_cloud_workarounds"]


def install_all() -> None:
    """The Step Functions test support patches (idempotent)."""
    install_inprocess_lambda()
    install_aws_sdk_member_casing()
    install_dynamodb_atomic_writes()


def install_local_cloud_workarounds() -> None:
    """What ``localcloud`` installs before deploying: ``install_all`` plus the local cloud's patches
    (idempotent)."""
    install_all()
    install_cloudformation_resource_support()
    install_sqs_event_source_handoff()
    install_eventbridge_service_targets()
    install_sqs_message_move_tasks()
    install_eventbridge_replay_window()
