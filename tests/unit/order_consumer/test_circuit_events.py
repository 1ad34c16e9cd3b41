"""Breaker -> controller hook: one CircuitOpened event on the bus per transition into OPEN, nothing else.

Real pieces: the dependency client and its Powertools breaker (moto DynamoDB), the partner twin over
HTTP, and an EventBridge bus on moto with a rule that delivers CircuitOpened events to an SQS queue,
which is where the tests look.
"""

from __future__ import annotations

import io
import random
import time
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.circuit_breaker import CircuitState, CircuitTransition
from botocore.exceptions import ClientError

from lambdas.contracts.events import CIRCUIT_OPENED
from lambdas.shared.circuit_events import (
    METRIC_PUBLISH_FAILURES,
    PUBLISH_FAILED_MESSAGE,
    CircuitEventPublisher,
    CircuitOpened,
    circuit_event_hook,
)
from lambdas.shared.dependency_client import (
    CIRCUIT_HOOK_FAILED_MESSAGE,
    DependencyClient,
    DependencyUnavailableError,
    TransientUpstreamError,
    create_session,
)
from localcloud.fault_dependency import FaultDependency
from tests.unit.fulfilment.support import CircuitBus, create_circuit_bus
from tests.unit.helpers import REGION, BreakerTable, log_records, make_policy, metric_points, unique_name
from tests.unit.order_consumer.test_handler import ConsumerFactory, make_consumer, order, sqs_record

__all__ = ["make_consumer"]  # a fixture, imported for the consumer test below

SERVICE = "resilient-orders"


def budget() -> int:
    return 5_000


@pytest.fixture
def bus(aws: None) -> CircuitBus:
    return create_circuit_bus(SERVICE)


def client_with_hook(
    twin: FaultDependency,
    breaker_table: BreakerTable,
    bus_name: str,
    *,
    logger: Logger | None = None,
    events_client: Any = None,
    **policy: Any,
) -> DependencyClient:
    log = logger or Logger(service=unique_name("hook"), stream=io.StringIO())
    settings = make_policy(twin.base_url, max_attempts=1, **policy)
    hook = circuit_event_hook(
        bus_name=bus_name,
        service_name=SERVICE,
        dependency=settings.name,
        logger=log,
        events_client=events_client,
    )
    return DependencyClient(
        settings,
        breaker_table_name=breaker_table.name,
        dynamodb_client=breaker_table.client,
        breaker_cache_seconds=0,
        session=create_session(),
        logger=log,
        rng=random.Random(1),
        on_transition=hook,
    )


def make_recovery_due(breaker_table: BreakerTable, circuit: str) -> None:
    """Move the opening into the past instead of sleeping through the recovery window (load-proof)."""
    breaker_table.client.update_item(
        TableName=breaker_table.name,
        Key={"id": {"S": circuit}},
        UpdateExpression="SET opened_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 3600)}},
    )


def opened_at(breaker_table: BreakerTable, circuit: str) -> int:
    item = breaker_table.item(circuit)
    assert item is not None
    return int(item["opened_at"]["N"])


def test_one_event_when_the_circuit_opens_and_none_on_the_way_back(
    twin: FaultDependency, breaker_table: BreakerTable, bus: CircuitBus
) -> None:
    client = client_with_hook(
        twin, breaker_table, bus.name, breaker_failure_threshold=2, breaker_recovery_seconds=60
    )
    circuit = client.policy.name
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget)
    assert bus.published() == []  # one failure: still CLOSED

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget)  # the threshold: CLOSED -> OPEN
    [event] = bus.published()
    assert event["source"] == f"{SERVICE}.circuits"
    assert event["detail-type"] == CIRCUIT_OPENED
    assert event["detail"] == {
        "circuit": circuit,
        "dependency": circuit,
        "openedAt": opened_at(breaker_table, circuit),  # the very opening the circuit record holds
    }

    for _ in range(3):  # open: rejected without calling, no new transition, no new event
        with pytest.raises(DependencyUnavailableError):
            client.get("/health", remaining_ms=budget)
    twin.set_profile("healthy")
    make_recovery_due(breaker_table, circuit)
    assert client.get("/health", remaining_ms=budget).status == 200  # OPEN -> HALF_OPEN -> CLOSED

    assert breaker_table.state(circuit) == "CLOSED"
    assert bus.published() == []


