"""Calls to an IAM-authorized function URL: the client signs them, the local twin checks them as Lambda does."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdas.contracts.api import FUNCTION_URL_SERVICE, IDEMPOTENCY_KEY_HEADER
from lambdas.contracts.environment import DEPENDENCY_SIGNING_SERVICE
from lambdas.shared import aws
from lambdas.shared.dependency_client import (
    DependencyClient,
    DependencyPolicy,
    UpstreamConfigurationError,
    UpstreamError,
    create_session,
)
from lambdas.shared.request_signing import SigV4RequestAuth
from localcloud.fault_dependency import FaultDependency
from localcloud.sigv4 import Principal, SigV4Verifier
from tests.unit.helpers import POLICY_ENV, REGION, BreakerTable, make_policy

CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}
AUTH = SigV4Verifier(
    FUNCTION_URL_SERVICE, REGION, [Principal("testing", "testing", "testing", "123456789012")]
)


@pytest.fixture
def guarded_twin(breaker_table: BreakerTable) -> Iterator[FaultDependency]:
    """The twin checks against the credentials the environment's session holds (moto's, under mock_aws),
    as the local cloud's twins check against the ones the emulator gives the functions."""
    credentials = aws.session().get_credentials().get_frozen_credentials()
    functions = Principal(credentials.access_key, credentials.secret_key, credentials.token, "123456789012")
    auth = SigV4Verifier(FUNCTION_URL_SERVICE, REGION, [functions])
    with FaultDependency(seed=1, iam_auth=auth) as server:
        yield server


def client_for(twin: FaultDependency, table: BreakerTable, **policy: Any) -> DependencyClient:
    return DependencyClient(
        make_policy(twin.base_url, **policy),
        breaker_table_name=table.name,
        dynamodb_client=table.client,
        session=create_session(),
        rng=random.Random(1),
    )


def charge(client: DependencyClient) -> Any:
    return client.post(
        "/charges", json=CHARGE, headers={IDEMPOTENCY_KEY_HEADER: "key-1"}, remaining_ms=lambda: 10_000
    )


def test_a_signing_client_gets_through_and_an_unsigned_one_is_refused_before_the_partner(
    guarded_twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    signed = client_for(guarded_twin, breaker_table, signing_service=FUNCTION_URL_SERVICE)
    assert charge(signed).status == 201

    unsigned = client_for(guarded_twin, breaker_table, max_attempts=1)
    with pytest.raises(UpstreamConfigurationError):  # 403: our credentials, not the order, are wrong
        charge(unsigned)
    assert [call.status for call in guarded_twin.calls("/charges")] == [201, 403]
    assert guarded_twin.charges_by_order() == {"ord-1": 1}


def signed_request(
    *, region: str = REGION, service: str = FUNCTION_URL_SERVICE, secret: str = "testing"
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8080/charges",
        data=b'{"orderId": "ord-1"}',
        headers={"Content-Type": "application/json", IDEMPOTENCY_KEY_HEADER: "k"},
    )
    SigV4Auth(Credentials("testing", secret, "testing"), service, region).add_auth(request)
    return request


def refusal(request: AWSRequest, **changes: Any) -> str | None:
    headers = {"Host": "127.0.0.1:8080", **dict(request.headers.items())}
    return AUTH.refusal(
        changes.get("method", request.method),
        request.url,
        {**headers, **changes.get("headers", {})},
        changes.get("body", request.body),
    )


def test_the_twin_checks_the_signature_over_the_whole_request() -> None:
    assert refusal(signed_request()) is None
    assert "Authorization" in (refusal(signed_request(), headers={"Authorization": ""}) or "")
    assert "us-east-1" in (refusal(signed_request(region="us-east-1")) or "")
    assert "execute-api" in (refusal(signed_request(service="execute-api")) or "")
    assert "does not match" in (refusal(signed_request(secret="guessed")) or "")
    assert "does not match" in (refusal(signed_request(), body=b'{"orderId": "ord-2"}') or "")
    assert "does not match" in (refusal(signed_request(), headers={IDEMPOTENCY_KEY_HEADER: "other"}) or "")


def test_the_signing_service_is_optional_configuration() -> None:
    # Every required variable, valid (a "1" for each no longer is: a 1 ms attempt timeout is refused).
    environment = {name: POLICY_ENV[name] for name in DependencyPolicy.REQUIRED.values()} | {
        "DEPENDENCY_NAME": "partner",
        "DEPENDENCY_BASE_URL": "https://partner.example",
        "DEPENDENCY_CRITICAL": "true",
    }
    assert DependencyPolicy.from_environment(environment).signing_service is None
    signed = DependencyPolicy.from_environment(
        environment | {DEPENDENCY_SIGNING_SERVICE: FUNCTION_URL_SERVICE}
    )
    assert signed.signing_service == FUNCTION_URL_SERVICE


def test_requests_without_credentials_go_unsigned() -> None:
    prepared = requests.Request("POST", "https://x.example/charges", json=CHARGE).prepare()
    assert (
        "Authorization" not in SigV4RequestAuth(FUNCTION_URL_SERVICE, REGION, lambda: None)(prepared).headers
    )


def test_the_client_without_a_breaker_signs_too(guarded_twin: FaultDependency) -> None:
    """The controller's probe (no breaker of its own) reaches the twin through the same URL auth."""
    signed = DependencyClient(
        make_policy(guarded_twin.base_url, signing_service=FUNCTION_URL_SERVICE),
        external_circuit="controller:OPEN",
        logger=logging.getLogger(),
    )
    response = signed.post(
        "/charges", json=CHARGE, headers={IDEMPOTENCY_KEY_HEADER: "key-2"}, remaining_ms=lambda: 10_000
    )
    assert response.status == 201
    unsigned = DependencyClient(
        make_policy(guarded_twin.base_url), external_circuit="controller:OPEN", logger=logging.getLogger()
    )
    with pytest.raises(UpstreamError):
        unsigned.get("/health", remaining_ms=lambda: 10_000)
    assert [call.status for call in guarded_twin.calls()] == [201, 403]
