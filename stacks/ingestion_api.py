"""Storage-first ingestion: API Gateway writes straight to SQS and EventBridge.

No Lambda sits in front of storage: once the gateway answers 202 the request is durable,
and nothing that can fail downstream (a slow dependency, a cold start, a throttled
consumer) can lose it. Bad input is rejected at the gateway with a 400 that says why.
"""

from __future__ import annotations

import json
import re

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.contracts.api import (
    IDEMPOTENCY_KEY_ATTRIBUTE,
    IDEMPOTENCY_KEY_CHARACTERS,
    IDEMPOTENCY_KEY_HEADER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    PRODUCER_ARN_ATTRIBUTE,
    REQUEST_ID_ATTRIBUTE,
    RETRY_AFTER_HEADER,
)
from schemas import EVENT, ORDER, load_schema
from stacks.compliance import acknowledge
from stacks.config import STORAGE_ROUTES, ServiceConfig, log_retention
from stacks.monitoring import ServiceMonitoring

ORDERS_PATH = "orders"
EVENTS_PATH = "events"
JSON = "application/json"

# The producer's Idempotency-Key is required (the request validator answers 400 without it): a producer
# that retries after a lost 202 must send the same key, or the retry is a second order. It is read from
# the header only (the same name in the query string is refused: $input.params looks there first) and
# must be 1-255 visible ASCII characters, the consumer's rule (lambdas/shared/models.py) as a Java regex.
# A mapping template cannot answer by itself, so a refused key renders a SendMessage without a body:
# SQS stores nothing and answers 400 MissingParameter, and the 4xx response template, which sees the same
# request, turns that into a 400 that says what is wrong with the key.
KEY_IS_REFUSED = (
    f"$input.params().querystring.containsKey('{IDEMPOTENCY_KEY_HEADER}')"
    f" || !$input.params('{IDEMPOTENCY_KEY_HEADER}')"
    f".matches('{IDEMPOTENCY_KEY_CHARACTERS}{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}')"
)
INVALID_KEY_MESSAGE = (
    f"{IDEMPOTENCY_KEY_HEADER} must be sent as a header of 1-{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII "
    "characters (0x21-0x7E)"
)
# SendMessage through the SQS query protocol. The message body is the validated document written
# compactly ($input.json), never the raw body: whitespace padding passes the schema, and a raw body could
# outgrow an SQS message and turn a valid order into an endless 5xx. The model bounds every field, so
# the compact document always fits.
SEND_ORDER_TEMPLATE = (
    f"#if({KEY_IS_REFUSED})Action=SendMessage#else"
    "Action=SendMessage&MessageBody=$util.urlEncode($input.json('$'))"
    f"&MessageAttribute.1.Name={REQUEST_ID_ATTRIBUTE}"
    "&MessageAttribute.1.Value.DataType=String"
    "&MessageAttribute.1.Value.StringValue=$util.urlEncode($context.requestId)"
    f"&MessageAttribute.2.Name={IDEMPOTENCY_KEY_ATTRIBUTE}"
    "&MessageAttribute.2.Value.DataType=String"
    f"&MessageAttribute.2.Value.StringValue=$util.urlEncode($input.params('{IDEMPOTENCY_KEY_HEADER}'))"
    # Who sent it (the SigV4 caller): the consumer scopes the key by it.
    f"&MessageAttribute.3.Name={PRODUCER_ARN_ATTRIBUTE}"
    "&MessageAttribute.3.Value.DataType=String"
    "&MessageAttribute.3.Value.StringValue=$util.urlEncode($context.identity.userArn)"
    "#end"
)
ORDER_ACCEPTED_TEMPLATE = (
    '{"messageId": "$input.path(\'$.SendMessageResponse.SendMessageResult.MessageId\')", '
    '"status": "accepted", "requestId": "$context.requestId"}'
)
# PutEvents answers 200 even when it stored nothing; FailedEntryCount says so, and the entry's ErrorCode
# says why. Never a 202 for an event that was not stored. The codes EventBridge documents as retryable
# (PutEventsResultEntry) say "not now": a 503 with Retry-After, like a throttled request's 429, and the
# producer sends the same event again. Any other code (a malformed detail, access denied, a key the bus
# may not use) is our misconfiguration, which a retry cannot fix: 502. See event_accepted_template.
PUT_EVENTS_RETRYABLE_ERRORS = ("ThrottlingException", "InternalFailure")
EVENT_NOT_STORED_MESSAGE = "the event was not stored"
EVENT_RETRY_LATER_MESSAGE = f"the event was not stored; retry the same event in {RETRY_AFTER_HEADER} seconds"
STORAGE_ERROR_TEMPLATE = (
    '{"message": "the request could not be stored; retry with the same Idempotency-Key", '
    '"requestId": "$context.requestId"}'
)
# SQS refused the send: the key, when that is why (see KEY_IS_REFUSED), otherwise our misconfiguration.
ORDER_REFUSED_TEMPLATE = f"""#if({KEY_IS_REFUSED})
#set($context.responseOverride.status = 400)
{{"message": "{INVALID_KEY_MESSAGE}", "type": "INVALID_IDEMPOTENCY_KEY", "requestId": "$context.requestId"}}
#else
{STORAGE_ERROR_TEMPLATE}
#end"""


