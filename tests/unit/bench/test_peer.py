"""The SQS -> Lambda peer the benchmark compares against: SQS's delivery rules and the default handler."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from bench.peer import PeerMessage, PeerQueue, PeerRun
from lambdas.partner_api.faults import HEALTHY, preset
from localcloud.fault_dependency import FaultDependency, Phase
from localcloud.scenarios import Scenario


def _message(n: int, sent: float = 0.0) -> PeerMessage:
    order_id = f"ord-{n}"
    return PeerMessage(
        n, {"orderId": order_id, "amountCents": 100, "currency": "EUR"}, f"key-{order_id}", sent
    )


def test_a_received_message_stays_invisible_for_the_visibility_timeout() -> None:
    queue = PeerQueue(visibility_timeout_s=3.0, max_receive_count=15)
    queue.send(_message(1))
    [first] = queue.receive(now=0.0, limit=10)
    assert queue.receive(now=2.9, limit=10) == []
    assert queue.receive(now=3.0, limit=10) == [first] and first.receive_count == 2


def test_a_batch_is_at_most_the_limit_and_deleted_messages_are_gone() -> None:
    queue = PeerQueue(visibility_timeout_s=3.0, max_receive_count=15)
    for n in range(12):
        queue.send(_message(n))
    batch = queue.receive(now=0.0, limit=10)
    assert len(batch) == 10 and queue.depth() == 12
    queue.delete(batch)
    assert queue.depth() == 2
    assert [m.n for m in queue.receive(now=0.0, limit=10)] == [10, 11]


def test_the_receive_after_max_receive_count_moves_the_message_to_the_dlq() -> None:
    queue = PeerQueue(visibility_timeout_s=1.0, max_receive_count=3)
    queue.send(_message(1))
    for now in (0.0, 1.0, 2.0):
        assert len(queue.receive(now=now, limit=10)) == 1
    assert queue.receive(now=3.0, limit=10) == []
    assert [m.n for m in queue.dead_lettered()] == [1] and queue.depth() == 0


@pytest.fixture
def partner() -> Iterator[FaultDependency]:
    twin = FaultDependency([(0.0, HEALTHY, "healthy")]).start()
    yield twin
    twin.stop()


def _scenario(profile_name: str, *, load_s: float = 0.5) -> Scenario:
    profile = HEALTHY if profile_name == "healthy" else preset(profile_name)
    return Scenario(
        name=profile_name,
        description=profile_name,
        phases=(Phase(0.0, profile, profile_name),),
        load_rate=20.0,
        load_s=load_s,
        fault_window=None,
    )


def test_the_first_failure_fails_the_invocation_and_later_records_are_not_called(
    partner: FaultDependency,
) -> None:
    run = PeerRun(_scenario("healthy"), partner, function_timeout_s=2.0, compress=10.0)
    partner.set_profile("outage")
    assert run.handler(requests.Session(), [_message(1), _message(2), _message(3)]) is False
    assert partner.total_calls == 1


def test_a_healthy_batch_is_charged_once_per_order_with_the_producers_key(partner: FaultDependency) -> None:
    run = PeerRun(_scenario("healthy"), partner, function_timeout_s=2.0, compress=10.0)
    session = requests.Session()
    batch = [_message(1), _message(2)]
    assert run.handler(session, batch) is True
    assert run.handler(session, batch) is True  # redelivered: same keys, no second charge
    assert partner.charges_by_order() == {"ord-1": 1, "ord-2": 1}


def _run_against(profile_name: str, function_timeout_s: float) -> tuple[PeerRun, FaultDependency]:
    scenario = _scenario(profile_name)
    twin = FaultDependency([Phase(p.start_s, p.profile, p.label) for p in scenario.phases]).start()
    try:
        # compress 300: SQS's 30 s become 0.1 s, or the function timeout if that is longer.
        run = PeerRun(scenario, twin, function_timeout_s=function_timeout_s, compress=300.0)
        run.run()
    finally:
        twin.stop()
    return run, twin


def test_with_a_healthy_dependency_every_order_is_charged_and_the_queue_drains() -> None:
    run, twin = _run_against("healthy", function_timeout_s=2.0)  # a slow machine's call still fits
    orders = {m.order["orderId"] for m in run.queue.messages}
    assert len(orders) == 10
    assert twin.charges_by_order() == dict.fromkeys(orders, 1)
    assert run.drained_at_s is not None and run.queue.dead_lettered() == []


def test_a_dependency_that_never_recovers_walks_every_message_into_the_dlq_after_15_receives() -> None:
    run, twin = _run_against("outage", function_timeout_s=0.1)  # 15 receives in a few seconds
    assert run.drained_at_s is not None  # every message ended somewhere
    assert len(run.queue.dead_lettered()) == len(run.queue.messages) == 10
    assert all(m.receive_count == 15 for m in run.queue.messages)
    assert twin.charges_by_order() == {}
