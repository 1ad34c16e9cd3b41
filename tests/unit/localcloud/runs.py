"""A RunResult built in memory, for tests of what is computed from a run (no local cloud needed)."""

from __future__ import annotations

from typing import Any

from localcloud.scenarios import RunResult, Sample, scenarios


def sample(t: float, depth: int = 0, circuit: str = "CLOSED") -> Sample:
    return Sample(t, depth, 0, 0, 0, circuit, 0, 0, 0, "phase")


def run_result(**fields: Any) -> RunResult:
    base: dict[str, Any] = {
        "scenario": scenarios(1.0)["outage"],
        "overrides": [],
        "cap": 4,
        "visibility_timeout_s": 18,
        "max_receive_count": 6,
        "started_at": 0.0,
        "load_ended_s": 25.0,
        "ended_s": 60.0,
        "drained": True,
        "samples": [],
        "messages": [],
        "rejected": {},
        "dlq_messages": [],
        "charges": {},
        "calls": [],
        "transitions": [],
        "peak_dependency_in_flight": 1,
        "peak_consumer_in_flight": 4,
        "attempt_timeout_ms": 1000.0,
        "consumer_errors": 0,
        "consumer_timeouts": 0,
    }
    return RunResult(**{**base, **fields})
