"""Where commands report to, and how destructive commands are confirmed.

Text mode (default): progress and results on stdout. ``--json``: progress on stderr, one JSON document with
the result on stdout. Errors always go to stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from ops.errors import Aborted

CONFIRM_WORD = "yes"


@dataclass
class Console:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    json_output: bool = False
    assume_yes: bool = False

    def info(self, line: str) -> None:
        print(line, file=self.stderr if self.json_output else self.stdout, flush=True)

    def error(self, line: str) -> None:
        print(line, file=self.stderr, flush=True)

    def result(self, document: Any) -> None:
        if self.json_output:
            print(json.dumps(document, indent=2, default=str), file=self.stdout, flush=True)

    def confirm(self, action: str) -> None:
        """Go on only if the operator agreed (``--yes`` or typing ``yes`` on a terminal); raises Aborted."""
        if self.assume_yes:
            self.info(f"confirmed by --yes: {action}")
            return
        if not _is_tty(self.stdin):
            raise Aborted(f"refusing to {action} without confirmation: no terminal to ask on; pass --yes")
        print(
            f"About to {action}.\nType '{CONFIRM_WORD}' to continue: ", end="", file=self.stderr, flush=True
        )
        answer = self.stdin.readline().strip().lower()
        if answer != CONFIRM_WORD:
            raise Aborted("not confirmed; nothing was changed")


def iso_time(epoch: float | None) -> str | None:
    """Unix seconds as ISO 8601 in UTC, to the second (None stays None)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
