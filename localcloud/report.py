"""The demo's report: numbers that show whether the patterns held, a timeline picture, and the run as a
JSON document."""

from __future__ import annotations

import dataclasses
import statistics
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from localcloud.alarms import AlarmTimeline
from localcloud.evidence import scenario_patterns
from localcloud.scenarios import RunResult, Transition, failed_call

CIRCUIT_LEVEL = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


def summary(result: RunResult) -> dict[str, object]:
    """The report's numbers (also what the e2e tests assert on)."""
    counts = result.counts()
    accepted = len(result.accepted)
    window = result.fault_window
    data: dict[str, object] = {
        "accepted": accepted,
        "injected_directly": len(result.messages) - accepted,
        "processed": counts["processed"],
        "in_dlq": counts["dlq"],
        "lost": counts["lost"],
        "still_queued": counts["queued"],
        "charged_and_in_dlq": counts["charged+dlq"],
        "duplicate_side_effects": len(result.duplicate_side_effects),
        "dependency_calls": len(result.calls),
        "calls_per_accepted": len(result.calls) / accepted if accepted else 0.0,
        "peak_dependency_in_flight": result.peak_dependency_in_flight,
        "peak_consumer_in_flight": result.peak_consumer_in_flight,
        "cap": result.cap,
        "drained": result.drained,
        "drain_time_after_recovery_s": result.drain_time_after_recovery(),
        "transitions": [(round(t.t, 1), t.from_state, t.to_state) for t in result.transitions],
        "record_transitions": [(round(t.t, 1), t.from_state, t.to_state) for t in result.record_transitions],
        "status_reads": len(result.status_reads),
        "status_reads_shed": sum(1 for r in result.status_reads if r.status == 503),
    }
    shed = result.shed_status_reads()
    if shed:
        data.update(
            {
                "status_advice_median_s": statistics.median(r.retry_after_s or 0.0 for r, _, _ in shed),
                "status_changed_median_s": statistics.median(c for _, c, _ in shed if c is not None)
                if any(c is not None for _, c, _ in shed)
                else None,
                "status_retried_ok": sum(1 for _, _, n in shed if n is not None and n.status == 200),
                "status_retried": sum(1 for _, _, n in shed if n is not None),
            }
        )
    if window is not None:
        start, end = window
        during = result.accepted_between(start, end)
        calls = result.calls_between(start, end)
        data.update(
            {
                "accepted_during_fault": len(during),
                "calls_during_fault": len(calls),
                "calls_per_message_during_fault": len(calls) / len(during) if during else 0.0,
                "peak_queue_depth_before_fault": result.peak_depth(0, start),
                "peak_queue_depth_during_fault": result.peak_depth(start, end + result.visibility_timeout_s),
            }
        )
    return data


