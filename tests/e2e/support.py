"""Constants and helpers shared by the e2e conftest, the scenario tests and the background fault runner."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from localcloud.calibration import timeline_scale
from localcloud.deploy import Synthesized
from localcloud.scenarios import Override, Scenario, scenarios
from tests.waiting import MACHINE_TOO_SLOW

COMPRESS = 10.0  # at most: localcloud.calibration lowers it on a machine too slow for it
SCENARIO_SCALE = 0.4  # the demo's timelines x 0.4 (at /10): e.g. outage from 3.2 s to 8.8 s, load 10.4 s


@dataclass(frozen=True)
class Compressed:
    """The session's synthesized stack, compressed by the factor calibrated for this machine."""

    synthesized: Synthesized
    overrides: list[Override]
    factor: float
    load_scale: float
    reason: str

    def scenarios(self) -> dict[str, Scenario]:
        """The scenarios at the test scale, stretched (and their load slowed) as the factor asks."""
        return scenarios(timeline_scale(SCENARIO_SCALE, self.factor), self.load_scale)

    def save(self, directory: Path) -> None:
        document = {
            "factor": self.factor,
            "load_scale": self.load_scale,
            "reason": self.reason,
            "overrides": [dataclasses.asdict(o) for o in self.overrides],
        }
        (directory / "compressed.partial").write_text(json.dumps(document))
        (directory / "compressed.partial").replace(directory / COMPRESSED_FILE)

    @classmethod
    def load(cls, directory: Path) -> Compressed:
        document = json.loads((directory / COMPRESSED_FILE).read_text())
        return cls(
            synthesized=Synthesized.load(directory / "cdk.out"),
            overrides=[Override(**o) for o in document["overrides"]],
            factor=document["factor"],
            load_scale=document["load_scale"],
            reason=document["reason"],
        )


COMPRESSED_FILE = "compressed.json"
# How long a worker waits for another one's calibration and synth (about a minute on a busy machine).
COMPRESSED_WAIT_S = 600


def compressed_for_session(tmp_path_factory: pytest.TempPathFactory) -> Compressed:
    """The session's calibrated, compressed synth: made once, also under xdist (the first worker to claim
    the shared directory calibrates and synthesizes; the others, and the benchmark smoke test, reuse it)."""
    from localcloud.calibration import calibrate
    from localcloud.deploy import synthesize
    from localcloud.scenarios import compressed_context
    from tests.conftest import cdk_context

    directory = shared_temp(tmp_path_factory) / "compressed"
    try:
        directory.mkdir()  # atomic: exactly one worker makes it
    except FileExistsError:
        waited = time.monotonic()
        while not (directory / COMPRESSED_FILE).exists():
            if (directory / "failed").exists():
                pytest.fail(
                    f"the session's synth failed in another worker:\n{(directory / 'failed').read_text()}"
                )
            if time.monotonic() - waited > COMPRESSED_WAIT_S:
                pytest.fail(f"{MACHINE_TOO_SLOW}: no compressed synth after {COMPRESSED_WAIT_S}s")
            time.sleep(0.5)
        return Compressed.load(directory)
    try:
        base = cdk_context(stage="dev")
        calibration = calibrate(base, COMPRESS)
        context, overrides = compressed_context(base, calibration.factor, calibration.batch_size)
        synthesized = synthesize(context, directory / "cdk.out")
        compressed = Compressed(
            synthesized, overrides, calibration.factor, calibration.rate_scale, calibration.reason
        )
        compressed.save(directory)
    except BaseException:
        (directory / "failed").write_text(traceback.format_exc())
        raise
    return compressed


