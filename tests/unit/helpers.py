"""Helpers shared by the Lambda-side unit tests (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib
import json
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

from lambdas.contracts import circuit as circuit_record
from lambdas.shared.dependency_client import DependencyPolicy

REGION = "eu-west-1"
# Every DependencyPolicy variable (DEPENDENCY_*, BREAKER_*), valid, for the settings tests.
POLICY_ENV = {
    "DEPENDENCY_NAME": "partner",
    "DEPENDENCY_BASE_URL": "https://abc.lambda-url.eu-west-1.on.aws/",
    "DEPENDENCY_CRITICAL": "true",
    "DEPENDENCY_MAX_ATTEMPTS": "3",
    "DEPENDENCY_BASE_DELAY_MS": "100",
    "DEPENDENCY_MAX_DELAY_MS": "2000",
    "DEPENDENCY_ATTEMPT_TIMEOUT_MS": "3000",
    "DEPENDENCY_SAFETY_MARGIN_MS": "500",
    "DEPENDENCY_CONNECT_TIMEOUT_MS": "1000",
    "BREAKER_FAILURE_THRESHOLD": "5",
    "BREAKER_RECOVERY_SECONDS": "30",
    "BREAKER_SUCCESS_THRESHOLD": "2",
    "BREAKER_CACHE_SECONDS": "5",
}


def create_key_table(dynamodb: Any, name: str) -> None:
    """Table shaped like the CDK's: partition key ``id`` (string)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@dataclass
class BreakerTable:
    name: str
    client: Any

    def item(self, circuit: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.name, Key={"id": {"S": circuit}}, ConsistentRead=True)
        return response.get("Item")

    def state(self, circuit: str) -> str | None:
        item = self.item(circuit)
        return None if item is None else item["state"]["S"]

    def put(self, circuit: str, state: str, numbers: Mapping[str, int] | None = None) -> None:
        """Write the circuit's record as another environment (or the controller) would have; ``numbers``
        by their attribute names (lambdas.contracts.circuit)."""
        item: dict[str, Any] = {"id": {"S": circuit}, "state": {"S": state}}
        item.update({name: {"N": str(value)} for name, value in (numbers or {}).items()})
        self.client.put_item(TableName=self.name, Item=item)

    def fleet_failures(self, circuit: str) -> int | None:
        """The fleet's failure streak on the record (lambdas/shared/fleet_circuit.py); None: no streak."""
        streak = (self.item(circuit) or {}).get(circuit_record.RECORD_FLEET_FAILURES)
        return None if streak is None else int(streak["N"])


