"""Replay archived events to the service bus, to the rules named (at least one): ops/replay.py's replay
as a standalone command (no stack names resolved, no confirmation).

What replays are for, and their caveats, are in docs/events.md. In short: a replay re-sends
events the bus archived to the *same* bus, for a time window, to the rules named. Use it when
events were delivered but processed wrongly (a bug, since fixed); delivery failures and
processing failures that ended in a DLQ are recovered with a DLQ redrive.

    python -m scripts.replay_events --archive <ArchiveName output> \\
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
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from lambdas.contracts.events import SIDE_EFFECTS_TAG
from ops.replay import REPLAY_EXIT_USAGE, ReplayError, parse_time, replay


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
        return REPLAY_EXIT_USAGE
    print(json.dumps(asdict(report), indent=2))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
