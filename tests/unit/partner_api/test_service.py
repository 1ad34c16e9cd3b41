"""PartnerService: the route contract shared by the Lambda partner and the local twin."""

from __future__ import annotations

import json

import pytest

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from lambdas.partner_api.service import PartnerService

KEY = "secret-key"
CHARGE = json.dumps({"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"})


def headers(idempotency_key: str | None = "idem-1", api_key: str | None = KEY) -> dict[str, str]:
    result = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        result[IDEMPOTENCY_KEY_HEADER] = idempotency_key
    if api_key is not None:
        result["X-Api-Key"] = api_key  # header names are case-insensitive
    return result


@pytest.fixture
def service() -> PartnerService:
    return PartnerService()


def test_health(service: PartnerService) -> None:
    result = service.handle("GET", "/health", {}, None, KEY)
    assert (result.response.status, result.response.body) == (200, {"status": "ok"})


def test_a_charge_is_created_and_replayed_for_the_same_key(service: PartnerService) -> None:
    first = service.handle("POST", "/charges", headers(), CHARGE, KEY)
    again = service.handle("POST", "/charges", headers(), CHARGE.encode(), KEY)
    other = service.handle("POST", "/charges", headers("idem-2"), CHARGE, KEY)

    assert first.response.status == 201 and not first.replayed
    assert first.response.body["orderId"] == "ord-1" and first.response.body["status"] == "succeeded"
    assert again.response.body == first.response.body and again.replayed
    assert again.response.headers[REPLAYED_HEADER] == "true"
    assert REPLAYED_HEADER not in first.response.headers
    assert other.response.body["chargeId"] != first.response.body["chargeId"]
    assert len(service.ledger) == 2


def test_a_reused_key_with_a_different_body_conflicts(service: PartnerService) -> None:
    service.handle("POST", "/charges", headers(), CHARGE, KEY)
    changed = CHARGE.replace("1250", "9999")
    result = service.handle("POST", "/charges", headers(), changed, KEY)
    assert result.response.status == 409 and result.charge is None


@pytest.mark.parametrize(
    ("request_headers", "body", "status", "error"),
    [
        (headers(api_key=None), CHARGE, 401, "unauthorized"),
        (headers(api_key="wrong"), CHARGE, 401, "unauthorized"),
        (headers(idempotency_key=None), CHARGE, 400, "invalid_idempotency_key"),
        (headers(idempotency_key="k" * 256), CHARGE, 400, "invalid_idempotency_key"),
        (headers(), "{not json", 400, "invalid_request"),
        (headers(), json.dumps({"orderId": "ord-1"}), 400, "invalid_request"),
        (
            headers(),
            json.dumps({"orderId": "ord-1", "amountCents": 1, "currency": "EUR", "x": 1}),
            400,
            "invalid_request",
        ),
        (headers(), None, 400, "invalid_request"),
    ],
)
def test_bad_requests(
    service: PartnerService, request_headers: dict[str, str], body: str | None, status: int, error: str
) -> None:
    result = service.handle("POST", "/charges", request_headers, body, KEY)
    assert (result.response.status, result.response.body["error"]) == (status, error)
    assert len(service.ledger) == 0


def test_unknown_routes_and_methods(service: PartnerService) -> None:
    assert service.handle("GET", "/nope", {}, None, KEY).response.status == 404
    assert service.handle("GET", "/charges", headers(), None, KEY).response.status == 405
    assert service.handle("POST", "/health", {}, None, KEY).response.status == 405


def test_no_api_key_configured_means_no_authentication(service: PartnerService) -> None:
    assert service.handle("POST", "/charges", headers(api_key=None), CHARGE, None).response.status == 201


def dry_run(**kwargs: str | None) -> dict[str, str]:
    return {**headers(**kwargs), "Dry-Run": "true"}  # type: ignore[arg-type]


def test_a_dry_run_charge_is_checked_like_a_real_one_but_creates_nothing(service: PartnerService) -> None:
    result = service.handle("POST", "/charges", dry_run(idempotency_key="canary-partner"), CHARGE, KEY)

    assert (result.response.status, result.response.body) == (200, {"dryRun": True, "route": "/charges"})
    assert result.response.headers["Dry-Run"] == "true"
    assert result.charge is None and len(service.ledger) == 0
    # Not even the key is taken: a real call with it later is a first call, not a replay or a conflict.
    real = service.handle("POST", "/charges", headers("canary-partner"), CHARGE.replace("1250", "99"), KEY)
    assert real.response.status == 201 and not real.replayed and len(service.ledger) == 1


@pytest.mark.parametrize(
    ("request_headers", "body", "status"),
    [
        (dry_run(api_key="wrong"), CHARGE, 401),
        (dry_run(idempotency_key=None), CHARGE, 400),
        (dry_run(), '{"orderId": "ord-1"}', 400),
    ],
)
def test_a_dry_run_fails_where_the_real_call_would(
    service: PartnerService, request_headers: dict[str, str], body: str, status: int
) -> None:
    assert service.handle("POST", "/charges", request_headers, body, KEY).response.status == status
    assert len(service.ledger) == 0


@pytest.mark.parametrize("path", ["/shipments", "/notifications"])
def test_every_post_route_has_a_dry_run(service: PartnerService, path: str) -> None:
    body = (
        {"orderId": "ord-1", "chargeId": "ch_1"}
        if path == "/shipments"
        else {"template": "customer_updated", "customerId": "c-1"}
    )
    result = service.handle("POST", path, dry_run(), json.dumps(body), KEY)

    assert result.response.status == 200 and result.response.body["dryRun"] is True
    assert len(service.shipments) == 0 and len(service.notifications) == 0
