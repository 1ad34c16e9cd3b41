"""DependencyTries: the write-ahead try count of a record, refunds, the last failure, forgetting."""

from __future__ import annotations

import boto3
import pytest

from lambdas.shared.dependency_tries import (
    EXPIRATION_ATTRIBUTE,
    DependencyTries,
    TriesExhaustedError,
)
from tests.unit.helpers import REGION, create_key_table

NOW = 1_800_000_000.0


@pytest.fixture
def tries(aws: None) -> DependencyTries:
    client = boto3.client("dynamodb", region_name=REGION)
    create_key_table(client, "idempotency")
    return DependencyTries(client, "idempotency", max_tries=3, ttl_seconds=600, clock=lambda: NOW)


def test_each_try_is_counted_before_the_call_until_the_last_one(tries: DependencyTries) -> None:
    assert [tries.begin("key-1").number for _ in range(3)] == [1, 2, 3]
    assert tries.begin("key-2").number == 1  # per key

    with pytest.raises(TriesExhaustedError) as exhausted:
        tries.begin("key-1")
    assert exhausted.value.tries == 3


def test_a_try_that_made_no_call_is_refunded(tries: DependencyTries) -> None:
    tries.begin("key-1")
    for _ in range(5):  # an open circuit refuses the call on every receive
        assert tries.begin("key-1").number == 2
        assert tries.refund("key-1")
    assert tries.begin("key-1").number == 2


def test_the_last_failure_is_kept_for_the_quarantine_and_the_count_expires(tries: DependencyTries) -> None:
    tries.begin("key-1")
    assert tries.failed("key-1", TimeoutError("partner took 3 s"))
    tries.begin("key-1")
    assert tries.begin("key-1").last_failure == "TimeoutError: partner took 3 s"
    with pytest.raises(TriesExhaustedError, match="3 tries failed; the last: TimeoutError: partner took 3 s"):
        tries.begin("key-1")
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName="idempotency", Key={"id": {"S": "dependency-tries#key-1"}}
    )["Item"]
    assert item[EXPIRATION_ATTRIBUTE] == {"N": str(int(NOW) + 600)}


def test_a_forgotten_count_starts_afresh(tries: DependencyTries) -> None:
    for _ in range(3):
        tries.begin("key-1")
    assert tries.forget("key-1")
    assert tries.begin("key-1").number == 1


def test_bookkeeping_after_the_call_never_raises(aws: None) -> None:
    """A failed refund, failure note or forget must not replace the record's own outcome."""
    missing = DependencyTries(
        boto3.client("dynamodb", region_name=REGION), "no-such-table", max_tries=3, ttl_seconds=600
    )
    assert missing.refund("key-1") is False
    assert missing.failed("key-1", RuntimeError("x")) is False
    assert missing.forget("key-1") is False
    with pytest.raises(Exception, match="ResourceNotFoundException"):  # before the call it must raise
        missing.begin("key-1")
