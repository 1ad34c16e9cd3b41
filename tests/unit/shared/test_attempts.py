"""Client attempts per receive: the queue's redelivery is a retry layer, so later receives retry less."""

from __future__ import annotations

import pytest

from lambdas.contracts.retries import attempts_on_receive, calls_over_receives
from lambdas.shared.attempts import receive_count


@pytest.mark.parametrize(("receive", "attempts"), [(1, 3), (2, 2), (3, 1), (4, 1), (60, 1)])
def test_each_receive_allows_one_attempt_fewer_down_to_one(receive: int, attempts: int) -> None:
    assert attempts_on_receive(3, receive) == attempts


def test_a_single_attempt_client_stays_at_one() -> None:
    assert [attempts_on_receive(1, n) for n in (1, 2, 5)] == [1, 1, 1]


@pytest.mark.parametrize(
    ("max_attempts", "max_receive_count", "calls"),
    [(3, 6, 9), (2, 5, 6), (1, 5, 5), (5, 5, 15)],  # 3+2+1+1+1+1, 2+1+1+1+1, 5 x 1, 5+4+3+2+1
)
def test_the_worst_case_over_every_receive_is_the_sum(
    max_attempts: int, max_receive_count: int, calls: int
) -> None:
    assert calls_over_receives(max_attempts, max_receive_count) == calls


def test_the_receive_count_comes_from_the_record_attributes() -> None:
    assert receive_count({"attributes": {"ApproximateReceiveCount": "4"}}) == 4
    assert receive_count({"attributes": {}}) == 1
