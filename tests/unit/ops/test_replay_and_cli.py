"""ops replay (ops/replay.py), --help everywhere, and the CLI as a separate process
against a moto server (--endpoint-url), the way an operator runs it against the local cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ops.cli import build_parser
from tests.unit.helpers import REGION
from tests.unit.ops.conftest import drain, run
from tests.unit.ops.stack_fixture import BUS, SOURCE, DeployedStack, deploy

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ARCHIVE = "orders-archive"


def archive_with_one_event(stack: DeployedStack) -> tuple[datetime, datetime]:
    events = boto3.client("events", region_name=REGION)
    bus_arn = events.describe_event_bus(Name=BUS)["Arn"]
    events.create_archive(
        ArchiveName=ARCHIVE, EventSourceArn=bus_arn, EventPattern=json.dumps({"source": [SOURCE]})
    )
    start = datetime.now(UTC) - timedelta(minutes=1)
    events.put_events(
        Entries=[
            {
                "EventBusName": BUS,
                "Source": SOURCE,
                "DetailType": "PaymentReceived",
                "Detail": json.dumps({"paymentId": "pay-1", "orderId": "ord-1"}),
            }
        ]
    )
    return start, datetime.now(UTC) + timedelta(minutes=1)


def test_replay_to_a_subscriber_resolves_its_rule_from_the_stack(stack: DeployedStack, sqs: Any) -> None:
    start, end = archive_with_one_event(stack)
    drain(sqs, stack.fulfilment_queue)

    result = run(
        "--stack",
        stack.name,
        "--json",
        "replay",
        "--archive",
        ARCHIVE,
        "--subscriber",
        "fulfilment",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--poll-seconds",
        "0",
        "--allow-side-effects",
        "--yes",
    )

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["state"] == "COMPLETED"
    [rule_arn] = report["rule_arns"]
    assert rule_arn.endswith("/" + stack.output("EventsFulfilmentRuleName"))
    assert report["bus_arn"].endswith(f"event-bus/{BUS}")  # --bus came from the EventBusName output
    assert "to " + stack.output("EventsFulfilmentRuleName") in result.err  # what was confirmed
    replayed = [json.loads(m["Body"]) for m in drain(sqs, stack.fulfilment_queue)]
    assert [e.get("replay-name") for e in replayed] == [report["replay_name"]]


def test_replay_without_a_subscriber_or_rule_is_refused(stack: DeployedStack) -> None:
    start, end = archive_with_one_event(stack)

    result = run(
        "--stack",
        stack.name,
        "replay",
        "--archive",
        ARCHIVE,
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--yes",
    )

    assert result.code == 2
    assert "name what to replay to with --subscriber or --rule" in result.err
    events = boto3.client("events", region_name=REGION)
    assert events.list_replays()["Replays"] == []


def test_replay_to_a_subscriber_with_side_effects_needs_the_explicit_flag(
    stack: DeployedStack, sqs: Any
) -> None:
    start, end = archive_with_one_event(stack)
    drain(sqs, stack.fulfilment_queue)

    result = run(
        "--stack",
        stack.name,
        "replay",
        "--archive",
        ARCHIVE,
        "--subscriber",
        "fulfilment",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--yes",
    )

    assert result.code == 2
    assert "order fulfilment charges and ships" in result.err and "--allow-side-effects" in result.err
    events = boto3.client("events", region_name=REGION)
    assert events.list_replays()["Replays"] == []
    assert drain(sqs, stack.fulfilment_queue) == []


def test_replay_errors_from_the_replay_checks_are_usage_errors(stack: DeployedStack) -> None:
    result = run(
        "replay",
        "--archive",
        "no-such-archive",
        "--rule",
        "some-rule",
        "--start",
        "2026-11-25T09:00:00Z",
        "--end",
        "2026-11-25T10:00:00Z",
        "--yes",
    )

    assert result.code == 2
    assert "no archive" in result.err


def _leaf_commands() -> list[list[str]]:
    return [
        ["dlq", "list"],
        ["dlq", "peek"],
        ["dlq", "redrive"],
        ["dlq", "redrive-to-bus"],
        ["replay"],
        ["circuit", "list"],
        ["circuit", "show"],
        ["circuit", "open"],
        ["circuit", "close"],
        ["dlq"],
        ["circuit"],
        [],
    ]


@pytest.mark.parametrize("command", _leaf_commands(), ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    assert "usage: python -m ops" in capsys.readouterr().out


def test_global_options_work_before_and_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["--stack", "s", "--region", "r", "--yes", "dlq", "list"])
    after = parser.parse_args(["dlq", "list", "--stack", "s", "--region", "r", "--yes"])
    for args in (before, after):
        assert (args.stack, args.region, args.yes) == ("s", "r", True)


# ---------------------------------------------------------------------------------------------- real process


@pytest.fixture
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def cli(endpoint: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    return subprocess.run(
        [sys.executable, "-m", "ops", "--endpoint-url", endpoint, "--region", REGION, *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_the_cli_against_a_moto_server_by_endpoint_url(moto_server: str) -> None:
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_server)

    stack = deploy(client("cloudformation"))
    client("sqs").send_message(QueueUrl=stack.orders_dlq.split("?")[0], MessageBody="{not json")

    listed = cli(moto_server, "--stack", stack.name, "--json", "dlq", "list")
    refused = cli(moto_server, "--stack", stack.name, "circuit", "open", "partner")
    opened = cli(moto_server, "--stack", stack.name, "circuit", "open", "partner", "--yes")
    shown = cli(moto_server, "--stack", stack.name, "--json", "circuit", "show", "partner")

    assert listed.returncode == 0, listed.stderr
    rows = {row["label"]: row for row in json.loads(listed.stdout)["dead_letter_queues"]}
    assert rows["orders"]["visible"] == 1
    assert refused.returncode == 3 and "pass --yes" in refused.stderr  # stdin is not a terminal
    assert opened.returncode == 0, opened.stderr
    assert json.loads(shown.stdout)["state"] == "OPEN"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq", "peek", "no-such-queue", "--wait-seconds", "0"], "no queue 'no-such-queue'"),
        (["--stack", "no-such-stack", "dlq", "list"], "no CloudFormation stack 'no-such-stack'"),
        (["circuit", "show", "partner"], "pass --table, or --stack"),
        (["dlq", "redrive-to-bus", "some-queue", "--yes"], "no queue 'some-queue'"),
    ],
)
def test_unknown_resources_are_usage_errors(aws: None, argv: list[str], message: str) -> None:
    result = run(*argv)

    assert result.code == 2
    assert message in result.err
