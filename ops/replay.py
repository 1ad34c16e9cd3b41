"""``ops replay``: replay archived events to the bus, to the rules named (at least one), and wait.

What replays are for, and their caveats, are in docs/events.md. ``replay`` holds the checks (a rule
is named, rules tagged ``side-effects`` only with ``allow_side_effects``, the archive's bus), the
``StartReplay`` and the polling; ``run_replay`` fills in the stack's names (with ``--stack``), asks for
confirmation first (``--yes`` skips it) and answers with ops.errors' exit statuses.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.contracts.events import SIDE_EFFECTS_TAG
from ops.console import Console
from ops.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, UsageError
from ops.inventory import Inventory

TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED"}
# EventBridge may take a few minutes to archive an event; AWS advises leaving 10 minutes.
ARCHIVE_DELAY = timedelta(minutes=10)
_NAME_LIMIT = 64


class ReplayError(Exception):
    """The replay cannot be started as asked (``ops replay``: a usage error, exit status 2)."""


@dataclass
class ReplayReport:
    replay_name: str
    state: str
    archive_arn: str
    bus_arn: str
    rule_arns: list[str]
    event_start_time: str
    event_end_time: str
    state_reason: str | None = None
    event_last_replayed_time: str | None = None
    replay_start_time: str | None = None
    replay_end_time: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_time(value: str) -> datetime:
    """An ISO 8601 instant with its offset (``Z`` or ``+hh:mm``): a naive time is ambiguous."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset; add Z or +hh:mm")
    return parsed.astimezone(UTC)


def default_replay_name(archive: str, start: datetime) -> str:
    suffix = f"-{start:%Y%m%dT%H%M}-{uuid.uuid4().hex[:6]}"
    stem = re.sub(r"[^.\-_A-Za-z0-9]", "-", archive)[: _NAME_LIMIT - len(suffix)]
    return stem + suffix


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _rule_arn(client: Any, rule: str, bus_name: str) -> str:
    if rule.startswith("arn:"):
        on_bus = f":rule/{bus_name}/" in rule or (bus_name == "default" and rule.count("/") == 1)
        if not on_bus:
            raise ReplayError(f"rule {rule} is not on the bus {bus_name}")
        return rule
    try:
        return str(client.describe_rule(Name=rule, EventBusName=bus_name)["Arn"])
    except client.exceptions.ResourceNotFoundException:
        raise ReplayError(f"no rule {rule!r} on the bus {bus_name}") from None


def _side_effects(client: Any, rule_arn: str) -> str | None:
    tags = client.list_tags_for_resource(ResourceARN=rule_arn).get("Tags", [])
    return next((str(t["Value"]) for t in tags if t.get("Key") == SIDE_EFFECTS_TAG), None)


def replay(
    client: Any,
    *,
    archive: str,
    start: datetime,
    end: datetime,
    rules: Sequence[str],
    allow_side_effects: bool = False,
    bus: str | None = None,
    name: str | None = None,
    poll_seconds: float = 10.0,
    timeout_seconds: float = 3600.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> ReplayReport:
    """Start a replay of ``archive`` for [start, end) and wait for it to finish.

    ``client`` is a boto3 EventBridge client. ``rules`` (names on the archive's bus, or ARNs)
    are the rules to replay to; at least one. A rule tagged ``side-effects`` is refused unless
    ``allow_side_effects``.
    """
    if start >= end:
        raise ReplayError("--start must be before --end")
    if not rules:
        # Without FilterArns EventBridge replays to every rule on the bus: every subscriber would
        # process the window again, the ones that charge, ship or notify included.
        raise ReplayError(
            "name the rule(s) to replay to with --rule (or --subscriber in ops): a replay to every "
            "rule makes every subscriber process the events again"
        )
    warnings = []
    if end > now() - ARCHIVE_DELAY:
        warnings.append(
            "the window ends less than 10 minutes ago: events may not be archived yet, so some "
            "could be missing from this replay"
        )
    try:
        described = client.describe_archive(ArchiveName=archive)
    except client.exceptions.ResourceNotFoundException:
        raise ReplayError(f"no archive {archive!r}") from None
    archive_arn, bus_arn = described["ArchiveArn"], described["EventSourceArn"]
    if described.get("State") not in (None, "ENABLED"):
        warnings.append(f"archive state is {described['State']}")
    bus_name = bus_arn.split("/")[-1]
    if bus is not None and bus not in (bus_name, bus_arn):
        raise ReplayError(
            f"archive {archive} belongs to the bus {bus_name}, not {bus}: replays go to it only"
        )
    rule_arns = [_rule_arn(client, rule, bus_name) for rule in dict.fromkeys(rules)]
    effects = {arn: effect for arn in rule_arns if (effect := _side_effects(client, arn)) is not None}
    if effects and not allow_side_effects:
        listed = "; ".join(f"{arn.rsplit('/', 1)[-1]}: {effect}" for arn, effect in effects.items())
        raise ReplayError(
            f"refusing to replay to rules whose subscriber has side effects ({listed}). Replay to "
            "side-effect-free rules, or pass --allow-side-effects once you have checked that the "
            "subscriber deduplicates these events"
        )
    warnings += [f"replaying to a rule with side effects: {effect}" for effect in effects.values()]
    destination: dict[str, Any] = {"Arn": bus_arn, "FilterArns": rule_arns}
    replay_name = name or default_replay_name(archive, start)
    for warning in warnings:
        log(f"warning: {warning}")
    log(f"starting replay {replay_name}: {start.isoformat()} .. {end.isoformat()} -> {', '.join(rule_arns)}")
    client.start_replay(
        ReplayName=replay_name,
        Description=f"ops replay: {len(rule_arns)} rule(s)"[:512],
        EventSourceArn=archive_arn,
        EventStartTime=start,
        EventEndTime=end,
        Destination=destination,
    )

    deadline = monotonic() + timeout_seconds
    while True:
        status = client.describe_replay(ReplayName=replay_name)
        state = status["State"]
        last = _iso(status.get("EventLastReplayedTime"))
        log(f"{replay_name}: {state}" + (f", replayed up to {last}" if last else ""))
        if state in TERMINAL_STATES or monotonic() >= deadline:
            break
        sleep(poll_seconds)
    if state not in TERMINAL_STATES:
        warnings.append(
            f"still {state} after {timeout_seconds:g} s; follow it with "
            f"`aws events describe-replay --replay-name {replay_name}`"
        )
    return ReplayReport(
        replay_name=replay_name,
        state=state,
        archive_arn=archive_arn,
        bus_arn=bus_arn,
        rule_arns=rule_arns,
        event_start_time=start.isoformat(),
        event_end_time=end.isoformat(),
        state_reason=status.get("StateReason"),
        event_last_replayed_time=last,
        replay_start_time=_iso(status.get("ReplayStartTime")),
        replay_end_time=_iso(status.get("ReplayEndTime")),
        warnings=warnings,
    )


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
    return EXIT_FAILED if report.state in TERMINAL_STATES else EXIT_TIMEOUT