def text(result: RunResult, png: Path | None = None) -> str:
    s = summary(result)
    scenario = result.scenario
    lines = [
        "",
        f"=== scenario '{scenario.name}': {scenario.description}",
        "",
        "partner timeline:  "
        + "  ->  ".join(f"{p.label} @ {p.start_s:.0f}s" for p in scenario.phases)
        + f"   (load {scenario.load_rate:.3g} orders/s for {scenario.load_s:.3g}s)",
    ]
    if result.overrides:
        lines.append("time-compressed stage config (context override used for this synth):")
        lines.extend(f"    {o.key}: {o.before} -> {o.after}" for o in result.overrides)
    lines.append(
        f"queue: visibility timeout {result.visibility_timeout_s}s, maxReceiveCount "
        f"{result.max_receive_count}; consumer max concurrency {result.cap}"
    )
    lines += [
        "",
        f"accepted (202)                  {s['accepted']}"
        + (f"   (+{s['injected_directly']} written straight to the queue)" if s["injected_directly"] else ""),
        f"processed (charged once)        {s['processed']}",
        f"in DLQ                          {s['in_dlq']}" + _dlq_reasons(result),
        f"lost                            {s['lost']}" + ("   <-- must be 0" if s["lost"] else ""),
        f"duplicate side effects          {s['duplicate_side_effects']}"
        + ("   <-- must be 0" if s["duplicate_side_effects"] else ""),
    ]
    if s["still_queued"]:
        lines.append(f"still queued at the deadline    {s['still_queued']}   <-- run did not drain")
    if s["charged_and_in_dlq"]:
        lines.append(f"charged AND in DLQ              {s['charged_and_in_dlq']}   <-- must be 0")
    rejected = ", ".join(f"{code}: {n}" for code, n in sorted(result.rejected.items()))
    if rejected:
        lines.append(f"front door refusals (retried)   {rejected}")
    lines += [
        f"client retries (same key)       {sum(1 for m in result.messages if m.origin == 'api-retry')}"
        "   (absorbed by idempotency)",
        "",
        f"calls to the partner            {s['dependency_calls']}   "
        f"({s['calls_per_accepted']:.2f} per accepted message)",
    ]
    lines.extend(f"timeline: {note}" for note in result.timeline_notes)
    if result.drain_verdict is not None and not result.drain_verdict.drained:
        lines.append(f"drain: {result.drain_verdict.detail}")
    if result.fault_window is not None:
        lines += [
            f"  during the fault              {s['calls_during_fault']} calls for "
            f"{s['accepted_during_fault']} messages accepted meanwhile "
            f"({s['calls_per_message_during_fault']:.2f} per message)",
            f"queue depth                     peak {s['peak_queue_depth_before_fault']} before the fault, "
            f"{s['peak_queue_depth_during_fault']} during it, 0 at the end"
            if result.drained
            else "queue depth                     did not drain",
        ]
        drain = s["drain_time_after_recovery_s"]
        lines.append(
            f"drain time after recovery       {drain:.1f}s   (visibility timeout {result.visibility_timeout_s}s: "
            "a failed record backs off for less, but for all of it on its last receives)"
            if isinstance(drain, float)
            else "drain time after recovery       n/a (did not drain)"
        )
        closed_after = result.circuit_closed_after_recovery()
        if closed_after is not None:
            lines.append(f"circuit closed again            {closed_after:.1f}s after the partner recovered")
    codes = Counter(c.status for c in result.calls)
    lines.append(
        "partner answers                 "
        + ", ".join(f"{k or 'abandoned'}: {v}" for k, v in sorted(codes.items()))
    )
    lines.append(
        f"peak dependency concurrency     {s['peak_dependency_in_flight']} at the partner "
        f"(consumer cap {s['cap']}; consumer peak {s['peak_consumer_in_flight']})"
        + (
            "  - includes requests the consumer already abandoned after its attempt timeout"
            if s["peak_dependency_in_flight"] > s["cap"]  # type: ignore[operator]
            else ""
        )
    )
    if s["status_reads"]:
        lines.append(
            f"status reads (GET /orders/id)   {s['status_reads']}, {s['status_reads_shed']} shed with 503 + Retry-After"
        )
    if "status_advice_median_s" in s:
        changed = s["status_changed_median_s"]
        lines.append(
            f"  Retry-After vs the circuit     advice {s['status_advice_median_s']:.0f}s (median); the circuit "
            + (
                f"left OPEN {changed:.1f}s after the answer (median)"
                if isinstance(changed, float)
                else "stayed OPEN"
            )
            + f"; {s['status_retried_ok']} of {s['status_retried']} reads after waiting it answered 200"
        )
    lines.append("circuit transitions (logged)    " + (_transitions(result.transitions) or "none"))
    lines.append(
        "circuit record (sampled 4/s)    " + (_transitions(result.record_transitions) or "CLOSED throughout")
    )
    if result.consumer_timeouts or result.consumer_errors:
        stalled = (
            f" ({result.consumer_timeouts_from_stalls} only because this process went unscheduled, up to "
            f"{result.longest_host_stall_s:.1f}s at once: localcloud/host_stalls.py)"
            if result.consumer_timeouts_from_stalls
            else ""
        )
        lines.append(
            f"consumer invocations            {result.consumer_errors} errors, {result.consumer_timeouts} timeouts"
            + stalled
        )
    if result.alarms is not None:
        lines += ["", *alarm_lines(result.alarms)]
    lines += ["", *pattern_lines(scenario_patterns(result))]
    if png is not None:
        lines += ["", f"timeline picture: {png}"]
    return "\n".join(lines) + "\n"


