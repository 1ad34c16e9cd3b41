"""FaultProfile: validation, seeded determinism, and the decisions it draws."""

from __future__ import annotations

import email.utils
import random

import pytest
from pydantic import ValidationError

from lambdas.partner_api.faults import PRESETS, FaultDecision, FaultProfile, preset

MIXED = FaultProfile(
    error_rate=0.3, error_status=502, latency_ms=100, latency_jitter_ms=50, throttle_rate=0.2
)


def test_decide_is_deterministic_for_a_seeded_rng() -> None:
    first = [MIXED.decide(random.Random(42)) for _ in range(3)]
    rng_a, rng_b = random.Random(1234), random.Random(1234)
    assert [MIXED.decide(rng_a) for _ in range(200)] == [MIXED.decide(rng_b) for _ in range(200)]
    assert first[0] == first[1] == first[2]
    # Different seeds give a different sequence (the rng really drives the decision).
    rng_c, rng_d = random.Random(1), random.Random(2)
    assert [MIXED.decide(rng_c) for _ in range(50)] != [MIXED.decide(rng_d) for _ in range(50)]


def test_rates_and_latency_bounds_are_respected() -> None:
    rng = random.Random(7)
    decisions = [MIXED.decide(rng) for _ in range(4000)]
    throttled = sum(d.action == "throttle" for d in decisions) / len(decisions)
    errored = sum(d.action == "error" for d in decisions) / len(decisions)
    assert 0.17 < throttled < 0.23
    assert 0.21 < errored < 0.27  # 0.3 of the 0.8 not throttled
    assert all(100 <= d.latency_ms <= 150 for d in decisions)
    assert {d.status for d in decisions} == {None, 429, 502}


def test_healthy_profile_always_passes_without_latency() -> None:
    rng = random.Random(0)
    assert {FaultProfile().decide(rng) for _ in range(100)} == {FaultDecision.passthrough(0.0)}


def test_certain_faults() -> None:
    rng = random.Random(0)
    assert FaultProfile(error_rate=1.0, error_status=500).decide(rng).status == 500
    throttled = FaultProfile(throttle_rate=1.0, error_rate=1.0, retry_after_seconds=4).decide(rng)
    assert (throttled.status, throttled.retry_after_seconds) == (429, 4)  # throttling wins over errors


def test_retry_after_header_formats() -> None:
    now = 1_800_000_000.0
    assert FaultDecision.throttle(5).retry_after_header(now) == "5"
    date = FaultDecision.throttle(5, retry_after_format="http-date").retry_after_header(now)
    assert date is not None and email.utils.parsedate_to_datetime(date).timestamp() == now + 5
    assert FaultDecision.throttle(None).retry_after_header(now) is None


@pytest.mark.parametrize(
    "document",
    [
        {"error_rate": 1.5},
        {"throttle_rate": -0.1},
        {"error_status": 200},
        {"error_status": 429},
        {"latency_ms": -1},
        {"unknown": 1},
    ],
)
def test_invalid_profiles_are_rejected(document: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultProfile.model_validate(document)


def test_presets() -> None:
    assert set(PRESETS) == {
        "healthy",
        "outage",
        "slow",
        "throttling",
        "error_rate",
        "brownout",
        "charges_down",
    }
    rng = random.Random(0)
    assert preset("outage").decide(rng).status == 503
    assert preset("slow").decide(rng).latency_ms == 8000
    assert preset("throttling").decide(rng).status == 429
    with pytest.raises(ValueError, match="unknown fault preset"):
        preset("meteor")


def test_a_profile_scoped_to_paths_faults_only_those_and_draws_the_same_numbers() -> None:
    charges_down = preset("charges_down")
    rng_scoped, rng_plain = random.Random(7), random.Random(7)

    assert charges_down.decide(rng_scoped, "/charges").status == 503
    assert charges_down.decide(rng_scoped, "/charges?x=1").status == 503
    assert charges_down.decide(rng_scoped, "/health") == FaultDecision.passthrough()
    assert charges_down.decide(rng_scoped, None) == FaultDecision.passthrough()
    for _ in range(4):
        FaultProfile().decide(rng_plain)
    assert rng_scoped.random() == rng_plain.random()  # a seeded run replays whatever the paths
