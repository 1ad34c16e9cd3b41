"""Named fault scenarios run end to end on the local cloud, and what they measure.

A run drives three things on one timeline (seconds from the start of the run):

* load: orders POSTed to the front door at a steady rate, each with its own ``Idempotency-Key``; a
  fraction is sent twice with the same key (a client retrying after a lost response), and a 429 / 5xx
  is retried with the same key after ``Retry-After``, as a well-behaved producer does;
* the partner: the fault-injecting twin switches profile at the scenario's phase times;
* poison (scenario ``poison``): messages that can never succeed.

An observer samples queue depths, the circuit record in the emulated DynamoDB table, busy consumer
environments and the partner's calls four times a second. At the end the DLQ is read and every accepted
message is accounted for: processed (its order charged once at the partner) or in a DLQ; anything else
is *lost*. Orders charged more than once are *duplicate side effects*.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from lambdas.contracts import circuit as circuit_record
from lambdas.contracts import dependency_tunables as tunables
from lambdas.contracts import environment as env
from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER, QUARANTINE_REASON_ATTRIBUTE, RETRY_AFTER_HEADER
from lambdas.contracts.metrics import METRIC_CIRCUIT_PROBES_FAILED
from lambdas.order_consumer.processing import scoped_idempotency_key
from lambdas.partner_api.faults import BASELINES, HEALTHY, FaultDecision, FaultProfile, preset
from localcloud import alarms
from localcloud.cloud import LocalCloud
from localcloud.fault_dependency import CallRecord, FaultDependency, Phase
from localcloud.front_door import local_producer, producer_auth
from localcloud.host_stalls import HostStalls
from localcloud.isolation import LogRecord
from localcloud.metrics import MetricRecorder, MetricStore

SAMPLE_INTERVAL_S = 0.25
# A client polling GET /orders/{id} for its latest order (and honouring Retry-After) reads this often:
# each read runs the status function in this process, so a tighter loop would slow the load beside it.
STATUS_READ_INTERVAL_S = 3.0
CONSUMER_HANDLER = "lambdas.order_consumer."
CIRCUIT_TRANSITION_MESSAGE = "circuit_transition"

# The timeline adapts to the machine instead of failing on it (see ScenarioRun):
# the fault lasts at least its nominal time, and at least FAULT_HOLD_AFTER_OPEN of it after the circuit
# opened, however long opening took on this machine, up to MAX_FAULT_STRETCH x its nominal length.
FAULT_HOLD_AFTER_OPEN = 0.5
MAX_FAULT_STRETCH = 4.0
# ... and until this many orders were sent while it was open: the queue is seen absorbing work however
# slowly this machine runs the load (tests/e2e judge the calls per order that waited on these).
MIN_ORDERS_WHILE_OPEN = 10
# The drain keeps waiting past its nominal deadline while the backlog still shrinks, up to this many
# times the nominal deadline; no progress for a visibility timeout (+ slack) is a stall, i.e. a defect.
MAX_DRAIN_STRETCH = 3.0
# The long outage: past the orders queue's receive budget (maxReceiveCount x visibility timeout; without
# a synth to read it from, 5 receives x 19 s at /10), by 5 %: a design that let every receive fail would
# dead-letter what arrived in the outage's first 5 %.
NOMINAL_RECEIVE_BUDGET_S = 95.0
LONG_OUTAGE_MARGIN = 1.05
STALL_SLACK_S = 10.0

DRAINED = "drained"
STALLED = "stalled"
TOO_SLOW = "too slow"


# ------------------------------------------------------------------------------------------ time compression


@dataclass(frozen=True)
class Override:
    key: str
    before: Any
    after: Any


def compressed_context(
    context: Mapping[str, Any], factor: float, batch_size: int | None = None
) -> tuple[dict[str, Any], list[Override]]:
    """cdk.json's context with every time-valued service setting divided by ``factor``, and every
    consumer's batch size at most ``batch_size`` (what fits the compressed timeout here: calibration).

    The stack is synthesized from this context, so the template itself carries the shorter timeouts
    (the queue's visibility timeout follows the function timeout) and everything downstream honours
    them. Values stay within stacks/config.py's bounds (a function timeout is at least 3 s, so a
    visibility timeout is at least 19 s with a 1 s batching window). Not compressible here: the
    partner's latencies and ``Retry-After`` (whole seconds on the wire).
    """
    result = copy.deepcopy(dict(context))
    overrides: list[Override] = []
    if batch_size is not None:
        for name, consumer in (result["service"].get("consumers") or {}).items():
            if consumer.get("batch_size", batch_size) > batch_size:
                overrides.append(
                    Override(f"service.consumers.{name}.batch_size", consumer["batch_size"], batch_size)
                )
                consumer["batch_size"] = batch_size
    if factor == 1:
        return result, overrides

    def scale(
        block: dict[str, Any], path: str, key: str, minimum: float, *, fractional: bool = False
    ) -> None:
        if key not in block:
            return
        before = block[key]
        # Whole units, except a setting the stack takes to the millisecond (the breaker's cache age).
        after = (
            round(max(minimum, before / factor), 3)
            if fractional
            else math.ceil(max(minimum, before / factor))
        )
        if after != before:
            block[key] = after
            overrides.append(Override(f"{path}.{key}", before, after))

    blocks = [("service", result["service"])]
    blocks += [(f"stages.{name}", stage) for name, stage in result.get("stages", {}).items()]
    for prefix, block in blocks:
        for name, consumer in (block.get("consumers") or {}).items():
            scale(consumer, f"{prefix}.consumers.{name}", "timeout_seconds", 3)
        for name, dependency in (block.get("dependencies") or {}).items():
            path = f"{prefix}.dependencies.{name}"
            scale(dependency, path, "breaker_recovery_seconds", 1)
            scale(dependency, path, "breaker_cache_seconds", 0, fractional=True)
            scale(dependency, path, "attempt_timeout_ms", 50)
            scale(dependency, path, "connect_timeout_ms", 10)
            # The margin covers what an invocation still does after its last dependency call (idempotency
            # writes per remaining record...). On the emulator each of those calls costs milliseconds, so
            # the margin is not shrunk below 500 ms or batches overrun the (compressed) function timeout.
            scale(dependency, path, "safety_margin_ms", 500)
            scale(dependency, path, "base_delay_ms", 1)
            scale(dependency, path, "max_delay_ms", max(1, dependency.get("base_delay_ms", 1)))
        # The circuit controller's clock moves with the recovery window it probes at (the pause budget
        # is validated against it), and its resume ramp with it.
        workflows = block.get("workflows") or {}
        scale(workflows, f"{prefix}.workflows", "controller_max_pause_seconds", 60)
        scale(workflows, f"{prefix}.workflows", "controller_probe_interval_seconds", 1)
        scale(workflows, f"{prefix}.workflows", "controller_ramp_step_seconds", 1)
    return result, overrides


def context_differences(
    base: Mapping[str, Any], other: Mapping[str, Any], prefix: str = ""
) -> list[Override]:
    """Every leaf value of ``other`` that differs from ``base`` (what a reused synth was built with)."""
    differences = []
    for key in sorted(set(base) | set(other)):
        path = f"{prefix}.{key}" if prefix else str(key)
        before, after = base.get(key), other.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            differences += context_differences(before, after, path)
        elif before != after:
            differences.append(Override(path, before, after))
    return differences


# ------------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]
    load_rate: float  # orders per second
    load_s: float
    fault_window: tuple[float, float] | None  # (fault starts, dependency recovered)
    client_retry_ratio: float = 0.05
    poison: bool = False
    # The fault is one the circuit should open on: a slow machine then holds the fault until it has
    # (a brown-out should not open it, so its fault keeps its nominal length).
    opens_circuit: bool = True


def scenarios(
    scale: float = 1.0, rate_scale: float = 1.0, receive_budget_s: float | None = None
) -> dict[str, Scenario]:
    """The named scenarios; ``scale`` shrinks their timelines (the e2e tests use 0.4), ``rate_scale`` their
    load (with a calibrated compression both follow the factor: the same orders over a longer timeline).

    ``receive_budget_s`` is how long the orders queue lets a message fail (maxReceiveCount x visibility
    timeout, ``receive_budget_seconds``): the long outage lasts longer than that, so a design that lets
    every receive fail would dead-letter messages. Without it, the nominal budget at /10 is assumed.
    """

    def s(seconds: float) -> float:
        return round(seconds * scale, 2)

    healthy, outage = HEALTHY, preset("outage")
    baseline_slow = BASELINES.get("slow", FaultProfile(latency_ms=200))

    def faulted(
        name: str,
        fault: FaultProfile,
        baseline: FaultProfile,
        rate: float,
        note: str,
        fault_s: float = 14,
        at_least_s: float = 0.0,
    ) -> Scenario:
        start = s(8)
        end = round(start + max(s(fault_s), at_least_s), 2)
        fault_s = (end - start) / scale
        return Scenario(
            name=name,
            description=note,
            phases=(
                Phase(0, baseline, "steady"),
                Phase(start, fault, name),
                Phase(end, baseline, "recovered"),
            ),
            load_rate=rate * rate_scale,
            load_s=s(12 + fault_s),
            fault_window=(start, end),
        )

    return {
        "outage": faulted(
            "outage", outage, healthy, 10, "steady load -> the partner answers 503 to everything -> recovery"
        ),
        "slow": faulted(
            "slow",
            preset("slow"),
            baseline_slow,
            8,
            "the partner's latency goes from 200 ms to 8 s (past the attempt timeout) -> recovery",
            # A slow failure costs max_attempts x attempt_timeout before the breaker hears of it, and each
            # environment counts failures in its own cached view of the circuit: opening takes seconds.
            fault_s=22,
        ),
        "throttling": faulted(
            "throttling",
            preset("throttling"),
            healthy,
            10,
            "the partner answers 429 with Retry-After: 1 to everything -> recovery",
        ),
        "brownout": dataclasses.replace(
            faulted(
                "brownout",
                preset("brownout"),
                healthy,
                10,
                "half of the partner's answers are 503 (a brown-out: rarely enough in a row to open the "
                "circuit) -> recovery",
            ),
            opens_circuit=False,
        ),
        "long-outage": faulted(
            "long-outage",
            outage,
            healthy,
            3,
            "the partner answers 503 for longer than the queue lets a message fail "
            "(maxReceiveCount x visibility timeout) -> recovery",
            fault_s=NOMINAL_RECEIVE_BUDGET_S * LONG_OUTAGE_MARGIN,
            at_least_s=(receive_budget_s or 0.0) * LONG_OUTAGE_MARGIN,
        ),
        "healthy": Scenario(
            name="healthy",
            description="light steady load, healthy partner, no fault: what the alarms must stay quiet for",
            phases=(Phase(0, healthy, "healthy"),),
            # A fifth of the other scenarios' load: well inside the bulkhead, whose concurrency alarm
            # rightly fires when a consumer keeps near its cap minute after minute.
            load_rate=2 * rate_scale,
            # Longer than the longest evaluation window of the alarms (3 one-minute periods, compressed).
            load_s=s(50),
            fault_window=None,
        ),
        "poison": Scenario(
            name="poison",
            description="healthy partner; poison messages: a reused Idempotency-Key with another order, "
            "a malformed message written straight to the queue, an order the partner rejects (422)",
            phases=(Phase(0, healthy, "healthy"),),
            load_rate=10 * rate_scale,
            load_s=s(12),
            fault_window=None,
            poison=True,
        ),
    }


DEFAULT_SCENARIO = "outage"


def _config(context: Mapping[str, Any]) -> Any:
    from stacks.config import ServiceConfig

    return ServiceConfig.from_context(context["service"], context.get("stages", {}), context["stage"])


def receive_budget_seconds(context: Mapping[str, Any], consumer: str = "orders") -> float:
    """maxReceiveCount x visibility timeout of ``consumer``'s queue, as synthesized from ``context``."""
    settings = _config(context).consumers[consumer]
    return float(settings.max_receive_count * settings.visibility_timeout_seconds)


