"""The tour: the rest of the pipeline on the local cloud the fault scenarios ran on.

The scenarios drive orders; the tour drives everything else, one part after the other, each judged on
what the emulated services recorded:

1. events through the front door (``POST /events``): each type reaches its subscriptions (PaymentReceived
   the fulfilment and ledger queues, CustomerUpdated the notifications queue); a malformed event and a
   malformed order are answered 400;
2. fulfilment workflows (``order_fulfilment`` started by the workflow starter from the fulfilment queue):
   one whose Charge the partner answers 503 twice (the state machine retries it and the execution
   succeeds), the same event again (the execution name refuses a second run), and one the partner
   rejects with 422 (caught: recorded on the failure queue, the execution fails);
3. a failing event subscriber: the notifier rejects one notification, so the notifications consumer
   quarantines it in its subscription's DLQ;
4. the operator's redrive of that DLQ through the ops CLI (``python -m ops dlq redrive``) once the
   notifier answers again: the notification is sent, once;
5. the operator's replay of the tour's window of the archive to the fulfilment subscriber through the
   ops CLI (``python -m ops replay --subscriber fulfilment --allow-side-effects``): every payment runs
   again, and each order is still charged once in all (the one rejected before is charged now);
6. from a fault scenario that ran before it (the outage): ``GET /orders/{id}`` while the partner was down
   (a fast 503 + Retry-After while shedding) and the order's status after (``status_reads_part``).

Each part is a summary block of the report; ``patterns`` records which catalogue patterns the tour showed,
with the evidence (``localcloud/evidence.py`` does the same for the scenarios).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from lambdas.contracts import environment as env
from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER, NOTIFICATIONS_PATH, QUARANTINE_REASON_ATTRIBUTE
from lambdas.contracts.consumer_control import CONTROL_OUTPUT
from lambdas.partner_api.faults import FaultDecision
from localcloud import evidence
from localcloud.cloud import LocalCloud
from localcloud.deploy import PROJECT_ROOT
from localcloud.fault_dependency import FaultDependency
from localcloud.front_door import producer_auth
from localcloud.report import pattern_lines

if TYPE_CHECKING:
    from localcloud.scenarios import RunResult, StatusRead

STARTER_HANDLER = "lambdas.workflow_starter."
NOTIFICATIONS_HANDLER = "lambdas.notifications_consumer."
# The progress lines the tour prints (one per step), numbered out of this many.
STEPS = 7
WAIT_S = 60.0
POLL_S = 0.25
# What the local cloud does not do as EventBridge does, for the report.
REPLAY_NOT_EMULATED = (
    "EventBridge replays asynchronously, at its own pace; the local cloud replays the window inside "
    "StartReplay (localcloud/moto_patches/eventbridge_replay.py)"
)


@dataclass
class TourPart:
    """One block of the report: what was done, what the emulated services recorded, and the verdict."""

    title: str
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def check(self, condition: bool, line: str) -> None:
        self.lines.append(line + ("" if condition else "   <-- expected otherwise"))
        self.ok = self.ok and condition


@dataclass
class TourResult:
    parts: list[TourPart]
    patterns: dict[str, str]  # catalogue pattern -> what the tour recorded that shows it
    charges: dict[str, int]  # the tour's orders -> charges the partner made for them
    notifications_sent: dict[str, int]  # notification idempotency key -> notifications the notifier made
    not_emulated: list[str]

    @property
    def charged_twice(self) -> dict[str, int]:
        return {order: n for order, n in self.charges.items() if n > 1}

    @property
    def sent_twice(self) -> dict[str, int]:
        return {key: n for key, n in self.notifications_sent.items() if n > 1}

    @property
    def ok(self) -> bool:
        return all(part.ok for part in self.parts) and not self.charged_twice and not self.sent_twice

    def document(self) -> dict[str, Any]:
        return {
            "parts": [asdict(part) for part in self.parts],
            "patterns": self.patterns,
            "charges": self.charges,
            "notifications_sent": self.notifications_sent,
            "not_emulated": self.not_emulated,
            "ok": self.ok,
            "report": text(self),
        }


def text(result: TourResult) -> str:
    lines = [
        "",
        "=== tour: events, fulfilment workflows, a failing subscriber, the operator's redrive and replay",
    ]
    for part in result.parts:
        lines += ["", f"--- {part.title}" + ("" if part.ok else "   <-- FAILED")]
        lines += [f"    {line}" for line in part.lines]
    lines += [
        "",
        f"charged twice: {len(result.charged_twice)} of {len(result.charges)} orders"
        + (f"   <-- must be 0: {result.charged_twice}" if result.charged_twice else ""),
        f"notified twice: {len(result.sent_twice)} of {len(result.notifications_sent)} notifications"
        + (f"   <-- must be 0: {result.sent_twice}" if result.sent_twice else ""),
    ]
    lines += [f"not emulated: {what}" for what in result.not_emulated]
    lines += ["", *pattern_lines(result.patterns)]
    return "\n".join(lines) + "\n"


def status_reads_part(result: RunResult) -> TourPart:
    """What the status-polling client of a fault scenario was told while the partner was down (until the
    circuit closed again: shedding follows the circuit, not the partner), and after."""
    part = TourPart(f"GET /orders/{{id}} while the partner was down (scenario '{result.scenario.name}')")
    if result.fault_window is None:
        part.lines.append("the scenario had no partner fault")
        return part
    start, recovered = result.fault_window
    closed_after = result.circuit_closed_after_recovery()
    closed = recovered + closed_after if closed_after is not None else result.ended_s
    down = [r for r in result.status_reads if start <= r.t < closed]
    after = [r for r in result.status_reads if r.t >= closed]
    shed = [r for r in down if r.status == 503 and r.retry_after_s is not None]
    part.lines.append(
        f"{len(down)} read(s) from the fault until the circuit closed at {closed:.1f}s ({_codes(down)})"
    )
    if shed:
        slowest = max(r.latency_ms or 0.0 for r in shed)
        advice = statistics.median(r.retry_after_s or 0.0 for r in shed)
        part.lines.append(
            f"{len(shed)} shed: 503 + Retry-After (median {advice:.0f}s), answered within {slowest:.0f} ms, "
            f"reason {shed[0].reason}"
        )
    answered = [r for r in after if r.status == 200]
    part.check(
        not after or bool(answered),
        f"{len(after)} read(s) after it ({_codes(after)}): the order's status"
        + (f", e.g. {answered[-1].status} at {answered[-1].t:.1f}s" if answered else ""),
    )
    part.lines.append("(404: the latest order accepted but not yet recorded by the consumer)")
    return part


def _codes(reads: list[StatusRead]) -> str:
    counts = Counter(r.status for r in reads)
    return ", ".join(f"{code}: {n}" for code, n in sorted(counts.items())) or "none"


class Tour:
    """Run the tour on a started ``LocalCloud`` whose order consumer is at rest; ``progress`` gets a line
    per step."""

    def __init__(self, cloud: LocalCloud, *, progress: Callable[[str], None] | None = None) -> None:
        self.cloud = cloud
        self._progress = progress or (lambda line: None)
        self._steps = 0
        self.prefix = uuid.uuid4().hex[:6]
        self.session = requests.Session()
        self.session.auth = producer_auth(cloud.emulator.region)  # every method is AWS_IAM
        assert cloud.front_door is not None
        self.events_url = cloud.front_door.base_url + "events"
        self.orders_url = cloud.front_door.base_url + "orders"
        self.starter = cloud.function_for_handler(STARTER_HANDLER)
        self.notifications = cloud.function_for_handler(NOTIFICATIONS_HANDLER)
        self.partner: FaultDependency = cloud.dependencies[self.starter_dependency()]
        self.notifier: FaultDependency = cloud.dependencies[self.notifications.environ[env.DEPENDENCY_NAME]]
        self.state_machine_arn = self.starter.environ["STATE_MACHINE_ARN"]
        self.outputs = cloud.deployed.outputs
        self.sfn = cloud.emulator.client("stepfunctions")
        self.sqs = cloud.emulator.client("sqs")
        self.patterns: dict[str, str] = {}
        self.orders: set[str] = set()
        self.notification_keys: set[str] = set()
        self._payments: dict[str, str] = {}  # label -> payment id, for the replay
        self._started = datetime.now(UTC)

    def progress(self, line: str) -> None:
        self._steps += 1
        self._progress(f"[tour {self._steps}/{STEPS}] {line}")

    def starter_dependency(self) -> str:
        # The fulfilment tasks call the dependency the workflows are configured with: the partner.
        control = json.loads(self.cloud.deployed.outputs[CONTROL_OUTPUT])
        return str(control["consumers"]["fulfilment-starter"]["circuit"])

    def output(self, prefix: str) -> str:
        return next(value for key, value in self.outputs.items() if key.startswith(prefix))

    # -- the tour ----------------------------------------------------------------------------------

    def run(self, outage: RunResult | None = None) -> TourResult:
        """``outage``: a fault scenario's result this cloud ran, for the status reads' part."""
        self._wait_for_pollers()
        parts = [self._events(), self._fulfilment(), self._failing_subscriber(), self._redrive()]
        parts.append(self._replay())
        if outage is not None:
            parts.append(status_reads_part(outage))
        charges = self.partner.charges_by_order()
        return TourResult(
            parts=parts,
            patterns=dict(self.patterns),
            charges={order: charges.get(order, 0) for order in sorted(self.orders)},
            notifications_sent=self._notifications_sent(),
            not_emulated=[REPLAY_NOT_EMULATED],
        )

    def _wait_for_pollers(self) -> None:
        """After an outage the circuit controller resumes the paused event sources gradually: the tour's
        messages must not wait for that."""
        self._wait(lambda: all(poller.enabled for poller in self.cloud.pollers) or None)

    def _events(self) -> TourPart:
        part = TourPart(
            "events through the front door (POST /events -> the bus -> each subscription's queue)"
        )
        self.progress("publishing events through the front door ...")
        ledger = self.output("EventsLedgerQueueUrl")
        ledger_before = self._depth(ledger)
        customer = f"cust-{self.prefix}"
        status, event_id = self._publish("CustomerUpdated", {"customerId": customer, "displayName": "Ada"})
        part.check(status == 202, f"CustomerUpdated: {status}")
        # Its notification is keyed on the event (CustomerUpdated has no business key).
        key = f"CustomerUpdated:{event_id}"
        self.notification_keys.add(key)
        sent = self._wait(lambda: self._notified(key) or None, timeout_s=20)
        part.check(
            sent is not None, f"  -> notifications queue -> notifier: {'sent' if sent else 'not sent'}"
        )
        # A string amount and no orderId: the gateway's JSON Schema model refuses it.
        malformed: dict[str, Any] = {
            "detailType": "PaymentReceived",
            "detail": {"paymentId": "p", "amountCents": "12"},
        }
        event = self.session.post(self.events_url, json=malformed, timeout=10).status_code
        part.check(event == 400, f"a malformed PaymentReceived: {event}")
        order = {"orderId": f"ord-{self.prefix}-bad", "amountCents": "12", "currency": "EUR"}
        bad_order = self.session.post(
            self.orders_url,
            json=order,
            headers={IDEMPOTENCY_KEY_HEADER: f"key-{self.prefix}-bad"},
            timeout=10,
        ).status_code
        part.check(bad_order == 400, f"a malformed order (POST /orders): {bad_order}")
        if event == bad_order == 400:
            self.patterns[evidence.REQUEST_VALIDATION] = (
                "tour: a malformed event and a malformed order got 400 at the front door"
            )
        self._ledger = (ledger, ledger_before)
        self._customer_notified = sent is not None
        return part

    def _fulfilment(self) -> TourPart:
        part = TourPart("fulfilment workflows (PaymentReceived -> starter -> order_fulfilment -> partner)")
        self.progress("a fulfilment workflow through a partner fault ...")
        # Nothing else calls the partner now (the order queue is at rest): these answers go to the Charge.
        self.partner.enqueue(FaultDecision.error(status=503), FaultDecision.error(status=503))
        retried = self._payment("retried")
        execution = self._execution(retried)
        retries = self._task_failures(execution)
        ok = execution.get("status") == "SUCCEEDED" and retries >= 1
        part.check(
            ok,
            f"Charge answered 503 twice: {execution.get('status', 'not started')}, "
            f"{retries} failed task attempt(s) retried by the state machine",
        )
        self.progress("the same event again ...")
        status, _ = self._publish("PaymentReceived", self._payment_detail("retried"))
        again = self._wait(lambda: self._duplicate_logged(retried) or None, timeout_s=20)
        runs = len(self._executions(retried))
        part.check(
            status == 202 and runs == 1,
            f"the same PaymentReceived again: {status}, executions named for it: {runs}"
            + (" (the starter logged it as a duplicate)" if again else ""),
        )
        if runs == 1 and status == 202:
            self.patterns[evidence.EXECUTIONS_NAMED] = (
                f"tour: PaymentReceived published twice, one execution ({execution.get('name')})"
            )
        self.progress("a fulfilment workflow the partner rejects ...")
        self.partner.enqueue(FaultDecision.error(status=422))
        rejected = self._payment("rejected")
        failed = self._execution(rejected)
        recorded = self._failure_recorded(rejected)
        part.check(
            failed.get("status") == "FAILED" and recorded is not None,
            f"Charge answered 422: {failed.get('status', 'not started')}, on the failure queue: "
            + (f"yes ({recorded})" if recorded else "no"),
        )
        if ok and recorded is not None:
            self.patterns[evidence.STEP_FUNCTIONS_RETRY_CATCH] = (
                f"tour: Charge retried {retries}x through 503s and succeeded; a 422 was caught and recorded "
                "on the failure queue"
            )
        ledger, before = self._ledger
        delivered = self._wait(lambda: self._depth(ledger) - before >= 2 or None, timeout_s=10)
        part.lines.append(
            f"the ledger queue (no consumer in this stack) holds {self._depth(ledger) - before} more "
            "PaymentReceived: each one published"
        )
        # Each subscription got its types: ledger the payments, fulfilment ran them, notifications sent one.
        if delivered and "executionArn" in execution and self._customer_notified:
            self.patterns[evidence.FANOUT] = (
                "tour: PaymentReceived reached fulfilment and ledger, CustomerUpdated notifications"
            )
        return part

    def _failing_subscriber(self) -> TourPart:
        part = TourPart("a failing event subscriber (the notifier rejects a notification)")
        self.progress("a notification the notifier rejects ...")
        dlq = self.output("EventsNotificationsDeadLetterQueueUrl")
        before = self._depth(dlq)
        self.notifier.enqueue(FaultDecision.error(status=422))
        order = f"ord-{self.prefix}-cancelled"
        detail = {
            "orderId": order,
            "customerId": f"cust-{self.prefix}",
            "reason": "out_of_stock",
            "cancelledAt": "2026-11-25T09:30:00Z",
        }
        status, _ = self._publish("OrderCancelled", detail)
        arrived = self._wait(lambda: self._depth(dlq) > before or None)
        reason = self._dlq_reason(dlq) if arrived else None
        part.check(
            status == 202 and arrived is not None,
            f"OrderCancelled: {status}; in the notifications DLQ: "
            + (f"yes (QuarantineReason {reason})" if arrived else "no"),
        )
        if arrived is not None and self.patterns.get(evidence.FANOUT):
            self.patterns[evidence.FANOUT] += "; a rejected notification ended in its subscription's DLQ"
        self._cancelled = (dlq, order)
        return part

    def _redrive(self) -> TourPart:
        dlq, order = self._cancelled
        arguments = ["dlq", "redrive", dlq, "--poll-seconds", "0.5", "--timeout-seconds", "30"]
        part = TourPart(
            f"the operator's redrive: {self._shown(arguments).replace(dlq, '<notifications DLQ>')}"
        )
        self.progress("the operator redrives the notifications DLQ ...")
        status, report, error = self._ops(arguments)
        moved = int(report.get("moved") or 0)
        part.check(
            status == 0 and report.get("status") == "COMPLETED" and moved >= 1,
            f"exit {status}: {report.get('status', error)}, moved {moved} message(s) back to the notifications queue",
        )
        key = f"OrderCancelled:{order}"
        sent = self._wait(lambda: self._notified(key) or None)
        part.check(sent is not None, f"the redriven notification: {'sent' if sent else 'not sent'}")
        left = self._depth(dlq)
        part.check(left == 0, f"left in the DLQ: {left}")
        if sent and moved:
            self.patterns[evidence.DLQ_REDRIVE] = (
                f"tour: `python -m ops dlq redrive` moved {moved} message(s); the notification was then sent "
                f"{self._notifications_sent().get(key, 0)}x"
            )
        return part

    def _replay(self) -> TourPart:
        """Replay the tour's window of the archive to the fulfilment subscriber: every payment runs again."""
        events = self.cloud.emulator.client("events")
        archive = self.output("EventsArchiveName")
        archived = events.describe_archive(ArchiveName=archive).get("EventCount", 0)
        # The window is the tour's: the scenarios put no event on the bus, the tour's are all in it.
        start, end = self._started - timedelta(seconds=1), datetime.now(UTC) + timedelta(seconds=1)
        arguments = [
            "replay", "--start", start.isoformat(), "--end", end.isoformat(), "--subscriber", "fulfilment",
            "--allow-side-effects", "--poll-seconds", "0.5", "--timeout-seconds", "30",
        ]  # fmt: skip
        part = TourPart(f"the operator's replay of the tour's window: {self._shown(arguments)}")
        self.progress("the operator replays the tour's window to the fulfilment subscriber ...")
        part.lines.append(f"{archive}: {archived} event(s) archived")
        status, report, error = self._ops(arguments)
        rules = ", ".join(arn.rsplit("/", 1)[-1] for arn in report.get("rule_arns", [])) or "?"
        part.check(
            status == 0 and report.get("state") == "COMPLETED",
            f"exit {status}: {report.get('state', error)} to {rules}",
        )
        replays = {label: self._replayed(payment) for label, payment in self._payments.items()}
        charges = self.partner.charges_by_order()
        for label, execution in replays.items():
            order = f"ord-{self.prefix}-{label}"
            part.check(
                execution.get("status") == "SUCCEEDED" and charges.get(order, 0) == 1,
                f"PaymentReceived {label}: run again as {execution.get('name', 'no execution')} "
                f"{execution.get('status', '')}; {order} charged {charges.get(order, 0)}x in all",
            )
        part.lines.append(
            "(the partner's charge is keyed on the payment, not the execution: the replay of a charged "
            "payment is answered from the partner's record; the one rejected before is charged now)"
        )
        if part.ok:
            self.patterns[evidence.ARCHIVE_REPLAY] = (
                f"tour: `python -m ops replay` of the tour's window to the fulfilment rule ran "
                f"{len(replays)} payments again; each order charged once in all"
            )
        return part

    # -- the ops CLI -------------------------------------------------------------------------------

    def _ops_command(self, arguments: list[str]) -> list[str]:
        return [
            sys.executable, "-m", "ops", "--endpoint-url", self.cloud.emulator.endpoint_url,
            "--region", self.cloud.emulator.region, "--stack", self.cloud.deployed.stack_name,
            "--json", "--yes", *arguments,
        ]  # fmt: skip

    def _shown(self, arguments: list[str]) -> str:
        return " ".join(["python", *self._ops_command(arguments)[1:]])

    def _ops(self, arguments: list[str]) -> tuple[int, dict[str, Any], str]:
        """Run ``python -m ops`` against the emulator: (exit status, its JSON result, its last words)."""
        # The emulator takes any credentials; a profile of the caller's must not be looked up.
        environment = {
            **{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"},
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
        }
        finished = subprocess.run(
            self._ops_command(arguments),
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        try:
            report = json.loads(finished.stdout)
        except ValueError:
            report = {}
        return finished.returncode, report if isinstance(report, dict) else {}, finished.stderr.strip()[-300:]

    # -- events ------------------------------------------------------------------------------------

    def _publish(self, detail_type: str, detail: dict[str, Any]) -> tuple[int, str | None]:
        response = self.session.post(
            self.events_url, json={"detailType": detail_type, "detail": detail}, timeout=10
        )
        event_id = response.json().get("eventId") if response.status_code == 202 else None
        return response.status_code, event_id

    def _payment_detail(self, label: str) -> dict[str, Any]:
        order = f"ord-{self.prefix}-{label}"
        self.orders.add(order)
        return {
            "paymentId": f"pay-{self.prefix}-{label}",
            "orderId": order,
            "amountCents": 1250,
            "currency": "EUR",
            "method": "wallet",
            "receivedAt": "2026-11-25T09:31:00Z",
        }

    def _payment(self, label: str) -> str:
        """Publish a PaymentReceived; returns its payment id (its execution is named after it)."""
        detail = self._payment_detail(label)
        self._publish("PaymentReceived", detail)
        self._payments[label] = str(detail["paymentId"])
        return self._payments[label]

    # -- what the services recorded ------------------------------------------------------------------

    def _executions(self, payment: str) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
        return [e for e in listed if payment in e["name"]]

    def _execution(self, payment: str) -> dict[str, Any]:
        """The payment's execution once it ended (or as it is after WAIT_S)."""

        def ended() -> dict[str, Any] | None:
            found = self._executions(payment)
            return found[0] if found and found[0]["status"] != "RUNNING" else None

        return self._wait(ended) or next(iter(self._executions(payment)), {})

    def _replayed(self, payment: str) -> dict[str, Any]:
        """The replay's execution for a payment (named for the replay, beside the original) once it ended."""

        def ended() -> dict[str, Any] | None:
            found = [e for e in self._executions(payment) if "replay" in e["name"]]
            return found[0] if found and found[0]["status"] != "RUNNING" else None

        return self._wait(ended) or {}

    def _task_failures(self, execution: dict[str, Any]) -> int:
        if "executionArn" not in execution:
            return 0
        history = self.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
        return sum(
            1 for event in history["events"] if event["type"] in ("TaskFailed", "LambdaFunctionFailed")
        )

    def _duplicate_logged(self, payment: str) -> bool:
        return any(
            record.data.get("message") == "duplicate: execution already exists"
            and payment in str(record.data.get("execution_name", ""))
            for record in list(self.starter.logs.records)
            if record.data
        )

    def _failure_recorded(self, payment: str) -> str | None:
        """The Error the failure queue recorded for this payment's execution (read without consuming it)."""
        url = self._failure_queue_url()

        def find() -> str | None:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            for message in messages:
                if payment in message["Body"]:
                    body = json.loads(message["Body"])
                    return f"{body.get('kind')}: {body.get('failedStep')} {body.get('error')}"

            return None

        return self._wait(find, timeout_s=15)

    def _failure_queue_url(self) -> str:
        stack = self.cloud.deployed
        for machine in stack.template["Resources"].values():
            if machine.get("Type") != "AWS::StepFunctions::StateMachine":
                continue
            substitutions = machine.get("Properties", {}).get("DefinitionSubstitutions", {})
            if "FailureQueueUrl" in substitutions:
                return str(stack.resolve(substitutions["FailureQueueUrl"]))
        raise KeyError("no state machine records failures on a queue")

    def _dlq_reason(self, url: str) -> str | None:
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        attributes = messages[0].get("MessageAttributes", {}) if messages else {}
        return (attributes.get(QUARANTINE_REASON_ATTRIBUTE) or {}).get("StringValue")

    def _notifications_sent(self) -> dict[str, int]:
        """Notifications the notifier created (not answered from its idempotency record), per idempotency
        key, for this tour's events."""
        created = Counter(
            call.idempotency_key
            for call in self.notifier.calls(NOTIFICATIONS_PATH)
            if call.status == 201
            and not call.replayed
            and call.idempotency_key
            and (self.prefix in call.idempotency_key or call.idempotency_key in self.notification_keys)
        )
        return dict(created)

    def _notified(self, key: str) -> bool:
        return any(key in k for k in self._notifications_sent())

    def _depth(self, url: str) -> int:
        visible, in_flight = self.cloud.queue_depth(url)
        return visible + in_flight

    def _wait(self, probe: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            found = probe()
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(POLL_S)
