"""``python -m ops``: the on-call engineer's commands for this pipeline (docs/runbook.md says when).

Resources come from a CloudFormation stack (``--stack``) or are named explicitly; every command works
against a real account (``--profile``/``--region``) or the local cloud (``--endpoint-url``).

Exit status: 0 done, 1 failed (or done only in part), 2 bad arguments or unknown resource, 3 not confirmed,
4 still running when the command stopped waiting.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts.consumer_control import CONTROL_OUTPUT
from ops import circuit, consumer, dlq
from ops.aws import Aws
from ops.console import Console
from ops.errors import EXIT_FAILED, EXIT_USAGE, OpsError
from ops.inventory import Inventory
from ops.replay import parse_time

PROG = "python -m ops"


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _rate(value: str) -> int:
    number = _positive_int(value)
    if number > 500:
        raise argparse.ArgumentTypeError("SQS moves at most 500 messages per second")
    return number


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (SUPPRESS: a later one never resets an earlier one)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("where")
    group.add_argument("--stack", default=argparse.SUPPRESS, help="CloudFormation stack to find resources in")
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: the environment's)")
    group.add_argument("--profile", default=argparse.SUPPRESS, help="AWS named profile")
    group.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help="one endpoint for every service, e.g. the local cloud http://127.0.0.1:5000",
    )
    output = common.add_argument_group("output")
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON"
    )
    output.add_argument(
        "--yes",
        "-y",
        action="store_true",
        default=argparse.SUPPRESS,
        help="do not ask before changing anything",
    )
    return common


class _Commands:
    """One level of subcommands; each takes the common options and is run by its handler."""

    def __init__(
        self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser, *, dest: str, metavar: str
    ) -> None:
        self._level = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
        self._common = common

    def add(
        self,
        name: str,
        handler: Callable[[argparse.Namespace, Aws, Console], int],
        *,
        help: str,
        description: str | None = None,
        **defaults: object,
    ) -> argparse.ArgumentParser:
        command = self._level.add_parser(name, parents=[self._common], help=help, description=description)
        command.set_defaults(handler=handler, **defaults)
        return command

    def group(
        self,
        name: str,
        *,
        help: str,
        description: str | None = None,
        dest: str = "action",
        metavar: str = "ACTION",
    ) -> _Commands:
        """A command whose subcommands do the work (``dlq list``, ``dlq peek`` ...)."""
        parser = self._level.add_parser(name, help=help, description=description)
        return _Commands(parser, self._common, dest=dest, metavar=metavar)


def _dlq_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("queue", metavar="QUEUE", help="DLQ: URL, ARN, name or a label from `dlq list`")


def _wait_seconds_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--wait-seconds", type=int, default=1, choices=range(0, 21), metavar="0-20")


def _consumer_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("name", metavar="NAME", help="consumer name, e.g. orders")


def build_parser() -> argparse.ArgumentParser:
    # Parents share their action objects: the top level gets its own copy, because its set_defaults()
    # below would otherwise turn the subcommands' SUPPRESS defaults into None (and reset earlier values).
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate the resilient-serverless pipeline: dead-letter queues, replays, circuits, consumers.",
        epilog="docs/runbook.md maps every alarm to a command. Destructive commands ask first (or --yes).",
        parents=[_common()],
    )
    parser.set_defaults(stack=None, region=None, profile=None, endpoint_url=None, json=False, yes=False)
    commands = _Commands(parser, common, dest="command", metavar="COMMAND")

    # -- dlq ------------------------------------------------------------------------------------
    dlq_commands = commands.group("dlq", help="dead-letter queues", description="Inspect and redrive DLQs.")

    listing = dlq_commands.add(
        "list",
        _dlq_list,
        help="every DLQ with its depth and oldest message age",
        description="Every queue that is another queue's redrive target or an EventBridge target's DLQ, "
        "with depth and oldest message age (CloudWatch ApproximateAgeOfOldestMessage).",
    )
    listing.add_argument("--queue-prefix", help="without --stack: only queues whose name starts with this")
    listing.add_argument(
        "--rules-on-bus",
        action="append",
        default=[],
        metavar="BUS",
        help="without --stack: also find DLQs of the targets of the rules on BUS (repeatable)",
    )
    listing.add_argument(
        "--sample-age",
        action="store_true",
        help="also estimate the age from up to 10 peeked messages (counts as a receive) where CloudWatch has "
        "no datapoint, e.g. on the local cloud",
    )

    peek = dlq_commands.add(
        "peek",
        _dlq_peek,
        help="show messages and why they failed, without consuming them",
        description="Receive up to --max messages, print their failure reason, receive count and body, and "
        "make them visible again at once. Receiving counts as a receive (ApproximateReceiveCount + 1).",
    )
    _dlq_argument(peek)
    peek.add_argument("--max", type=_positive_int, default=10, dest="max_messages", help="default 10")
    peek.add_argument(
        "--hold-seconds",
        type=_positive_int,
        default=30,
        help="how long peeked messages stay hidden at most (30)",
    )
    peek.add_argument("--body-chars", type=_positive_int, default=500, help="truncate bodies (default 500)")
    peek.add_argument("--full", action="store_true", help="print whole bodies")
    _wait_seconds_argument(peek)

    redrive = dlq_commands.add(
        "redrive",
        _dlq_redrive,
        help="move a DLQ's messages back to its source queue (StartMessageMoveTask)",
        description="Start an SQS message move task from the DLQ to its source queue (the queue whose "
        "redrive policy targets it) and follow it. Only for DLQs of SQS queues; for a DLQ that only "
        "EventBridge writes to, use redrive-to-bus.",
    )
    _dlq_argument(redrive)
    redrive.add_argument(
        "--to", metavar="QUEUE", help="destination when the DLQ serves several source queues"
    )
    redrive.add_argument(
        "--rate", type=_rate, help="at most N messages per second (1-500; default: SQS decides)"
    )
    redrive.add_argument("--no-wait", action="store_true", help="start the task and return")
    redrive.add_argument("--timeout-seconds", type=float, default=900.0, help="stop following after (900)")
    redrive.add_argument("--poll-seconds", type=float, default=5.0)

    to_bus = dlq_commands.add(
        "redrive-to-bus",
        _dlq_redrive_to_bus,
        help="re-put the events of an EventBridge target's DLQ on their bus",
        description="Receive the DLQ's events, PutEvents them on the bus (rate-limited), delete only those "
        "the bus accepted, leave the rest. Each re-put event goes to every matching rule on the bus and "
        "carries the DLQ's ARN in its resources; an event that already does is not re-put again unless "
        "--allow-repeat (bounds a redrive loop).",
    )
    _dlq_argument(to_bus)
    to_bus.add_argument("--bus", help="event bus name or ARN (default with --stack: its EventBusName output)")
    to_bus.add_argument("--rate", type=float, default=10.0, help="events per second (default 10)")
    to_bus.add_argument("--max", type=_positive_int, default=1000, dest="max_messages", help="default 1000")
    to_bus.add_argument(
        "--allow-repeat", action="store_true", help="re-put events already redriven from this DLQ"
    )
    to_bus.add_argument("--hold-seconds", type=_positive_int, default=300, help=argparse.SUPPRESS)
    _wait_seconds_argument(to_bus)

    # -- replay ---------------------------------------------------------------------------------
    replay = commands.add(
        "replay",
        _replay,
        help="replay archived events for a time window",
        description="Replay events from the bus archive to the named rules (or subscribers) and wait for "
        "the replay to finish. For events delivered but processed wrongly; DLQ contents are redriven instead. "
        "At least one --subscriber or --rule is required; rules whose subscriber has side effects "
        "(tagged side-effects: fulfilment, notifications) are refused without --allow-side-effects.",
    )
    replay.add_argument("--start", required=True, type=parse_time, help="window start, ISO 8601 with offset")
    replay.add_argument("--end", required=True, type=parse_time, help="window end, ISO 8601 with offset")
    replay.add_argument("--archive", help="archive name (default with --stack: EventsArchiveName output)")
    replay.add_argument(
        "--bus", help="the archive's bus, checked (default with --stack: EventBusName output)"
    )
    replay.add_argument(
        "--rule", action="append", default=[], dest="rules", help="rule name or ARN (repeatable)"
    )
    replay.add_argument(
        "--subscriber",
        action="append",
        default=[],
        dest="subscribers",
        help="with --stack: a fan-out subscriber (e.g. ledger) whose rule to replay to (repeatable)",
    )
    replay.add_argument(
        "--allow-side-effects",
        action="store_true",
        help="also replay to rules whose subscriber charges, ships or notifies (tagged side-effects)",
    )
    replay.add_argument("--name", help="replay name (default: <archive>-<start>-<random>)")
    replay.add_argument("--poll-seconds", type=float, default=10.0)
    replay.add_argument("--timeout-seconds", type=float, default=3600.0)

    # -- circuit --------------------------------------------------------------------------------
    circuit_commands = commands.group(
        "circuit",
        help="show or force a dependency's circuit breaker",
        description="Read or force the Powertools circuit breaker record (circuit name = DEPENDENCY_NAME).",
    )
    table_help = "circuit table (default with --stack: found in the stack)"
    circuit_list = circuit_commands.add("list", _circuit_list, help="every circuit record in the table")
    circuit_list.add_argument("--table", help=table_help)
    for action, text in (
        ("show", "a circuit's state"),
        ("open", "force a circuit OPEN: callers fail fast until a probe after the recovery time"),
        (
            "close",
            "force a circuit CLOSED: callers call the dependency again; with --stack, also resume its "
            "paused consumers (asked separately)",
        ),
    ):
        sub = circuit_commands.add(
            action,
            _circuit_action,
            help=text,
            description=text,
            circuit_action=action,
        )
        sub.add_argument("name", metavar="NAME", help="circuit name: the dependency's DEPENDENCY_NAME")
        sub.add_argument("--table", help=table_help)

    # -- consumer -------------------------------------------------------------------------------
    consumer_commands = commands.group(
        "consumer",
        help="show, pause or resume the load-leveling consumers (their event source mappings)",
        description="The consumers of the stack (its ConsumerControl output): needs --stack.",
    )
    consumer_commands.add(
        "status",
        _consumer_status,
        help="each consumer: mapping state and since when, circuit, running controller, hold",
        description="Each consumer's mapping state and since when, its circuit's state, the controller "
        "executions running for it, an operator's hold, and what the reconciler will do next.",
    )
    consumer_pause = consumer_commands.add(
        "pause",
        _consumer_pause,
        help="disable a consumer's mapping and hold it paused (the reconciler leaves it)",
        description="Disable the consumer's event source mapping; its messages wait in the queue. A hold "
        "keeps the reconciler from resuming it until --hold-minutes have passed.",
    )
    _consumer_argument(consumer_pause)
    consumer_pause.add_argument(
        "--hold-minutes", type=_positive_int, default=240, help="how long the reconciler leaves it (240)"
    )
    consumer_pause.add_argument(
        "--reason", default="paused with ops consumer pause", help="kept with the hold"
    )
    consumer_resume = consumer_commands.add(
        "resume",
        _consumer_resume,
        help="enable a consumer's mapping and remove its hold",
        description="Enable the consumer's event source mapping and remove an operator's hold.",
    )
    _consumer_argument(consumer_resume)

    # -- drill ----------------------------------------------------------------------------------
    drill_commands = commands.group(
        "drill", help="rehearse a failure on a non-production stage", dest="drill", metavar="DRILL"
    )
    throttle = drill_commands.add(
        "throttle",
        _drill_throttle,
        help="reserved concurrency 0 for a bounded time, restored after",
        description="Throttle a function (reserved concurrency 0) for --seconds, then restore its setting.",
    )
    throttle.add_argument("function", metavar="FUNCTION", help="function name or ARN")
    throttle.add_argument("--seconds", type=int, default=60, help="how long (1-900, default 60)")
    return parser


# -------------------------------------------------------------------------------------------- handlers


def _drill_throttle(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    from ops.drill import throttle

    return throttle(aws, console, args.function, args.seconds)


def _inventory(args: argparse.Namespace, aws: Aws) -> Inventory:
    if args.stack:
        return Inventory.from_stack(aws, args.stack)
    return Inventory.from_account(
        aws, queue_prefix=getattr(args, "queue_prefix", None), buses=getattr(args, "rules_on_bus", None)
    )


def _explicit(args: argparse.Namespace, aws: Aws) -> Inventory:
    """For commands given their resources: read the stack only when one is named."""
    return Inventory.from_stack(aws, args.stack) if args.stack else Inventory(aws=aws)


def _dlq_list(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return dlq.list_dlqs(_inventory(args, aws), console, sample_age=args.sample_age)


def _dlq_peek(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return dlq.peek(
        _explicit(args, aws),
        console,
        args.queue,
        max_messages=args.max_messages,
        hold_seconds=args.hold_seconds,
        body_chars=None if args.full else args.body_chars,
        wait_seconds=args.wait_seconds,
    )


def _dlq_redrive(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return dlq.redrive(
        _explicit(args, aws),
        console,
        args.queue,
        to=args.to,
        rate=args.rate,
        wait=not args.no_wait,
        timeout_seconds=args.timeout_seconds,
        poll_seconds=args.poll_seconds,
    )


def _dlq_redrive_to_bus(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    if args.rate <= 0:
        raise OpsError("--rate must be > 0", EXIT_USAGE)
    return dlq.redrive_to_bus(
        _explicit(args, aws),
        console,
        args.queue,
        bus=args.bus,
        rate=args.rate,
        max_messages=args.max_messages,
        allow_repeat=args.allow_repeat,
        hold_seconds=args.hold_seconds,
        wait_seconds=args.wait_seconds,
    )


def _replay(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    from ops.replay import run_replay

    return run_replay(
        _explicit(args, aws),
        console,
        archive=args.archive,
        bus=args.bus,
        start=args.start,
        end=args.end,
        rules=args.rules,
        subscribers=args.subscribers,
        allow_side_effects=args.allow_side_effects,
        name=args.name,
        poll_seconds=args.poll_seconds,
        timeout_seconds=args.timeout_seconds,
    )


def _table(args: argparse.Namespace, aws: Aws) -> str:
    return str(args.table) if args.table else _explicit(args, aws).circuit_table()


def _circuit_list(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return circuit.list_circuits(aws, console, _table(args, aws))


def _circuit_action(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    table = _table(args, aws)
    if args.circuit_action == "show":
        return circuit.show(aws, console, table, args.name)
    if args.circuit_action == "open":
        return circuit.force(aws, console, table, args.name, "OPEN")
    code = circuit.force(aws, console, table, args.name, "CLOSED")
    if not args.stack:
        console.info(
            "without --stack the consumers of this circuit were not checked: `consumer status` shows them"
        )
        return code
    inventory = _explicit(args, aws)
    if inventory.output(CONTROL_OUTPUT) is None:
        # A stack deployed before the reconciler: the circuit is closed, its consumers unknown here.
        console.info(f"stack {args.stack} has no {CONTROL_OUTPUT} output: its consumers were not checked")
        return code
    consumer.resume_paused(aws, console, consumer.control_of(inventory), args.name)
    return code


def _consumer_status(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return consumer.status(aws, console, consumer.control_of(_explicit(args, aws)))


def _consumer_pause(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    control = consumer.control_of(_explicit(args, aws))
    return consumer.pause(
        aws, console, control, args.name, hold_minutes=args.hold_minutes, reason=args.reason
    )


def _consumer_resume(args: argparse.Namespace, aws: Aws, console: Console) -> int:
    return consumer.resume(aws, console, consumer.control_of(_explicit(args, aws)), args.name)


# -------------------------------------------------------------------------------------------- entry point


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    connect: Callable[..., Aws] = Aws.connect,
) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2)
        return int(exit_.code or 0)
    console = Console(
        stdin=stdin or sys.stdin,
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        json_output=args.json,
        assume_yes=args.yes,
    )
    aws = connect(region=args.region, profile=args.profile, endpoint_url=args.endpoint_url)
    handler: Callable[[argparse.Namespace, Aws, Console], int] = args.handler
    try:
        return handler(args, aws, console)
    except OpsError as error:
        console.error(f"{PROG}: {error}")
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        console.error(f"{PROG}: AWS call failed: {error}")
        return EXIT_FAILED
