"""Constants and helpers shared by the e2e conftest, the scenario tests and the background fault runner."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

COMPRESS = 10.0
SCENARIO_SCALE = 0.4  # the demo's timelines x 0.4: e.g. outage from 3.2 s to 8.8 s, load for 10.4 s
FAULT_SCENARIOS = ("outage", "throttling", "slow")
FAULT_RUNS_TIMEOUT_S = 420
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FaultRuns:
    """``python -m localcloud.demo`` running the fault scenarios back to back in a background process.

    ``result(name)`` waits for that scenario's account (``--json-dir``) and returns it.
    """

    def __init__(self, synthesized_outdir: Path, directory: Path) -> None:
        self.directory = directory
        self._log: IO[bytes] = open(directory / "demo.log", "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable, "-m", "localcloud.demo", "--scenario", ",".join(FAULT_SCENARIOS),
            "--scale", str(SCENARIO_SCALE), "--synthesized", str(synthesized_outdir), "--seed", "11",
            "--json-dir", str(directory), "--output", str(directory), "--no-picture",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        self._deadline = time.monotonic() + FAULT_RUNS_TIMEOUT_S

    def log(self) -> str:
        return (self.directory / "demo.log").read_text(errors="replace")[-4000:]

    def result(self, name: str) -> dict[str, Any]:
        document = self.directory / f"{name}.json"
        while not document.exists():
            if self.process.poll() is not None or time.monotonic() > self._deadline:
                pytest.fail(
                    f"scenario {name} produced no result (runner exit {self.process.returncode}):\n{self.log()}"
                )
            time.sleep(0.5)
        return dict(json.loads(document.read_text()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the demo stops its local cloud and releases its ports on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