def test_a_failed_probe_reopens_the_circuit_and_announces_it_again(
    twin: FaultDependency, breaker_table: BreakerTable, bus: CircuitBus
) -> None:
    client = client_with_hook(
        twin, breaker_table, bus.name, breaker_failure_threshold=1, breaker_recovery_seconds=60
    )
    circuit = client.policy.name
    twin.set_profile("outage")
    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget)
    [first] = bus.published()

    make_recovery_due(breaker_table, circuit)
    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget)  # the half-open probe fails: HALF_OPEN -> OPEN

    [second] = bus.published()
    assert second["detail"]["openedAt"] == opened_at(breaker_table, circuit)
    assert second["detail"]["openedAt"] >= first["detail"]["openedAt"]  # a new opening, a new event


def test_a_refused_publish_is_logged_and_counted_and_never_breaks_the_call(
    twin: FaultDependency, breaker_table: BreakerTable, aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    client = client_with_hook(
        twin,
        breaker_table,
        "no-such-bus",
        logger=Logger(service=unique_name("hook"), stream=stream),
        events_client=boto3.client("events", region_name=REGION),
        breaker_failure_threshold=1,
    )
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):  # the call's own error, not the publisher's
        client.get("/health", remaining_ms=budget)

    assert breaker_table.state(client.policy.name) == "OPEN"
    [failed] = [r for r in log_records(stream.getvalue()) if r["message"] == PUBLISH_FAILED_MESSAGE]
    assert failed["circuit"] == client.policy.name and failed["event_bus"] == "no-such-bus"
    assert failed["error_code"]
    [point] = metric_points(capsys.readouterr().out, METRIC_PUBLISH_FAILURES)
    assert point["dependency"] == client.policy.name


class StubEvents:
    def __init__(self, response: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.response = response
        self.error = error
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def publisher(events: StubEvents, stream: io.StringIO) -> CircuitEventPublisher:
    return CircuitEventPublisher(
        bus_name="circuits",
        service_name=SERVICE,
        dependency="partner",
        events_client=events,
        logger=Logger(service=unique_name("hook"), stream=stream),
    )


def test_failed_entry_count_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    events = StubEvents(
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}]}
    )

    accepted = publisher(events, stream).publish(
        CircuitOpened(circuit="partner", dependency="partner", openedAt=1)
    )

    assert accepted is False
    [failed] = [r for r in log_records(stream.getvalue()) if r["message"] == PUBLISH_FAILED_MESSAGE]
    assert (failed["error_code"], failed["error_message"]) == ("InternalFailure", "try later")
    assert len(metric_points(capsys.readouterr().out, METRIC_PUBLISH_FAILURES)) == 1


def test_sdk_errors_are_contained() -> None:
    stream = io.StringIO()
    error = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutEvents")
    events = StubEvents(error=error)

    assert publisher(events, stream).publish(CircuitOpened(circuit="c", dependency="d", openedAt=1)) is False
    [failed] = [r for r in log_records(stream.getvalue()) if r["message"] == PUBLISH_FAILED_MESSAGE]
    assert failed["error_code"] == "AccessDeniedException"


