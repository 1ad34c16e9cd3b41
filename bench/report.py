"""docs/benchmarks.md and its chart, from the measured results (nothing here is typed in by hand)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cost import INIT_RATIO_TARGET, ImportCost, PackageSize, SynthCost
from bench.results import CAPACITY_ORDERS, DesignResult, percentile
from localcloud.scenarios import Scenario

CHART_NAME = "resilience.png"


@dataclass
class Document:
    command: str
    machine: str
    scale: float
    api_limit_s: float
    naive_function_timeout_s: float
    neighbour_pool: int
    scenarios: dict[str, Scenario]
    results: list[tuple[DesignResult, DesignResult, DesignResult]]  # (naive, peer, architecture)
    imports: list[ImportCost] = field(default_factory=list)
    sizes: list[PackageSize] = field(default_factory=list)
    synth: SynthCost | None = None
    cost_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    # From the synthesized (compressed) settings: localcloud.scenarios.breaker_bounds.
    breaker_threshold: int | None = None
    close_within_s: float | None = None


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool


def _f(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def _ratio(naive: float | None, architecture: float | None) -> str:
    if naive is None or architecture is None:
        return "n/a"
    if architecture == 0:
        return "inf" if naive else "-"
    return f"{naive / architecture:.2f}x"


def _rows(naive: DesignResult, peer: DesignResult, arch: DesignResult) -> list[tuple[str, ...]]:
    def row(name: str, get: Callable[[DesignResult], float | None], digits: int = 2, unit: str = "") -> tuple:
        a, p, b = get(naive), get(peer), get(arch)
        return (
            name,
            _f(a, digits, unit),
            _f(p, digits, unit),
            _f(b, digits, unit),
            _ratio(a, b),
            _ratio(p, b),
        )

    rows = [
        row("requests sent by clients", lambda r: r.requests, 0),
        row("fulfilled (charged >= 1x) at the end", lambda r: r.fulfilled, 0),
        row("client got an error / gave up", lambda r: r.rejected, 0),
        row("accepted but lost", lambda r: r.lost, 0),
        row("accepted and still queued at the deadline", lambda r: r.queued_at_deadline, 0),
        row("parked in the DLQ", lambda r: r.in_dlq, 0),
        row("duplicate side effects (orders charged > 1x)", lambda r: r.duplicates, 0),
        row("dependency calls per request during the fault", lambda r: r.calls_per_request_during_fault),
        row("dependency calls, whole run", lambda r: r.calls_total, 0),
        row("dependency calls per request, whole run", lambda r: r.calls_per_request),
        row("most dependency calls for one order", lambda r: r.most_calls_for_one_order, 0),
        row("  worst case the synth computed for the path", lambda r: r.worst_case_calls, 0),
        row("charged AND parked in a DLQ", lambda r: r.charged_in_dlq, 0),
        row("failed calls before the circuit record opened", lambda r: r.failed_calls_before_open, 0),
        row("failed calls before the whole fleet stopped", lambda r: r.failed_calls_before_stop, 0),
        row("circuit CLOSED again after recovery (s)", lambda r: r.closed_after_recovery_s, 1),
        row(
            "peak concurrency spent on the sick dependency (invocations busy on it)",
            lambda r: r.peak_consumer_concurrency,
            0,
        ),
        (
            "  concurrency cap",
            "none" if naive.cap is None else f"{naive.cap} (shared pool)",
            "none" if peer.cap is None else f"{peer.cap} (shared pool)",
            str(arch.cap),
            "",
            "",
        ),
        row(
            "peak requests in flight at the dependency (incl. abandoned)",
            lambda r: r.peak_dependency_in_flight,
            0,
        ),
        row("client answer p50 (ms)", lambda r: percentile(r.answer_ms, 50), 0),
        row("client answer p99 (ms)", lambda r: percentile(r.answer_ms, 99), 0),
        row("request -> charge done p50 (ms)", lambda r: percentile(r.done_ms, 50), 0),
        row("request -> charge done p99 (ms)", lambda r: percentile(r.done_ms, 99), 0),
        row("backlog at recovery (messages)", lambda r: r.backlog_at_recovery, 0),
        row("healthy throughput at the cap (orders/s)", lambda r: r.throughput_at_cap, 1),
        row("drain time after recovery (s)", lambda r: r.drain_s, 1),
        row("drain lower bound (s)", lambda r: r.drain_lower_bound_s, 2),
        row("drain time / lower bound", lambda r: r.drain_ratio, 2),
    ]
    if naive.healthy_rate_before is not None:
        rows += [
            row("healthy consumer calls/s before the fault", lambda r: r.healthy_rate_before, 1),
            row("healthy consumer calls/s during the fault", lambda r: r.healthy_rate_during, 1),
            row("healthy consumer during / before", lambda r: r.healthy_ratio, 2),
        ]
    return rows


# Issue targets: a brown-out or an outage of any length costs no message; over a whole outage the
# dependency sees barely more calls than orders.
NO_DLQ_SCENARIOS = frozenset({"outage", "brownout", "long-outage"})
WHOLE_OUTAGE_SCENARIOS = frozenset({"outage", "long-outage"})
# Open fast bounds what a dependency that fails every call gets. A brown-out answers half its calls: a
# breaker that opens on it at all does so late by design (its row is still published).
EVERY_CALL_FAILS_SCENARIOS = frozenset({"outage", "slow", "throttling", "noisy-neighbour", "long-outage"})


def targets(
    label: str, arch: DesignResult, *, threshold: int | None = None, close_within_s: float | None = None
) -> list[Target]:
    out = [
        Target("0 lost", str(arch.lost), arch.lost == 0),
        Target("0 duplicate side effects", str(arch.duplicates), arch.duplicates == 0),
        Target(
            "peak concurrency spent on the dependency <= cap",
            f"{arch.peak_consumer_concurrency} vs {arch.cap}; the dependency itself saw up to "
            f"{arch.peak_dependency_in_flight} in flight",
            arch.cap is not None and arch.peak_consumer_concurrency <= arch.cap,
        ),
    ]
    if label == "outage":
        value = arch.calls_per_request_during_fault
        out.append(
            Target("<= 1.2 dependency calls per message during the outage", f"{value:.2f}", value <= 1.2)
        )
    if arch.worst_case_calls is not None:
        out.append(
            Target(
                "no order caused more dependency calls than the synth's worst case for its path",
                f"{arch.most_calls_for_one_order} vs {arch.worst_case_calls}",
                arch.most_calls_for_one_order <= arch.worst_case_calls,
            )
        )
    out.append(Target("no charged order in a DLQ", str(arch.charged_in_dlq), arch.charged_in_dlq == 0))
    if label in NO_DLQ_SCENARIOS:
        out.append(Target("0 messages in any DLQ", str(arch.in_dlq), arch.in_dlq == 0))
    if label in WHOLE_OUTAGE_SCENARIOS:
        value = arch.calls_per_request
        out.append(Target("<= 1.05 dependency calls per request, whole run", f"{value:.2f}", value <= 1.05))
    # Until the whole fleet stopped; a result measured before that measure existed: until the record opened.
    before_stop = (
        arch.failed_calls_before_stop
        if arch.failed_calls_before_stop is not None
        else arch.failed_calls_before_open
    )
    if before_stop is not None and threshold is not None and label in EVERY_CALL_FAILS_SCENARIOS:
        out.append(
            Target(
                f"<= 3 x failure threshold ({3 * threshold}) failed calls before the fleet stopped",
                str(before_stop),
                before_stop <= 3 * threshold,
            )
        )
    if arch.closed_after_recovery_s is not None and close_within_s is not None:
        out.append(
            Target(
                f"circuit closed <= recovery window + one probe interval ({close_within_s:g} s) after recovery",
                f"{arch.closed_after_recovery_s:.1f} s",
                arch.closed_after_recovery_s <= close_within_s,
            )
        )
    ratio = arch.drain_ratio
    if ratio is not None:
        out.append(Target("drain <= 1.5 x lower bound", f"{ratio:.2f}x", ratio <= 1.5))
    elif arch.drain_s is None:
        out.append(Target("drain <= 1.5 x lower bound", "did not drain / not measurable", False))
    if arch.healthy_ratio is not None:
        out.append(Target("healthy consumer >= 90 %", f"{arch.healthy_ratio:.0%}", arch.healthy_ratio >= 0.9))
    return out


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def chart(document: Document, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label in document.scenarios]
    panels: list[tuple[str, Callable[[DesignResult], float]]] = [
        ("dependency calls per request during the fault", lambda r: r.calls_per_request_during_fault),
        ("peak concurrency spent on the sick dependency", lambda r: float(r.peak_consumer_concurrency)),
        ("requests not fulfilled at the end", lambda r: float(r.not_fulfilled)),
        ("orders in a DLQ at the end", lambda r: float(r.in_dlq)),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    width = 0.27
    for axis, (title, get) in zip(axes, panels, strict=True):
        xs = range(len(labels))
        naive = [get(n) for n, _, _ in document.results]
        peer = [get(p) for _, p, _ in document.results]
        arch = [get(a) for _, _, a in document.results]
        axis.bar([x - width for x in xs], naive, width, label="naive chain", color="#c0504d")
        axis.bar(list(xs), peer, width, label="SQS -> Lambda peer", color="#9bbb59")
        axis.bar([x + width for x in xs], arch, width, label="this architecture", color="#4f81bd")
        axis.set_xticks(list(xs), labels, rotation=20, fontsize=8)
        axis.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"naive chain, SQS -> Lambda peer and this architecture, same faults and load ({document.command})",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write(document: Document, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    png = chart(document, output_dir / "benchmarks" / CHART_NAME)
    markdown = output_dir / "benchmarks.md"
    markdown.write_text(render(document, png.relative_to(output_dir)))
    return markdown


def render(document: Document, png: Path) -> str:
    lines = [
        "# Resilience benchmark: this architecture vs the naive chain and the usual SQS -> Lambda peer",
        "",
        "Generated by the benchmark itself; every number below was measured in the run described here.",
        "",
        f"- command: `{document.command}` (from the repository root, `.venv/bin/python`)",
        f"- machine: {document.machine}",
        f"- whole run: {document.wall_s:.0f} s",
        "",
        f"![naive vs this architecture]({png.as_posix()})",
        "",
    ]
    lines += _method(document)
    for (label, scenario), (naive, peer, arch) in zip(
        document.scenarios.items(), document.results, strict=True
    ):
        window = scenario.fault_window
        lines += [
            f"## {label}",
            "",
            f"{scenario.description}. Load {scenario.load_rate:g} orders/s for {scenario.load_s:g} s; "
            + (f"fault from {window[0]:g} s to {window[1]:g} s." if window else "no fault."),
            "",
        ]
        lines += _table(
            (
                "measure",
                "naive chain",
                "SQS -> Lambda peer",
                "this architecture",
                "naive / architecture",
                "peer / architecture",
            ),
            _rows(naive, peer, arch),
        )
        lines += ["", "Targets for this architecture:", ""]
        lines += [
            f"- {'MET' if t.met else 'MISSED'}: {t.name} (measured {t.measured})"
            for t in targets(
                label, arch, threshold=document.breaker_threshold, close_within_s=document.close_within_s
            )
        ]
        notes = [f"naive: {n}" for n in naive.notes] + [f"peer: {n}" for n in peer.notes]
        notes += [f"architecture: {n}" for n in arch.notes]
        if notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
        lines.append("")
    lines += _costs(document)
    lines += _caveats()
    return "\n".join(lines) + "\n"


def _method(document: Document) -> list[str]:
    return [
        "## How it was measured",
        "",
        "All three designs get the same scenario from `localcloud.scenarios.scenarios("
        f"{document.scale:g})`: the same load schedule and the same fault script, played by a fresh",
        "fault-injecting partner twin (`localcloud.fault_dependency`) on 127.0.0.1 for each design.",
        "",
        "- **naive chain** (`bench/naive.py`): API -> function A -> function B -> dependency, all in-process",
        "  on the client's request thread (one thread per request: unbounded concurrency). A retries B and B",
        "  retries the dependency, 3 attempts each, immediately (no backoff, no jitter, no breaker, no",
        f"  bulkhead, no queue): up to 9 calls per request. The client waits at most {document.api_limit_s:g} s",
        f"  (API Gateway's 29 s / 10); each function stops at its timeout ({document.naive_function_timeout_s:g} s).",
        "  B makes one Idempotency-Key per invocation; A's retries invoke B again with a new key.",
        "  The clients send each order once.",
        "- **SQS -> Lambda peer** (`bench/peer.py`): what most teams deploy (the Solutions Constructs",
        "  `aws-sqs-lambda` defaults): the order goes to a queue with a DLQ after 15 receives and SQS's",
        "  default 30 s visibility timeout (scaled, never below the function timeout); batches of 10, no",
        "  partial batch response, no maximum concurrency (5 batches, then up to 300 more a minute while",
        "  messages wait and invocations succeed); the handler charges each record with the producer's",
        "  key, no retries of its own, no breaker: the first failure sends the whole batch back after the",
        f"  visibility timeout. Same function timeout as the naive chain ({document.naive_function_timeout_s:g} s).",
        "  It runs until every message is charged or dead-lettered.",
        "- **this architecture** (`bench/runner.py`): the real local cloud (`localcloud.cloud.LocalCloud`,",
        "  the CDK app synthesized with its time settings / 10), driven by `localcloud.scenarios.ScenarioRun`:",
        "  the storage-first front door -> SQS -> the real order consumer (budgeted retries, full jitter,",
        "  breaker, bulkhead). Its clients also resend 5 % of orders with the same key and retry a refused",
        "  request (429/5xx) with the same key. The client's answer is the front door's 202.",
        "- calls per request during the fault: dependency calls made while the fault was on / requests sent",
        "  while it was on.",
        f"- healthy throughput at the cap: before each scenario, {CAPACITY_ORDERS} orders (about a backlog at",
        "  recovery; at least 2 x cap x batch size) go through the front door at once with the dependency",
        "  healthy (the scenario's first profile); orders/s from the first 202 until the queue is empty. The",
        "  most a drain through the bulkhead can do on this machine.",
        "- drain lower bound: the queue cannot be empty before the load ends, nor before one controller",
        "  probe interval (the circuit closes at the next probe) plus (backlog at recovery + orders arriving",
        "  after it) / healthy throughput at the cap.",
        f"- noisy neighbour (the slow fault): one pool of {document.neighbour_pool} concurrency slots is shared",
        "  by the sick consumer and a healthy one calling its own healthy twin (500 ms per call) from",
        f"  {document.neighbour_pool} closed-loop workers; worker i runs only while i < pool - (slots the sick",
        "  consumer holds). Naive: every running function of the chain holds a slot (and is throttled when",
        "  the pool is full). Peer: its running invocations, at most the pool. This architecture: the real consumer's busy environments (its poller's",
        "  in-flight invocations, capped by its maximum concurrency). The local cloud runs one consumer per",
        "  dependency, so the second consumer is this model, not a second deployed function.",
        "",
    ]


def _costs(document: Document) -> list[str]:
    lines = ["## The cost of the machinery", ""]
    if document.imports:
        lines += [
            "Cold-start init: `import <handler module>` in a fresh interpreter with the function's environment,",
            "beside its library floor, the import of exactly the libraries the handler's code imports (found by",
            "walking its modules, deferred imports included; the X-Ray SDK where it builds a Tracer), nothing of",
            "the project. Fastest of 7, interleaved, on a freshly deployed emulator with nothing else running",
            "(it answers the secret read that belongs to init). No bytecode cache on either side, as on Lambda,",
            "where the layer and the code asset carry none. The rest is the project's own: its modules, the",
            f"clients and the secret read at init. Target: init at most {INIT_RATIO_TARGET:g}x its floor.",
            "",
        ]
        lines += _table(
            (
                "handler module",
                "init (ms)",
                "library floor (ms)",
                "the rest (ms)",
                "ratio",
                f"<= {INIT_RATIO_TARGET:g}x",
            ),
            [
                (
                    f"`{c.module}`",
                    f"{c.init_ms:.0f}",
                    f"{c.floor_ms:.0f}",
                    f"{c.init_ms - c.floor_ms:.0f}",
                    f"{c.ratio:.2f}x",
                    "MET" if c.ratio <= INIT_RATIO_TARGET else "MISSED",
                )
                for c in document.imports
            ],
        )
        lines.append("")
    if document.sizes:
        lines += ["Deployment package (`stacks/lambda_packaging.py`):", ""]
        lines += _table(
            ("part", "files", "size (MB)", "zipped (MB)"),
            [
                (s.name, str(s.files), f"{s.bytes / 1e6:.2f}", f"{s.zipped_bytes / 1e6:.2f}")
                for s in document.sizes
            ],
        )
        lines.append("")
    if document.synth is not None:
        s = document.synth
        lines += [
            "Synth (fresh interpreter each; `build_app()` + `synth()` as `make synth` runs it, without the CLI):",
            "",
            f"- this app: {s.app_s:.1f} s; an App with one empty Stack: {s.empty_s:.1f} s "
            f"({s.app_s / s.empty_s:.1f}x)",
            "",
        ]
    for error in document.cost_errors:
        lines += [f"- NOT MEASURED, failed: {error.splitlines()[0]}", ""]
    if len(lines) == 2:
        lines += ["Not measured in this run (`--quick`).", ""]
    return lines


def as_json(document: Document) -> dict[str, Any]:
    data = dataclasses.asdict(document)
    data["scenarios"] = {label: s.name for label, s in document.scenarios.items()}
    return data


def _caveats() -> list[str]:
    return [
        "## Caveats",
        "",
        "- Everything runs on one machine, in one Python process per design (the local cloud's functions are",
        "  in-process execution environments): absolute latencies are this machine's; compare the ratios.",
        "- The stack's time settings are divided by the factor the machine line gives; the partner's latencies (200 ms, 8 s) and its",
        "  `Retry-After: 1` are not, so timeouts are relatively shorter than in the cloud.",
        "- The architecture's client answer is the front door's 202 (storage-first): the order is not done",
        "  then. When it was done is the `request -> charge done` row, which includes waiting out the fault.",
        "- The peer is a model in process: its only work per record is the dependency call, while the",
        "  architecture's consumer also makes its emulated AWS calls (idempotency, order status) through",
        "  the local cloud, so the peer's drain is faster here than the same code would be in the cloud.",
        "- The naive clients do not retry their errors; real clients would, multiplying the calls further",
        "  (27 per request if the API layer retried too).",
        "- The noisy-neighbour numbers come from the shared-pool model described above, with the real",
        "  consumer's concurrency in it, not from two deployed consumers.",
        "",
    ]


def from_json(data: dict[str, Any], catalogue: dict[str, Scenario]) -> Document:
    """Rebuild a Document from ``as_json`` output (to re-render without re-running)."""
    scenarios_by_label = {
        label: dataclasses.replace(catalogue["slow"], name=name) if name not in catalogue else catalogue[name]
        for label, name in data["scenarios"].items()
    }
    return Document(
        command=data["command"],
        machine=data["machine"],
        scale=data["scale"],
        api_limit_s=data["api_limit_s"],
        naive_function_timeout_s=data["naive_function_timeout_s"],
        neighbour_pool=data["neighbour_pool"],
        scenarios=scenarios_by_label,
        results=[
            (DesignResult(**naive), DesignResult(**peer), DesignResult(**arch))
            for naive, peer, arch in data["results"]
        ],
        imports=[ImportCost(**{**c, "libraries": tuple(c.get("libraries", ()))}) for c in data["imports"]],
        sizes=[PackageSize(**c) for c in data["sizes"]],
        synth=SynthCost(**data["synth"]) if data.get("synth") else None,
        cost_errors=list(data.get("cost_errors", [])),
        wall_s=data["wall_s"],
        breaker_threshold=data.get("breaker_threshold"),
        close_within_s=data.get("close_within_s"),
    )
