"""docs/patterns.md read as rows: what the catalogue tests (tests/infra) and the run checks (tests/e2e) share.

The demo column is either ``—`` (no run shows it; a note may follow) or one scenario in backticks
(``localcloud.scenarios.scenarios()``), or ``tour`` (``localcloud/tour.py``): a claim the run of that
name must back with recorded evidence (``localcloud/evidence.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "patterns.md"
ROW = re.compile(
    r"^\| (?P<pattern>[^|]+) \| (?P<code>[^|]+) \| (?P<test>[^|]+) \| (?P<alarm>[^|]+) \| (?P<demo>[^|]+) \|$"
)
NO_DEMO = "—"
CLAIM = re.compile(r"^`(?P<run>[a-z-]+)`$")


@dataclass(frozen=True)
class Row:
    pattern: str
    code: str
    test: str
    alarm: str
    demo: str

    @property
    def claimed_by(self) -> str | None:
        """The run the demo column says shows this pattern; None for ``—``."""
        if self.demo.startswith(NO_DEMO):
            return None
        match = CLAIM.match(self.demo)
        if match is None:
            raise ValueError(f"{self.pattern}: demo column {self.demo!r} is neither {NO_DEMO} nor `<run>`")
        return match["run"]


def rows() -> list[Row]:
    found = [m.groupdict() for line in CATALOGUE.read_text().splitlines() if (m := ROW.match(line))]
    return [
        Row(**{key: value.strip() for key, value in row.items()})
        for row in found
        if row["pattern"].strip() not in ("pattern", "---")
    ]


def claims(run: str) -> set[str]:
    """The patterns the catalogue says ``run`` shows."""
    return {row.pattern for row in rows() if row.claimed_by == run}