@dataclass(frozen=True)
class BreakerBounds:
    """What bounds a consumer's recovery, from its (compressed) settings."""

    failure_threshold: int  # bounds the failed calls before the fleet stops (x 3)
    recovery_s: float  # how long the circuit stays open before a probe may close it
    probe_interval_s: float  # how often the controller probes while the consumer is paused

    @property
    def close_within_s(self) -> float:
        """How soon after a recovery the circuit should be CLOSED again."""
        return self.recovery_s + self.probe_interval_s


def breaker_bounds(context: Mapping[str, Any], consumer: str = "orders") -> BreakerBounds:
    config = _config(context)
    dependency = config.dependencies[config.consumers[consumer].dependency]
    return BreakerBounds(
        failure_threshold=dependency.breaker_failure_threshold,
        recovery_s=float(dependency.breaker_recovery_seconds),
        probe_interval_s=float(config.workflows.controller_probe_interval_seconds),
    )


# ------------------------------------------------------------------------------------------ results


@dataclass
class Sample:
    t: float
    visible: int
    in_flight: int
    dlq: int
    busy: int
    circuit: str
    calls: int
    errors: int
    accepted: int
    phase: str
    consumer_enabled: bool = True  # the order queue's event source (the circuit controller pauses it)


@dataclass
class SentMessage:
    t: float
    order_id: str
    idempotency_key: str
    message_id: str
    origin: str  # "api" | "api-retry" | "direct"
    note: str = ""


