#!/usr/bin/env python3
"""Replay archived events to the service bus, to the rules named (at least one).

What replays are for, and their caveats, are in docs/events.md. In short: a replay re-sends
events the bus archived to the *same* bus, for a time window, to the rules named. Use it when
events were delivered but processed wrongly (a bug, since fixed); delivery failures and
processing failures that ended in a DLQ are recovered with a DLQ redrive.

    python scripts/replay_events.py --archive <ArchiveName output> \\
        --start 2026-11-25T09:00:00Z --end 2026-11-25T10:30:00Z \\
        --rule <LedgerRuleName output> [--rule ...] [--bus <EventBusName output>]

There is no "every rule" default: each subscriber processes replayed events again, so the
rules are named. A rule tagged ``side-effects`` (the stack tags the rules whose subscriber
calls a partner: fulfilment charges and ships, notifications sends) is refused unless
``--allow-side-effects`` is given.

Waits until the replay completes and prints a JSON report. Exit status: 0 replay completed,
1 replay failed or was cancelled, 2 bad arguments (or a rule/bus/archive that does not
match), 3 still running when --timeout-seconds ran out (the replay carries on in AWS).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED"}
# EventBridge may take a few minutes to archive an event; AWS advises leaving 10 minutes.
ARCHIVE_DELAY = timedelta(minutes=10)
_NAME_LIMIT = 64
# Tag on a rule whose subscriber has side effects outside the service (stacks/event_fanout.py sets it;
# its value says what they are). Replaying to such a rule needs allow_side_effects.
SIDE_EFFECTS_TAG = "side-effects"


class ReplayError(Exception):
    """The replay cannot be started as asked (exit status 2)."""


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

    @property
    def exit_code(self) -> int:
        if self.state == "COMPLETED":
            return EXIT_COMPLETED
        return EXIT_FAILED if self.state in TERMINAL_STATES else EXIT_TIMEOUT


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
        Description=f"scripts/replay_events.py: {len(rule_arns)} rule(s)"[:512],
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Replay archived events to the service bus and wait for the replay to finish.",
        epilog="See docs/events.md for when to replay and what to check first.",
    )
    parser.add_argument("--archive", required=True, help="archive name (stack output EventsArchiveName)")
    parser.add_argument(
        "--bus", help="the archive's bus (name or ARN); checked, since a replay can only go back to it"
    )
    parser.add_argument("--start", required=True, type=parse_time, help="window start, ISO 8601 with offset")
    parser.add_argument("--end", required=True, type=parse_time, help="window end, ISO 8601 with offset")
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        dest="rules",
        help="replay to this rule (name on the bus, or ARN); repeat for several. Required: there is no "
        "'every rule' default",
    )
    parser.add_argument(
        "--allow-side-effects",
        action="store_true",
        help=f"also replay to rules tagged {SIDE_EFFECTS_TAG!r} (their subscriber charges, ships or notifies)",
    )
    parser.add_argument("--name", help="replay name (default: <archive>-<start>-<random>)")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--timeout-seconds", type=float, default=3600.0)
    parser.add_argument("--region", help="AWS region (default: the environment's)")
    return parser


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if client is None:
        import boto3

        client = boto3.client("events", region_name=args.region)
    try:
        report = replay(
            client,
            archive=args.archive,
            start=args.start,
            end=args.end,
            rules=args.rules,
            allow_side_effects=args.allow_side_effects,
            bus=args.bus,
            name=args.name,
            poll_seconds=args.poll_seconds,
            timeout_seconds=args.timeout_seconds,
        )
    except ReplayError as error:
        print(f"replay_events: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(asdict(report), indent=2))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