def put_event_template(bus_name: str, source: str) -> str:
    # escapeJavaScript turns ' into \' which is not valid JSON, hence the replaceAll.
    detail = "$util.escapeJavaScript($input.json('$.detail')).replaceAll(\"\\\\'\", \"'\")"
    return (
        '{"Entries": [{'
        f'"EventBusName": "{bus_name}", "Source": "{source}", '
        '"DetailType": "$util.escapeJavaScript($input.path(\'$.detailType\'))", '
        f'"Detail": "{detail}", '
        # Who sent it (the SigV4 caller), where an event names what it concerns: audit and replay keep it.
        '"Resources": ["$util.escapeJavaScript($context.identity.userArn)"]'
        "}]}"
    )


def event_accepted_template(retry_after_seconds: int) -> str:
    """The events route's answer to PutEvents: 202, or a 503 (retry after ``retry_after_seconds``) / 502."""
    retryable = " || ".join(f"$errorCode == '{code}'" for code in PUT_EVENTS_RETRYABLE_ERRORS)
    not_stored = '"errorCode": "$util.escapeJavaScript($errorCode)", "requestId": "$context.requestId"}'
    return f"""#set($failed = $input.path('$.FailedEntryCount'))
#if($failed > 0)
#set($errorCode = $input.path('$.Entries[0].ErrorCode'))
#if({retryable})
#set($context.responseOverride.status = 503)
#set($context.responseOverride.header.{RETRY_AFTER_HEADER} = "{retry_after_seconds}")
{{"message": "{EVENT_RETRY_LATER_MESSAGE}", {not_stored}
#else
#set($context.responseOverride.status = 502)
{{"message": "{EVENT_NOT_STORED_MESSAGE}", {not_stored}
#end
#else
{{"eventId": "$input.path('$.Entries[0].EventId')", "status": "accepted", "requestId": "$context.requestId"}}
#end"""


ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "errorMessage": "$context.error.message",
    "errorType": "$context.error.responseType",
    "validationError": "$context.error.validationErrorString",
    "xrayTraceId": "$context.xrayTraceId",
}

# Gateway responses are not VTL: only simple $context substitution. messageString is pre-quoted.
_ERROR_BODY = '{"message": $context.error.messageString, "type": "$context.error.responseType", "requestId": "$context.requestId"}'
_VALIDATION_BODY = (
    '{"message": $context.error.messageString, "type": "$context.error.responseType", '
    '"details": "$context.error.validationErrorString", "requestId": "$context.requestId"}'
)


