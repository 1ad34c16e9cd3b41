"""docs/patterns.md stays true: every file, test and alarm it names exists."""

from __future__ import annotations

import re
from pathlib import Path

from stacks.monitoring import _pascal
from tests.infra.conftest import Synthesized

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "patterns.md"
ROW = re.compile(
    r"^\| (?P<pattern>[^|]+) \| (?P<code>[^|]+) \| (?P<test>[^|]+) \| (?P<alarm>[^|]+) \| (?P<demo>[^|]+) \|$"
)


def _rows() -> list[dict[str, str]]:
    rows = [m.groupdict() for line in CATALOGUE.read_text().splitlines() if (m := ROW.match(line))]
    return [r for r in rows if r["pattern"].strip() not in ("pattern", "---")]


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
