"""``python -m bench [--quick]``: both designs, the same fault scripts and load, one run; writes the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cost, report
from bench.results import DesignResult
from bench.runner import run_architecture, run_naive, run_peer
from localcloud.calibration import DEFAULT_COMPRESS, calibrate, rate_scale, timeline_scale
from localcloud.cloud import LocalCloud
from localcloud.command import start_command
from localcloud.deploy import PROJECT_ROOT, Synthesized, cdk_context, synthesize
from localcloud.scenarios import (
    Scenario,
    breaker_bounds,
    compressed_context,
    receive_budget_seconds,
    scenarios,
)
from stacks import retry_budget

# Both designs run on time compressed by the factor calibrated for this machine (localcloud/calibration.py):
API_LIMIT_S = 29.0  # API Gateway's integration limit, scaled like the stack's time settings
NAIVE_FUNCTION_TIMEOUT_S = 30.0  # the naive functions' timeout, scaled (3 s at least, like the stack's)
NEIGHBOUR_POOL = 50  # shared concurrency slots in the noisy-neighbour scenario (account limit 1000 / 20)


# The full run's scenarios, in order; the noisy neighbour is the slow fault with a shared concurrency pool.
SCENARIOS = ("outage", "slow", "throttling", "noisy-neighbour", "brownout", "long-outage")
QUICK_SCENARIOS = ("outage",)


def _scenario_names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in SCENARIOS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or repr(value)}; choose from {', '.join(SCENARIOS)}"
        )
    return names


def plan_of(
    catalogue: dict[str, Scenario], *, quick: bool = False, only: tuple[str, ...] | None = None
) -> list[tuple[str, Scenario, int | None]]:
    """(label, scenario, shared concurrency pool) for each scenario to run, in the full run's order."""
    wanted = only if only is not None else QUICK_SCENARIOS if quick else SCENARIOS
    entries = {
        "outage": (catalogue["outage"], None),
        "slow": (catalogue["slow"], None),
        "throttling": (catalogue["throttling"], None),
        "noisy-neighbour": (dataclasses.replace(catalogue["slow"], name="noisy-neighbour"), NEIGHBOUR_POOL),
        "brownout": (catalogue["brownout"], None),
        "long-outage": (catalogue["long-outage"], None),
    }
    return [(label, *entries[label]) for label in SCENARIOS if label in wanted]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: one short outage, no cost section")
    parser.add_argument(
        "--scale", type=float, default=0.6, help="timeline scale of the scenarios (default 0.6)"
    )
    parser.add_argument(
        "--scenario",
        type=_scenario_names,
        default=None,
        metavar="NAME[,NAME]",
        help=f"run only these scenarios, in the full run's order, without the cost section ({', '.join(SCENARIOS)})",
    )
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs", help="where benchmarks.md goes")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument(
        "--render", type=Path, default=None, help="only re-render the report from a --json file"
    )
    parser.add_argument(
        "--synthesized",
        type=Path,
        help="reuse this cloud assembly (its time compression given by --compress) instead of calibrating "
        "and synthesizing",
    )
    parser.add_argument(
        "--compress", type=float, default=DEFAULT_COMPRESS, help="with --synthesized: its time compression"
    )
    parser.add_argument(
        "--load-scale", type=float, help="with --synthesized: the load scale calibration chose for it"
    )
    parser.add_argument("--note", default="", help="with --synthesized: how its compression was chosen")
    parser.add_argument(
        "--remeasure-costs",
        action="store_true",
        help="with --render: measure the cost section again, store it in that JSON and publish the report",
    )
    return parser.parse_args(argv)


@dataclasses.dataclass
class _Costs:
    imports: list[cost.ImportCost] = dataclasses.field(default_factory=list)
    sizes: list[cost.PackageSize] = dataclasses.field(default_factory=list)
    synth: cost.SynthCost | None = None
    errors: list[str] = dataclasses.field(default_factory=list)


def _measure_costs(synthesized: Synthesized, started: float) -> _Costs:
    """Cold-start imports, package sizes and synth time; a part that fails is reported, not fatal."""
    costs = _Costs()
    print(f"[{time.monotonic() - started:6.1f}s] cold-start imports ...", flush=True)
    try:
        with cost.quiet_deployment(synthesized) as handlers:
            costs.imports = cost.import_costs(handlers)
    except Exception as exc:  # publish the scenarios even if this part fails
        costs.errors.append(f"cold-start imports: {exc}")
    print(f"[{time.monotonic() - started:6.1f}s] package sizes and synth time ...", flush=True)
    try:
        costs.sizes = cost.package_sizes()
    except Exception as exc:
        costs.errors.append(f"package sizes: {exc}")
    try:
        costs.synth = cost.synth_cost()
    except Exception as exc:
        costs.errors.append(f"synth time: {exc}")
    return costs


