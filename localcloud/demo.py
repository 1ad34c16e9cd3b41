"""``make demo``: the whole pipeline on an embedded AWS emulator, through a dependency outage.

    python -m localcloud.demo [--scenario outage|slow|throttling|healthy|poison] [--compress FACTOR]

1. measures this machine and synthesizes the CDK app (``stacks.application.build_app``) with the stage's
   time settings divided by ``--compress`` (default 10: the consumer's 30 s timeout becomes 3 s, the
   breaker's 30 s recovery 3 s; lowered on a machine too slow for that, see ``calibration.py``; the report
   lists the factor, why, and every override), so a run takes about a minute instead of ten;
2. deploys the template into moto on 127.0.0.1 and runs the functions in-process behind pollers that
   honour the event source mapping, with the partner API replaced by its fault-injecting twin;
3. sends steady load through the local front door while the partner fails as the scenario says;
4. then tours the rest of the pipeline on the same cloud (``tour.py``: events through the front door,
   fulfilment workflows through a partner fault, a failing subscriber's DLQ and the operator's redrive
   of it through ``python -m ops``); ``--no-tour`` skips it;
5. prints a report (a block per scenario and per part of the tour) and writes a timeline picture to
   ``demo-output/``.

Exit status 0 when nothing was lost, nothing was charged twice, the queue drained and every part of the
tour did what it shows; 1 otherwise.
Every port is on 127.0.0.1 and released at exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path

from localcloud import report
from localcloud.calibration import DEFAULT_COMPRESS, calibrate, rate_scale, timeline_scale
from localcloud.cloud import LocalCloud
from localcloud.command import start_command
from localcloud.deploy import PROJECT_ROOT, Synthesized, cdk_context, synthesize
from localcloud.scenarios import (
    DEFAULT_SCENARIO,
    RunResult,
    Sample,
    ScenarioRun,
    compressed_context,
    context_differences,
    receive_budget_seconds,
    scenarios,
)
from localcloud.tour import Tour, TourResult
from localcloud.tour import text as tour_text

INTERRUPTED = 130
DEFAULT_OUTPUT = PROJECT_ROOT / "demo-output"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcloud.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"one of {', '.join(sorted(scenarios()))}, or several separated by commas (run back to back "
        f"on one local cloud, each from rest); default {DEFAULT_SCENARIO}",
    )
    parser.add_argument(
        "--compress",
        type=float,
        default=DEFAULT_COMPRESS,
        help="divide the stage's time settings by at most this (default 10, lowered when this machine is "
        "too slow for it, see localcloud/calibration.py; 1 = cdk.json as is, a run then takes minutes); "
        "with --synthesized: the factor that assembly was built with",
    )
    parser.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="use --compress as given instead of lowering it for a slow or busy machine",
    )
    parser.add_argument(
        "--load-scale",
        type=float,
        help="the scenarios' load relative to their nominal rates (default: what calibration chose, or "
        "--compress / 10 without it)",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for every report (e.g. how --compress was chosen)"
    )
    parser.add_argument("--stage", default="dev", help="cdk.json stage to synthesize (default dev)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the picture and logs go")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="shrink the scenario's timeline (tests use 0.4)"
    )
    parser.add_argument("--synthesized", type=Path, help="reuse this cloud assembly instead of synthesizing")
    parser.add_argument("--json-dir", type=Path, help="also write each run's account as <scenario>.json here")
    parser.add_argument("--no-picture", action="store_true", help="skip the timeline PNG")
    parser.add_argument(
        "--no-tour",
        dest="tour",
        action="store_false",
        help="skip the tour of events, workflows and the DLQ redrive after the scenarios",
    )
    return parser.parse_args(argv)


class _Progress:
    """One updating line on a terminal; a line every 5 s otherwise (CI logs)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last_line = -10.0

    def __call__(self, sample: Sample, run: ScenarioRun) -> None:
        line = (
            f"t={sample.t:5.1f}s {sample.phase:<10} accepted={sample.accepted:<5d} "
            f"queue={sample.visible:>4d} visible {sample.in_flight:>4d} in flight  dlq={sample.dlq:<3d} "
            f"busy={sample.busy}/{run.poller.concurrency}  circuit={sample.circuit:<9} "
            f"partner calls={sample.calls:<5d} errors={sample.errors}"
        )
        if self.tty:
            sys.stdout.write("\r" + line + "\x1b[K")
            sys.stdout.flush()
        elif sample.t - self.last_line >= 5:
            self.last_line = sample.t
            print(line, flush=True)

    def step(self, line: str) -> None:
        """A step of the tour: one line each (they take seconds, not minutes)."""
        print(f"  {line}", flush=True)

    def done(self) -> None:
        if self.tty and self.last_line != -1.0:
            self.last_line = -1.0
            sys.stdout.write("\n")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # Ctrl-C and SIGTERM both stop the run and release every port (explicit for SIGINT too: a process
    # started in the background by a non-interactive shell inherits SIGINT as ignored).
    start_command(signal.SIGTERM, signal.SIGINT)
    # moto's Step Functions interpreter logs every error a state machine handles (a Choice reading an
    # absent path, the tour's charge failed on purpose) as an ERROR with the whole state: the report and
    # the executions' status and history say what happened.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    names = [name.strip() for name in args.scenario.split(",") if name.strip()]
    unknown = [name for name in names if name not in scenarios()]
    if unknown or not names:
        print(f"unknown scenario {unknown}; choose from {sorted(scenarios())}", file=sys.stderr)
        return 2
    base_context = cdk_context()
    base_context["stage"] = args.stage
    compress, load, notes = args.compress, args.load_scale, list(args.note)
    batch_size = None
    if args.synthesized is None and args.calibrate:
        print("measuring this machine to choose the time compression ...", flush=True)
        calibration = calibrate(base_context, args.compress)
        compress, load, batch_size = calibration.factor, calibration.rate_scale, calibration.batch_size
        notes.append(f"time compressed /{compress:g}: {calibration.reason}")
        print(f"  {notes[-1]}", flush=True)
    context, overrides = compressed_context(base_context, compress, batch_size)
    known = scenarios(
        timeline_scale(args.scale, compress),
        rate_scale(compress) if load is None else load,
        receive_budget_s=receive_budget_seconds(context),
    )

    for name in names:
        print(f"local cloud demo: scenario '{name}' - {known[name].description}")
    started = time.monotonic()
    results = []
    tour: TourResult | None = None
    with tempfile.TemporaryDirectory(prefix="localcloud-cdk.out-") as outdir:
        if args.synthesized is not None:
            synthesized = Synthesized.load(args.synthesized)
            overrides = context_differences(base_context, synthesized.context) if synthesized.context else []
            print(f"reusing the cloud assembly in {args.synthesized}", flush=True)
        else:
            compressed = f"time settings / {compress:g}"
            print(f"synthesizing the CDK app (stage {args.stage}, {compressed}) ...", flush=True)
            synthesized = synthesize(context, outdir)
        print(f"  {len(synthesized.resources)} resources in {time.monotonic() - started:.1f}s", flush=True)
        log_dir = args.output / "logs"
        if log_dir.exists():
            for old in log_dir.glob("*.log"):
                old.unlink()
        cloud = LocalCloud(synthesized, seed=args.seed, log_dir=log_dir)
        progress = _Progress()
        try:
            print("deploying into the emulator and starting functions, pollers, front door ...", flush=True)
            cloud.start()
            _describe(cloud, log_dir)
            for name in names:
                print(f"--- running '{name}'", flush=True)
                run = ScenarioRun(
                    cloud,
                    known[name],
                    overrides=overrides,
                    progress=progress,
                    seed=args.seed,
                    notes=notes,
                    alarm_factor=compress,
                )
                results.append(run.run())
                progress.done()
                _write(results[-1], args)
            if args.tour:
                print("--- touring the rest of the pipeline", flush=True)
                outage = next((r for r in results if r.scenario.fault_window is not None), None)
                tour = Tour(cloud, progress=progress.step).run(outage)
                _write_tour(tour, args)
        except KeyboardInterrupt:
            progress.done()
            print("interrupted: stopping the local cloud and releasing its ports", file=sys.stderr)
            return INTERRUPTED
        finally:
            progress.done()
            cloud.stop()
    tour_ok = tour is None or tour.ok
    return 0 if all(_ok(result) for result in results) and tour_ok else 1


