"""The in-process Lambda service: event source mapping semantics on emulated SQS queues.

The queues here are created with small numbers (visibility timeout 1 s, maxReceiveCount 2) so the
redrive behaviour shows within seconds; the mapping settings of the real stack are checked against
the template in test_deploy.py.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcloud import isolation
from localcloud.emulator import Emulator
from localcloud.lambda_runtime import Function, FunctionConfig, SqsEventSource, SqsEventSourcePoller
from tests.e2e import runtime_handlers
from tests.waiting import wait_until

HANDLERS = "tests.e2e.runtime_handlers"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with isolation.installed(), Emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    runtime_handlers.CALLS.clear()


def make_function(
    emulator: Emulator,
    handler: str = "handler",
    *,
    timeout_s: float = 3,
    environment: dict[str, str] | None = None,
    name: str | None = None,
) -> Function:
    name = name or f"fn-{uuid.uuid4().hex[:8]}"
    config = FunctionConfig(
        name=name,
        arn=f"arn:aws:lambda:{emulator.region}:{emulator.account_id}:function:{name}",
        handler=f"{HANDLERS}.{handler}",
        timeout_s=timeout_s,
        memory_mb=128,
        environment=environment or {},
        reserved_concurrency=None,
        runtime="python3.14",
    )
    return Function(config, platform_environ=emulator.lambda_environment())


def make_queue(
    emulator: Emulator, *, visibility_s: int = 1, max_receive_count: int = 2
) -> tuple[str, str, str]:
    sqs = emulator.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"work-{suffix}",
        Attributes={
            "VisibilityTimeout": str(visibility_s),
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": {max_receive_count}}}',
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue, arn, dlq


def make_poller(
    emulator: Emulator,
    function: Function,
    queue: tuple[str, str, str],
    *,
    batch_size: int = 10,
    window_s: float = 0.0,
    max_concurrency: int = 2,
    mapping_uuid: str = "not-a-mapping",
) -> SqsEventSourcePoller:
    url, arn, _ = queue
    source = SqsEventSource(
        uuid=mapping_uuid,
        queue_arn=arn,
        queue_url=url,
        function_name=function.config.name,
        batch_size=batch_size,
        batching_window_s=window_s,
        max_concurrency=max_concurrency,
        report_batch_item_failures=True,
        visibility_timeout_s=1,
        max_receive_count=2,
    )
    return SqsEventSourcePoller(source, function, emulator)


def send(emulator: Emulator, queue_url: str, *bodies: str) -> list[str]:
    sqs = emulator.client("sqs")
    return [sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"] for body in bodies]


def depth(emulator: Emulator, queue_url: str) -> int:
    attributes = emulator.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def eventually(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    wait_until(check, what="the condition", timeout_s=timeout_s, interval_s=0.05)


def processed(body: str) -> list[dict[str, Any]]:
    return [call for call in runtime_handlers.CALLS if body in call["bodies"]]


def dlq_ids(emulator: Emulator, dlq_url: str) -> set[str]:
    sqs = emulator.client("sqs")
    messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    )
    return {m["MessageId"] for m in messages}


def test_partial_batch_failures_return_only_the_failed_record_until_redrive_moves_it(
    emulator: Emulator,
) -> None:
    queue = make_queue(emulator)
    poller = make_poller(emulator, make_function(emulator), queue, window_s=0.5).start()
    try:
        ok_ids = send(emulator, queue[0], "ok", "ok", "ok")
        (fail_id,) = send(emulator, queue[0], "fail")
        eventually(lambda: depth(emulator, queue[0]) == 0 and depth(emulator, queue[2]) == 1)
    finally:
        poller.stop()
    seen = [
        (mid, count)
        for call in runtime_handlers.CALLS
        for mid, count in zip(call["message_ids"], call["receive_counts"], strict=True)
    ]
    assert sorted(count for mid, count in seen if mid == fail_id) == [1, 2]  # maxReceiveCount 2
    for ok_id in ok_ids:
        assert [count for mid, count in seen if mid == ok_id] == [1]  # deleted after its first success
    assert dlq_ids(emulator, queue[2]) == {fail_id}


@pytest.mark.parametrize(("body", "timeout_s"), [("raise", 3.0), ("bad-id", 3.0), ("sleep:1.2", 1.0)])
def test_an_error_a_malformed_response_or_a_timeout_returns_the_whole_batch(
    emulator: Emulator, body: str, timeout_s: float
) -> None:
    queue = make_queue(emulator)
    function = make_function(emulator, timeout_s=timeout_s)
    poller = make_poller(emulator, function, queue, window_s=0.5, max_concurrency=1).start()
    try:
        ids = set(send(emulator, queue[0], "ok", body))
        eventually(lambda: depth(emulator, queue[0]) == 0 and depth(emulator, queue[2]) == 2)
    finally:
        poller.stop()
    assert dlq_ids(emulator, queue[2]) == ids  # the "ok" record shared its batch's fate
    expected_status = {"raise": "errors", "sleep:1.2": "timeouts"}.get(body)
    if expected_status:
        assert getattr(function, expected_status) >= 1


def test_maximum_concurrency_is_real_parallelism_and_never_exceeded(emulator: Emulator) -> None:
    queue = make_queue(emulator, visibility_s=30)
    poller = make_poller(emulator, make_function(emulator), queue, batch_size=1, max_concurrency=3).start()
    try:
        send(emulator, queue[0], *["sleep:0.3"] * 12)
        eventually(lambda: len(runtime_handlers.CALLS) == 12 and depth(emulator, queue[0]) == 0)
    finally:
        poller.stop()
    assert max(call["concurrency"] for call in runtime_handlers.CALLS) == 3
    assert poller.stats.peak_in_flight == 3


def test_the_batching_window_gathers_records_into_one_invocation(emulator: Emulator) -> None:
    queue = make_queue(emulator, visibility_s=30)
    poller = make_poller(
        emulator, make_function(emulator), queue, batch_size=5, window_s=1.5, max_concurrency=1
    )
    poller.start()
    try:
        for _ in range(3):
            send(emulator, queue[0], "ok")
            time.sleep(0.2)
        eventually(lambda: depth(emulator, queue[0]) == 0)
    finally:
        poller.stop()
    assert [len(call["bodies"]) for call in runtime_handlers.CALLS] == [3]


def test_remaining_time_counts_down_from_the_function_timeout(emulator: Emulator) -> None:
    function = make_function(emulator, timeout_s=2)
    result = function.invoke({"Records": []})
    assert result.ok
    (call,) = runtime_handlers.CALLS
    assert 1000 < call["remaining_ms"] <= 2000


def test_each_function_sees_its_own_environment_even_in_parallel(emulator: Emulator) -> None:
    blue = make_function(emulator, "color", environment={"COLOR": "blue"})
    green = make_function(emulator, "color", environment={"COLOR": "green"})
    results: list[tuple[str, dict[str, Any]]] = []

    def run(function: Function, expected: str) -> None:
        for _ in range(20):
            results.append((expected, function.invoke({}).payload))

    threads = [
        threading.Thread(target=run, args=(f, c))
        for f, c in ((blue, "blue"), (green, "green"))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80
    for expected, payload in results:
        assert payload == {"color": expected, "again": expected, "region": emulator.region}
    assert "COLOR" not in os.environ  # the process environment never saw either


def test_environments_get_their_own_copy_of_the_function_code(emulator: Emulator) -> None:
    before = sys.modules.get("lambdas.shared.dependency_client")
    with isolation.function_scope({}, None):
        first = isolation.import_fresh("lambdas.shared.dependency_client")
        second = isolation.import_fresh("lambdas.shared.dependency_client")
    assert first is not second
    assert first.shared_session() is not second.shared_session()  # module state is per environment
    assert sys.modules.get("lambdas.shared.dependency_client") is before


def test_a_disabled_mapping_pauses_delivery_until_it_is_enabled_again(emulator: Emulator) -> None:
    lambda_ = emulator.client("lambda")
    iam = emulator.client("iam")
    role = iam.create_role(RoleName=f"r-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("runtime_handlers.py", "")
    name = f"mapped-{uuid.uuid4().hex[:6]}"
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="x.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    queue = make_queue(emulator, visibility_s=30)
    mapping = lambda_.create_event_source_mapping(EventSourceArn=queue[1], FunctionName=name, BatchSize=10)[
        "UUID"
    ]
    poller = make_poller(emulator, make_function(emulator, name=name), queue, mapping_uuid=mapping).start()
    try:
        lambda_.update_event_source_mapping(UUID=mapping, Enabled=False)
        eventually(lambda: not poller.enabled)
        send(emulator, queue[0], "ok", "ok")
        time.sleep(1.5)
        assert runtime_handlers.CALLS == []
        lambda_.update_event_source_mapping(UUID=mapping, Enabled=True)
        eventually(lambda: depth(emulator, queue[0]) == 0)
    finally:
        poller.stop()
    assert sum(len(call["bodies"]) for call in runtime_handlers.CALLS) == 2


def test_active_slots_follow_the_mappings_maximum_concurrency_at_run_time(emulator: Emulator) -> None:
    """The circuit controller resumes a consumer at MaximumConcurrency 2 and ramps it: the poller follows."""
    lambda_ = emulator.client("lambda")
    iam = emulator.client("iam")
    role = iam.create_role(RoleName=f"r-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("runtime_handlers.py", "")
    name = f"scaled-{uuid.uuid4().hex[:6]}"
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="x.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    queue = make_queue(emulator, visibility_s=30)
    mapping = lambda_.create_event_source_mapping(
        EventSourceArn=queue[1], FunctionName=name, BatchSize=1, ScalingConfig={"MaximumConcurrency": 2}
    )["UUID"]
    poller = make_poller(
        emulator,
        make_function(emulator, name=name),
        queue,
        batch_size=1,
        max_concurrency=2,
        mapping_uuid=mapping,
    ).start()

    def busiest(seconds: float) -> int:
        peak, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            with poller.stats.lock:
                peak = max(peak, poller.stats.in_flight)
            time.sleep(0.01)
        return peak

    try:
        send(emulator, queue[0], *["sleep:0.5"] * 100)
        assert busiest(2.0) == 2
        lambda_.update_event_source_mapping(UUID=mapping, ScalingConfig={"MaximumConcurrency": 6})
        eventually(lambda: poller.concurrency == 6)
        assert busiest(2.0) == 6
        lambda_.update_event_source_mapping(UUID=mapping, ScalingConfig={"MaximumConcurrency": 3})
        eventually(lambda: poller.concurrency == 3)
        time.sleep(0.6)  # slots above the new maximum finish their batch, then idle
        assert busiest(1.5) == 3
        # What a run is judged against stays the deployed maximum, whatever the controller set last.
        assert poller.configured_concurrency == 2
    finally:
        poller.stop()
