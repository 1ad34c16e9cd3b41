"""ops/replay.py's replay: the StartReplay it sends, how it waits, what it reports; and ``ops replay``
without --stack (archive, rules and bus given), what it prints and exits with for each outcome."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from lambdas.contracts.events import SIDE_EFFECTS_TAG
from ops.aws import Aws
from ops.cli import main
from ops.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from ops.replay import ReplayError, ReplayReport, parse_time, replay
from tests.unit.ops.conftest import Result

REGION = "eu-west-1"
ACCOUNT = "123456789012"
BUS = "resilient-orders-dev-bus"
BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{BUS}"
ARCHIVE = "EventsBusArchive-abc"
ARCHIVE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:archive/{ARCHIVE}"
RULE = "resilient-orders-dev-EventsLedgerRule-XYZ"
RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{BUS}/{RULE}"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
END = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
NOW = END + timedelta(hours=1)


class FakeClock:
    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds

    def monotonic(self) -> float:
        return self.elapsed


@pytest.fixture
def client() -> Any:
    return boto3.client("events", region_name=REGION)


def _run(client: Any, clock: FakeClock | None = None, **kwargs: Any) -> ReplayReport:
    clock = clock or FakeClock()
    options: dict[str, Any] = {
        "archive": ARCHIVE,
        "start": START,
        "end": END,
        "name": "fix-ledger",
        "poll_seconds": 5,
        "now": lambda: NOW,
        "sleep": clock.sleep,
        "monotonic": clock.monotonic,
        "log": lambda line: None,
    }
    options.update(kwargs)
    return replay(client, **options)


def _ops(client: Any, *argv: str) -> Result:
    """``python -m ops --json replay ...`` in process, its EventBridge calls going to ``client``."""
    aws = Aws(session=boto3.session.Session(region_name=REGION), _clients={"events": client})
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--region", REGION, "--json", "replay", *argv],
        stdin=io.StringIO(""),
        stdout=out,
        stderr=err,
        connect=lambda **_: aws,
    )
    return Result(code, out.getvalue(), err.getvalue())


OPS_ARGV = ["--archive", ARCHIVE, "--start", "2026-11-25T09:00:00Z", "--end", "2026-11-25T10:30:00Z"]
OPS_ARGV += ["--name", "fix-ledger", "--poll-seconds", "0", "--yes", "--rule", RULE]


def _expect_archive(stubber: Stubber) -> None:
    stubber.add_response(
        "describe_archive",
        {"ArchiveArn": ARCHIVE_ARN, "EventSourceArn": BUS_ARN, "State": "ENABLED"},
        {"ArchiveName": ARCHIVE},
    )


def _expect_archive_and_rule(stubber: Stubber, tags: list[dict[str, str]] | None = None) -> None:
    _expect_archive(stubber)
    stubber.add_response("describe_rule", {"Arn": RULE_ARN}, {"Name": RULE, "EventBusName": BUS})
    stubber.add_response("list_tags_for_resource", {"Tags": tags or []}, {"ResourceARN": RULE_ARN})


def test_replays_the_window_to_the_named_rule_only_and_waits_for_completion(client: Any) -> None:
    clock = FakeClock()
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response(
            "start_replay",
            {"ReplayArn": "arn:replay", "State": "STARTING"},
            {
                "ReplayName": "fix-ledger",
                "Description": ANY,
                "EventSourceArn": ARCHIVE_ARN,
                "EventStartTime": START,
                "EventEndTime": END,
                "Destination": {"Arn": BUS_ARN, "FilterArns": [RULE_ARN]},
            },
        )
        for state in ("STARTING", "RUNNING"):
            stubber.add_response("describe_replay", {"State": state}, {"ReplayName": "fix-ledger"})
        stubber.add_response(
            "describe_replay",
            {"State": "COMPLETED", "EventLastReplayedTime": END, "ReplayEndTime": NOW},
            {"ReplayName": "fix-ledger"},
        )
        report = _run(client, clock, rules=[RULE, RULE], bus=BUS)
        stubber.assert_no_pending_responses()
    assert report.state == "COMPLETED"
    assert report.rule_arns == [RULE_ARN]
    assert report.event_last_replayed_time == END.isoformat()
    assert clock.sleeps == [5, 5]
    assert report.warnings == []


def test_without_a_rule_nothing_is_replayed(client: Any) -> None:
    with Stubber(client) as stubber:  # no response queued: any AWS call would fail the test
        with pytest.raises(ReplayError, match="name the rule"):
            _run(client, rules=[])
        stubber.assert_no_pending_responses()


def test_a_rule_with_side_effects_is_refused_unless_allowed(client: Any) -> None:
    charges = [{"Key": SIDE_EFFECTS_TAG, "Value": "order fulfilment charges and ships"}]
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber, charges)
        with pytest.raises(
            ReplayError, match=f"{RULE}: order fulfilment charges and ships.*--allow-side-effects"
        ):
            _run(client, rules=[RULE])
        stubber.assert_no_pending_responses()  # and no start_replay was sent

    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber, charges)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": "COMPLETED"})
        report = _run(client, rules=[RULE], allow_side_effects=True)
    assert report.state == "COMPLETED"
    assert report.warnings == ["replaying to a rule with side effects: order fulfilment charges and ships"]


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_failed_or_cancelled_replay_exits_non_zero_with_the_reason(client: Any, state: str) -> None:
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": state, "StateReason": "boom"})
        report = _run(client, rules=[RULE])
    assert (report.state, report.state_reason) == (state, "boom")

    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": state, "StateReason": "boom"})
        result = _ops(client, *OPS_ARGV)
        stubber.assert_no_pending_responses()
    assert result.code == EXIT_FAILED
    assert (json.loads(result.out)["state"], json.loads(result.out)["state_reason"]) == (state, "boom")
    assert f"replay fix-ledger: {state} (boom)" in result.err


def test_a_replay_still_running_at_the_timeout_exits_4_and_says_how_to_follow_it(client: Any) -> None:
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        for _ in range(3):
            stubber.add_response("describe_replay", {"State": "RUNNING"})
        report = _run(client, rules=[RULE], timeout_seconds=10)
    assert report.state == "RUNNING"
    assert "describe-replay --replay-name fix-ledger" in report.warnings[-1]

    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": "RUNNING"})
        result = _ops(client, *OPS_ARGV, "--timeout-seconds", "0")
        stubber.assert_no_pending_responses()
    assert result.code == EXIT_TIMEOUT
    assert json.loads(result.out)["state"] == "RUNNING"
    assert "describe-replay --replay-name fix-ledger" in result.err


def test_a_window_too_recent_for_the_archive_is_warned_about(client: Any) -> None:
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": "COMPLETED"})
        report = _run(client, rules=[RULE], now=lambda: END + timedelta(minutes=2))
    assert any("10 minutes" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": END, "end": START}, "--start must be before --end"),
        ({"bus": "another-bus"}, "not another-bus"),
        ({"rules": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/another-bus/{RULE}"]}, "is not on the bus"),
        ({"rules": ["no-such-rule"]}, "no rule 'no-such-rule'"),
    ],
)
def test_a_replay_that_cannot_do_what_was_asked_is_never_started(
    client: Any, kwargs: dict[str, Any], message: str
) -> None:
    with Stubber(client) as stubber:
        if "start" not in kwargs:
            _expect_archive(stubber)
        if kwargs.get("rules") == ["no-such-rule"]:
            stubber.add_client_error("describe_rule", service_error_code="ResourceNotFoundException")
        with pytest.raises(ReplayError, match=message):
            _run(client, **{"rules": [RULE], **kwargs})
        stubber.assert_no_pending_responses()  # and no start_replay was sent


def test_times_need_an_offset() -> None:
    assert parse_time("2026-11-25T09:00:00Z") == START
    assert parse_time("2026-11-25T10:00:00+01:00") == START
    with pytest.raises(Exception, match="no UTC offset"):
        parse_time("2026-11-25T09:00:00")


def test_ops_replay_without_a_stack_prints_a_json_report_and_maps_states_to_exit_codes(client: Any) -> None:
    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": "FAILED", "StateReason": "no permission"})
        failed = _ops(client, *OPS_ARGV)
    report = json.loads(failed.out)
    assert failed.code == EXIT_FAILED
    assert report["state"] == "FAILED" and report["state_reason"] == "no permission"

    with Stubber(client) as stubber:
        _expect_archive_and_rule(stubber)
        stubber.add_response("start_replay", {"State": "STARTING"})
        stubber.add_response("describe_replay", {"State": "COMPLETED"})
        completed = _ops(client, *OPS_ARGV)
    assert completed.code == EXIT_OK
    assert json.loads(completed.out)["rule_arns"] == [RULE_ARN]

    with Stubber(client) as stubber:
        stubber.add_client_error("describe_archive", service_error_code="ResourceNotFoundException")
        missing = _ops(client, *OPS_ARGV)
    assert missing.code == EXIT_USAGE and "no archive" in missing.err

    assert _ops(client, "--archive", ARCHIVE).code == EXIT_USAGE  # no --start/--end: argparse refuses
    with Stubber(client) as stubber:  # no response queued: any AWS call would fail the test
        unnamed = _ops(client, *OPS_ARGV[:-2])  # no --rule: refused before any call
        stubber.assert_no_pending_responses()
    assert unnamed.code == EXIT_USAGE
    assert "name what to replay to with --subscriber or --rule" in unnamed.err


@mock_aws
def test_against_an_emulated_bus_the_replay_completes() -> None:
    events = boto3.client("events", region_name=REGION)
    bus_arn = events.create_event_bus(Name=BUS)["EventBusArn"]
    events.create_archive(ArchiveName=ARCHIVE, EventSourceArn=bus_arn)
    rule_arn = events.put_rule(Name=RULE, EventBusName=BUS, EventPattern='{"source": ["x"]}')["RuleArn"]
    report = _run(events, rules=[RULE], name=None)
    assert report.state == "COMPLETED"
    assert report.rule_arns == [rule_arn]
    assert report.replay_name.startswith(f"{ARCHIVE}-20261125T0900-")
    described = events.describe_replay(ReplayName=report.replay_name)
    assert described["Destination"] == {"Arn": bus_arn, "FilterArns": [rule_arn]}


@mock_aws
def test_against_an_emulated_bus_a_tagged_rule_is_refused_and_an_untagged_one_replayed() -> None:
    events = boto3.client("events", region_name=REGION)
    bus_arn = events.create_event_bus(Name=BUS)["EventBusArn"]
    events.create_archive(ArchiveName=ARCHIVE, EventSourceArn=bus_arn)
    events.put_rule(
        Name="fulfilment",
        EventBusName=BUS,
        EventPattern='{"source": ["x"]}',
        Tags=[{"Key": SIDE_EFFECTS_TAG, "Value": "order fulfilment charges and ships"}],
    )
    events.put_rule(Name=RULE, EventBusName=BUS, EventPattern='{"source": ["x"]}')

    with pytest.raises(ReplayError, match="fulfilment: order fulfilment charges and ships"):
        _run(events, rules=[RULE, "fulfilment"])
    assert events.list_replays()["Replays"] == []
    assert _run(events, rules=[RULE]).state == "COMPLETED"
