"""docs/patterns.md stays true: every file, test and alarm it names exists, and its demo column names only
runs that record evidence (the evidence itself is compared in tests/e2e/test_tour.py)."""

from __future__ import annotations

import dataclasses
import re

from localcloud.scenarios import scenarios
from stacks.monitoring import _pascal
from tests.catalogue import CATALOGUE, rows
from tests.e2e.support import CHECKED_RUNS
from tests.infra.conftest import Synthesized


def _rows() -> list[dict[str, str]]:
    return [dataclasses.asdict(row) for row in rows()]


def test_the_catalogue_covers_the_patterns_of_the_source_articles() -> None:
    patterns = " ".join(r["pattern"].lower() for r in _rows())
    for required in (
        "storage-first", "load leveling", "bulkhead", "backoff", "retry-after", "circuit breaker", "fallback",
        "async decoupling", "timeout budget", "dlq", "fan-out", "replay", "idempotency", "partial batch",
        "recursive-loop", "aliases", "alarms", "fault injection",
    ):  # fmt: skip
        assert required in patterns, f"no row for {required}"


def test_every_linked_file_and_test_exists() -> None:
    for row in _rows():
        for link in re.findall(r"\]\(\.\./([^)]+)\)", row["code"] + row["test"]):
            assert (CATALOGUE.parent.parent / link).is_file(), f"dead link {link} in {row['pattern']}"
        for path, test in re.findall(r"\[(tests/[^\]:]+)::(test_\w+)\]", row["test"]):
            source = (CATALOGUE.parent.parent / path).read_text()
            assert re.search(rf"^def {test}\(", source, re.M), f"{path} has no {test}"


def test_every_named_alarm_exists(dev: Synthesized) -> None:
    alarm_ids = {child.node.id for child in dev.stack.monitoring.node.children}
    for row in _rows():
        for name in re.findall(r"`([a-z0-9-]+)`", row["alarm"]):
            assert _pascal(name) in alarm_ids, f"{row['pattern']}: no alarm {name}"


def test_every_path_the_catalogue_names_outside_its_table_exists() -> None:
    prose = "\n".join(line for line in CATALOGUE.read_text().splitlines() if not line.startswith("|"))
    for path in re.findall(r"`((?:tests|localcloud|ops|stacks)/[\w/.]+\.py)`", prose):
        assert (CATALOGUE.parent.parent / path).is_file(), f"docs/patterns.md names {path}: no such file"


def test_every_demo_claim_names_a_run_whose_evidence_a_test_compares() -> None:
    runs = set(scenarios()) | {"tour"}
    for row in rows():
        run = row.claimed_by
        if run is None:
            continue
        assert run in runs, f"{row.pattern}: no scenario {run}"
        assert run in CHECKED_RUNS, (
            f"{row.pattern}: no test records what `{run}` shows (tests/e2e/test_tour.py)"
        )
