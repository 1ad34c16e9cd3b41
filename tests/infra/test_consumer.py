"""The load-leveling consumer: bulkhead, event source, alias, tables, scoped IAM."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError
from tests.conftest import cdk_context
from tests.infra.conftest import Synthesized


def _consumer_function(dev: Synthesized) -> tuple[str, dict[str, Any]]:
    consumer = dev.stack.consumers["orders"]
    logical_id = dev.stack.get_logical_id(consumer.handler.function.node.default_child)
    return logical_id, dev.resources[logical_id]["Properties"]


def test_event_source_is_bound_to_the_live_alias_with_partial_batch_responses(dev: Synthesized) -> None:
    function_id, function = _consumer_function(dev)
    settings = dev.stack.consumers["orders"].settings
    alias_id = next(
        k
        for k, v in dev.of_type("AWS::Lambda::Alias").items()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    )
    assert dev.resources[alias_id]["Properties"]["Name"] == "live"
    (mapping,) = [
        m
        for m in dev.of_type("AWS::Lambda::EventSourceMapping").values()
        if alias_id in str(m["Properties"]["FunctionName"])
    ]
    props = mapping["Properties"]
    # "<function>:live", built from the alias: the mapping invokes the alias, not $LATEST.
    name = props["FunctionName"]["Fn::Join"][1]
    assert name[-1] == ":live"
    assert {"Ref": alias_id} in name[0]["Fn::Select"][1]["Fn::Split"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == settings.batch_size
    assert props["MaximumBatchingWindowInSeconds"] == settings.batching_window_seconds
    assert props["ScalingConfig"]["MaximumConcurrency"] == settings.max_concurrency
    # The bulkhead: the event source can never out-scale the function's reserved concurrency.
    assert props["ScalingConfig"]["MaximumConcurrency"] <= function["ReservedConcurrentExecutions"]
    assert function["ReservedConcurrentExecutions"] == settings.reserved_concurrency


def test_consumer_function_runtime_tracing_and_loop_detection(dev: Synthesized) -> None:
    _, function = _consumer_function(dev)
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["RecursiveLoop"] == "Terminate"
    assert function["Handler"] == "lambdas.order_consumer.handler.handler"
    assert function["Timeout"] == dev.stack.consumers["orders"].settings.timeout_seconds
    dependencies_layer = dev.stack.get_logical_id(
        dev.stack.node.find_child("Dependencies").node.default_child
    )
    assert {"Ref": dependencies_layer} in function["Layers"]


def test_consumer_environment_parses_with_the_handlers_own_models(dev: Synthesized) -> None:
    from lambdas.shared.dependency_client import DependencyPolicy

    _, function = _consumer_function(dev)
    env = {k: v if isinstance(v, str) else "token" for k, v in function["Environment"]["Variables"].items()}
    env["DEPENDENCY_BASE_URL"] = "https://partner.example.com/"  # a token until deploy time
    policy = DependencyPolicy.from_environment(env)
    settings = dev.stack.config.dependencies["partner"]
    assert policy.max_attempts == settings.max_attempts
    assert policy.breaker_failure_threshold == settings.breaker_failure_threshold
    for required in ("IDEMPOTENCY_TABLE_NAME", "CIRCUIT_BREAKER_TABLE_NAME", "DEPENDENCY_API_KEY_SECRET_ARN"):
        assert required in function["Environment"]["Variables"]
    from lambdas.order_consumer.environment import OrderConsumerSettings

    env.update(IDEMPOTENCY_TABLE_NAME="orders-idempotency", CIRCUIT_BREAKER_TABLE_NAME="circuits",
               POISON_MESSAGE_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq")  # fmt: skip
    parsed = OrderConsumerSettings.from_environment(env)
    orders = dev.stack.config.consumers["orders"]
    assert (parsed.dependency_max_tries, parsed.queue_max_receive_count) == (
        orders.max_dependency_tries,
        orders.max_receive_count,
    )


def test_tables_have_ttl_point_in_time_recovery_and_stage_removal_policy(
    dev: Synthesized, prod: Synthesized
) -> None:
    for synthesized, policy in ((dev, "Delete"), (prod, "Retain")):
        stack = synthesized.stack
        powertools_layout = {
            stack.get_logical_id(c.idempotency_table.node.default_child) for c in stack.consumers.values()
        }
        powertools_layout.add(stack.get_logical_id(stack.circuits.table.node.default_child))
        tables = synthesized.of_type("AWS::DynamoDB::GlobalTable")
        assert set(tables) == powertools_layout | {
            stack.get_logical_id(stack.order_status.table.node.default_child)
        }
        for logical_id, table in tables.items():
            props = table["Properties"]
            assert props["TimeToLiveSpecification"]["Enabled"] is True
            (replica,) = props["Replicas"]
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
            assert table["DeletionPolicy"] == policy
            if logical_id in powertools_layout:  # the Powertools idempotency / circuit breaker record layout
                assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
                assert props["TimeToLiveSpecification"]["AttributeName"] == "expiration"


def _statements_of(dev: Synthesized, role: Any) -> list[dict[str, Any]]:
    role_id = dev.stack.get_logical_id(role.node.default_child)
    return [
        statement
        for policy in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action if isinstance(action, list) else [action])


def test_every_function_grants_only_xray_on_wildcard_resources(dev: Synthesized) -> None:
    roles = [c.handler.role for c in dev.stack.consumers.values()]
    roles += [d.demo.role for d in dev.stack.downstream.values() if d.demo]
    for role in roles:
        statements = _statements_of(dev, role)
        assert statements
        for statement in statements:
            if statement["Resource"] == "*":
                assert _actions(statement) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_consumer_iam_is_scoped_to_its_table_circuits_secret_and_dlq(dev: Synthesized) -> None:
    consumer = dev.stack.consumers["orders"]
    statements = _statements_of(dev, consumer.handler.role)
    by_resource: dict[str, set[str]] = {}
    for statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            by_resource.setdefault(str(resource), set()).update(_actions(statement))
    idempotency = dev.stack.get_logical_id(consumer.idempotency_table.node.default_child)
    circuits = dev.stack.get_logical_id(dev.stack.circuits.table.node.default_child)
    dlq = dev.stack.get_logical_id(consumer.work.dead_letter_queue.node.default_child)
    assert by_resource[str({"Fn::GetAtt": [idempotency, "Arn"]})] >= {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert by_resource[str({"Fn::GetAtt": [circuits, "Arn"]})] == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert by_resource[str({"Fn::GetAtt": [dlq, "Arn"]})] >= {"sqs:SendMessage"}
    assert not any("Scan" in a or a.endswith("*") for actions in by_resource.values() for a in actions)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"max_concurrency": 10, "reserved_concurrency": 5},
            "max_concurrency (10) must be <= reserved_concurrency (5)",
        ),
        ({"max_concurrency": 1}, "consumers.orders.max_concurrency"),
        ({"max_receive_count": 2}, "consumers.orders.max_receive_count"),
        ({"batch_size": 50, "batching_window_seconds": 0}, "batching_window_seconds >= 1"),
        ({"dependency": "nobody"}, "'nobody' is not one of dependencies"),
        ({"max_dependency_tries": 10}, "max_receive_count (10) must be > max_dependency_tries (10)"),
        (
            {"max_dependency_tries": None},
            "max_dependency_tries is required by lambdas.order_consumer.handler",
        ),
        (
            {"handler": "lambdas.notifications_consumer.handler.handler"},
            "max_dependency_tries: lambdas.notifications_consumer.handler.handler does not count its tries",
        ),
    ],
)
def test_synth_fails_with_a_clear_message_when_config_breaks_the_rules(
    override: dict[str, Any], message: str
) -> None:
    from stacks.application import build_app

    context = cdk_context()
    context["service"]["consumers"]["orders"].update(override)
    with pytest.raises(ConfigError) as error:
        build_app(context)
    assert message in str(error.value)


def test_every_function_handler_exists_in_the_code_asset(dev: Synthesized, project_root) -> None:
    """A handler path that does not resolve deploys fine and fails on every invocation."""
    import ast

    for logical_id, function in dev.of_type("AWS::Lambda::Function").items():
        module, _, attribute = function["Properties"]["Handler"].rpartition(".")
        source = project_root.joinpath(*module.split(".")).with_suffix(".py")
        assert source.is_file(), f"{logical_id}: no module {module}"
        tree = ast.parse(source.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        defined |= {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        assert attribute in defined, f"{logical_id}: {module} defines no {attribute}"


def test_production_calls_partners_with_the_secrets_it_names_and_generates_none(prod: Synthesized) -> None:
    configured = {d.api_key_secret_arn for d in prod.stack.config.dependencies.values()}
    assert None not in configured
    assert prod.of_type("AWS::SecretsManager::Secret") == {}  # no generated placeholder key
    used = {
        f["Properties"]["Environment"]["Variables"]["DEPENDENCY_API_KEY_SECRET_ARN"]
        for f in prod.of_type("AWS::Lambda::Function").values()
        if "DEPENDENCY_API_KEY_SECRET_ARN" in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert used and used <= configured