@pytest.mark.parametrize(
    ("from_state", "to_state", "published"),
    [
        (CircuitState.CLOSED, CircuitState.OPEN, 1),
        (CircuitState.HALF_OPEN, CircuitState.OPEN, 1),
        (CircuitState.OPEN, CircuitState.HALF_OPEN, 0),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED, 0),
    ],
)
def test_only_transitions_into_open_are_published(
    from_state: CircuitState, to_state: CircuitState, published: int
) -> None:
    events = StubEvents({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
    transition = CircuitTransition(
        circuit_name="partner", from_state=from_state, to_state=to_state, opened_at=7
    )

    publisher(events, io.StringIO()).on_transition(transition)

    assert len(events.entries) == published
    if published:
        [entry] = events.entries
        assert entry["Source"] == f"{SERVICE}.circuits" and entry["EventBusName"] == "circuits"
        assert entry["DetailType"] == "CircuitOpened"


def test_no_bus_configured_means_no_hook() -> None:
    assert circuit_event_hook(bus_name=None, service_name=SERVICE, dependency="d", logger=Logger()) is None
    assert circuit_event_hook(bus_name="", service_name=SERVICE, dependency="d", logger=Logger()) is None


# ---------------------------------------------------------------------------------------------- consumer


def test_the_consumer_announces_its_open_circuit_once(make_consumer: ConsumerFactory) -> None:
    consumer_service = unique_name("orders")
    bus = create_circuit_bus(consumer_service)
    consumer = make_consumer(
        POWERTOOLS_SERVICE_NAME=consumer_service,
        CIRCUIT_EVENTS_BUS_NAME=bus.name,
        BREAKER_FAILURE_THRESHOLD="1",
    )
    consumer.twin.set_profile("outage")
    tripping = sqs_record(order("ord-1"))

    assert consumer.invoke(tripping) == [tripping["messageId"]]  # the record is retried as before
    later = [sqs_record(order(f"ord-{n}")) for n in range(2, 5)]
    assert consumer.invoke(*later) == [r["messageId"] for r in later]  # rejected by the open circuit

    [event] = bus.published()
    dependency = consumer.module.settings.dependency.name
    assert event["source"] == f"{consumer_service}.circuits"
    assert event["detail"]["circuit"] == event["detail"]["dependency"] == dependency
    assert consumer.breaker.state(dependency) == "OPEN"


def test_without_a_bus_the_consumer_publishes_nothing(make_consumer: ConsumerFactory) -> None:
    consumer = make_consumer(BREAKER_FAILURE_THRESHOLD="1")
    consumer.twin.set_profile("outage")

    assert consumer.module.dependency._transition_hook is None  # no CircuitOpened hook without a bus
    record = sqs_record(order("ord-1"))
    assert consumer.invoke(record) == [record["messageId"]]
    assert consumer.breaker.state(consumer.module.settings.dependency.name) == "OPEN"


def test_the_hook_does_not_slow_the_healthy_path(twin: FaultDependency, breaker_table: BreakerTable) -> None:
    events = StubEvents({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
    client = client_with_hook(twin, breaker_table, "circuits", events_client=events)

    for _ in range(5):
        assert client.get("/health", remaining_ms=budget).status == 200

    assert events.entries == []  # no transition, no PutEvents


def test_a_hook_that_raises_is_logged_and_the_call_keeps_its_own_outcome(
    twin: FaultDependency, breaker_table: BreakerTable
) -> None:
    stream = io.StringIO()

    def broken_hook(transition: CircuitTransition) -> None:
        raise RuntimeError("hook bug")

    client = DependencyClient(
        make_policy(twin.base_url, max_attempts=1, breaker_failure_threshold=1),
        breaker_table_name=breaker_table.name,
        dynamodb_client=breaker_table.client,
        breaker_cache_seconds=0,
        session=create_session(),
        logger=Logger(service=unique_name("hook"), stream=stream),
        on_transition=broken_hook,
    )
    twin.set_profile("outage")

    with pytest.raises(TransientUpstreamError):
        client.get("/health", remaining_ms=budget)

    assert breaker_table.state(client.policy.name) == "OPEN"
    [logged] = [r for r in log_records(stream.getvalue()) if r["message"] == CIRCUIT_HOOK_FAILED_MESSAGE]
    assert (logged["to_state"], logged["error"]) == ("OPEN", "RuntimeError")
