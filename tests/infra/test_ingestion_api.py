"""The storage-first front door: direct integrations, validation, responses, limits."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import App, Stack, assertions
from aws_cdk import aws_events as events
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match

from lambdas.contracts.api import IDEMPOTENCY_KEY_ATTRIBUTE, IDEMPOTENCY_KEY_HEADER, RETRY_AFTER_HEADER
from schemas import EVENT, ORDER, load_schema
from stacks.config import API_ROUTES
from stacks.ingestion_api import IngestionApi, event_accepted_template
from stacks.monitoring import ServiceMonitoring
from tests.infra.conftest import Synthesized


def _method(dev: Synthesized, path_part: str) -> dict[str, Any]:
    resources = dev.of_type("AWS::ApiGateway::Resource")
    resource_id = next(k for k, v in resources.items() if v["Properties"]["PathPart"] == path_part)
    methods = [
        m
        for m in dev.of_type("AWS::ApiGateway::Method").values()
        if m["Properties"]["ResourceId"] == {"Ref": resource_id}
    ]
    assert len(methods) == 1, f"expected exactly one method on /{path_part}"
    return methods[0]["Properties"]


def _role_id_of(integration: dict[str, Any]) -> str:
    return integration["Credentials"]["Fn::GetAtt"][0]


def test_api_is_regional_and_every_method_requires_iam(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}}
    )
    methods = dev.of_type("AWS::ApiGateway::Method").values()
    assert methods
    for method in methods:
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"


def test_orders_route_sends_straight_to_the_queue_with_the_idempotency_key(dev: Synthesized) -> None:
    method = _method(dev, "orders")
    integration = method["Integration"]
    assert method["HttpMethod"] == "POST"
    assert integration["Type"] == "AWS"
    assert integration["PassthroughBehavior"] == "NEVER"
    uri = json.dumps(integration["Uri"])
    assert ":sqs:path/" in uri
    template = integration["RequestTemplates"]["application/json"]
    # The validated document, written compactly: never the raw body (padding could outgrow SQS).
    assert "Action=SendMessage&MessageBody=$util.urlEncode($input.json('$'))" in template
    assert "$input.body" not in template
    assert f"Name={IDEMPOTENCY_KEY_ATTRIBUTE}" in template
    assert f"$input.params('{IDEMPOTENCY_KEY_HEADER}')" in template
    # Required: a producer that retries after a lost 202 must send the same key (docs/security.md).
    assert method["RequestParameters"] == {f"method.request.header.{IDEMPOTENCY_KEY_HEADER}": True}
    assert template.count("MessageBody=") == 1  # a refused key renders a send SQS rejects: nothing stored
    accepted = next(r for r in integration["IntegrationResponses"] if r["StatusCode"] == "202")
    assert "SendMessageResult.MessageId" in accepted["ResponseTemplates"]["application/json"]
    assert '"status": "accepted"' in accepted["ResponseTemplates"]["application/json"]


def test_orders_role_can_only_send_to_the_order_queue(dev: Synthesized) -> None:
    integration = _method(dev, "orders")["Integration"]
    statements = dev.statements_by_role()[_role_id_of(integration)]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    assert set(actions) == {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    queue_id = dev.stack.get_logical_id(dev.stack.consumers["orders"].queue.node.default_child)
    assert statement["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_events_route_puts_on_the_service_bus_and_turns_failed_entries_into_5xx(dev: Synthesized) -> None:
    method = _method(dev, "events")
    integration = method["Integration"]
    assert "events:action/PutEvents" in json.dumps(integration["Uri"])
    assert (
        integration["RequestParameters"]["integration.request.header.X-Amz-Target"] == "'AWSEvents.PutEvents'"
    )
    accepted = next(r for r in integration["IntegrationResponses"] if r["StatusCode"] == "202")
    body = accepted["ResponseTemplates"]["application/json"]
    assert "FailedEntryCount" in body
    assert "$context.responseOverride.status = 502" in body  # refused: our misconfiguration
    # Not stored for now (tests/e2e/test_vtl.py renders which codes): 503, retry after the configured wait.
    assert "$context.responseOverride.status = 503" in body
    seconds = dev.stack.config.api.throttled_retry_after_seconds
    assert f'#set($context.responseOverride.header.{RETRY_AFTER_HEADER} = "{seconds}")' in body
    # The source is fixed by the gateway so producers cannot impersonate one another.
    request = json.dumps(integration["RequestTemplates"]["application/json"])
    assert "resilient-orders.ingestion" in request
    statements = dev.statements_by_role()[_role_id_of(integration)]
    assert [s["Action"] for s in statements] == ["events:PutEvents"]
    bus_id = dev.stack.get_logical_id(dev.stack.fanout.bus.node.default_child)
    assert statements[0]["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}


def test_request_bodies_are_validated_against_the_schema_files(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    models = {
        m["Properties"]["Name"]: m["Properties"] for m in dev.of_type("AWS::ApiGateway::Model").values()
    }
    assert models["PlaceOrder"]["Schema"] == load_schema(ORDER)
    assert models["PublishEvent"]["Schema"] == load_schema(EVENT)
    for path in ("orders", "events"):
        method = _method(dev, path)
        assert "RequestValidatorId" in method
        assert "application/json" in method["RequestModels"]


def test_storage_routes_declare_their_5xx_and_the_503s_retry_after(dev: Synthesized) -> None:
    """A status or header a mapping template sets must be one the method declares (method responses)."""
    for path in ("orders", "events"):
        declared = {r["StatusCode"]: r for r in _method(dev, path)["MethodResponses"]}
        assert {"202", "400", "500", "502", "503"} <= set(declared), path
        assert declared["503"]["ResponseParameters"] == {f"method.response.header.{RETRY_AFTER_HEADER}": True}
        for status in ("500", "502", "503"):
            assert "application/json" in declared[status]["ResponseModels"], (path, status)


def test_the_events_routes_retry_after_is_the_configured_one(dev: Synthesized) -> None:
    """Synthesized with another wait than the default: the 503's Retry-After and the 429's follow it."""
    api_settings = dev.stack.config.api.model_copy(update={"throttled_retry_after_seconds": 9})
    config = dev.stack.config.model_copy(update={"api": api_settings})
    stack = Stack(App(), "Front")
    IngestionApi(
        stack,
        "Ingestion",
        config=config,
        order_queue=sqs.Queue(stack, "Orders"),
        event_bus=events.EventBus(stack, "Bus"),
        event_source=config.event_source,
        monitoring=ServiceMonitoring(stack, "Monitoring", config=config),
    )
    template = assertions.Template.from_stack(stack).to_json()["Resources"]
    (method,) = (
        r["Properties"]
        for r in template.values()
        if r["Type"] == "AWS::ApiGateway::Method" and "PutEvents" in json.dumps(r["Properties"])
    )
    accepted = next(r for r in method["Integration"]["IntegrationResponses"] if r["StatusCode"] == "202")
    assert accepted["ResponseTemplates"]["application/json"] == event_accepted_template(9)
    (throttled,) = (
        r["Properties"]
        for r in template.values()
        if r["Type"] == "AWS::ApiGateway::GatewayResponse" and r["Properties"]["ResponseType"] == "THROTTLED"
    )
    assert throttled["ResponseParameters"][f"gatewayresponse.header.{RETRY_AFTER_HEADER}"] == "'9'"


def test_storage_errors_are_mapped_to_json_5xx_with_retry_after(dev: Synthesized) -> None:
    for path in ("orders", "events"):
        responses = {r["StatusCode"]: r for r in _method(dev, path)["Integration"]["IntegrationResponses"]}
        assert responses["500"]["SelectionPattern"] == "4\\d{2}"
        assert responses["503"]["SelectionPattern"] == "5\\d{2}"
        assert responses["503"]["ResponseParameters"] == {"method.response.header.Retry-After": "'1'"}


def test_gateway_responses_are_json_and_throttling_says_when_to_retry(dev: Synthesized) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in dev.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) >= {
        "BAD_REQUEST_BODY",
        "BAD_REQUEST_PARAMETERS",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    assert responses["BAD_REQUEST_BODY"]["StatusCode"] == "400"
    assert (
        "$context.error.validationErrorString"
        in responses["BAD_REQUEST_BODY"]["ResponseTemplates"]["application/json"]
    )
    assert responses["THROTTLED"]["StatusCode"] == "429"
    assert responses["THROTTLED"]["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    for response in responses.values():
        assert "application/json" in response["ResponseTemplates"]


def test_stage_throttling_logging_and_tracing_follow_config(dev: Synthesized, prod: Synthesized) -> None:
    for synthesized, rate, burst in ((dev, 100, 200), (prod, 500, 1000)):
        synthesized.template.has_resource_properties(
            "AWS::ApiGateway::Stage",
            {
                "TracingEnabled": True,
                "AccessLogSetting": {
                    "DestinationArn": Match.any_value(),
                    "Format": Match.string_like_regexp('"requestId"'),
                },
                "MethodSettings": [
                    Match.object_like(
                        {
                            "LoggingLevel": "ERROR",
                            "DataTraceEnabled": False,
                            "ThrottlingRateLimit": rate,
                            "ThrottlingBurstLimit": burst,
                        }
                    )
                ],
            },
        )
    prod.template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 365})


def test_api_keys_and_usage_plan_are_a_config_option(dev: Synthesized, tmp_path_factory) -> None:
    from tests.conftest import cdk_context
    from tests.infra.conftest import synthesize

    assert dev.of_type("AWS::ApiGateway::UsagePlan") == {}
    context = cdk_context()
    context["service"]["api"]["api_key_required"] = True
    keyed = synthesize(tmp_path_factory, **context)
    keyed.template.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    keyed.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Quota": {"Limit": 100000, "Period": "DAY"}, "Throttle": Match.any_value()},
    )
    for method in keyed.of_type("AWS::ApiGateway::Method").values():
        assert method["Properties"]["ApiKeyRequired"] is True
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"


def test_each_route_refuses_every_caller_but_its_named_producers(dev: Synthesized, prod: Synthesized) -> None:
    """An explicit Deny per route (``api.producers``): it wins over any identity policy in the account."""
    (api,) = prod.of_type("AWS::ApiGateway::RestApi").values()
    statements = api["Properties"]["Policy"]["Statement"]
    producers = prod.stack.config.api.producers
    assert len(statements) == len(producers) == len(API_ROUTES)
    by_resource = {s["Resource"]: s for s in statements}
    for route in API_ROUTES:
        method, path = route.split(" ", 1)
        statement = by_resource[f"execute-api:/prod/{method}{path.replace('{id}', '*')}"]
        assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
            "Deny",
            {"AWS": "*"},
            "execute-api:Invoke",
        )
        assert statement["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": producers[route]}}
    # Every route of the API is one the policy can name, so none is left open by a typo.
    methods = {
        (m["Properties"]["HttpMethod"], m["Properties"]["ResourceId"]["Ref"])
        for m in prod.of_type("AWS::ApiGateway::Method").values()
    }
    assert len(methods) == len(API_ROUTES)
    # dev names no producers: any principal of the account that IAM lets invoke the API.
    (dev_api,) = dev.of_type("AWS::ApiGateway::RestApi").values()
    assert "Policy" not in dev_api["Properties"]
