"""``ops replay``: scripts/replay_events.py (its checks, StartReplay and polling) with the stack's names
filled in and a confirmation first. The replay logic lives in the script; this only resolves and reports."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from ops.console import Console
from ops.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, UsageError
from ops.inventory import Inventory
from scripts.replay_events import ReplayError, replay


def subscriber_rule_output(subscriber: str) -> str:
    """The stack output holding a subscriber's rule name (stacks/event_fanout.py)."""
    return "Events" + "".join(part.capitalize() for part in subscriber.split("-")) + "RuleName"


def run_replay(
    inventory: Inventory,
    console: Console,
    *,
    archive: str | None,
    bus: str | None,
    start: datetime,
    end: datetime,
    rules: list[str],
    subscribers: list[str],
    allow_side_effects: bool,
    name: str | None,
    poll_seconds: float,
    timeout_seconds: float,
) -> int:
    if not rules and not subscribers:
        raise UsageError(
            "name what to replay to with --subscriber or --rule: a replay to every rule makes every "
            "subscriber (fulfilment and notifications included) process the events again"
        )
    archive_name = archive or inventory.require_output("EventsArchiveName", "the archive", "--archive")
    if bus is None and inventory.stack is not None:
        bus = inventory.output("EventBusName")
    resolved = list(rules)
    for subscriber in subscribers:
        resolved.append(
            inventory.require_output(
                subscriber_rule_output(subscriber), f"subscriber {subscriber}'s rule", "--rule"
            )
        )
    console.confirm(
        f"replay the events archived in {archive_name} between {start.isoformat()} and {end.isoformat()} "
        f"to {', '.join(resolved)}" + (" (rules with side effects allowed)" if allow_side_effects else "")
    )
    try:
        report = replay(
            inventory.aws.client("events"),
            archive=archive_name,
            start=start,
            end=end,
            rules=resolved,
            allow_side_effects=allow_side_effects,
            bus=bus,
            name=name,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            log=console.info,
        )
    except ReplayError as error:
        raise UsageError(str(error)) from None
    document = asdict(report)
    if report.state != "COMPLETED":  # the window warnings were logged when the replay started
        for warning in report.warnings:
            console.info(f"warning: {warning}")
    console.info(
        f"replay {report.replay_name}: {report.state}"
        + (f" ({report.state_reason})" if report.state_reason else "")
    )
    console.result(document)
    if report.state == "COMPLETED":
        return EXIT_OK
    return EXIT_FAILED if report.exit_code == 1 else EXIT_TIMEOUT