def _describe(cloud: LocalCloud, log_dir: Path) -> None:
    described = cloud.describe()
    print(f"  emulator   {described['emulator']}   front door {described['front_door']}")
    print(f"  partner    {', '.join(described['dependencies'].values())} (fault-injecting twin)")
    print(f"  not emulated (skipped by moto): {', '.join(described['not_emulated'])}")
    for handler, info in described["functions"].items():
        if "init_error" in info:
            print(f"  WARNING: {handler} cannot start: {info['init_error']['errorMessage']}")
    print(f"  function logs: {log_dir}", flush=True)


def _write(result: RunResult, args: argparse.Namespace) -> None:
    name = result.scenario.name
    args.output.mkdir(parents=True, exist_ok=True)
    png = None if args.no_picture else report.timeline_png(result, args.output / f"{name}-timeline.png")
    text = report.text(result, png=png)
    (args.output / f"{name}-report.txt").write_text(text)
    if args.json_dir is not None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
        partial = args.json_dir / f"{name}.partial"
        partial.write_text(
            json.dumps({**report.result_document(result), "ok": _ok(result)}, indent=1, default=str)
        )
        partial.replace(args.json_dir / f"{name}.json")  # appears complete or not at all
    print(text, flush=True)


def _write_tour(tour: TourResult, args: argparse.Namespace) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    text = tour_text(tour)
    (args.output / "tour-report.txt").write_text(text)
    if args.json_dir is not None:
        args.json_dir.mkdir(parents=True, exist_ok=True)
        partial = args.json_dir / "tour.partial"
        partial.write_text(json.dumps(tour.document(), indent=1, default=str))
        partial.replace(args.json_dir / "tour.json")  # appears complete or not at all
    print(text, flush=True)


def _ok(result: RunResult) -> bool:
    """The demo's verdict: nothing lost, nothing charged twice, the queue drained."""
    summary = report.summary(result)
    return summary["lost"] == 0 and summary["duplicate_side_effects"] == 0 and result.drained


if __name__ == "__main__":
    sys.exit(main())