def shared_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory every xdist worker of this session sees (the base temp's parent)."""
    shared = tmp_path_factory.getbasetemp()
    return shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared


FAULT_SCENARIOS = ("outage", "throttling", "slow", "brownout")
# The long outage outlasts the orders queue's receive budget (maxReceiveCount x visibility timeout, over
# 3 minutes at /10): it runs in a second background process beside the others, mostly waiting (the
# consumer is paused while orders queue up), at half the demo's load: what it proves is about time, and
# its drain after the recovery is the suite's critical path.
LONG_SCENARIOS = ("long-outage",)
LONG_LOAD_SHARE = 0.5
# The runs whose recorded patterns a test compares with docs/patterns.md's demo column: the fault scenarios
# and the tour after them (the background runner), and poison (test_scenarios.py runs it in process).
CHECKED_RUNS = (*FAULT_SCENARIOS, "tour", "poison")
# The runner prints progress every few seconds: silence this long means it is stuck (a defect). A run
# that keeps printing is waited for up to the cap, past which the machine is too slow to judge it.
FAULT_RUNS_SILENCE_S = 180
FAULT_RUNS_CAP_S = 1500
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FaultRuns:
    """``python -m localcloud.demo`` running the fault scenarios back to back in one background process.

    One per test session, also under xdist: the first worker to claim ``directory`` starts it (``start``);
    the others read the same directory (``attach``). ``result(name)`` waits for that scenario's account
    (``--json-dir``); ``exit_status()`` for the runner's exit status (recorded in ``exit-status``).
    """

    def __init__(self, directory: Path, process: subprocess.Popen[bytes] | None = None) -> None:
        self.directory = directory
        self.process = process
        self._started = time.monotonic()

    @classmethod
    def start(
        cls,
        compressed: Compressed,
        directory: Path,
        names: tuple[str, ...] = FAULT_SCENARIOS,
        *,
        load_share: float = 1.0,
        tour: bool = True,
    ) -> FaultRuns:
        """``names`` back to back at ``load_share`` of the session's load, then the tour when ``tour``."""
        log: IO[bytes] = open(directory / "demo.log", "wb")  # noqa: SIM115 - closed by the watcher
        command = [
            sys.executable, "-m", "localcloud.demo", "--scenario", ",".join(names),
            "--scale", str(SCENARIO_SCALE), "--compress", str(compressed.factor),
            "--load-scale", str(compressed.load_scale * load_share),
            "--synthesized", str(compressed.synthesized.outdir), "--seed", "11",
            "--note", f"time compressed /{compressed.factor:g}: {compressed.reason}",
            "--json-dir", str(directory), "--output", str(directory), "--no-picture",
            *([] if tour else ["--no-tour"]),
        ]  # fmt: skip
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)

        def record_exit() -> None:
            status = process.wait()
            log.close()
            (directory / "exit-status.partial").write_text(str(status))
            (directory / "exit-status.partial").replace(directory / "exit-status")

        threading.Thread(target=record_exit, name="fault-runs-exit", daemon=True).start()
        return cls(directory, process)

    @classmethod
    def attach(cls, directory: Path) -> FaultRuns:
        return cls(directory)

    def log(self) -> str:
        log = self.directory / "demo.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log yet)"

    def _wait_for(self, document: Path, what: str) -> None:
        log = self.directory / "demo.log"
        size, changed = -1, time.monotonic()
        while not document.exists():
            now = time.monotonic()
            if (self.directory / "exit-status").exists() and not document.exists():
                pytest.fail(f"{what}: the runner ended without it:\n{self.log()}")
            current = log.stat().st_size if log.exists() else 0
            if current != size:
                size, changed = current, now
            if now - changed > FAULT_RUNS_SILENCE_S:
                pytest.fail(
                    f"{what}: the runner printed nothing for {FAULT_RUNS_SILENCE_S}s: stuck\n{self.log()}"
                )
            if now - self._started > FAULT_RUNS_CAP_S:
                pytest.fail(
                    f"{MACHINE_TOO_SLOW}: {what} still not there after {FAULT_RUNS_CAP_S}s\n{self.log()}"
                )
            time.sleep(0.5)

    def result(self, name: str) -> dict[str, Any]:
        document = self.directory / f"{name}.json"
        self._wait_for(document, f"scenario {name}'s result")
        return dict(json.loads(document.read_text()))

    def exit_status(self) -> int:
        document = self.directory / "exit-status"
        self._wait_for(document, "the runner's exit status")
        return int(document.read_text())

    def stop(self) -> None:
        """The starting worker's teardown: let the runner finish (other workers may still read it)."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(1.0, FAULT_RUNS_CAP_S - (time.monotonic() - self._started)))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.process.terminate()  # the demo stops its local cloud and releases its ports on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