@dataclass
class StatusRead:
    """One GET /orders/{id} by the status-polling client: what it was told, and when."""

    t: float
    status: int  # 0: no answer
    retry_after_s: float | None = None
    reason: str | None = None
    latency_ms: float | None = None  # how long the answer took (a shed read should be fast)


@dataclass
class Transition:
    t: float
    from_state: str
    to_state: str


@dataclass(frozen=True)
class DrainVerdict:
    """How the wait for the queue to drain ended, and whose fault a failure is."""

    outcome: str  # DRAINED | STALLED | TOO_SLOW
    detail: str

    @property
    def drained(self) -> bool:
        return self.outcome == DRAINED


@dataclass
class RunResult:
    scenario: Scenario
    overrides: list[Override]
    cap: int
    visibility_timeout_s: int
    max_receive_count: int | None
    started_at: float
    load_ended_s: float
    ended_s: float
    drained: bool
    samples: list[Sample]
    messages: list[SentMessage]
    rejected: dict[int, int]  # front door status -> count (after client retries)
    dlq_messages: list[dict[str, Any]]
    charges: dict[str, int]
    calls: list[CallRecord]
    transitions: list[Transition]
    peak_dependency_in_flight: int
    peak_consumer_in_flight: int
    attempt_timeout_ms: float
    consumer_errors: int
    consumer_timeouts: int
    # Of those, the ones the host's stalls explain (localcloud/host_stalls.py), and the longest stall.
    consumer_timeouts_from_stalls: int = 0
    longest_host_stall_s: float = 0.0
    # The fault as it happened: (started, dependency recovered), later than nominal on a slow machine.
    fault_window: tuple[float, float] | None = None
    timeline_notes: list[str] = field(default_factory=list)
    drain_verdict: DrainVerdict | None = None
    status_reads: list[StatusRead] = field(default_factory=list)
    breaker_recovery_s: float | None = None  # the dependency's recovery window, as deployed
    alarms: alarms.AlarmTimeline | None = None  # the template's alarms over the run's metrics

    # -- accounting --------------------------------------------------------------------------------

    @property
    def dlq_ids(self) -> dict[str, str]:
        """Source message id -> why it is in the DLQ."""
        out = {}
        for message in self.dlq_messages:
            attributes = message.get("MessageAttributes") or {}
            source = (attributes.get("SourceMessageId") or {}).get("StringValue") or message["MessageId"]
            reason = (attributes.get(QUARANTINE_REASON_ATTRIBUTE) or {}).get(
                "StringValue"
            ) or "max_receive_count"
            out[source] = reason
        return out

    def outcome(self, message: SentMessage) -> str:
        in_dlq = message.message_id in self.dlq_ids
        charged = self.charges.get(message.order_id, 0) >= 1
        if in_dlq and charged and message.origin != "api-retry":
            return "charged+dlq"
        if in_dlq:
            return "dlq"
        if charged:
            return "processed"
        return "queued" if not self.drained else "lost"

    def counts(self) -> dict[str, int]:
        counts = {"processed": 0, "dlq": 0, "lost": 0, "queued": 0, "charged+dlq": 0}
        for message in self.messages:
            counts[self.outcome(message)] += 1
        return counts

    @property
    def accepted(self) -> list[SentMessage]:
        return [m for m in self.messages if m.origin != "direct"]

    @property
    def duplicate_side_effects(self) -> dict[str, int]:
        return {order: n for order, n in self.charges.items() if n > 1}

    def calls_between(self, start: float, end: float) -> list[CallRecord]:
        return [c for c in self.calls if start <= c.t < end]

    def accepted_between(self, start: float, end: float) -> list[SentMessage]:
        return [m for m in self.accepted if start <= m.t < end]

    def drain_time_after_recovery(self) -> float | None:
        """Seconds from the partner's recovery until the order queue was empty (nothing in flight)."""
        if self.fault_window is None:
            return None
        recovered = self.fault_window[1]
        after_load = max(recovered, self.load_ended_s)
        for sample in self.samples:
            if sample.t >= after_load and sample.visible == 0 and sample.in_flight == 0:
                return sample.t - recovered
        return None

    @property
    def record_transitions(self) -> list[Transition]:
        """Changes of the circuit record in DynamoDB as sampled (4/s): every writer, including the circuit
        controller workflow, which logs nothing in the consumer's log group."""
        changes: list[Transition] = []
        previous = circuit_record.CLOSED
        for sample in self.samples:
            if sample.circuit != previous:
                changes.append(Transition(sample.t, previous, sample.circuit))
                previous = sample.circuit
        return changes

    def circuit_opened_during_fault(self) -> float | None:
        """When the circuit record (as sampled) first went OPEN during the fault."""
        if self.fault_window is None:
            return None
        start, recovered = self.fault_window
        return next(
            (
                t.t
                for t in self.record_transitions
                if t.to_state == circuit_record.OPEN and start <= t.t < recovered
            ),
            None,
        )

    def fleet_stopped_during_fault(self) -> float | None:
        """When the whole fleet had stopped calling: the circuit record (as sampled) first left OPEN after it
        opened during the fault (a probe, or the close), or the dependency recovered first.

        Until then every consumer call came from an environment that had not stopped yet: its cached
        state still said CLOSED, or it was between the attempts of a call it started before the opening.
        """
        opened = self.circuit_opened_during_fault()
        if opened is None or self.fault_window is None:
            return None
        recovered = self.fault_window[1]
        left = next((s.t for s in self.samples if s.t > opened and s.circuit != "OPEN"), recovered)
        return min(left, recovered)

    def consumer_calls_between(self, start: float, end: float) -> list[CallRecord]:
        """The consumers' calls (under a key a client sent; not the controller's probes) that arrived then."""
        keys = {m.idempotency_key for m in self.messages}
        return [c for c in self.calls_between(start, end) if c.idempotency_key in keys]

    def circuit_closed_after_recovery(self) -> float | None:
        """Seconds from the dependency's recovery until the circuit record was CLOSED again."""
        if self.fault_window is None:
            return None
        recovered = self.fault_window[1]
        closed = next(
            (
                t.t
                for t in self.record_transitions
                if t.to_state == circuit_record.CLOSED and t.t >= recovered
            ),
            None,
        )
        return None if closed is None else closed - recovered

    def shed_status_reads(self) -> list[tuple[StatusRead, float | None, StatusRead | None]]:
        """Each status read answered 503 because the circuit was open: (the read, seconds until the
        circuit record, as sampled, next left OPEN, the client's next read after waiting the advice)."""
        out = []
        reads = self.status_reads
        for index, read in enumerate(reads):
            if read.status != 503 or read.reason != "circuit_open":
                continue
            changed = next(
                (s.t for s in self.samples if s.t > read.t and s.circuit != circuit_record.OPEN), None
            )
            following = reads[index + 1] if index + 1 < len(reads) else None
            out.append((read, None if changed is None else changed - read.t, following))
        return out

    def peak_depth(self, start: float, end: float) -> int:
        return max((s.visible + s.in_flight for s in self.samples if start <= s.t < end), default=0)