def pattern_lines(patterns: dict[str, str]) -> list[str]:
    """One block: the catalogue's patterns this run showed (docs/patterns.md), each with its evidence."""
    lines = [f"patterns shown (docs/patterns.md): {len(patterns)}"]
    for name, seen in patterns.items():
        lines += textwrap.wrap(
            f"{name.split(' (')[0]}: {seen}", width=110, initial_indent="  ", subsequent_indent="      "
        )
    return lines


def alarm_lines(timeline: AlarmTimeline) -> list[str]:
    """One block: the alarms that went to ALARM (and back) with times, then what was not evaluated."""
    total = len(timeline.changes) + len(timeline.not_evaluable)
    lines = [
        f"alarms (the template's {total}, evaluated over this run's metrics; periods / {timeline.factor:g})"
    ]
    fired = timeline.fired()
    width = max((len(name) for name in fired), default=0) + 2
    for name in fired:
        windows = ", ".join(
            f"ALARM {start:.1f}s -> " + (f"OK {end:.1f}s" if end is not None else "still ALARM at the end")
            for start, end in timeline.alarm_windows(name)
        )
        composite = "  (composite)" if name in timeline.composites else ""
        lines.append(f"  {name:<{width}}{windows}{composite}")
    if not fired:
        lines.append("  no alarm went to ALARM")
    close = [
        f"{name} ({seen.breaching_periods} period{'s' if seen.breaching_periods > 1 else ''}, "
        f"needs {seen.datapoints_to_alarm} of {seen.evaluation_periods})"
        for name in timeline.breached_without_firing()
        for seen in [timeline.seen[name]]
    ]
    if close:
        lines += textwrap.wrap(
            "breached, too briefly to fire: " + ", ".join(close),
            width=110,
            initial_indent="  ",
            subsequent_indent="    ",
        )
    lines.append(
        f"  evaluated {len(timeline.changes)}, no ALARM: {len(timeline.changes) - len(fired)}"
        + (
            f" ({len(timeline.partly_observed)} read some inputs never observable here as missing)"
            if timeline.partly_observed
            else ""
        )
    )
    reasons = Counter(timeline.not_evaluable.values())
    lines.append(f"  not evaluable locally: {len(timeline.not_evaluable)}")
    lines.extend(f"    {n} x {reason}" for reason, n in sorted(reasons.items(), key=lambda item: -item[1]))
    return lines


def _alarm_panel(axis: Any, timeline: AlarmTimeline, fired: list[str], end: float) -> None:
    """One row per alarm that fired: a bar while it was in ALARM."""
    for row, name in enumerate(fired):
        bars = [
            (start, (stop if stop is not None else end) - start)
            for start, stop in timeline.alarm_windows(name)
        ]
        axis.broken_barh(bars, (row - 0.35, 0.7), color="tab:red", alpha=0.7)
    axis.set_yticks(range(len(fired)), fired, fontsize=8)
    axis.set_ylim(-0.6, len(fired) - 0.4)
    axis.invert_yaxis()
    axis.set_ylabel("alarms in ALARM")


def result_document(result: RunResult) -> dict[str, Any]:
    """A JSON-serializable account of a run (for ``demo --json`` and the e2e tests)."""
    by_key: dict[str, int] = {}
    for message in result.accepted:
        by_key[message.idempotency_key] = by_key.get(message.idempotency_key, 0) + 1
    return {
        "scenario": result.scenario.name,
        "fault_window": result.fault_window,
        "nominal_fault_window": result.scenario.fault_window,
        "timeline_notes": result.timeline_notes,
        "drain_verdict": None
        if result.drain_verdict is None
        else {"outcome": result.drain_verdict.outcome, "detail": result.drain_verdict.detail},
        "summary": summary(result),
        "drained": result.drained,
        "cap": result.cap,
        "visibility_timeout_s": result.visibility_timeout_s,
        "max_receive_count": result.max_receive_count,
        "consumer_errors": result.consumer_errors,
        "consumer_timeouts": result.consumer_timeouts,
        "consumer_timeouts_from_stalls": result.consumer_timeouts_from_stalls,
        "longest_host_stall_s": result.longest_host_stall_s,
        "peak_consumer_in_flight": result.peak_consumer_in_flight,
        "peak_dependency_in_flight": result.peak_dependency_in_flight,
        "attempt_timeout_ms": result.attempt_timeout_ms,
        "transitions": [{"t": t.t, "from": t.from_state, "to": t.to_state} for t in result.transitions],
        "record_transitions": [
            {"t": t.t, "from": t.from_state, "to": t.to_state} for t in result.record_transitions
        ],
        "final_circuit": result.samples[-1].circuit if result.samples else None,
        "calls": [
            {"t": c.t, "status": c.status, "key": c.idempotency_key, "latency_ms": c.latency_ms}
            for c in result.calls
        ],
        "messages": [
            {
                "t": m.t,
                "order_id": m.order_id,
                "key": m.idempotency_key,
                "message_id": m.message_id,
                "origin": m.origin,
                "note": m.note,
                "outcome": result.outcome(m),
                "messages_with_key": by_key.get(m.idempotency_key, 0),
            }
            for m in result.messages
        ],
        "charges": result.charges,
        "dlq": result.dlq_ids,
        "status_reads": [dataclasses.asdict(r) for r in result.status_reads],
        "breaker_recovery_s": result.breaker_recovery_s,
        "alarms": None if result.alarms is None else result.alarms.document(),
        "patterns": scenario_patterns(result),
        "report": text(result),
    }


