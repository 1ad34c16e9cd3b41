"""Dead-letter queues: list, peek, redrive (SQS StartMessageMoveTask) and redrive to the event bus.

Three kinds of message end up in this pipeline's DLQs, told apart by their message attributes:

``eventbridge-delivery``  EventBridge could not deliver the event to a rule target within its retry policy;
                          it adds ERROR_CODE, ERROR_MESSAGE, RULE_ARN, TARGET_ARN, RETRY_ATTEMPTS,
                          EXHAUSTED_RETRY_CONDITION (docs/events.md).
``poison``                the order consumer quarantined a message that can never succeed; it adds
                          QuarantineReason, QuarantineDetail, SourceMessageId, and IdempotencyKey: the key
                          it was processed under, the producer's or else the original messageId
                          (lambdas/order_consumer/handler.py).

A redrive (``StartMessageMoveTask``) carries body and message attributes but makes new messages with new
message ids. So a redriven poison message is processed under the IdempotencyKey it carries, the one the
order may already have been charged with, and the partner replays that charge instead of making another.
``processing``            no such attributes: the source queue's redrive policy moved it after
                          maxReceiveCount failed receives (a transient failure that outlasted the retries).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lambdas.contracts.api import QUARANTINE_DETAIL_ATTRIBUTE, QUARANTINE_REASON_ATTRIBUTE
from ops.aws import Aws, error_code
from ops.console import Console
from ops.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, OpsError, UsageError
from ops.inventory import Inventory

MAX_BATCH: Final = 10
# PutEvents takes at most 10 entries and 256 KiB per request.
MAX_PUT_EVENTS_BYTES: Final = 256 * 1024
MOVE_TASK_TERMINAL: Final = ("COMPLETED", "CANCELLED", "FAILED")


# ---------------------------------------------------------------------------------------------- list


def depth(aws: Aws, url: str) -> dict[str, int]:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def oldest_age_from_metrics(aws: Aws, queue_name: str, now: datetime) -> float | None:
    """ApproximateAgeOfOldestMessage (Maximum, latest minute of the last 15): what the alarms watch."""
    # Whole minutes, the current one included: periods aligned to the minute, as the metric is published.
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    response = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=end - timedelta(minutes=16),
        EndTime=end,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def list_dlqs(inventory: Inventory, console: Console, *, sample_age: bool = False) -> int:
    aws = inventory.aws
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for dlq in inventory.dead_letter_queues():
        counts = depth(aws, dlq.url)
        age, age_source = None, None
        try:
            age = oldest_age_from_metrics(aws, dlq.name, now)
            age_source = "cloudwatch" if age is not None else None
        except Exception as error:  # a missing metric must not hide the depth
            console.info(f"  ({dlq.label}: no CloudWatch age: {error_code(error) or error})")
        if sample_age and counts["visible"]:
            sampled = peek_messages(aws, dlq.url, max_messages=MAX_BATCH)
            if sampled:
                oldest = min(m.sent_at for m in sampled)
                age, age_source = (now - oldest).total_seconds(), "sample"
        rows.append(
            {
                "label": dlq.label,
                "name": dlq.name,
                "url": dlq.url,
                "kinds": dlq.kinds,
                **counts,
                "oldest_age_seconds": None if age is None else round(age, 1),
                "oldest_age_source": age_source,
                "sources": [u.rsplit("/", 1)[-1] for u in dlq.source_urls],
                "rules": sorted({t.rule_name for t in dlq.rule_targets}),
            }
        )
    where = f"stack {inventory.stack}" if inventory.stack else "the account"
    console.info(f"{len(rows)} dead-letter queue(s) in {where}:")
    for row in rows:
        age_text = "n/a" if row["oldest_age_seconds"] is None else f"{_duration(row['oldest_age_seconds'])}"
        if row["oldest_age_source"] == "sample":
            age_text += " (sampled)"
        console.info(
            f"  {row['label']:<28} visible={row['visible']:<5} in_flight={row['in_flight']:<4} "
            f"oldest={age_text:<16} {'+'.join(row['kinds'])}"
        )
        console.info(f"      {row['name']}")
        if row["sources"]:
            console.info(f"      redrive source: {', '.join(row['sources'])}")
        if row["rules"]:
            console.info(f"      dead letters of rule(s): {', '.join(row['rules'])}")
    waiting = sum(r["visible"] for r in rows)
    console.info(
        f"{waiting} message(s) waiting in dead-letter queues"
        if waiting
        else "all dead-letter queues are empty"
    )
    console.result({"stack": inventory.stack, "dead_letter_queues": rows})
    return EXIT_OK


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


# ---------------------------------------------------------------------------------------------- peek


@dataclass
class PeekedMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    system: dict[str, str]

    @property
    def sent_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.system.get("SentTimestamp", "0")) / 1000, UTC)

    @property
    def receive_count(self) -> int:
        return int(self.system.get("ApproximateReceiveCount", "0"))

    @property
    def kind(self) -> str:
        if "ERROR_CODE" in self.attributes or "RULE_ARN" in self.attributes:
            return "eventbridge-delivery"
        if QUARANTINE_REASON_ATTRIBUTE in self.attributes:
            return "poison"
        return "processing"

    @property
    def reason(self) -> str:
        a = self.attributes
        if self.kind == "eventbridge-delivery":
            return _joined(a.get("ERROR_CODE", "?"), a.get("ERROR_MESSAGE"))
        if self.kind == "poison":
            return _joined(a[QUARANTINE_REASON_ATTRIBUTE], a.get(QUARANTINE_DETAIL_ATTRIBUTE))
        return "exceeded the source queue's maxReceiveCount (processing kept failing)"

    def describe(self, now: datetime, body_chars: int | None) -> dict[str, Any]:
        body = (
            self.body if body_chars is None or len(self.body) <= body_chars else self.body[:body_chars] + "…"
        )
        document: dict[str, Any] = {
            "message_id": self.message_id,
            "kind": self.kind,
            "reason": self.reason,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at.isoformat(),
            "age_seconds": round((now - self.sent_at).total_seconds(), 1),
            "attributes": self.attributes,
            "body": body,
        }
        if self.kind == "eventbridge-delivery":
            document["rule_arn"] = self.attributes.get("RULE_ARN")
            document["target_arn"] = self.attributes.get("TARGET_ARN")
        return document


def _joined(code: str, message: str | None) -> str:
    return f"{code}: {message}" if message and message != code else code


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    found = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        if "StringValue" in value:
            found[name] = value["StringValue"]
        else:
            found[name] = f"<{value.get('DataType', 'Binary')}>"
    return found


def _receive(aws: Aws, url: str, count: int, hold_seconds: int, wait_seconds: int) -> list[dict[str, Any]]:
    response = aws.client("sqs").receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max(1, min(MAX_BATCH, count)),
        VisibilityTimeout=hold_seconds,
        WaitTimeSeconds=wait_seconds,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def _release(aws: Aws, url: str, receipt_handles: Iterable[str]) -> list[str]:
    """Make messages visible again at once (visibility timeout 0). Returns the handles that failed."""
    failed = []
    handles = list(receipt_handles)
    for start in range(0, len(handles), MAX_BATCH):
        chunk = handles[start : start + MAX_BATCH]
        response = aws.client("sqs").change_message_visibility_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)],
        )
        failed += [chunk[int(f["Id"])] for f in response.get("Failed", [])]
    return failed


def peek_messages(
    aws: Aws, url: str, *, max_messages: int, hold_seconds: int = 30, wait_seconds: int = 1
) -> list[PeekedMessage]:
    """Up to ``max_messages`` distinct messages, left in the queue and visible again when this returns.

    Each receive hides what it returned for ``hold_seconds`` so the next receive returns other messages;
    all of them are then made visible again (visibility timeout 0). Receiving counts as a receive:
    ApproximateReceiveCount goes up by one.
    """
    seen: dict[str, PeekedMessage] = {}
    handles: list[str] = []
    try:
        while len(seen) < max_messages:
            batch = _receive(aws, url, max_messages - len(seen), hold_seconds, wait_seconds)
            handles += [m["ReceiptHandle"] for m in batch]
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen[message["MessageId"]] = PeekedMessage(
                    message_id=message["MessageId"],
                    receipt_handle=message["ReceiptHandle"],
                    body=message.get("Body", ""),
                    attributes=_attributes(message),
                    system=dict(message.get("Attributes") or {}),
                )
    finally:
        failed = _release(aws, url, handles)
    if failed:
        raise OpsError(
            f"{len(failed)} peeked message(s) could not be made visible again; they reappear on their own"
        )
    return list(seen.values())


def peek(
    inventory: Inventory,
    console: Console,
    queue: str,
    *,
    max_messages: int,
    hold_seconds: int,
    body_chars: int | None,
    wait_seconds: int = 1,
) -> int:
    url = inventory.resolve_queue(queue)
    messages = peek_messages(
        inventory.aws, url, max_messages=max_messages, hold_seconds=hold_seconds, wait_seconds=wait_seconds
    )
    now = datetime.now(UTC)
    described = [m.describe(now, body_chars) for m in sorted(messages, key=lambda m: m.sent_at)]
    console.info(f"{len(described)} message(s) from {url} (left in the queue, visible again):")
    for m in described:
        console.info(
            f"- {m['message_id']}  {m['kind']}  received {m['receive_count']}x  "
            f"sent {m['sent_at']} ({_duration(m['age_seconds'])} ago)"
        )
        console.info(f"    reason: {m['reason']}")
        if m.get("rule_arn"):
            console.info(f"    rule:   {m['rule_arn']}")
        console.info(f"    body:   {m['body']}")
    console.result({"queue_url": url, "messages": described})
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- redrive


def _queue_arn(aws: Aws, url: str) -> str:
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _move_tasks(aws: Aws, source_arn: str) -> list[dict[str, Any]]:
    return list(
        aws.client("sqs").list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
    )


def redrive(
    inventory: Inventory,
    console: Console,
    queue: str,
    *,
    to: str | None,
    rate: int | None,
    wait: bool,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Move a DLQ's messages back to its source queue with StartMessageMoveTask, optionally rate-limited."""
    aws = inventory.aws
    sqs = aws.client("sqs")
    url = inventory.resolve_queue(queue)
    dlq_arn = _queue_arn(aws, url)
    sources = list(sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", []))
    if not sources:
        raise UsageError(
            f"{url} is not the dead-letter queue of any SQS queue, so StartMessageMoveTask cannot move its "
            "messages. If it is an EventBridge target's DLQ, use `dlq redrive-to-bus`."
        )
    if to is not None:
        destination = inventory.resolve_queue(to)
    elif len(sources) == 1:
        destination = sources[0]
    else:
        raise UsageError(
            f"{url} is the DLQ of {len(sources)} queues ({', '.join(sources)}): choose one with --to"
        )
    destination_arn = _queue_arn(aws, destination)
    running = [t for t in _move_tasks(aws, dlq_arn) if t.get("Status") == "RUNNING"]
    if running:
        raise OpsError(
            f"a message move task is already running on {url} (handle {running[0].get('TaskHandle')}); "
            "SQS allows one at a time"
        )
    counts = depth(aws, url)
    if counts["visible"] == 0:
        console.info(f"{url} has no visible messages: nothing to redrive")
        console.result({"queue_url": url, "moved": 0, "status": "NOTHING_TO_DO"})
        return EXIT_OK
    pace = f"at most {rate} message(s)/s" if rate else "at the rate SQS chooses"
    console.confirm(f"move ~{counts['visible']} message(s) from {url} back to {destination} ({pace})")
    # The destination is always explicit: messages that were sent to the DLQ directly (EventBridge delivery
    # failures, quarantined poison messages) have no "original source queue" for SQS to return them to.
    request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": destination_arn}
    if rate:
        request["MaxNumberOfMessagesPerSecond"] = rate
    try:
        handle = sqs.start_message_move_task(**request)["TaskHandle"]
    except Exception as error:
        raise OpsError(f"StartMessageMoveTask failed: {error}") from None
    console.info(f"started message move task {handle}")
    report: dict[str, Any] = {
        "queue_url": url,
        "destination_url": destination,
        "task_handle": handle,
        "rate": rate,
    }
    if not wait:
        console.info(
            "not waiting; follow it with `aws sqs list-message-move-tasks --source-arn " + dlq_arn + "`"
        )
        console.result({**report, "status": "RUNNING"})
        return EXIT_OK
    deadline = monotonic() + timeout_seconds
    task: dict[str, Any] = {}
    while True:
        tasks = _move_tasks(aws, dlq_arn)
        # The newest task comes first; only a running task reports its handle.
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        status = task.get("Status", "UNKNOWN")
        console.info(
            f"  {status}: moved {task.get('ApproximateNumberOfMessagesMoved', 0)} of "
            f"~{task.get('ApproximateNumberOfMessagesToMove', '?')}"
        )
        if status in MOVE_TASK_TERMINAL or monotonic() >= deadline:
            break
        sleep(poll_seconds)
    report.update(
        status=status,
        moved=task.get("ApproximateNumberOfMessagesMoved", 0),
        failure_reason=task.get("FailureReason"),
    )
    console.result(report)
    if status == "COMPLETED":
        console.info(f"redrive complete: {report['moved']} message(s) back in {destination}")
        return EXIT_OK
    if status in MOVE_TASK_TERMINAL:
        console.error(f"redrive {status.lower()}: {task.get('FailureReason') or 'no reason given'}")
        return EXIT_FAILED
    console.error(f"still {status} after {timeout_seconds:g} s; the task goes on in SQS")
    return EXIT_TIMEOUT


# ---------------------------------------------------------------------------------------------- to the bus


@dataclass
class Pacer:
    """At most ``rate`` items per second, on average, from the first one on."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float | None = None

    def wait_for(self, count: int) -> None:
        now = self.clock()
        if self._next is not None and self._next > now:
            self.sleep(self._next - now)
            now = self._next
        self._next = max(now, self._next or now) + count / self.rate


@dataclass
class _Outcome:
    message_id: str
    original_event_id: str | None
    status: str  # put | failed | skipped
    detail: str = ""
    new_event_id: str | None = None
    rule_arn: str | None = None


@dataclass
class _Entry:
    message: dict[str, Any]
    event: dict[str, Any]
    request: dict[str, Any]

    @property
    def size(self) -> int:
        return len(json.dumps(self.request, default=str).encode())


def event_entry(body: str, bus: str, marker: str, *, allow_repeat: bool) -> dict[str, Any]:
    """The PutEvents entry that re-sends the EventBridge event in ``body``; ValueError when it cannot."""
    try:
        event = json.loads(body)
    except json.JSONDecodeError:
        raise ValueError("body is not JSON, so not an EventBridge event") from None
    if not isinstance(event, dict) or not all(k in event for k in ("source", "detail-type", "detail")):
        raise ValueError("body is not an EventBridge event (needs source, detail-type and detail)")
    if str(event["source"]).startswith("aws."):
        raise ValueError(f"events from {event['source']} cannot be put by PutEvents")
    resources = [r for r in event.get("resources") or [] if isinstance(r, str)]
    if marker in resources and not allow_repeat:
        raise ValueError(
            "already redriven once from this DLQ (its resources carry the DLQ ARN); --allow-repeat"
        )
    entry: dict[str, Any] = {
        "EventBusName": bus,
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        # Marks the event as redriven from this DLQ (routing ignores resources: rules match source and
        # detail-type), which bounds a redrive loop: the same event is not re-sent twice by default.
        "Resources": resources if marker in resources else [*resources, marker],
    }
    if event.get("time"):
        with contextlib.suppress(ValueError):
            entry["Time"] = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    return entry


def _batches(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        if batch and (len(batch) == MAX_BATCH or size + entry.size > MAX_PUT_EVENTS_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


@dataclass
class _Run:
    outcomes: list[_Outcome] = field(default_factory=list)
    # message id -> latest receipt handle of a message left in the DLQ (released at the end)
    held: dict[str, str] = field(default_factory=dict)
    not_deleted: list[str] = field(default_factory=list)


def redrive_to_bus(
    inventory: Inventory,
    console: Console,
    queue: str,
    *,
    bus: str | None,
    rate: float,
    max_messages: int,
    allow_repeat: bool,
    hold_seconds: int = 300,
    wait_seconds: int = 1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Re-put the events held in an EventBridge target's DLQ on their bus; delete only what was put."""
    aws = inventory.aws
    url = inventory.resolve_queue(queue)
    bus_name = bus or inventory.require_output("EventBusName", "the event bus", "--bus")
    events = aws.client("events")
    try:
        bus_arn = events.describe_event_bus(Name=bus_name)["Arn"]
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            raise UsageError(f"no event bus {bus_name!r}") from None
        raise
    dlq_arn = _queue_arn(aws, url)
    rules = [
        r["Name"]
        for page in events.get_paginator("list_rules").paginate(EventBusName=bus_name)
        for r in page.get("Rules", [])
    ]
    counts = depth(aws, url)
    if counts["visible"] == 0:
        console.info(f"{url} has no visible messages: nothing to redrive")
        console.result({"queue_url": url, "bus": bus_name, "put": 0})
        return EXIT_OK
    console.info(
        f"each event goes to EVERY rule on {bus_name} whose pattern matches it, not only the rule that "
        f"failed to deliver it ({len(rules)} rule(s): {', '.join(rules) or 'none'}). Subscribers that already "
        "received it get it again: their idempotency keys must absorb that (docs/runbook.md)."
    )
    console.confirm(
        f"re-put up to {min(max_messages, counts['visible'])} event(s) from {url} on the bus {bus_name} "
        f"(at most {rate:g}/s) and delete each message once its event is accepted"
    )
    pacer = Pacer(rate, clock=clock, sleep=sleep)
    run = _Run()
    seen: set[str] = set()
    try:
        while len(seen) < max_messages:
            batch = _receive(aws, url, max_messages - len(seen), hold_seconds, wait_seconds)
            for message in batch:
                if message["MessageId"] in seen and message["MessageId"] in run.held:
                    run.held[message["MessageId"]] = message["ReceiptHandle"]
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
            _put_and_delete(aws, url, fresh, bus_name, dlq_arn, allow_repeat, pacer, run)
            put_so_far = sum(o.status == "put" for o in run.outcomes)
            console.info(f"  {put_so_far} put, {len(run.outcomes) - put_so_far} left in the DLQ so far")
    finally:
        unreleased = _release(aws, url, run.held.values())
    put = [o for o in run.outcomes if o.status == "put"]
    left = [o for o in run.outcomes if o.status != "put"]
    for outcome in left:
        console.info(f"  left in DLQ: {outcome.message_id} ({outcome.status}: {outcome.detail})")
    report = {
        "queue_url": url,
        "bus": bus_name,
        "bus_arn": bus_arn,
        "put": len(put),
        "left_in_dlq": len(left),
        "put_but_not_deleted": run.not_deleted,
        "outcomes": [o.__dict__ for o in run.outcomes],
    }
    console.result(report)
    console.info(f"re-put {len(put)} event(s) on {bus_name}; {len(left)} message(s) left in {url}")
    if run.not_deleted:
        console.error(
            f"{len(run.not_deleted)} message(s) were put but could not be deleted: a later redrive would send "
            f"them again ({', '.join(run.not_deleted)})"
        )
    if unreleased:
        console.error(f"{len(unreleased)} message(s) stay hidden until their visibility timeout ends")
    return EXIT_OK if not left and not run.not_deleted else EXIT_FAILED


def _put_and_delete(
    aws: Aws,
    url: str,
    messages: list[dict[str, Any]],
    bus: str,
    marker: str,
    allow_repeat: bool,
    pacer: Pacer,
    run: _Run,
) -> None:
    entries: list[_Entry] = []
    for message in messages:
        attributes = _attributes(message)
        try:
            request = event_entry(message.get("Body", ""), bus, marker, allow_repeat=allow_repeat)
        except ValueError as error:
            run.outcomes.append(
                _Outcome(
                    message["MessageId"], None, "skipped", str(error), rule_arn=attributes.get("RULE_ARN")
                )
            )
            run.held[message["MessageId"]] = message["ReceiptHandle"]
            continue
        entries.append(_Entry(message=message, event=json.loads(message["Body"]), request=request))
    for batch in _batches(entries):
        pacer.wait_for(len(batch))
        try:
            response = aws.client("events").put_events(Entries=[e.request for e in batch])
            results = response.get("Entries", [])
        except Exception as error:
            results = [{"ErrorCode": error_code(error) or "Error", "ErrorMessage": str(error)}] * len(batch)
        delete = []
        for entry, result in zip(batch, results, strict=False):
            message = entry.message
            rule_arn = _attributes(message).get("RULE_ARN")
            original = entry.event.get("id")
            if result.get("EventId") and not result.get("ErrorCode"):
                run.outcomes.append(
                    _Outcome(
                        message["MessageId"],
                        original,
                        "put",
                        new_event_id=result["EventId"],
                        rule_arn=rule_arn,
                    )
                )
                delete.append(message)
            else:
                detail = f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}"
                run.outcomes.append(
                    _Outcome(message["MessageId"], original, "failed", detail, rule_arn=rule_arn)
                )
                run.held[message["MessageId"]] = message["ReceiptHandle"]
        if len(results) < len(batch):  # a malformed answer: whatever has no result was not confirmed
            for entry in batch[len(results) :]:
                run.outcomes.append(
                    _Outcome(entry.message["MessageId"], entry.event.get("id"), "failed", "no result")
                )
                run.held[entry.message["MessageId"]] = entry.message["ReceiptHandle"]
        if delete:
            response = aws.client("sqs").delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(delete)],
            )
            run.not_deleted += [delete[int(f["Id"])]["MessageId"] for f in response.get("Failed", [])]
