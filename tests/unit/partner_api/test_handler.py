"""The partner Lambda (Function URL payload 2.0) with its fault profile in SSM and API key in Secrets Manager."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest

from lambdas.contracts.api import REPLAYED_HEADER
from lambdas.shared.env import ConfigurationError
from tests.unit.helpers import REGION, FakeLambdaContext, import_fresh, unique_name

API_KEY = "pk_test_123"
PARAMETER = "/resilient-serverless/partner/fault-profile"
CHARGE = {"orderId": "ord-1", "amountCents": 1250, "currency": "EUR"}


@dataclass
class Partner:
    module: ModuleType
    ssm: Any

    def set_profile(self, profile: dict[str, Any] | str) -> None:
        value = profile if isinstance(profile, str) else json.dumps(profile)
        self.ssm.put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        return self.module.handler(
            url_event(method, path, body, headers), FakeLambdaContext(function_name="partner")
        )


def url_event(
    method: str, path: str, body: Any, headers: dict[str, str], base64_body: bool = False
) -> dict[str, Any]:
    raw = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    if raw is not None and base64_body:
        raw = base64.b64encode(raw.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.replace("_", "-").lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abc",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "test",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "body": raw,
        "isBase64Encoded": base64_body,
    }


def partner_env(monkeypatch: pytest.MonkeyPatch, profile_max_age: str | None = "0") -> Any:
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value="{}", Type="String")
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="partner-api-key", SecretString=API_KEY
    )
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", unique_name("partner"))
    monkeypatch.setenv("FAULT_PROFILE_PARAMETER", PARAMETER)
    monkeypatch.setenv("API_KEY_SECRET_ARN", secret["ARN"])
    if profile_max_age is None:
        monkeypatch.delenv("FAULT_PROFILE_MAX_AGE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("FAULT_PROFILE_MAX_AGE_SECONDS", profile_max_age)
    return ssm


@pytest.fixture
def partner(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Partner]:
    ssm = partner_env(monkeypatch)
    yield Partner(import_fresh("lambdas.partner_api.handler"), ssm)


def charge(partner: Partner, key: str = "idem-1", api_key: str = API_KEY, body: Any = None) -> dict[str, Any]:
    return partner.call(
        "POST", "/charges", CHARGE if body is None else body, x_api_key=api_key, idempotency_key=key
    )


def test_health(partner: Partner) -> None:
    response = partner.call("GET", "/health")
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


def test_bad_api_key_is_401(partner: Partner) -> None:
    assert charge(partner, api_key="wrong")["statusCode"] == 401
    assert partner.call("POST", "/charges", CHARGE, idempotency_key="k")["statusCode"] == 401


def test_bad_body_is_400(partner: Partner) -> None:
    assert charge(partner, body="{oops")["statusCode"] == 400
    assert (
        charge(partner, body={"orderId": "ord-1", "amountCents": -5, "currency": "EUR"})["statusCode"] == 400
    )
    assert (
        partner.call("POST", "/charges", CHARGE, x_api_key=API_KEY)["statusCode"] == 400
    )  # no Idempotency-Key


def test_charge_is_idempotent_by_key(partner: Partner) -> None:
    first, replay, other = charge(partner, "idem-1"), charge(partner, "idem-1"), charge(partner, "idem-2")

    assert first["statusCode"] == replay["statusCode"] == other["statusCode"] == 201
    assert json.loads(replay["body"])["chargeId"] == json.loads(first["body"])["chargeId"]
    assert json.loads(other["body"])["chargeId"] != json.loads(first["body"])["chargeId"]
    assert replay["headers"][REPLAYED_HEADER] == "true"


def test_base64_bodies_are_decoded(partner: Partner) -> None:
    event = url_event(
        "POST", "/charges", CHARGE, {"x-api-key": API_KEY, "idempotency-key": "b64"}, base64_body=True
    )
    assert partner.module.handler(event, FakeLambdaContext())["statusCode"] == 201


def test_faults_from_ssm_are_applied_at_run_time(partner: Partner) -> None:
    assert charge(partner)["statusCode"] == 201

    partner.set_profile({"error_rate": 1.0, "error_status": 502})
    assert charge(partner, "idem-2")["statusCode"] == 502
    assert partner.call("GET", "/health")["statusCode"] == 502

    partner.set_profile({"throttle_rate": 1.0, "retry_after_seconds": 3})
    throttled = charge(partner, "idem-3")
    assert throttled["statusCode"] == 429 and throttled["headers"]["Retry-After"] == "3"

    partner.set_profile({})
    assert charge(partner, "idem-4")["statusCode"] == 201


def test_latency_is_injected(partner: Partner) -> None:
    slept: list[float] = []
    module = partner.module
    app = module.PartnerApp(module.app.settings, module.logger, rng=random.Random(1), sleep=slept.append)
    partner.set_profile({"latency_ms": 250})

    response = app.handle(module.LambdaFunctionUrlEvent(url_event("GET", "/health", None, {})))

    assert response["statusCode"] == 200 and slept == [0.25]


def test_an_invalid_profile_keeps_the_last_good_one(partner: Partner) -> None:
    partner.set_profile({"error_rate": 1.0, "error_status": 503})
    assert partner.call("GET", "/health")["statusCode"] == 503

    partner.set_profile({"error_rate": 7})
    assert partner.call("GET", "/health")["statusCode"] == 503
    partner.set_profile("not json")
    assert partner.call("GET", "/health")["statusCode"] == 503


def test_the_profile_is_cached_for_its_max_age(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = partner_env(monkeypatch, profile_max_age=None)  # default: 5 s
    partner = Partner(import_fresh("lambdas.partner_api.handler"), ssm)
    assert partner.call("GET", "/health")["statusCode"] == 200

    partner.set_profile({"error_rate": 1.0})
    # Still healthy: SSM is not read on every request, only once the 5 s cache entry expires.
    assert partner.call("GET", "/health")["statusCode"] == 200


def test_missing_configuration_fails_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAULT_PROFILE_PARAMETER", raising=False)
    monkeypatch.setenv("API_KEY_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k")
    with pytest.raises(ConfigurationError, match="FAULT_PROFILE_PARAMETER"):
        import_fresh("lambdas.partner_api.handler")
