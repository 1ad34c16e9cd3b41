"""GET /orders/{id} (lambdas/order_status/handler.py): 400/404/200, load shedding with Retry-After, and the
time budget held against a dependency that does not answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig, circuit_breaker
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence

from lambdas.shared.models import IDENTIFIER_PATTERN
from lambdas.shared.order_status import OrderStatusRepository
from ops.cli import main as ops_main
from schemas import ORDER, load_schema
from tests.unit.helpers import REGION, FakeLambdaContext, create_key_table, import_fresh, unique_name
from tests.unit.order_status.test_repository import create_status_table

HANDLER = "lambdas.order_status.handler"
RECOVERY_SECONDS = 30


def get(order_id: str | None) -> dict[str, Any]:
    """An API Gateway REST proxy-integration event for GET /orders/{id}."""
    return {
        "resource": "/orders/{id}",
        "path": f"/orders/{order_id}",
        "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "pathParameters": None if order_id is None else {"id": order_id},
        "requestContext": {"requestId": "req-1", "stage": "dev"},
        "body": None,
    }


@dataclass
class StatusApi:
    module: ModuleType
    repo: OrderStatusRepository
    sqs: Any
    queue_url: str
    circuit: str

    def call(self, order_id: str | None, remaining_ms: int = 10_000) -> dict[str, Any]:
        return self.module.handler(get(order_id), FakeLambdaContext(remaining_ms=remaining_ms))  # type: ignore[no-any-return]

    def breaker_store(self) -> CircuitBreakerDynamoDBPersistence:
        return CircuitBreakerDynamoDBPersistence(
            table_name="circuits", boto3_client=boto3.client("dynamodb", region_name=REGION)
        )


ApiFactory = Callable[..., StatusApi]


@pytest.fixture
def make_api(aws: None, monkeypatch: pytest.MonkeyPatch) -> ApiFactory:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_status_table(dynamodb)
    create_key_table(dynamodb, "circuits")
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]

    def factory(**env_overrides: str) -> StatusApi:
        circuit = unique_name("partner")
        env = {
            "POWERTOOLS_SERVICE_NAME": "order-status",
            "ORDER_STATUS_TABLE_NAME": "order-status",
            "CIRCUIT_BREAKER_TABLE_NAME": "circuits",
            "DEPENDENCY_NAME": circuit,
            "BREAKER_RECOVERY_SECONDS": str(RECOVERY_SECONDS),
            "ORDER_QUEUE_URL": queue_url,
            "ORDER_QUEUE_BACKLOG_THRESHOLD": "5",
            "SHED_RETRY_AFTER_SECONDS": "45",
            **env_overrides,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return StatusApi(
            module=import_fresh(HANDLER),
            repo=OrderStatusRepository("order-status", dynamodb),
            sqs=sqs,
            queue_url=queue_url,
            circuit=circuit,
        )

    return factory


def body(response: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response["body"])
    return document


# ---------------------------------------------------------------------------------------------- 400/404/200


def test_the_id_rule_is_the_order_schemas() -> None:
    order_id = load_schema(ORDER)["properties"]["orderId"]
    assert order_id["pattern"] == IDENTIFIER_PATTERN
    assert (order_id["minLength"], order_id["maxLength"]) == (1, 64)


@pytest.mark.parametrize("bad", [None, "", "a b", "ord/1", "../etc", "x" * 65, "ord-1;drop", "ördér"])
def test_malformed_ids_are_400(make_api: ApiFactory, bad: str | None) -> None:
    api = make_api()

    response = api.call(bad)

    assert response["statusCode"] == 400
    assert "order id must be" in body(response)["message"]


def test_unknown_orders_are_404(make_api: ApiFactory) -> None:
    response = make_api().call("x" * 64)  # the longest valid id

    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/json"
    # Not "no such order": the queue may still hold an accepted one (storage-first), and the caller is told.
    message = body(response)["message"]
    assert "x" * 64 in message and "once its consumer has received it" in message


def test_a_known_order_is_200_with_its_status(make_api: ApiFactory) -> None:
    api = make_api()
    api.repo.accepted("ord-1")
    api.repo.processing("ord-1")
    api.repo.done("ord-1", "ch_1")
    api.repo.failed("ord-2", "rejected_by_dependency", "partner answered 401")

    done, failed = api.call("ord-1"), api.call("ord-2")

    assert done["statusCode"] == 200 and done["headers"]["Cache-Control"] == "no-store"
    assert body(done)["status"] == "done" and body(done)["chargeId"] == "ch_1" and body(done)["attempts"] == 1
    assert body(failed) | {"updatedAt": "", "acceptedAt": ""} == {
        "orderId": "ord-2",
        "status": "failed",
        "reason": "rejected_by_dependency",
        "detail": "partner answered 401",
        "attempts": 0,
        "updatedAt": "",
        "acceptedAt": "",
    }


# ---------------------------------------------------------------------------------------------- shedding


def test_an_open_circuit_sheds_with_retry_after_until_the_probe(make_api: ApiFactory) -> None:
    api = make_api()
    api.repo.accepted("ord-1")
    # A real Powertools breaker on the circuit table trips, as the consumer's would.
    store = api.breaker_store()

    @circuit_breaker(
        name=api.circuit,
        persistence_store=store,
        config=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=RECOVERY_SECONDS),
    )
    def charge() -> None:
        raise ConnectionError("partner down")

    with pytest.raises(ConnectionError):
        charge()

    started = time.monotonic()
    response = api.call("ord-1")

    assert time.monotonic() - started < 1.0  # fast: no status read, no waiting
    assert response["statusCode"] == 503
    retry_after = int(response["headers"]["Retry-After"])
    assert RECOVERY_SECONDS - 5 <= retry_after <= RECOVERY_SECONDS
    assert body(response) == {
        "message": "orders are not being processed right now; retry after the given seconds",
        "reason": "circuit_open",
        "retryAfterSeconds": retry_after,
    }


def test_retry_after_counts_down_to_the_probe(make_api: ApiFactory) -> None:
    api = make_api()
    now = 1_767_225_600.0
    api.module.shedder.wall_clock = lambda: now
    api.module.shedder.rand = lambda: 0.0  # no jitter
    api.breaker_store().save_open(api.circuit, failure_count=5, opened_at=int(now) - 20)

    response = api.call("ord-1")

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "10"  # opened 20 s ago, recovery 30 s


def test_a_circuit_open_past_its_window_is_told_the_next_probe_not_a_past_one(make_api: ApiFactory) -> None:
    """Found running the demo: once opened_at + recovery had passed, every answer said 1-2 s while the
    circuit stayed open for many seconds more (the controller probes once per window)."""
    api = make_api()
    now = 1_767_225_600.0
    api.module.shedder.wall_clock = lambda: now
    api.module.shedder.rand = lambda: 0.0
    api.breaker_store().save_open(api.circuit, failure_count=5, opened_at=int(now) - 45)

    assert api.call("ord-1")["headers"]["Retry-After"] == "15"  # the probe due at 60 s, recovery 30 s


@pytest.mark.parametrize(("opened_ago", "rand", "advice"), [(20, 1.0, "12"), (20, 0.5, "11"), (0, 1.0, "30")])
def test_retry_after_is_spread_by_jitter_but_never_past_the_recovery_window(
    make_api: ApiFactory, opened_ago: int, rand: float, advice: str
) -> None:
    """Clients told at the same moment come back spread out, never before the probe, never a window late."""
    api = make_api()
    now = 1_767_225_600.0
    api.module.shedder.wall_clock = lambda: now
    api.module.shedder.rand = lambda: rand
    api.breaker_store().save_open(api.circuit, failure_count=5, opened_at=int(now) - opened_ago)

    assert api.call("ord-1")["headers"]["Retry-After"] == advice  # 10 s x (1 + 0.2 x rand), within 30


def test_a_circuit_forced_open_with_the_ops_cli_sheds_too(make_api: ApiFactory) -> None:
    api = make_api()
    assert ops_main(["--region", REGION, "circuit", "open", api.circuit, "--table", "circuits", "--yes"]) == 0

    response = api.call("ord-1")

    assert response["statusCode"] == 503 and body(response)["reason"] == "circuit_open"


def test_a_queue_backlog_over_the_threshold_sheds_and_the_decision_is_cached(make_api: ApiFactory) -> None:
    api = make_api(SHED_CACHE_SECONDS="5")
    api.repo.accepted("ord-1")
    for n in range(6):  # threshold 5
        api.sqs.send_message(QueueUrl=api.queue_url, MessageBody=str(n))

    shed = [api.call("ord-1") for _ in range(3)]

    assert [r["statusCode"] for r in shed] == [503, 503, 503]
    assert shed[0]["headers"]["Retry-After"] == "45"
    assert body(shed[0])["reason"] == "queue_backlog"
    assert api.module.shedder.reads == {"circuit": 1, "queue": 1}  # once per window, not per request

    api.sqs.purge_queue(QueueUrl=api.queue_url)
    assert api.call("ord-1")["statusCode"] == 503  # still the cached decision
    api.module.shedder.clock = lambda: time.monotonic() + 6  # the window has passed
    assert api.call("ord-1")["statusCode"] == 200
    assert api.module.shedder.reads == {"circuit": 2, "queue": 2}


def test_a_draining_backlog_is_told_when_it_will_be_under_the_threshold(make_api: ApiFactory) -> None:
    """Retry-After = the backlog over the threshold / the drain rate measured between two reads."""
    api = make_api(SHED_CACHE_SECONDS="5")  # threshold 5, at most 45 s
    shedder = api.module.shedder
    shedder.rand = lambda: 0.0
    t = [1000.0]
    shedder.clock = lambda: t[0]
    sent = [api.sqs.send_message(QueueUrl=api.queue_url, MessageBody=str(n))["MessageId"] for n in range(105)]
    assert sent

    first = api.call("ord-1")
    assert first["headers"]["Retry-After"] == "45"  # no drain seen yet: the ceiling

    received = 0
    while received < 60:  # the consumers drain 60 messages in the next 6 s: 10 a second
        batch = api.sqs.receive_message(QueueUrl=api.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in batch:
            api.sqs.delete_message(QueueUrl=api.queue_url, ReceiptHandle=message["ReceiptHandle"])
        received += len(batch)
    t[0] += 6.0

    second = api.call("ord-1")
    assert second["statusCode"] == 503
    assert second["headers"]["Retry-After"] == "4"  # (45 - 5) messages / 10 per second
    assert shedder.drain_per_s == pytest.approx(10.0)


def test_a_growing_backlog_forgets_the_drain_rate_and_says_the_ceiling(make_api: ApiFactory) -> None:
    api = make_api(SHED_CACHE_SECONDS="5")
    shedder = api.module.shedder
    shedder.rand = lambda: 0.0
    t = [1000.0]
    shedder.clock = lambda: t[0]
    shedder.drain_per_s = 10.0
    for n in range(20):
        api.sqs.send_message(QueueUrl=api.queue_url, MessageBody=str(n))
    api.call("ord-1")
    for n in range(20):
        api.sqs.send_message(QueueUrl=api.queue_url, MessageBody=str(n))
    t[0] += 6.0

    assert api.call("ord-1")["headers"]["Retry-After"] == "45"
    assert shedder.drain_per_s is None


def test_a_check_that_fails_does_not_shed(make_api: ApiFactory) -> None:
    api = make_api(CIRCUIT_BREAKER_TABLE_NAME="no-such-table")
    api.repo.accepted("ord-1")

    response = api.call("ord-1")

    assert response["statusCode"] == 200  # fail open: the status table is fine, so answer


# ---------------------------------------------------------------------------------------------- budget


class _Silent(BaseHTTPRequestHandler):
    """Takes the request, then says nothing until released (a dependency that hangs)."""

    server: _SilentServer

    def do_POST(self) -> None:
        self.server.requests += 1
        self.server.release.wait(10)
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SilentServer(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0
    release = threading.Event()


@pytest.fixture
def hanging_dynamodb() -> Iterator[_SilentServer]:
    server = _SilentServer(("127.0.0.1", 0), _Silent)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("budget_ms", "downstream_ms", "remaining_ms", "limit_s"),
    [
        # Each limit sits between what the budget allows (plus this machine's overhead) and a lower bound
        # of what the reads would take without it, whatever the machine: a busy machine's second or so of
        # overhead cannot change the verdict.
        # REQUEST_BUDGET_MS decides: 3 s; without it the two reads take >= 6 s (3 s timeout each).
        ("3000", "3000", 30_000, 4.5),
        # The function's remaining time decides: 900 - 200 ms margin; without it the first read alone
        # takes >= 4 s (its timeout).
        ("5000", "4000", 900, 3.0),
    ],
)
def test_a_hanging_dynamodb_gets_a_503_within_the_budget(
    make_api: ApiFactory,
    hanging_dynamodb: _SilentServer,
    monkeypatch: pytest.MonkeyPatch,
    budget_ms: str,
    downstream_ms: str,
    remaining_ms: int,
    limit_s: float,
) -> None:
    host, port = hanging_dynamodb.server_address[:2]
    # Both DynamoDB reads (circuit record, order status) go to the server that never answers.
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://{host!s}:{port}")
    api = make_api(REQUEST_BUDGET_MS=budget_ms, DOWNSTREAM_TIMEOUT_MS=downstream_ms)

    started = time.monotonic()
    response = api.call("ord-1", remaining_ms=remaining_ms)
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 503
    assert body(response)["reason"] == "status_unavailable"
    assert response["headers"]["Retry-After"] == "2"
    assert elapsed < limit_s, f"answered after {elapsed:.3f}s, budget {limit_s}s"
    assert hanging_dynamodb.requests >= 2  # the circuit check and the status read were both tried