def _remeasure_costs(path: Path, output: Path) -> int:
    """Measure the cost section again and publish it with the scenario results already in ``path``."""
    started = time.monotonic()
    data = json.loads(path.read_text())
    context = cdk_context()
    context["stage"] = "dev"
    with tempfile.TemporaryDirectory(prefix="bench-cdk.out-") as outdir:
        costs = _measure_costs(synthesize(context, outdir), started)
    data.update(
        imports=[dataclasses.asdict(c) for c in costs.imports],
        sizes=[dataclasses.asdict(s) for s in costs.sizes],
        synth=dataclasses.asdict(costs.synth) if costs.synth else None,
        cost_errors=costs.errors,
        command=f"{data['command'].split(';')[0]}; the cost section: python -m bench --render <its JSON> "
        "--remeasure-costs",
        machine=f"{data['machine'].split('; the cost section')[0]}; the cost section measured later, load "
        f"average {os.getloadavg()[0]:.1f}",
    )
    path.write_text(json.dumps(data, indent=2))
    return _render(data, output)


def _render(data: dict[str, Any], output: Path) -> int:
    """Write the report of a run's JSON document (the scenarios as that run scaled them)."""
    print(report.write(report.from_json(data, scenarios(data["scale"], data.get("rate_scale", 1.0))), output))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    start_command(signal.SIGTERM)
    if args.render is not None and args.remeasure_costs:
        return _remeasure_costs(args.render, args.output)
    if args.render is not None:
        return _render(json.loads(args.render.read_text()), args.output)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    context = cdk_context()
    context["stage"] = "dev"
    reused = Synthesized.load(args.synthesized) if args.synthesized is not None else None
    batch_size = None
    if reused is not None:
        compress, load_scale = args.compress, args.load_scale or rate_scale(args.compress)
        reason = args.note or "as the reused assembly was built"
    else:
        print("measuring this machine to choose the time compression ...", flush=True)
        calibration = calibrate(context, DEFAULT_COMPRESS)
        compress, load_scale, reason = calibration.factor, calibration.rate_scale, calibration.reason
        batch_size = calibration.batch_size
    print(f"  time compressed /{compress:g}: {reason}", flush=True)
    api_limit_s = API_LIMIT_S / compress
    naive_timeout_s = max(3.0, NAIVE_FUNCTION_TIMEOUT_S / compress)
    scale = timeline_scale(0.2 if args.quick else args.scale, compress)
    context = (
        dict(reused.context)
        if reused is not None and reused.context
        else compressed_context(context, compress, batch_size)[0]
    )
    catalogue = scenarios(scale, load_scale, receive_budget_s=receive_budget_seconds(context))
    bounds = breaker_bounds(context)
    plan = plan_of(catalogue, quick=args.quick, only=args.scenario)
    # The cost section belongs to the full run (a subset is a measurement of its scenarios only).
    full = not args.quick and args.scenario is None
    results: list[tuple[DesignResult, DesignResult, DesignResult]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cdk.out-") as outdir:
        if reused is not None:
            synthesized = reused
        else:
            print(f"synthesizing (time settings / {compress:g}) ...", flush=True)
            synthesized = synthesize(context, outdir)
        cloud = LocalCloud(synthesized, seed=7)
        try:
            cloud.start()
            for label, scenario, pool in plan:
                print(f"[{time.monotonic() - started:6.1f}s] {label}: naive chain ...", flush=True)
                naive = run_naive(
                    scenario, api_limit_s=api_limit_s, function_timeout_s=naive_timeout_s, pool=pool
                )
                print(f"[{time.monotonic() - started:6.1f}s] {label}: SQS -> Lambda peer ...", flush=True)
                peer = run_peer(scenario, function_timeout_s=naive_timeout_s, compress=compress, pool=pool)
                print(f"[{time.monotonic() - started:6.1f}s] {label}: this architecture ...", flush=True)
                drain_timeout = 35.0 * DEFAULT_COMPRESS / compress if args.quick else None
                architecture, _ = run_architecture(
                    cloud,
                    scenario,
                    pool=pool,
                    drain_timeout_s=drain_timeout,
                    probe_interval_s=bounds.probe_interval_s,
                    worst_case_calls=retry_budget.worst_case_in(synthesized.template, "POST /orders"),
                )
                results.append((naive, peer, architecture))
        except KeyboardInterrupt:
            print("interrupted: releasing the local cloud's ports", file=sys.stderr)
            return 130
        finally:
            cloud.stop()
        costs = _measure_costs(synthesized, started) if full else _Costs()
    command = "python -m bench" + (" --quick" if args.quick else f" --scale {args.scale:g}")
    if args.scenario is not None:
        command += f" --scenario {','.join(args.scenario)}"
    machine = (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        f"time compressed /{compress:g} ({reason})"
    )
    document = report.Document(
        command=command,
        machine=machine,
        scale=scale,
        api_limit_s=api_limit_s,
        naive_function_timeout_s=naive_timeout_s,
        neighbour_pool=NEIGHBOUR_POOL,
        scenarios={label: catalogue_entry for label, catalogue_entry, _ in plan},
        results=results,
        imports=costs.imports,
        sizes=costs.sizes,
        synth=costs.synth,
        cost_errors=costs.errors,
        wall_s=time.monotonic() - started,
        breaker_threshold=bounds.failure_threshold,
        close_within_s=bounds.close_within_s,
    )
    markdown = report.write(document, args.output)
    if args.json is not None:
        args.json.write_text(json.dumps({**report.as_json(document), "rate_scale": load_scale}, indent=2))
    print(markdown.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
