"""The metrics a local run emits, as timestamped datapoints keyed like CloudWatch's.

Two kinds of source, as in the cloud:

* the handlers' own metrics: Powertools prints Embedded Metric Format (EMF) JSON to stdout, which
  the local Lambda runtime keeps per function (``isolation.LogSink``); ``emf_datapoints`` reads them back
  as CloudWatch Logs would;
* the services' metrics (``AWS/*``): what the emulated services would publish, recorded where the local
  cloud can see it happen (``MetricRecorder``): every invocation at the Lambda runtime, every request at
  the front door, and queue depth / age of the oldest message and Step Functions executions sampled
  once a second.

Times are seconds since the run started (``t0``, ``time.monotonic()``); ``localcloud.alarms`` buckets
them into the alarms' (compressed) periods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.isolation import LogRecord

SAMPLE_INTERVAL_S = 1.0
SQS, LAMBDA, STATES, API_GATEWAY = "AWS/SQS", "AWS/Lambda", "AWS/States", "AWS/ApiGateway"

# API Gateway publishes every metric per API, and per method too where the stage enables method metrics.
_API_DIMENSIONS = (("ApiName",), ("ApiName", "Method", "Resource", "Stage"))
# What the local cloud publishes under the AWS namespaces: (namespace, metric) -> the dimension names it
# is published with (each tuple one series).
LOCAL_SERVICE_METRICS: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    (SQS, "ApproximateNumberOfMessagesVisible"): (("QueueName",),),
    (SQS, "ApproximateAgeOfOldestMessage"): (("QueueName",),),
    (LAMBDA, "Invocations"): (("FunctionName",),),
    (LAMBDA, "Errors"): (("FunctionName",),),
    (LAMBDA, "Throttles"): (("FunctionName",),),
    (LAMBDA, "Duration"): (("FunctionName",),),
    (LAMBDA, "ConcurrentExecutions"): (("FunctionName",),),
    (LAMBDA, "UnreservedConcurrentExecutions"): ((),),
    (STATES, "ExecutionsFailed"): (("StateMachineArn",),),
    (STATES, "ExecutionsTimedOut"): (("StateMachineArn",),),
    (STATES, "ExecutionsAborted"): (("StateMachineArn",),),
    (API_GATEWAY, "Count"): _API_DIMENSIONS,
    (API_GATEWAY, "4XXError"): _API_DIMENSIONS,
    (API_GATEWAY, "5XXError"): _API_DIMENSIONS,
    (API_GATEWAY, "Latency"): _API_DIMENSIONS,
}

# AWS metrics the local cloud cannot observe, and why (an alarm reading only these is not evaluable).
NOT_OBSERVABLE: dict[tuple[str, str], str] = {
    ("AWS/DynamoDB", "ReadThrottleEvents"): "moto's DynamoDB never throttles",
    ("AWS/DynamoDB", "WriteThrottleEvents"): "moto's DynamoDB never throttles",
    ("AWS/DynamoDB", "SystemErrors"): "moto's DynamoDB never answers a 500",
    (
        "AWS/Events",
        "FailedInvocations",
    ): "EventBridge target retries are not emulated (a failed delivery is dropped)",
    ("AWS/Events", "InvocationsFailedToBeSentToDlq"): "EventBridge target DLQs are not emulated",
    (STATES, "ExecutionThrottled"): "moto's Step Functions never throttles a start",
}


@dataclass(frozen=True)
class MetricKey:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name

    @classmethod
    def of(cls, namespace: str, name: str, dimensions: Mapping[str, str] | None = None) -> MetricKey:
        return cls(namespace, name, tuple(sorted((str(k), str(v)) for k, v in (dimensions or {}).items())))

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dimensions)

    def __str__(self) -> str:
        dimensions = ", ".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace}/{self.name}{{{dimensions}}}"


@dataclass
class MetricStore:
    """Datapoints per metric: (seconds since the run started, value), in any order."""

    points: dict[MetricKey, list[tuple[float, float]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, key: MetricKey, t: float, value: float) -> None:
        with self._lock:
            self.points.setdefault(key, []).append((t, float(value)))

    def values(self, key: MetricKey, start: float, end: float) -> list[float]:
        """Every value of ``key`` recorded in [start, end)."""
        with self._lock:
            return [v for t, v in self.points.get(key, ()) if start <= t < end]

    def keys(self) -> list[MetricKey]:
        with self._lock:
            return list(self.points)


# ------------------------------------------------------------------------------------------ EMF


def emf_datapoints(data: Mapping[str, Any]) -> list[tuple[MetricKey, float]]:
    """The datapoints one EMF log line carries (empty for any other line).

    EMF: ``_aws.CloudWatchMetrics`` lists directives, each a namespace, dimension sets (lists of
    top-level keys) and metric names; the values are the top-level members of those names (a list is
    several values). CloudWatch publishes each metric once per dimension set.
    """
    aws = data.get("_aws")
    if not isinstance(aws, Mapping):
        return []
    out: list[tuple[MetricKey, float]] = []
    for directive in aws.get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace", ""))
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            name = metric.get("Name")
            raw = data.get(name)
            values = raw if isinstance(raw, list) else [raw]
            for dimension_set in dimension_sets:
                dimensions = {d: str(data.get(d, "")) for d in dimension_set}
                key = MetricKey.of(namespace, str(name), dimensions)
                out.extend((key, float(v)) for v in values if isinstance(v, int | float))
    return out


def record_emf(store: MetricStore, records: Iterable[LogRecord], t0: float, end: float) -> int:
    """Every EMF datapoint of ``records`` logged between ``t0`` and ``end`` (monotonic); returns how many."""
    count = 0
    for record in records:
        if record.data is None or not t0 <= record.t < end:
            continue
        for key, value in emf_datapoints(record.data):
            store.record(key, record.t - t0, value)
            count += 1
    return count


# ------------------------------------------------------------------------------------------ services


def record_invocation(
    store: MetricStore, t: float, function: str, event: str, busy: int, duration_ms: float, failed: bool
) -> None:
    """What Lambda publishes for one ``Function.observers`` event ("start" | "end" | "throttle")."""
    dimensions = {"FunctionName": function}
    if event == "throttle":
        store.record(MetricKey.of(LAMBDA, "Throttles", dimensions), t, 1)
        return
    store.record(MetricKey.of(LAMBDA, "ConcurrentExecutions", dimensions), t, busy)
    if event == "end":
        store.record(MetricKey.of(LAMBDA, "Invocations", dimensions), t, 1)
        # Errors (an error or a timeout) and Throttles are published as 0 for an invocation without:
        # an error rate has its denominator's periods, a throttle alarm sees a quiet function.
        store.record(MetricKey.of(LAMBDA, "Errors", dimensions), t, int(failed))
        store.record(MetricKey.of(LAMBDA, "Throttles", dimensions), t, 0)
        store.record(MetricKey.of(LAMBDA, "Duration", dimensions), t, duration_ms)


@dataclass(frozen=True)
class ApiRequest:
    """One request as API Gateway's metrics see it. ``resource``: the route's path, None when none matched."""

    api_name: str
    stage: str
    method: str
    resource: str | None
    status: int
    latency_ms: float


def record_request(store: MetricStore, t: float, request: ApiRequest) -> None:
    """What API Gateway publishes for one request (4XXError and 5XXError are 0 or 1 per request): per API,
    and per method when the request matched a route (the stage's method metrics)."""
    series = [{"ApiName": request.api_name}]
    if request.resource is not None:
        series.append(
            {"ApiName": request.api_name, "Stage": request.stage, "Method": request.method,
             "Resource": request.resource}
        )  # fmt: skip
    for dimensions in series:
        store.record(MetricKey.of(API_GATEWAY, "Count", dimensions), t, 1)
        store.record(MetricKey.of(API_GATEWAY, "4XXError", dimensions), t, int(400 <= request.status < 500))
        store.record(MetricKey.of(API_GATEWAY, "5XXError", dimensions), t, int(request.status >= 500))
        store.record(MetricKey.of(API_GATEWAY, "Latency", dimensions), t, request.latency_ms)


class MetricRecorder:
    """Records the emulated services' metrics of one run on a started ``LocalCloud``.

    ``start()`` hooks into the Lambda runtime and the front door and starts the sampler; ``stop()``
    unhooks, and adds the handlers' EMF datapoints logged meanwhile.
    """

    def __init__(self, cloud: Any, *, clock: Any = time.monotonic) -> None:
        self.cloud = cloud
        self.store = MetricStore()
        self._clock = clock
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hooked: list[tuple[list[Any], Any]] = []
        self._executions_seen: set[str] = set()
        stack = cloud.deployed
        self._queues = {
            resource.physical_id: resource.physical_id.rstrip("/").rsplit("/", 1)[-1]
            for resource in stack.of_type("AWS::SQS::Queue").values()
        }
        self._state_machines = [
            r.physical_id for r in stack.of_type("AWS::StepFunctions::StateMachine").values()
        ]
        apis = stack.synthesized.of_type("AWS::ApiGateway::RestApi")
        self._api_name = next((str(a["Properties"].get("Name", "")) for a in apis.values()), "")
        stages = stack.synthesized.of_type("AWS::ApiGateway::Stage")
        self._stage = next((str(s["Properties"].get("StageName", "")) for s in stages.values()), "")

    def now(self) -> float:
        return float(self._clock()) - self._t0

    def start(self, t0: float) -> MetricRecorder:
        self._t0 = t0
        # Executions that ended before the run are not the run's; those still running will be.
        self._executions_seen = {arn for arn, status in self._executions() if status != "RUNNING"}
        for function in self.cloud.functions.values():
            self._hook(function.observers, self._on_invocation)
        if self.cloud.front_door is not None:
            self._hook(self.cloud.front_door.observers, self._on_request)
        self._thread = threading.Thread(target=self._sample, name="metric-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> MetricStore:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for observers, observer in self._hooked:
            observers.remove(observer)
        self._hooked.clear()
        end = float(self._clock())
        for function in self.cloud.functions.values():
            record_emf(self.store, list(function.logs.records), self._t0, end)
        return self.store

    def _hook(self, observers: list[Any], observer: Any) -> None:
        observers.append(observer)
        self._hooked.append((observers, observer))

    # -- Lambda and API Gateway, as they happen ----------------------------------------------------

    def _on_invocation(
        self, function_name: str, event: str, busy: int, duration_ms: float, failed: bool
    ) -> None:
        record_invocation(self.store, self.now(), function_name, event, busy, duration_ms, failed)

    def _on_request(self, method: str, resource: str | None, status: int, latency_ms: float) -> None:
        request = ApiRequest(self._api_name, self._stage, method, resource, status, latency_ms)
        record_request(self.store, self.now(), request)

    # -- SQS and Step Functions, sampled ------------------------------------------------------------

    def _sample(self) -> None:
        while not self._stop.is_set():
            started = self.now()
            try:
                self._sample_queues(started)
                self._sample_executions(started)
                self._sample_account_concurrency(started)
            except Exception:  # a sample lost to a busy emulator is a gap in the data, not a failed run
                pass
            self._stop.wait(max(0.0, SAMPLE_INTERVAL_S - (self.now() - started)))

    def _sample_queues(self, t: float) -> None:
        from moto.sqs.models import sqs_backends

        emulator = self.cloud.emulator
        backend = sqs_backends[emulator.account_id][emulator.region]
        wall = time.time()
        for name in self._queues.values():
            queue = backend.queues.get(name)
            if queue is None:
                continue
            messages: list[Any] = list(queue._messages)  # every message not deleted, in flight or not
            visible = sum(1 for m in messages if m.visible and not m.delayed)
            sent = [float(m.sent_timestamp) for m in messages if m.sent_timestamp is not None]
            oldest = min(sent, default=None)
            dimensions = {"QueueName": name}
            self.store.record(MetricKey.of(SQS, "ApproximateNumberOfMessagesVisible", dimensions), t, visible)
            age = 0.0 if oldest is None else max(0.0, wall - oldest / 1000.0)
            self.store.record(MetricKey.of(SQS, "ApproximateAgeOfOldestMessage", dimensions), t, age)

    def _executions(self) -> list[tuple[str, str]]:
        """(execution ARN, status) of every execution of the stack's state machines."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        emulator = self.cloud.emulator
        backend = stepfunctions_parser_backends[emulator.account_id][emulator.region]
        machines = set(self._state_machines)
        return [
            (str(execution.execution_arn), str(getattr(execution.exec_status, "value", "RUNNING")))
            for execution in backend._get_executions()
            if execution.state_machine_arn in machines
        ]

    def _sample_executions(self, t: float) -> None:
        ended = {
            "FAILED": "ExecutionsFailed",
            "TIMED_OUT": "ExecutionsTimedOut",
            "ABORTED": "ExecutionsAborted",
        }
        for arn, status in self._executions():
            if arn in self._executions_seen or status in ("RUNNING", "PENDING_REDRIVE"):
                continue
            self._executions_seen.add(arn)
            machine = arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
            for state, metric in ended.items():
                self.store.record(
                    MetricKey.of(STATES, metric, {"StateMachineArn": machine}), t, int(status == state)
                )

    def _sample_account_concurrency(self, t: float) -> None:
        unreserved = sum(
            f.busy for f in self.cloud.functions.values() if f.config.reserved_concurrency is None
        )
        self.store.record(MetricKey.of(LAMBDA, "UnreservedConcurrentExecutions"), t, unreserved)