def _transitions(transitions: list[Transition]) -> str:
    return ", ".join(f"{t.from_state}->{t.to_state} @ {t.t:.1f}s" for t in transitions)


def _dlq_reasons(result: RunResult) -> str:
    reasons = Counter(result.dlq_ids.values())
    return f"   ({', '.join(f'{r}: {n}' for r, n in sorted(reasons.items()))})" if reasons else ""


def timeline_png(result: RunResult, path: Path) -> Path:
    """Queue depth, busy consumers, circuit state, partner calls and errors over time (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result.samples
    t = [s.t for s in samples]
    fired = result.alarms.fired() if result.alarms is not None else []
    panels = 5 if fired else 4
    figure, axes = plt.subplots(
        panels, 1, figsize=(11, 9 + 0.3 * len(fired)), sharex=True, constrained_layout=True
    )
    figure.suptitle(
        f"local cloud - scenario '{result.scenario.name}'  (shaded: partner fault; dotted: load stops)"
    )
    queue, busy, circuit, calls = axes[:4]

    queue.plot(t, [s.visible for s in samples], label="visible")
    queue.plot(
        t,
        [s.in_flight for s in samples],
        label="invisible (being processed or waiting out the visibility timeout)",
    )
    queue.plot(t, [s.dlq for s in samples], label="DLQ", color="black", linestyle=":")
    queue.set_ylabel("order queue")
    queue.legend(loc="upper right", fontsize=8)

    busy.step(t, [s.busy for s in samples], where="post", color="tab:green")
    busy.axhline(result.cap, color="tab:red", linestyle="--", linewidth=1, label=f"cap ({result.cap})")
    busy.set_ylabel("busy consumers")
    busy.set_ylim(-0.2, result.cap + 1)
    busy.legend(loc="upper right", fontsize=8)

    circuit.step(t, [CIRCUIT_LEVEL.get(s.circuit, 0) for s in samples], where="post", color="tab:purple")
    circuit.set_yticks([0, 1, 2], ["CLOSED", "HALF_OPEN", "OPEN"])
    circuit.set_ylabel("circuit")

    end = int(max(t, default=0)) + 1
    per_second = Counter(int(c.t) for c in result.calls if c.t >= 0)
    errors = Counter(int(c.t) for c in result.calls if c.t >= 0 and failed_call(c, result.attempt_timeout_ms))
    seconds = list(range(end))
    calls.bar(seconds, [per_second[x] for x in seconds], width=0.9, label="calls/s", color="tab:blue")
    calls.bar(
        seconds,
        [errors[x] for x in seconds],
        width=0.9,
        label="failed/s (error or timed out)",
        color="tab:red",
    )
    calls.set_ylabel("partner")
    axes[-1].set_xlabel("seconds since start")
    calls.legend(loc="upper right", fontsize=8)
    if fired and result.alarms is not None:
        _alarm_panel(axes[4], result.alarms, fired, end)

    for axis in axes:
        if result.fault_window is not None:
            start, stop = result.fault_window
            axis.axvspan(start, stop, color="tab:red", alpha=0.08)
        axis.axvline(result.load_ended_s, color="grey", linestyle=":", linewidth=1)
        axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
