"""POST /shipments and POST /notifications: validated, idempotent by Idempotency-Key, on every partner."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from lambdas.partner_api.faults import FaultDecision
from lambdas.partner_api.service import PartnerService
from localcloud.fault_dependency import FaultDependency
from tests.unit.helpers import import_fresh
from tests.unit.partner_api.test_handler import API_KEY, Partner, partner_env

KEY = "secret-key"
SHIPMENT = {"orderId": "ord-1", "chargeId": "ch_1", "customerId": "cust-1"}
NOTIFICATION = {"orderId": "ord-1", "template": "order_shipped", "shipmentId": "sh_1"}
ROUTES = [("/shipments", SHIPMENT, "shipmentId"), ("/notifications", NOTIFICATION, "notificationId")]


def headers(idempotency_key: str | None = "idem-1", api_key: str | None = KEY) -> dict[str, str]:
    result = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        result[IDEMPOTENCY_KEY_HEADER] = idempotency_key
    if api_key is not None:
        result["x-api-key"] = api_key
    return result


@pytest.fixture
def service() -> PartnerService:
    return PartnerService()


@pytest.fixture
def partner(aws: None, monkeypatch: pytest.MonkeyPatch) -> Partner:
    ssm = partner_env(monkeypatch)
    return Partner(import_fresh("lambdas.partner_api.handler"), ssm)


def test_a_shipment_is_created_once_per_key(service: PartnerService) -> None:
    first = service.handle("POST", "/shipments", headers(), json.dumps(SHIPMENT), KEY)
    again = service.handle("POST", "/shipments", headers(), json.dumps(SHIPMENT).encode(), KEY)
    other = service.handle("POST", "/shipments", headers("idem-2"), json.dumps(SHIPMENT), KEY)

    assert first.response.status == 201 and not first.replayed
    assert first.response.body["orderId"] == "ord-1" and first.response.body["chargeId"] == "ch_1"
    assert first.response.body["status"] == "created"
    assert first.shipment is not None and first.shipment.shipmentId == first.response.body["shipmentId"]
    assert again.replayed and again.response.body == first.response.body
    assert again.response.headers[REPLAYED_HEADER] == "true"
    assert other.response.body["shipmentId"] != first.response.body["shipmentId"]
    assert len(service.shipments) == 2
    assert len(service.ledger) == 0  # no charge happened


def test_a_notification_is_sent_once_per_key(service: PartnerService) -> None:
    first = service.handle("POST", "/notifications", headers(), json.dumps(NOTIFICATION), KEY)
    again = service.handle("POST", "/notifications", headers(), json.dumps(NOTIFICATION), KEY)

    assert first.response.status == 201
    assert first.response.body["status"] == "queued" and first.response.body["template"] == "order_shipped"
    assert again.replayed and again.response.body["notificationId"] == first.response.body["notificationId"]
    assert len(service.notifications) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"template": "order_shipped", "orderId": "ord-1", "shipmentId": "sh_1", "customerId": "c-1"},
        {"template": "order_cancelled", "orderId": "ord-1", "customerId": "c-1"},
        {"template": "customer_updated", "customerId": "c-1"},
    ],
)
def test_every_template_with_its_fields_is_accepted(service: PartnerService, body: dict[str, Any]) -> None:
    result = service.handle("POST", "/notifications", headers(), json.dumps(body), KEY)

    assert result.response.status == 201
    assert result.response.body["template"] == body["template"]
    assert result.response.body.get("orderId") == body.get("orderId")


def test_each_route_has_its_own_ledger(service: PartnerService) -> None:
    charge = {"orderId": "ord-1", "amountCents": 100, "currency": "EUR"}
    assert service.handle("POST", "/charges", headers("same"), json.dumps(charge), KEY).response.status == 201
    assert (
        service.handle("POST", "/shipments", headers("same"), json.dumps(SHIPMENT), KEY).response.status
        == 201
    )
    assert (len(service.ledger), len(service.shipments)) == (1, 1)


@pytest.mark.parametrize(("path", "body", "_id"), ROUTES)
def test_a_reused_key_with_a_different_body_conflicts(
    service: PartnerService, path: str, body: dict[str, Any], _id: str
) -> None:
    assert service.handle("POST", path, headers(), json.dumps(body), KEY).response.status == 201
    changed = {**body, "orderId": "ord-2"}

    result = service.handle("POST", path, headers(), json.dumps(changed), KEY)

    assert (result.response.status, result.response.body["error"]) == (409, "idempotency_conflict")


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/shipments", {"orderId": "ord-1"}, 400, "invalid_request"),  # no chargeId
        ("/shipments", {**SHIPMENT, "extra": 1}, 400, "invalid_request"),
        ("/shipments", {**SHIPMENT, "orderId": "bad id!"}, 400, "invalid_request"),
        ("/shipments", {**SHIPMENT, "chargeId": ""}, 400, "invalid_request"),
        ("/notifications", {**NOTIFICATION, "template": "spam"}, 400, "invalid_request"),
        ("/notifications", {"orderId": "ord-1", "template": "order_shipped"}, 400, "invalid_request"),
        ("/notifications", "{not json", 400, "invalid_request"),
        ("/notifications", {"template": "order_cancelled", "orderId": "ord-1"}, 400, "invalid_request"),
        (
            "/notifications",
            {"template": "customer_updated", "customerId": "c-1", "shipmentId": "s"},
            400,
            "invalid_request",
        ),
    ],
)
def test_invalid_bodies_are_400(
    service: PartnerService, path: str, body: Any, status: int, error: str
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    result = service.handle("POST", path, headers(), raw, KEY)
    assert (result.response.status, result.response.body["error"]) == (status, error)
    assert len(service.shipments) == len(service.notifications) == 0


@pytest.mark.parametrize(("path", "body", "_id"), ROUTES)
def test_key_and_api_key_are_required(service: PartnerService, path: str, body: Any, _id: str) -> None:
    raw = json.dumps(body)
    assert service.handle("POST", path, headers(idempotency_key=None), raw, KEY).response.status == 400
    assert service.handle("POST", path, headers(api_key="wrong"), raw, KEY).response.status == 401
    assert service.handle("GET", path, headers(), None, KEY).response.status == 405


@pytest.mark.parametrize(("path", "body", "id_field"), ROUTES)
def test_the_local_twin_serves_the_routes_with_the_same_faults(path: str, body: Any, id_field: str) -> None:
    with FaultDependency(api_key=KEY, seed=1) as twin:
        twin.enqueue(FaultDecision.error(503))
        url = twin.base_url + path
        faulted = requests.post(url, json=body, headers=headers(), timeout=5)
        first = requests.post(url, json=body, headers=headers(), timeout=5)
        replay = requests.post(url, json=body, headers=headers(), timeout=5)

    assert faulted.status_code == 503  # the fault profile applies before routing, as for /charges
    assert first.status_code == 201 and first.json()[id_field]
    assert replay.json()[id_field] == first.json()[id_field]
    assert replay.headers[REPLAYED_HEADER] == "true"


@pytest.mark.parametrize(("path", "body", "id_field"), ROUTES)
def test_the_lambda_partner_serves_the_routes(partner: Partner, path: str, body: Any, id_field: str) -> None:
    first = partner.call("POST", path, body, x_api_key=API_KEY, idempotency_key="k-1")
    replay = partner.call("POST", path, body, x_api_key=API_KEY, idempotency_key="k-1")

    assert first["statusCode"] == 201
    assert json.loads(replay["body"])[id_field] == json.loads(first["body"])[id_field]
    assert replay["headers"][REPLAYED_HEADER] == "true"