class IngestionApi(Construct):
    """REST API whose routes integrate directly with the order queue and the event bus."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        order_queue: sqs.IQueue,
        event_bus: events.IEventBus,
        event_source: str,
        monitoring: ServiceMonitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = config.api
        removal = config.removal_policy

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(settings.access_log_retention_days),
            removal_policy=removal,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description=f"{config.service_name} storage-first ingestion ({config.stage})",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logging needs the account-level CloudWatch role; kept on stack deletion
            # because other APIs in the account may rely on it.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                throttling_rate_limit=settings.throttling_rate_limit,
                throttling_burst_limit=settings.throttling_burst_limit,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM,
                api_key_required=settings.api_key_required,
            ),
            policy=self._producers_policy(config),
        )
        self.validator = self.api.add_request_validator(
            "BodyAndParameters", validate_request_body=True, validate_request_parameters=True
        )
        self._add_gateway_responses(settings.throttled_retry_after_seconds)
        self.error_model = self.api.add_model(
            "Error",
            content_type=JSON,
            model_name="Error",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                type=apigw.JsonSchemaType.OBJECT,
                required=["message"],
                properties={"message": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING)},
            ),
        )
        self.order_model = self._schema_model("PlaceOrder", ORDER)
        self.event_model = self._schema_model("PublishEvent", EVENT)

        acknowledge(
            self.api,
            "AwsSolutions::AwsSolutions-COG4",
            "Producers are services authorized with IAM (SigV4) on every method, not end users",
        )
        acknowledge(
            self.api,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role must use this AWS managed policy",
        )
        acknowledge(
            self.api,
            "AwsSolutions::AwsSolutions-APIG3",
            "IAM-authorized service-to-service API; associate the organisation's WAF web ACL where it is "
            "managed centrally (README, 'Fork it')",
        )
        self._add_orders_route(order_queue)
        self._add_events_route(event_bus, event_source, settings.throttled_retry_after_seconds)
        if settings.api_key_required:
            self._add_usage_plan(config)
        monitoring.watch_api("ingestion-api", self.api, STORAGE_ROUTES)

    # -- who may call what --------------------------------------------------------------------

    @staticmethod
    def _producers_policy(config: ServiceConfig) -> iam.PolicyDocument | None:
        """Refuses every caller of a route but its named producers (``api.producers``).

        Same-account IAM callers need only an identity policy, so naming producers takes a Deny: an
        explicit deny wins over any identity policy that grants execute-api:Invoke on ``*``.
        """
        statements = []
        for route, arns in config.api.producers.items():
            method, path = route.split(" ", 1)
            resource_path = re.sub(r"\{[^}]+\}", "*", path)
            statements.append(
                iam.PolicyStatement(
                    sid=re.sub(r"[^A-Za-z0-9]", "", f"OnlyNamedProducers{method}{path.title()}"),
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["execute-api:Invoke"],
                    resources=[f"execute-api:/{config.stage}/{method}{resource_path}"],
                    conditions={"ArnNotLike": {"aws:PrincipalArn": arns}},
                )
            )
        return iam.PolicyDocument(statements=statements) if statements else None

    # -- routes -----------------------------------------------------------------------------

    def _add_orders_route(self, queue: sqs.IQueue) -> None:
        role = self._integration_role("SendOrderRole", "send to the order queue")
        queue.grant_send_messages(role)
        integration = self._storage_integration(
            role,
            {"Content-Type": "application/x-www-form-urlencoded"},
            SEND_ORDER_TEMPLATE,
            self._storage_responses(ORDER_ACCEPTED_TEMPLATE, refused_template=ORDER_REFUSED_TEMPLATE),
            service="sqs",
            path=f"{Aws.ACCOUNT_ID}/{queue.queue_name}",
        )
        self.orders = self._storage_route(
            ORDERS_PATH,
            integration,
            self.order_model,
            request_parameters={f"method.request.header.{IDEMPOTENCY_KEY_HEADER}": True},
        )

    def _add_events_route(self, bus: events.IEventBus, source: str, retry_after_seconds: int) -> None:
        self.put_events_role = role = self._integration_role("PutEventsRole", "put events on the service bus")
        bus.grant_put_events_to(role)
        integration = self._storage_integration(
            role,
            {"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"},
            put_event_template(bus.event_bus_name, source),
            self._storage_responses(event_accepted_template(retry_after_seconds)),
            service="events",
            action="PutEvents",
        )
        self.events = self._storage_route(EVENTS_PATH, integration, self.event_model)

    # -- shared pieces ------------------------------------------------------------------------

    def _integration_role(self, construct_id: str, what: str) -> iam.Role:
        return iam.Role(
            self,
            construct_id,
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description=f"Lets the ingestion API {what} and nothing else",
        )

    @staticmethod
    def _storage_integration(
        role: iam.IRole,
        headers: dict[str, str],
        template: str,
        responses: list[apigw.IntegrationResponse],
        **target: str,
    ) -> apigw.AwsIntegration:
        """A POST to the AWS service ``target`` names, with ``headers``, the request mapped by ``template``."""
        return apigw.AwsIntegration(
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_parameters={
                    f"integration.request.header.{name}": f"'{value}'" for name, value in headers.items()
                },
                request_templates={JSON: template},
                integration_responses=responses,
            ),
            **target,
        )

    def _storage_route(
        self,
        path: str,
        integration: apigw.Integration,
        model: apigw.IModel,
        request_parameters: dict[str, bool] | None = None,
    ) -> apigw.Resource:
        """POST /``path``: validated against ``model``, stored by ``integration``."""
        resource = self.api.root.add_resource(path)
        resource.add_method(
            "POST",
            integration,
            request_validator=self.validator,
            request_models={JSON: model},
            request_parameters=request_parameters,
            method_responses=self._method_responses(),
        )
        return resource

    def _schema_model(self, name: str, schema_name: str) -> apigw.IModel:
        # The L1 takes the JSON Schema file as it is, so schemas/ stays the single source.
        model = apigw.CfnModel(
            self,
            f"{name}Schema",
            rest_api_id=self.api.rest_api_id,
            content_type=JSON,
            name=name,
            schema=load_schema(schema_name),
        )
        return apigw.Model.from_model_name(self, f"{name}Model", model.ref)

    @staticmethod
    def _storage_responses(
        accepted_template: str, refused_template: str = STORAGE_ERROR_TEMPLATE
    ) -> list[apigw.IntegrationResponse]:
        retry = {f"method.response.header.{RETRY_AFTER_HEADER}": "'1'"}
        return [
            apigw.IntegrationResponse(status_code="202", response_templates={JSON: accepted_template}),
            # A 4xx from SQS/EventBridge is our misconfiguration, not the client's (unless the template
            # made it refuse the request on purpose: refused_template says so).
            apigw.IntegrationResponse(
                status_code="500",
                selection_pattern="4\\d{2}",
                response_templates={JSON: refused_template},
            ),
            apigw.IntegrationResponse(
                status_code="503",
                selection_pattern="5\\d{2}",
                response_parameters=retry,
                response_templates={JSON: STORAGE_ERROR_TEMPLATE},
            ),
        ]

    def _method_responses(self) -> list[apigw.MethodResponse]:
        error = {JSON: self.error_model}
        return [
            apigw.MethodResponse(status_code="202", response_models={JSON: apigw.Model.EMPTY_MODEL}),
            apigw.MethodResponse(status_code="400", response_models=error),
            apigw.MethodResponse(status_code="500", response_models=error),
            apigw.MethodResponse(status_code="502", response_models=error),
            apigw.MethodResponse(
                status_code="503",
                response_models=error,
                response_parameters={f"method.response.header.{RETRY_AFTER_HEADER}": True},
            ),
        ]

    def _add_gateway_responses(self, retry_after_seconds: int) -> None:
        json_body = {JSON: _ERROR_BODY}
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={JSON: _VALIDATION_BODY},
        )
        self.api.add_gateway_response(
            "BadRequestParameters",
            type=apigw.ResponseType.BAD_REQUEST_PARAMETERS,
            status_code="400",
            templates={JSON: _VALIDATION_BODY},
        )
        # API Gateway refuses a payload over 10 MB itself; the caller learns why, in JSON.
        self.api.add_gateway_response(
            "RequestTooLarge",
            type=apigw.ResponseType.REQUEST_TOO_LARGE,
            status_code="413",
            templates=json_body,
        )
        self.api.add_gateway_response(
            "UnsupportedMediaType",
            type=apigw.ResponseType.UNSUPPORTED_MEDIA_TYPE,
            status_code="415",
            templates=json_body,
        )
        self.api.add_gateway_response(
            "Throttled",
            type=apigw.ResponseType.THROTTLED,
            status_code="429",
            response_headers={RETRY_AFTER_HEADER: f"'{retry_after_seconds}'"},
            templates=json_body,
        )
        self.api.add_gateway_response("Default4xx", type=apigw.ResponseType.DEFAULT_4_XX, templates=json_body)
        self.api.add_gateway_response("Default5xx", type=apigw.ResponseType.DEFAULT_5_XX, templates=json_body)

    def _add_usage_plan(self, config: ServiceConfig) -> None:
        plan = self.api.add_usage_plan(
            "UsagePlan",
            description="Per-client throttling and quota for API-key producers",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.api.throttling_rate_limit, burst_limit=config.api.throttling_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.api.api_key_quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        plan.add_api_key(self.api.add_api_key("ProducerKey", description=f"{config.stack_name} producer key"))

    @property
    def url(self) -> str:
        return self.api.url
