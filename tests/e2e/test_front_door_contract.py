"""The local front door and the synthesized REST API agree: routes, models, status codes, bodies, attributes.

The front door reads the API from the template, so most of these tests pin the *reading* against
independent sources: the schema files, stacks/ingestion_api.py's constants, the consumer's attribute
name and API Gateway's documented behaviour. Requests go over HTTP to 127.0.0.1; nothing consumes the
queues here (no pollers), so what the front door wrote can be read back.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from botocore.credentials import Credentials
from moto.events.models import EventsBackend

from lambdas.contracts import api
from lambdas.shared.request_signing import SigV4RequestAuth
from localcloud.deploy import DeployedStack
from localcloud.front_door import GATEWAY_DEFAULTS, FrontDoor, local_producer, producer_auth
from schemas import EVENT, ORDER, load_schema
from stacks import ingestion_api

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ORDER_BODY = {
    "orderId": "ord-contract-1",
    "customerId": "cust-1",
    "items": [{"sku": "SKU-001", "quantity": 2}],
    "amountCents": 1250,
    "currency": "EUR",
}
KEYED = {api.IDEMPOTENCY_KEY_HEADER: "producer-key-0"}
CANCELLED = {
    "detailType": "OrderCancelled",
    "detail": {
        "orderId": "ord-1",
        "customerId": "cust-1",
        "reason": "out_of_stock",
        "cancelledAt": "2026-11-25T09:30:00Z",
    },
}


@pytest.fixture(scope="module")
def front_door(deployed: DeployedStack) -> Iterator[FrontDoor]:
    with FrontDoor(deployed) as door:
        yield door


@pytest.fixture(scope="module")
def producer(deployed: DeployedStack) -> Iterator[requests.Session]:
    """A producer's HTTP session: every method is AWS_IAM, so every request is signed (SigV4)."""
    with requests.Session() as session:
        session.auth = producer_auth(deployed.emulator.region)
        yield session


def signed(
    deployed: DeployedStack, method: str, path: str, headers: dict[str, str], body: str
) -> dict[str, str]:
    """Headers of a signed request, for calling FrontDoor.handle without HTTP."""
    host = "front-door.local"
    prepared = requests.Request(method, f"http://{host}{path}", headers=headers, data=body).prepare()
    producer_auth(deployed.emulator.region)(prepared)
    return {**prepared.headers, "Host": host}