@dataclass
class ManualClock:
    """Seconds only the test moves (``clock.now += 0.5``); call it to read them."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class VirtualClock:
    """Real monotonic time plus virtual sleeps: HTTP latency is real, backoff sleeps cost no wall time."""

    offset: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, "negative sleep"
        self.sleeps.append(seconds)
        self.offset += seconds


def unique_name(prefix: str) -> str:
    # Powertools keeps per-circuit failure counters in module memory: a fresh name isolates each test.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_policy(base_url: str, **overrides: Any) -> DependencyPolicy:
    values: dict[str, Any] = {
        "name": unique_name("partner"),
        "base_url": base_url,
        "critical": True,
        "max_attempts": 3,
        "base_delay_ms": 100,
        "max_delay_ms": 1000,
        "attempt_timeout_ms": 2000,
        "safety_margin_ms": 100,
        "connect_timeout_ms": 200,
        "breaker_failure_threshold": 5,
        "breaker_recovery_seconds": 30,
        "breaker_success_threshold": 1,
        "breaker_cache_seconds": 5,
    }
    values.update(overrides)
    return DependencyPolicy(**values)


def breaker_caller_env(
    base_url: str, *, secret_arn: str | None, service: str, table: str = "circuits", **overrides: str
) -> dict[str, str]:
    """A ``BreakerCallerSettings`` environment (lambdas/shared/caller.py) for a test twin at ``base_url``:
    what DownstreamDependency.environment() + ServiceFunction give a caller. Fresh service and circuit names
    per call: Powertools keeps failure counters in module memory."""
    env = {
        "POWERTOOLS_SERVICE_NAME": unique_name(service),
        "CIRCUIT_BREAKER_TABLE_NAME": table,
        "DEPENDENCY_NAME": unique_name("partner"),
        "DEPENDENCY_BASE_URL": base_url,
        "DEPENDENCY_CRITICAL": "true",
        "DEPENDENCY_MAX_ATTEMPTS": "2",
        "DEPENDENCY_BASE_DELAY_MS": "1",
        "DEPENDENCY_MAX_DELAY_MS": "5",
        "DEPENDENCY_ATTEMPT_TIMEOUT_MS": "2000",
        "DEPENDENCY_SAFETY_MARGIN_MS": "100",
        "DEPENDENCY_CONNECT_TIMEOUT_MS": "200",
        "BREAKER_FAILURE_THRESHOLD": "5",
        "BREAKER_RECOVERY_SECONDS": "30",
        "BREAKER_SUCCESS_THRESHOLD": "1",
        "BREAKER_CACHE_SECONDS": "5",
    }
    if secret_arn is not None:
        env["DEPENDENCY_API_KEY_SECRET_ARN"] = secret_arn
    env.update(overrides)
    return env


def queue_consumer_env(
    base_url: str, *, secret_arn: str, dlq_url: str, service: str, **overrides: str
) -> dict[str, str]:
    """A ``QueueConsumerSettings`` environment (lambdas/shared/consumer_settings.py): a breaker caller's,
    plus the idempotency table ``idempotency``, the DLQ and the source queue's settings."""
    env = {
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
        "IDEMPOTENCY_TTL_SECONDS": "3600",
        "POISON_MESSAGE_QUEUE_URL": dlq_url,
        "QUEUE_VISIBILITY_TIMEOUT_SECONDS": "180",
        "QUEUE_MAX_RECEIVE_COUNT": "10",
        **overrides,
    }
    return breaker_caller_env(base_url, secret_arn=secret_arn, service=service, **env)


def count_secret_reads(monkeypatch: Any) -> list[str]:
    """The secret names of the reads that reach Secrets Manager from now on (the Parameters cache answers
    the others), appended as they happen."""
    reads: list[str] = []
    real_get = SecretsProvider._get

    def counting_get(provider: SecretsProvider, name: str, **kwargs: Any) -> Any:
        reads.append(name)
        return real_get(provider, name, **kwargs)

    monkeypatch.setattr(SecretsProvider, "_get", counting_get)
    return reads


def closed_port() -> int:
    """A localhost port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeLambdaContext:
    function_name: str = "order-consumer"
    function_version: str = "7"
    memory_limit_in_mb: int = 256
    remaining_ms: int = 30_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/order-consumer"
    log_stream_name: str = "2026/01/01/[7]abc"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}:live"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def import_fresh(module_name: str) -> ModuleType:
    """Import a handler module as a cold start would: module-level init runs again."""
    sys.modules.pop(module_name, None)
    return importlib.import_module(module_name)


def _json_objects(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` that is a JSON object."""
    documents = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents


def emf_records(output: str) -> list[dict[str, Any]]:
    """Every EMF blob printed to stdout."""
    return [document for document in _json_objects(output) if "_aws" in document]


def metric_points(output: str, name: str) -> list[dict[str, Any]]:
    """EMF blobs that carry metric ``name``, each with its dimension set under ``"_dimensions"``."""
    points = []
    for record in emf_records(output):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            if any(metric["Name"] == name for metric in directive["Metrics"]):
                points.append({**record, "_dimensions": set(directive["Dimensions"][0])})
    return points


def log_records(output: str) -> list[dict[str, Any]]:
    """Structured (JSON) log lines that are not EMF blobs."""
    return [
        document for document in _json_objects(output) if "_aws" not in document and "message" in document
    ]