def failed_call(call: CallRecord, attempt_timeout_ms: float) -> bool:
    """Failed from the consumer's point of view: an error status, no answer, or slower than its timeout."""
    return call.status >= 400 or call.status == 0 or call.latency_ms > attempt_timeout_ms


# ------------------------------------------------------------------------------------------ the run


def sample_order(n: int, prefix: str, rng: random.Random) -> dict[str, Any]:
    return {
        "orderId": f"{prefix}-{n:05d}",
        "customerId": f"customer-{rng.randrange(50):02d}",
        "items": [{"sku": f"SKU-{rng.randrange(1, 40):03d}", "quantity": rng.randrange(1, 4)}],
        "amountCents": rng.randrange(100, 20_000),
        "currency": "EUR",
    }


class ScenarioRun:
    """Run one scenario on a started ``LocalCloud``; ``progress`` is called about once a second."""

    def __init__(
        self,
        cloud: LocalCloud,
        scenario: Scenario,
        *,
        overrides: list[Override] | None = None,
        progress: Callable[[Sample, ScenarioRun], None] | None = None,
        seed: int = 7,
        drain_timeout_s: float | None = None,
        adaptive_timeline: bool = True,
        notes: list[str] | None = None,
        alarm_factor: float | None = None,
    ) -> None:
        """``alarm_factor``: the run's time compression; given, the run's metrics are recorded and the
        template's alarms evaluated over them with periods divided by it (``localcloud.alarms``)."""
        self.cloud = cloud
        self.scenario = scenario
        self.overrides = overrides or []
        self.progress = progress
        self.rng = random.Random(seed)
        self.prefix = f"ord-{uuid.uuid4().hex[:6]}"
        self.consumer = cloud.function_for_handler(CONSUMER_HANDLER)
        self.poller = cloud.poller_for(self.consumer)
        self.partner: FaultDependency = cloud.dependencies[self.consumer.environ[env.DEPENDENCY_NAME]]
        self.circuit_table = self.consumer.environ[env.CIRCUIT_BREAKER_TABLE_NAME]
        self.circuit_name = self.consumer.environ[env.DEPENDENCY_NAME]
        self.queue_url = self.poller.source.queue_url
        self.attempt_timeout_ms = float(
            self.consumer.environ.get(tunables.DEPENDENCY_ATTEMPT_TIMEOUT_MS, "inf")
        )
        self.dlq_url = self.consumer.environ["POISON_MESSAGE_QUEUE_URL"]
        visibility = self.poller.source.visibility_timeout_s
        self.drain_timeout_s = drain_timeout_s if drain_timeout_s is not None else 2 * visibility + 20
        self.messages: list[SentMessage] = []
        self.rejected: dict[int, int] = {}
        self.samples: list[Sample] = []
        self.transitions: list[Transition] = []
        self.status_reads: list[StatusRead] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0 = 0.0
        self._phase = scenario.phases[0].label
        self._calls_offset = 0.0
        self._errors_before = 0
        self._stalls = HostStalls()
        self._timed_out_before = 0
        # A fixed schedule (the benchmark compares designs on the same one) or one that waits for the
        # circuit to open before the dependency recovers (the demo and the tests: see _drive_partner).
        self.adaptive_timeline = adaptive_timeline
        self._fault_started: float | None = None
        self._recovered: float | None = None
        self._opened: float | None = None
        self._extension = 0.0  # seconds the fault (and the load with it) ran past the nominal timeline
        self.timeline_notes: list[str] = list(notes or [])
        self.alarm_factor = alarm_factor
        self._metrics: MetricStore | None = None

    def now(self) -> float:
        return time.monotonic() - self._t0

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.wait_until_at_rest()
        self.partner.set_profile(self.scenario.phases[0].profile, self.scenario.phases[0].label)
        self.partner.reset_stats()
        self._errors_before = self.consumer.errors
        self._timed_out_before = len(self.consumer.timed_out)
        self._stalls.start()
        with self.poller.stats.lock:
            self.poller.stats.peak_in_flight = 0
        self.consumer.logs.on_record.append(self._on_log)
        self._t0 = time.monotonic()
        recorder = MetricRecorder(self.cloud).start(self._t0) if self.alarm_factor is not None else None
        self._calls_offset = self._partner_clock_offset()
        threads = [
            threading.Thread(target=self._observe, name="scenario-observer", daemon=True),
            threading.Thread(target=self._drive_partner, name="scenario-partner", daemon=True),
            threading.Thread(target=self._read_status, name="scenario-status-reader", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            self._load()
            load_ended = self.now()
            verdict = self._wait_for_drain()
            self._let_the_circuit_alarm_clear()
        finally:
            self._stop.set()
            self._stalls.stop()
            for thread in threads:
                thread.join(timeout=5)
            self.consumer.logs.on_record.remove(self._on_log)
            if recorder is not None:
                self._metrics = recorder.stop()
        return self._result(load_ended, verdict)

    def _let_the_circuit_alarm_clear(self) -> None:
        """A run that evaluates alarms lasts until the circuit's alarm could have cleared after the
        recovery: it stays in ALARM while the controller's probes fail, then for its evaluation window
        (stacks/monitoring.py), which a quick drain can end before."""
        if self.alarm_factor is None or self._recovered is None:
            return
        window = alarms.clear_window_s(self.cloud.deployed.template, METRIC_CIRCUIT_PROBES_FAILED)
        until = self._recovered + window / self.alarm_factor
        while self.now() < until and not self._stop.is_set():
            time.sleep(0.25)

    def wait_until_at_rest(self, timeout_s: float = 60.0) -> None:
        """A run starts from rest: order queue empty, consumer enabled, circuit closed (a cloud may be reused)."""
        deadline = time.monotonic() + timeout_s
        while True:
            visible, in_flight = self.cloud.queue_depth(self.queue_url)
            state = self._circuit_state()
            if visible == 0 and in_flight == 0 and self.poller.enabled and state == circuit_record.CLOSED:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the local cloud is not at rest: queue {visible}+{in_flight}, circuit {state}, "
                    f"event source {'enabled' if self.poller.enabled else 'disabled'}"
                )
            time.sleep(0.25)

    def _circuit_state(self) -> str:
        """The circuit record's state in the emulated table (CLOSED when there is no record)."""
        item = (
            self.cloud.emulator.client("dynamodb")
            .get_item(
                TableName=self.circuit_table,
                Key=circuit_record.item_key(self.circuit_name),
                ConsistentRead=True,
            )
            .get("Item")
        )
        return circuit_record.state_of(item)

    def _partner_clock_offset(self) -> float:
        """The twin reports call times from its start(); LocalCloud recorded when that was."""
        started = self.cloud.dependency_started_at.get(self.circuit_name, self._t0)
        return self._t0 - started

    def _drive_partner(self) -> None:
        window = self.scenario.fault_window
        for phase in self.scenario.phases[1:]:
            recovery = window is not None and phase.start_s == window[1]
            if recovery and self.adaptive_timeline and self.scenario.opens_circuit:
                if not self._hold_fault(phase.start_s):
                    return
            elif self._stop.wait(max(0.0, phase.start_s - self.now())):
                return
            self.partner.set_profile(phase.profile, phase.label)
            now = self.now()
            with self._lock:
                self._phase = phase.label
                if window is not None and phase.start_s == window[0]:
                    self._fault_started = now
                if recovery:
                    self._recovered = now
                    if self.adaptive_timeline:  # a fixed schedule's load is fixed too
                        self._extension = max(0.0, now - phase.start_s)

    def _hold_fault(self, nominal_end: float) -> bool:
        """Wait until the dependency may recover; False if the run was stopped meanwhile.

        That is the nominal end of the fault, or later on a machine too slow for the circuit to open in
        time: FAULT_HOLD_AFTER_OPEN of the nominal fault after it opened, at most MAX_FAULT_STRETCH times
        the nominal fault. What a run is judged on (the breaker opened, the queue absorbed the fault)
        then still happens, instead of the verdict depending on the machine's speed.
        """
        assert self.scenario.fault_window is not None
        start, _ = self.scenario.fault_window
        nominal = nominal_end - start
        cap = start + MAX_FAULT_STRETCH * nominal
        while True:
            now = self.now()
            with self._lock:
                opened = self._opened
                self._extension = max(0.0, now - nominal_end)
            due = (
                nominal_end if opened is None else max(nominal_end, opened + FAULT_HOLD_AFTER_OPEN * nominal)
            )
            if now >= cap:
                self.timeline_notes.append(
                    f"the circuit had not opened {now - start:.1f}s into the fault "
                    f"({MAX_FAULT_STRETCH:g}x its nominal {nominal:.1f}s): the dependency recovered anyway"
                )
                return True
            if opened is not None and now >= due and self._orders_sent_since(opened) >= MIN_ORDERS_WHILE_OPEN:
                if now - nominal_end > SAMPLE_INTERVAL_S:
                    self.timeline_notes.append(
                        f"fault held {now - nominal_end:.1f}s past its nominal end: the circuit opened at "
                        f"{opened:.1f}s and the fault lasts at least {FAULT_HOLD_AFTER_OPEN * nominal:.1f}s "
                        f"after that, and until {MIN_ORDERS_WHILE_OPEN} orders were sent while it was open "
                        "(this machine is slower than the nominal timeline)"
                    )
                return True
            wait = due - now if opened is not None and due > now else SAMPLE_INTERVAL_S
            if self._stop.wait(min(SAMPLE_INTERVAL_S, max(0.01, wait))):
                return False

    def _orders_sent_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for m in self.messages if m.t >= t and m.origin != "direct")

    def _load_end(self) -> float:
        """The load runs as long after the recovery as the nominal timeline says."""
        with self._lock:
            return self.scenario.load_s + self._extension

    def _load(self) -> None:
        session = requests.Session()
        session.auth = producer_auth(self.cloud.emulator.region)  # every method is AWS_IAM
        url = self.cloud.front_door.base_url + "orders"  # type: ignore[union-attr]
        interval = 1.0 / self.scenario.load_rate
        n = 0
        poison_at = {
            round(self.scenario.load_s * 0.3, 1): "reused_key",
            round(self.scenario.load_s * 0.5, 1): "malformed",
        }
        while True:
            due = n * interval
            if due >= self._load_end():
                break
            delay = due - self.now()
            if delay > 0:
                time.sleep(delay)
            order = sample_order(n, self.prefix, self.rng)
            key = f"key-{order['orderId']}"
            self._post(session, url, order, key, "api")
            if self.rng.random() < self.scenario.client_retry_ratio:
                self._post(session, url, order, key, "api-retry")
            if self.scenario.poison:
                for at, kind in list(poison_at.items()):
                    if self.now() >= at:
                        del poison_at[at]
                        self._inject_poison(session, url, kind, key)
            n += 1
        if self.scenario.poison:
            self._partner_rejects_one(session, url)

    def _post(
        self, session: requests.Session, url: str, order: dict[str, Any], key: str, origin: str
    ) -> None:
        for _attempt in range(4):
            sent_at = self.now()
            try:
                response = session.post(url, json=order, headers={IDEMPOTENCY_KEY_HEADER: key}, timeout=10)
            except requests.RequestException:
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                with self._lock:
                    self.messages.append(
                        SentMessage(sent_at, order["orderId"], key, response.json()["messageId"], origin)
                    )
                return
            with self._lock:
                self.rejected[response.status_code] = self.rejected.get(response.status_code, 0) + 1
            if response.status_code not in (429, 500, 502, 503, 504):
                return
            time.sleep(float(response.headers.get(RETRY_AFTER_HEADER) or 1))

    def _inject_poison(self, session: requests.Session, url: str, kind: str, key: str) -> None:
        if kind == "reused_key":
            # Same Idempotency-Key as the order just sent, different order: a producer bug.
            other = sample_order(90_000 + len(self.messages), self.prefix, self.rng)
            response = session.post(url, json=other, headers={IDEMPOTENCY_KEY_HEADER: key}, timeout=10)
            if response.status_code == 202:
                with self._lock:
                    self.messages.append(
                        SentMessage(
                            self.now(),
                            other["orderId"],
                            key,
                            response.json()["messageId"],
                            "api",
                            "reused key",
                        )
                    )
        else:
            # A producer with SendMessage rights bypassing the API: not JSON at all.
            sqs = self.cloud.emulator.client("sqs")
            sent = sqs.send_message(QueueUrl=self.queue_url, MessageBody="{not json")
            with self._lock:
                self.messages.append(
                    SentMessage(self.now(), "-", sent["MessageId"], sent["MessageId"], "direct", "malformed")
                )

    def _read_status(self) -> None:
        """A client polling GET /orders/{id} for the latest accepted order; on a 503 it waits the
        Retry-After it was given before asking again (what the advice is for). Once more when the run
        ends (the queue drained): the order's status then, whatever the polling cadence left unread."""
        if self.cloud.front_door is None:
            return
        session = requests.Session()
        session.auth = producer_auth(self.cloud.emulator.region)  # every method is AWS_IAM
        base = self.cloud.front_door.base_url + "orders/"
        while not self._stop.wait(STATUS_READ_INTERVAL_S):
            read = self._read_latest_status(session, base)
            if read is not None and read.retry_after_s is not None:
                self._stop.wait(max(0.0, read.retry_after_s - STATUS_READ_INTERVAL_S))
        self._read_latest_status(session, base, timeout_s=4.0)  # within run()'s join

    def _read_latest_status(
        self, session: requests.Session, base: str, timeout_s: float = 10.0
    ) -> StatusRead | None:
        with self._lock:
            latest = next((m.order_id for m in reversed(self.messages) if m.origin == "api"), None)
        if latest is None:
            return None
        t = self.now()
        try:
            response = session.get(base + latest, timeout=timeout_s)
            latency_ms = (self.now() - t) * 1000.0
        except requests.RequestException:
            read = StatusRead(t, 0)
        else:
            retry_after = response.headers.get(RETRY_AFTER_HEADER)
            reason = None
            if response.status_code == 503:
                try:
                    reason = response.json().get("reason")
                except ValueError:
                    reason = None
            read = StatusRead(
                t, response.status_code, float(retry_after) if retry_after else None, reason, latency_ms
            )
        with self._lock:
            self.status_reads.append(read)
        return read

    def _partner_rejects_one(self, session: requests.Session, url: str) -> None:
        """One order the partner answers with 422: wait until the consumer is idle, then script it."""
        deadline = self.now() + 30
        while self.now() < deadline:
            visible, in_flight = self.cloud.queue_depth(self.queue_url)
            if visible == 0 and in_flight == 0 and self.partner.in_flight == 0:
                break
            time.sleep(0.2)
        self.partner.enqueue(FaultDecision.error(status=422))
        order = sample_order(95_000, self.prefix, self.rng)
        before = len(self.messages)
        self._post(session, url, order, f"key-{order['orderId']}", "api")
        with self._lock:
            if len(self.messages) > before:
                self.messages[-1].note = "rejected by partner"

    def _wait_for_drain(self) -> DrainVerdict:
        """Wait for the order queue to empty; past the nominal deadline, keep waiting while it drains.

        A queue that stops shrinking for a visibility timeout (+ slack) is stuck: a behaviour defect. One
        that still shrinks at MAX_DRAIN_STRETCH x the nominal deadline says the machine is too slow to
        judge this run, not that a message was lost.
        """
        started = self.now()
        deadline = started + self.drain_timeout_s
        cap = started + MAX_DRAIN_STRETCH * self.drain_timeout_s
        stall_s = self.poller.source.visibility_timeout_s + STALL_SLACK_S
        quiet_since: float | None = None
        lowest = math.inf
        progressed = started
        while True:
            now = self.now()
            visible, in_flight = self.cloud.queue_depth(self.queue_url)
            backlog = visible + in_flight
            if backlog < lowest:
                lowest, progressed = backlog, now
            if backlog == 0 and self.poller.stats.in_flight == 0:
                quiet_since = quiet_since or now
                if now - quiet_since >= 1.0:
                    return DrainVerdict(DRAINED, f"drained {now - started:.1f}s after the load ended")
            else:
                quiet_since = None
            if now >= deadline and now - progressed >= stall_s:
                return DrainVerdict(
                    STALLED,
                    f"behaviour defect: {backlog} messages still queued and none drained for "
                    f"{now - progressed:.0f}s (visibility timeout {self.poller.source.visibility_timeout_s}s)",
                )
            if now >= cap:
                return DrainVerdict(
                    TOO_SLOW,
                    f"machine too slow to judge: {backlog} messages still queued but draining "
                    f"{now - started:.0f}s after the load ended ({MAX_DRAIN_STRETCH:g}x the nominal "
                    f"{self.drain_timeout_s:.0f}s)",
                )
            time.sleep(SAMPLE_INTERVAL_S)

    # -- observation ------------------------------------------------------------------------------

    def _observe(self) -> None:
        last_progress = -1.0
        while not self._stop.is_set():
            t = self.now()
            try:
                visible, in_flight = self.cloud.queue_depth(self.queue_url)
                dlq_visible, dlq_in_flight = self.cloud.queue_depth(self.dlq_url)
                circuit = self._circuit_state()
            except Exception:
                self._stop.wait(SAMPLE_INTERVAL_S)
                continue
            calls = self.partner.calls()
            with self._lock:
                sample = Sample(
                    t=t,
                    visible=visible,
                    in_flight=in_flight,
                    dlq=dlq_visible + dlq_in_flight,
                    busy=self.poller.stats.in_flight,
                    circuit=circuit,
                    calls=len(calls),
                    errors=sum(1 for c in calls if self._failed(c)),
                    accepted=len([m for m in self.messages if m.origin != "direct"]),
                    phase=self._phase,
                    consumer_enabled=self.poller.enabled,
                )
                self.samples.append(sample)
                if (
                    self._fault_started is not None
                    and self._opened is None
                    and sample.circuit != circuit_record.CLOSED
                ):
                    self._opened = t
            if self.progress is not None and t - last_progress >= 1.0:
                last_progress = t
                self.progress(sample, self)
            self._stop.wait(max(0.0, SAMPLE_INTERVAL_S - (self.now() - t)))

    def _failed(self, call: CallRecord) -> bool:
        return failed_call(call, self.attempt_timeout_ms)

    def _on_log(self, record: LogRecord) -> None:
        data = record.data
        if not data or data.get("message") != CIRCUIT_TRANSITION_MESSAGE:
            return
        transition = Transition(record.t - self._t0, str(data.get("from_state")), str(data.get("to_state")))
        with self._lock:
            # Several environments may log the same change of state; keep one per change.
            if not self.transitions or self.transitions[-1].to_state != transition.to_state:
                self.transitions.append(transition)

    # -- the result -------------------------------------------------------------------------------

    def _result(self, load_ended: float, verdict: DrainVerdict) -> RunResult:
        dlq_messages = self.cloud.drain_queue(self.dlq_url)
        timed_out = self.consumer.timed_out[self._timed_out_before :]
        # The partner sees each key scoped by its producer (the consumer's scoped_idempotency_key): read
        # its calls back under the keys the producer sent.
        producer = local_producer(self.cloud.emulator.account_id).user_arn
        with self._lock:
            sent_keys = {m.idempotency_key for m in self.messages}
        producer_keys = {scoped_idempotency_key(producer, key): key for key in sent_keys}
        calls = [
            CallRecord(
                t=c.t - self._calls_offset,
                method=c.method,
                path=c.path,
                status=c.status,
                latency_ms=c.latency_ms,
                phase=c.phase,
                idempotency_key=producer_keys.get(c.idempotency_key or "", c.idempotency_key),
                order_id=c.order_id,
                new_charge=c.new_charge,
            )
            for c in self.partner.calls()
        ]
        return RunResult(
            scenario=self.scenario,
            overrides=self.overrides,
            cap=self.poller.configured_concurrency,
            visibility_timeout_s=self.poller.source.visibility_timeout_s,
            max_receive_count=self.poller.source.max_receive_count,
            started_at=self._t0,
            load_ended_s=load_ended,
            ended_s=self.now(),
            drained=verdict.drained,
            samples=list(self.samples),
            messages=list(self.messages),
            rejected=dict(self.rejected),
            dlq_messages=dlq_messages,
            charges=self.partner.charges_by_order(),
            calls=calls,
            transitions=list(self.transitions),
            peak_dependency_in_flight=self.partner.peak_in_flight,
            attempt_timeout_ms=self.attempt_timeout_ms,
            peak_consumer_in_flight=self.poller.stats.peak_in_flight,
            consumer_errors=self.consumer.errors - self._errors_before,
            consumer_timeouts=len(timed_out),
            consumer_timeouts_from_stalls=sum(
                self._stalls.explains(started, duration, self.consumer.config.timeout_s)
                for started, duration in timed_out
            ),
            longest_host_stall_s=max((b - a for a, b in self._stalls.stalls), default=0.0),
            fault_window=self._actual_fault_window(),
            timeline_notes=list(self.timeline_notes),
            drain_verdict=verdict,
            status_reads=list(self.status_reads),
            breaker_recovery_s=_float_or_none(self.consumer.environ.get(tunables.BREAKER_RECOVERY_SECONDS)),
            alarms=self._alarm_timeline(),
        )

    def _alarm_timeline(self) -> alarms.AlarmTimeline | None:
        if self._metrics is None or self.alarm_factor is None:
            return None
        stack = self.cloud.deployed

        def resolve(value: Any) -> Any:
            # A resource the emulator did not create keeps its logical id (its alarm says why it is not
            # evaluable, e.g. an EventBridge rule's DLQ metrics).
            try:
                return stack.resolve(value)
            except KeyError:
                return alarms.symbolic(value)

        return alarms.evaluate(
            alarms.read_template(stack.template, resolve),
            self._metrics,
            self.now(),
            self.alarm_factor,
            absent=self._absent_functions(),
        )

    def _absent_functions(self) -> dict[str, str]:
        """Deployed functions the local cloud does not run: their alarms have nothing to judge."""
        running = {function.config.name for function in self.cloud.functions.values()}
        return {
            resource.physical_id: "the function is replaced locally by the fault-injecting twin"
            for resource in self.cloud.deployed.of_type("AWS::Lambda::Function").values()
            if resource.physical_id not in running
        }

    def _actual_fault_window(self) -> tuple[float, float] | None:
        nominal = self.scenario.fault_window
        if nominal is None:
            return None
        with self._lock:
            started, recovered = self._fault_started, self._recovered
        return (
            started if started is not None else nominal[0],
            recovered if recovered is not None else nominal[1],
        )


def _float_or_none(value: str | None) -> float | None:
    return None if value is None else float(value)
