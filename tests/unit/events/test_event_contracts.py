"""The event contracts: one definition, and the gateway schema and the consumers agree on it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lambdas.shared import events as contracts
from lambdas.shared.events import (
    BY_DETAIL_TYPE,
    CONTRACTS,
    CustomerUpdated,
    InvalidEventError,
    OrderCancelled,
    PaymentReceived,
    parse_event,
    publish_request,
)
from schemas import EVENT, load_schema
from stacks import event_contracts
from stacks.config import ConfigError, ServiceConfig
from tests.conftest import cdk_context

SOURCE = "resilient-orders.ingestion"

VALID: dict[str, dict[str, Any]] = {
    "OrderCancelled": {
        "orderId": "ord-123",
        "customerId": "cust_9",
        "reason": "customer_request",
        "cancelledAt": "2026-11-25T09:30:00Z",
    },
    "PaymentReceived": {
        "paymentId": "pay-77",
        "orderId": "ord-123",
        "amountCents": 4999,
        "currency": "EUR",
        "method": "card",
        "receivedAt": "2026-11-25T09:31:02.125Z",
    },
    "CustomerUpdated": {"customerId": "cust_9", "email": "ada@example.com", "marketingOptIn": False},
}

# (detail type, path, value or ... to delete): mistakes producers really make.
MUTATIONS: list[tuple[str, str, Any]] = [
    ("OrderCancelled", "reason", "changed_mind"),
    ("OrderCancelled", "reason", ...),
    ("OrderCancelled", "cancelledAt", "2026-11-25 09:30:00"),
    ("OrderCancelled", "cancelledAt", "2026-11-25T09:30:00+01:00"),
    ("OrderCancelled", "orderId", ""),
    ("OrderCancelled", "orderId", "o" * 65),
    ("OrderCancelled", "orderId", "ord 123"),
    ("OrderCancelled", "orderId", 123),
    ("OrderCancelled", "refund", True),
    ("PaymentReceived", "amountCents", 0),
    ("PaymentReceived", "amountCents", 49.99),
    ("PaymentReceived", "amountCents", "4999"),
    ("PaymentReceived", "amountCents", True),
    ("PaymentReceived", "amountCents", 4999.0),
    ("PaymentReceived", "amountCents", 100_000_001),
    ("PaymentReceived", "currency", "eur"),
    ("PaymentReceived", "method", "cash"),
    ("PaymentReceived", "paymentId", ...),
    ("CustomerUpdated", "email", "not-an-email"),
    ("CustomerUpdated", "email", None),
    ("CustomerUpdated", "email", "a@b.c" + "x" * 250),
    ("CustomerUpdated", "displayName", ""),
    ("CustomerUpdated", "marketingOptIn", "yes"),
    ("CustomerUpdated", "marketingOptIn", 1),
    ("CustomerUpdated", "customerId", ...),
    ("CustomerUpdated", "password", "hunter2"),
]


def _mutated(detail_type: str, key: str, value: Any) -> dict[str, Any]:
    detail = copy.deepcopy(VALID[detail_type])
    if value is ...:
        detail.pop(key)
    else:
        detail[key] = value
    return detail


def _gateway_accepts(body: Any) -> bool:
    return jsonschema.Draft4Validator(load_schema(EVENT)).is_valid(body)


def _envelope(detail_type: str, detail: Any, **extra: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": SOURCE,
        "account": "111122223333",
        "time": "2026-11-25T09:31:03Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
        **extra,
    }


# -- one definition -----------------------------------------------------------------------------


def test_contracts_are_unique_and_all_come_from_the_ingestion_source() -> None:
    assert len(BY_DETAIL_TYPE) == len(CONTRACTS) >= 2
    assert len({c.detail for c in CONTRACTS}) == len(CONTRACTS)
    config = ServiceConfig.from_context(cdk_context()["service"], cdk_context()["stages"], "dev")
    for contract in CONTRACTS:
        # The source a consumer expects is the one the gateway stamps.
        assert contract.source(config.service_name) == config.event_source == SOURCE
        for key in contract.key_fields:
            assert key in contract.detail.model_fields and contract.detail.model_fields[key].is_required()


def test_the_committed_gateway_schema_is_generated_from_the_contracts() -> None:
    assert load_schema(EVENT) == event_contracts.request_schema(), (
        "schemas/event.schema.json is stale: run .venv/bin/python -m stacks.event_contracts"
    )
    assert event_contracts.main(["--check"]) == 0


def test_the_gateway_schema_is_draft4_and_dispatches_on_detail_type() -> None:
    schema = load_schema(EVENT)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["properties"]["detailType"]["enum"] == list(BY_DETAIL_TYPE)
    branches = [b["properties"]["detailType"]["enum"] for b in schema["oneOf"]]
    assert branches == [[t] for t in BY_DETAIL_TYPE]
    # No keyword API Gateway's draft-04 validator would not know.
    text = json.dumps(schema)
    for keyword in ('"$ref"', '"$defs"', '"const"', '"if"', '"anyOf"', '"format"', '"title": "Orderid"'):
        assert keyword not in text


@pytest.mark.parametrize("detail_type", list(VALID))
def test_a_valid_event_of_each_type_is_accepted_by_both_sides(detail_type: str) -> None:
    body = {"detailType": detail_type, "detail": VALID[detail_type]}
    assert _gateway_accepts(body)
    received = parse_event(_envelope(detail_type, VALID[detail_type]), source=SOURCE)
    assert received.contract is BY_DETAIL_TYPE[detail_type]
    assert isinstance(received.detail, BY_DETAIL_TYPE[detail_type].detail)


@pytest.mark.parametrize(("detail_type", "key", "value"), MUTATIONS)
def test_gateway_and_consumer_reject_the_same_malformed_details(
    detail_type: str, key: str, value: Any
) -> None:
    detail = _mutated(detail_type, key, value)
    assert not _gateway_accepts({"detailType": detail_type, "detail": detail})
    with pytest.raises(InvalidEventError, match=f"{detail_type} detail is invalid"):
        parse_event(_envelope(detail_type, detail), source=SOURCE)


def test_optional_fields_may_be_omitted_on_both_sides() -> None:
    thin = {"customerId": "cust_9"}
    assert _gateway_accepts({"detailType": "CustomerUpdated", "detail": thin})
    assert parse_event(_envelope("CustomerUpdated", thin), source=SOURCE).detail == CustomerUpdated(
        customerId="cust_9"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"detailType": "OrderShipped", "detail": {"orderId": "ord-1"}},
        {"detailType": "PaymentReceived", "detail": VALID["OrderCancelled"]},
        {"detailType": "OrderCancelled", "detail": VALID["OrderCancelled"], "source": "aws.ec2"},
        {"detailType": "OrderCancelled"},
    ],
)
def test_the_gateway_rejects_unknown_types_crossed_details_and_forged_sources(body: dict[str, Any]) -> None:
    assert not _gateway_accepts(body)


def test_publish_request_is_what_the_gateway_accepts() -> None:
    detail = PaymentReceived.model_validate(VALID["PaymentReceived"])
    body = publish_request(detail)
    assert body == {"detailType": "PaymentReceived", "detail": VALID["PaymentReceived"]}
    assert _gateway_accepts(body)
    thin = publish_request(CustomerUpdated(customerId="cust_9"))
    assert thin["detail"] == {"customerId": "cust_9"} and _gateway_accepts(thin)


# -- the consumer side --------------------------------------------------------------------------


def test_parse_event_reads_an_sqs_message_body() -> None:
    body = json.dumps(_envelope("OrderCancelled", VALID["OrderCancelled"], **{"new-envelope-field": 1}))
    received = parse_event(body, source=SOURCE)
    assert received.detail == OrderCancelled(**VALID["OrderCancelled"])
    assert received.envelope.detail_type == "OrderCancelled"
    assert not received.is_replay
    assert received.idempotency_key == "OrderCancelled:ord-123"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _envelope("OrderCancelled", VALID["OrderCancelled"], source="resilient-orders.fulfilment"),
            "source",
        ),
        (_envelope("OrderShipped", {"orderId": "ord-1"}), "unknown detail-type"),
        ({"detail-type": "OrderCancelled"}, "not an EventBridge event"),
        ("{not json", "not an EventBridge event"),
    ],
)
def test_parse_event_refuses_what_no_rule_should_have_delivered(body: Any, message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        parse_event(body, source=SOURCE)


def test_idempotency_keys_deduplicate_redeliveries_but_not_replays() -> None:
    live = parse_event(_envelope("PaymentReceived", VALID["PaymentReceived"]), source=SOURCE)
    redelivered = parse_event(
        _envelope("PaymentReceived", VALID["PaymentReceived"], id="another-delivery"), source=SOURCE
    )
    replayed = parse_event(
        _envelope("PaymentReceived", VALID["PaymentReceived"], **{"replay-name": "fix-ledger-1"}),
        source=SOURCE,
    )
    assert live.idempotency_key == redelivered.idempotency_key == "PaymentReceived:pay-77"
    assert replayed.is_replay
    assert replayed.idempotency_key == "PaymentReceived:pay-77#replay:fix-ledger-1"
    # Without a business key (CustomerUpdated) the EventBridge event id identifies the event.
    update = parse_event(_envelope("CustomerUpdated", VALID["CustomerUpdated"]), source=SOURCE)
    assert update.idempotency_key == "CustomerUpdated:6a7e8feb-b491-4cf7-a9f1-bf3703467718"


def test_the_business_key_is_the_same_for_a_replay_and_needs_every_key_field() -> None:
    contract = contracts.contract_for(PaymentReceived)
    live = parse_event(_envelope("PaymentReceived", VALID["PaymentReceived"]), source=SOURCE)
    replayed = parse_event(
        _envelope("PaymentReceived", VALID["PaymentReceived"], **{"replay-name": "fix-ledger-1"}),
        source=SOURCE,
    )

    assert (
        contract.business_key(live.detail)
        == contract.business_key(replayed.detail)
        == "PaymentReceived:pay-77"
    )
    with pytest.raises(ValueError, match="paymentId"):
        contract.business_key(object())
    with pytest.raises(ValueError, match="no key fields"):
        contracts.contract_for(CustomerUpdated).business_key(VALID["CustomerUpdated"])


# -- the generator and the config ---------------------------------------------------------------


def test_the_generator_refuses_constructs_draft4_cannot_express() -> None:
    with pytest.raises(event_contracts.UnsupportedSchemaError, match=re.escape("only 'X | None'")):
        event_contracts._to_draft4({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {}, "x")
    with pytest.raises(event_contracts.UnsupportedSchemaError, match="'if'"):
        event_contracts._to_draft4({"if": {}}, {}, "x")
    assert event_contracts._to_draft4({"exclusiveMinimum": 0, "const": "a"}, {}, "x") == {
        "minimum": 0,
        "exclusiveMinimum": True,
        "enum": ["a"],
    }


def test_event_pattern_only_takes_contract_detail_types() -> None:
    assert event_contracts.event_pattern(SOURCE, ["PaymentReceived", "PaymentReceived"]) == {
        "source": [SOURCE],
        "detail-type": ["PaymentReceived"],
    }
    with pytest.raises(ValueError, match="OrderShipped"):
        event_contracts.event_pattern(SOURCE, ["OrderShipped"])


@pytest.mark.parametrize(
    ("subscriptions", "message"),
    [
        ({"ledger": ["OrderShipped"]}, "subscriptions.ledger"),
        ({"ledger": []}, "subscriptions.ledger"),
        ({"ledger": ["PaymentReceived", "PaymentReceived"]}, "subscriptions.ledger"),
        ({"Ledger": ["PaymentReceived"]}, "subscriptions.Ledger"),
    ],
)
def test_bad_subscriptions_fail_with_the_key(subscriptions: dict[str, list[str]], message: str) -> None:
    context = cdk_context()
    context["service"]["events"]["subscriptions"] = subscriptions
    with pytest.raises(ConfigError, match=message):
        ServiceConfig.from_context(context["service"], context["stages"], "dev")


def test_the_module_depends_on_pydantic_only() -> None:
    # Consumers import it inside Lambda, where only lambdas/ and the layer exist.
    lines = Path(contracts.__file__).read_text().splitlines()
    imported = {line.split()[1] for line in lines if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "json", "collections.abc", "dataclasses", "typing", "pydantic"} | {
        "lambdas.shared.models",
        "lambdas.contracts.events",  # the detail-type names, pure (stdlib only)
    }