def template_methods(deployed: DeployedStack) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, method) -> Method properties, computed from the template's Resource tree independently."""
    resources = deployed.template["Resources"]

    def path(logical_id: str) -> str:
        properties = resources[logical_id]["Properties"]
        parent = properties["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path(parent["Ref"])
        return f"{prefix}/{properties['PathPart']}"

    return {
        (path(r["Properties"]["ResourceId"]["Ref"]), r["Properties"]["HttpMethod"]): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
    }


def receive_all(deployed: DeployedStack, queue_url: str) -> list[dict[str, Any]]:
    sqs = deployed.emulator.client("sqs")
    messages = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages


def json_keys(template: str) -> set[str]:
    return set(re.findall(r'"(\w+)":', template))


def consumer_attribute_name() -> str:
    """The attribute the order consumer reads, from its source (importing it needs a full environment):
    the contract's, imported from lambdas.contracts.api."""
    tree = ast.parse((PROJECT_ROOT / "lambdas/order_consumer/handler.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == api.__name__
            and any(
                alias.name == "IDEMPOTENCY_KEY_ATTRIBUTE" and alias.asname is None for alias in node.names
            )
        ):
            return api.IDEMPOTENCY_KEY_ATTRIBUTE
    raise AssertionError("IDEMPOTENCY_KEY_ATTRIBUTE not found in the consumer")


# -- routes and models ------------------------------------------------------------------------------


def test_routes_and_methods_are_the_templates(deployed: DeployedStack, front_door: FrontDoor) -> None:
    methods = template_methods(deployed)
    assert set(front_door.contract.routes) == set(methods)
    storage_routes = {("/" + ingestion_api.ORDERS_PATH, "POST"), ("/" + ingestion_api.EVENTS_PATH, "POST")}
    assert storage_routes <= set(methods)
    for key, route in front_door.contract.routes.items():
        assert route.authorization == methods[key]["AuthorizationType"] == "AWS_IAM"
        assert route.integration_type == methods[key]["Integration"]["Type"]


def test_request_models_are_the_schema_files(front_door: FrontDoor) -> None:
    routes = front_door.contract.routes
    assert routes[("/orders", "POST")].request_models == {"application/json": load_schema(ORDER)}
    assert routes[("/events", "POST")].request_models == {"application/json": load_schema(EVENT)}
    for route in routes.values():
        assert route.validate_body and route.validate_parameters
        for schema in route.request_models.values():
            jsonschema.Draft4Validator.check_schema(schema)


def test_throttling_is_the_stage_method_settings(deployed: DeployedStack, front_door: FrontDoor) -> None:
    config = deployed.synthesized.context["service"]["api"]
    for route in front_door.contract.routes.values():
        throttle = front_door.contract.throttle_for(route)
        assert throttle is not None
        assert (throttle.rate, throttle.burst) == (
            config["throttling_rate_limit"],
            config["throttling_burst_limit"],
        )


# -- status codes -----------------------------------------------------------------------------------


def test_every_status_the_front_door_can_answer_is_declared_by_the_template(
    deployed: DeployedStack, front_door: FrontDoor
) -> None:
    methods = template_methods(deployed)
    declared = {int(r["StatusCode"]) for m in methods.values() for r in m.get("MethodResponses", [])}
    gateway = {
        r["Properties"]["ResponseType"]: int(r["Properties"].get("StatusCode", 0))
        for r in deployed.template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::GatewayResponse"
    }
    assert {"BAD_REQUEST_BODY", "UNSUPPORTED_MEDIA_TYPE", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        gateway
    )
    # Method responses cover what integrations produce; gateway responses cover what API Gateway
    # itself answers (types without a configured status keep API Gateway's default status). A Lambda
    # proxy route answers with whatever status its function returns.
    for route in front_door.contract.routes.values():
        assert {r.status for r in route.integration_responses} <= declared
    answerable = declared | {gateway.get(t) or status for t, (status, _) in GATEWAY_DEFAULTS.items()}
    assert front_door.contract.possible_status_codes() <= answerable
    assert {202, 400, 415, 429, 500, 502, 503} <= front_door.contract.possible_status_codes()


def test_responses_have_the_templates_shapes(front_door: FrontDoor, producer: requests.Session) -> None:
    base = front_door.base_url
    gateway = front_door.contract.gateway_responses
    accepted = producer.post(base + "orders", json=ORDER_BODY, headers=KEYED, timeout=10)
    assert accepted.status_code == 202
    assert set(accepted.json()) == {"messageId", "status", "requestId"}
    assert accepted.json()["requestId"] == accepted.headers["x-amzn-RequestId"]

    invalid = producer.post(base + "orders", json={**ORDER_BODY, "amountCents": 0}, headers=KEYED, timeout=10)
    assert invalid.status_code == 400
    body = invalid.json()
    assert set(body) == json_keys(gateway["BAD_REQUEST_BODY"].templates["application/json"])
    assert (body["type"], body["message"]) == ("BAD_REQUEST_BODY", "Invalid request body")
    assert "amountCents" in body["details"] or "minimum" in body["details"]

    not_json = producer.post(
        base + "orders", data="{oops", headers={"Content-Type": "application/json", **KEYED}, timeout=10
    )
    assert not_json.status_code == 400

    media = producer.post(
        base + "orders", data="a=b", headers={"Content-Type": "text/plain", **KEYED}, timeout=10
    )
    assert media.status_code == 415
    assert set(media.json()) == json_keys(gateway["UNSUPPORTED_MEDIA_TYPE"].templates["application/json"])

    unknown = producer.delete(base + "orders", timeout=10)
    assert unknown.status_code == 403
    assert unknown.json()["type"] == "MISSING_AUTHENTICATION_TOKEN"

    event = producer.post(base + "events", json=CANCELLED, timeout=10)
    assert event.status_code == 202
    assert set(event.json()) == {"eventId", "status", "requestId"}
    wrong_event = producer.post(base + "events", json={**CANCELLED, "detailType": "Nope"}, timeout=10)
    assert wrong_event.status_code == 400


def test_throttled_requests_get_429_with_retry_after(deployed: DeployedStack) -> None:
    now = [0.0]
    door = FrontDoor(deployed, clock=lambda: now[0])  # frozen clock: only the burst is available
    route = door.contract.routes[("/orders", "POST")]
    burst = door.contract.throttle_for(route).burst  # type: ignore[union-attr]
    gateway = door.contract.gateway_responses["THROTTLED"]
    headers = signed(
        deployed, "POST", "/dev/orders", {"Content-Type": "application/json", **KEYED}, json.dumps(ORDER_BODY)
    )
    statuses = [
        door.handle("POST", "/dev/orders", headers, json.dumps(ORDER_BODY)).status for _ in range(burst)
    ]
    assert statuses == [202] * burst
    throttled = door.handle("POST", "/dev/orders", headers, json.dumps(ORDER_BODY))
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == gateway.headers["Retry-After"] == "1"
    assert throttled.json()["type"] == "THROTTLED"
    now[0] += 1.0  # one second refills `rate` tokens
    assert door.handle("POST", "/dev/orders", headers, json.dumps(ORDER_BODY)).status == 202
    receive_all(deployed, deployed.outputs["OrdersQueueUrl"])  # leave the queue empty for other tests


# -- what reaches storage -----------------------------------------------------------------------------


def test_orders_reach_the_queue_with_the_consumers_attribute_names(
    deployed: DeployedStack, front_door: FrontDoor, producer: requests.Session
) -> None:
    queue_url = deployed.outputs["OrdersQueueUrl"]
    receive_all(deployed, queue_url)
    with_key = producer.post(
        front_door.base_url + "orders",
        json=ORDER_BODY,
        headers={api.IDEMPOTENCY_KEY_HEADER: "producer-key-1"},
        timeout=10,
    )
    messages = {m["MessageId"]: m for m in receive_all(deployed, queue_url)}
    assert set(messages) == {with_key.json()["messageId"]}

    keyed = messages[with_key.json()["messageId"]]
    assert json.loads(keyed["Body"]) == ORDER_BODY
    attributes = {name: value["StringValue"] for name, value in keyed["MessageAttributes"].items()}
    assert attributes == {
        api.IDEMPOTENCY_KEY_ATTRIBUTE: "producer-key-1",
        api.REQUEST_ID_ATTRIBUTE: with_key.json()["requestId"],
        # Who signed the request, as API Gateway reports the caller ($context.identity.userArn).
        api.PRODUCER_ARN_ATTRIBUTE: local_producer(deployed.emulator.account_id).user_arn,
    }
    assert consumer_attribute_name() == api.IDEMPOTENCY_KEY_ATTRIBUTE


def test_an_order_without_a_valid_key_header_is_refused_with_400_and_nothing_is_stored(
    deployed: DeployedStack, front_door: FrontDoor, producer: requests.Session
) -> None:
    """The key is required, read from the header only, and must be what the consumer accepts."""
    queue_url = deployed.outputs["OrdersQueueUrl"]
    receive_all(deployed, queue_url)
    url = front_door.base_url + "orders"
    header = api.IDEMPOTENCY_KEY_HEADER

    missing = producer.post(url, json=ORDER_BODY, timeout=10)
    assert missing.status_code == 400
    assert missing.json()["type"] == "BAD_REQUEST_PARAMETERS"
    assert header in missing.json()["message"]

    refused_keys: list[str | bytes] = [
        "",
        "tab\tinside",
        "space inside",
        "k" * 256,
        "clé".encode("latin-1"),  # Latin-1, outside visible ASCII
        "ключ".encode(),  # UTF-8 bytes
    ]
    for key in refused_keys:
        refused = producer.post(url, json=ORDER_BODY, headers={header: key}, timeout=10)  # type: ignore[dict-item]
        assert refused.status_code == 400, (key, refused.text)
        body = refused.json()
        assert (body["type"], body["message"]) == (
            "INVALID_IDEMPOTENCY_KEY",
            ingestion_api.INVALID_KEY_MESSAGE,
        )
        assert body["requestId"] == refused.headers["x-amzn-RequestId"]
    # A key smuggled in the query string would win over the header in $input.params: refused.
    smuggled = producer.post(url, params={header: "query-key"}, json=ORDER_BODY, headers=KEYED, timeout=10)
    assert smuggled.status_code == 400 and smuggled.json()["type"] == "INVALID_IDEMPOTENCY_KEY"
    assert receive_all(deployed, queue_url) == []

    longest = "~" + "K" * 253 + "!"
    accepted = producer.post(url, json=ORDER_BODY, headers={header: longest}, timeout=10)
    assert accepted.status_code == 202
    (stored,) = receive_all(deployed, queue_url)
    assert stored["MessageAttributes"][api.IDEMPOTENCY_KEY_ATTRIBUTE]["StringValue"] == longest


def test_a_padded_order_is_stored_compact_and_an_oversized_one_refused_with_413(
    deployed: DeployedStack, front_door: FrontDoor, producer: requests.Session
) -> None:
    queue_url = deployed.outputs["OrdersQueueUrl"]
    receive_all(deployed, queue_url)
    json_headers = {"Content-Type": "application/json", **KEYED}
    # 300 KB of whitespace passes the schema; stored raw it would outgrow an SQS message (256 KB).
    padded = " " * 300_000 + json.dumps(ORDER_BODY, indent=4) + "\n" * 1000
    accepted = producer.post(front_door.base_url + "orders", data=padded, headers=json_headers, timeout=30)
    assert accepted.status_code == 202, accepted.text
    (stored,) = receive_all(deployed, queue_url)
    assert stored["Body"] == json.dumps(ORDER_BODY, separators=(",", ":"))

    oversized = json.dumps({**ORDER_BODY, "padding": "x" * (10 * 1024 * 1024)})
    refused = producer.post(front_door.base_url + "orders", data=oversized, headers=json_headers, timeout=30)
    assert refused.status_code == 413
    gateway = front_door.contract.gateway_responses["REQUEST_TOO_LARGE"]
    assert set(refused.json()) == json_keys(gateway.templates["application/json"])
    assert refused.json()["type"] == "REQUEST_TOO_LARGE"
    assert receive_all(deployed, queue_url) == []


def test_events_reach_the_subscribers_through_the_bus(
    deployed: DeployedStack, front_door: FrontDoor, producer: requests.Session
) -> None:
    """POST /events puts the event on the bus named in the template; the bus's rules deliver it."""
    response = producer.post(front_door.base_url + "events", json=CANCELLED, timeout=10)
    assert response.status_code == 202
    bus = deployed.outputs["EventBusName"]
    events = deployed.emulator.client("events")
    delivered = []
    for rule in events.list_rules(EventBusName=bus)["Rules"]:
        pattern = json.loads(rule.get("EventPattern") or "{}")
        if "OrderCancelled" not in pattern.get("detail-type", []):
            continue
        for target in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]:
            queue_url = deployed.emulator.client("sqs").get_queue_url(
                QueueName=target["Arn"].rsplit(":", 1)[-1]
            )
            delivered += [json.loads(m["Body"]) for m in receive_all(deployed, queue_url["QueueUrl"])]
    assert delivered, "no rule routes OrderCancelled to a queue"
    source = deployed.synthesized.context["service"]["service_name"] + ".ingestion"
    for event in delivered:
        assert (event["source"], event["detail-type"], event["detail"]) == (
            source,
            "OrderCancelled",
            CANCELLED["detail"],
        )


@pytest.mark.parametrize(
    ("error_code", "status"),
    [
        # EventBridge's retryable per-entry codes: not stored for now, send the same event again later.
        ("ThrottlingException", 503),
        ("InternalFailure", 503),
        # Anything else is our misconfiguration, which a retry cannot fix.
        ("MalformedDetail", 502),
        ("AccessDeniedException", 502),
    ],
)
def test_an_event_the_bus_did_not_store_is_a_503_with_retry_after_only_when_it_may_be_retried(
    deployed: DeployedStack,
    front_door: FrontDoor,
    producer: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
    error_code: str,
    status: int,
) -> None:
    """PutEvents answers 200 with FailedEntryCount 1: the front door renders the template's answer to that."""

    def refusing(backend: EventsBackend, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"ErrorCode": error_code, "ErrorMessage": "refused by the test"} for _ in entries]

    monkeypatch.setattr(EventsBackend, "put_events", refusing)
    response = producer.post(front_door.base_url + "events", json=CANCELLED, timeout=10)
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["errorCode"], body["requestId"]) == (error_code, response.headers["x-amzn-RequestId"])
    if status == 503:
        seconds = deployed.synthesized.context["service"]["api"]["throttled_retry_after_seconds"]
        assert response.headers[api.RETRY_AFTER_HEADER] == str(seconds)
        assert body["message"] == ingestion_api.EVENT_RETRY_LATER_MESSAGE
    else:
        assert api.RETRY_AFTER_HEADER not in response.headers
        assert body["message"] == ingestion_api.EVENT_NOT_STORED_MESSAGE


def test_every_method_takes_signed_calls_only(deployed: DeployedStack, front_door: FrontDoor) -> None:
    """AWS_IAM on every method: unsigned is 403 Missing Authentication Token, a wrong signature 403 too."""
    queue_url = deployed.outputs["OrdersQueueUrl"]
    receive_all(deployed, queue_url)
    url = front_door.base_url + "orders"
    unsigned = requests.post(url, json=ORDER_BODY, headers=KEYED, timeout=10)
    assert unsigned.status_code == 403
    assert unsigned.json()["type"] == "MISSING_AUTHENTICATION_TOKEN"

    # A guessed secret, and the same for another service than execute-api.
    forged = Credentials("testing", "guessed-secret", "testing")
    for service in ("execute-api", "sqs"):
        auth = SigV4RequestAuth(service, deployed.emulator.region, lambda: forged)
        wrong = requests.post(url, json=ORDER_BODY, headers=KEYED, auth=auth, timeout=10)
        assert wrong.status_code == 403
        assert wrong.json()["type"] == "INVALID_SIGNATURE"
    status_read = requests.get(front_door.base_url + "orders/ord-1", timeout=10)
    assert status_read.status_code == 403
    assert receive_all(deployed, queue_url) == []
