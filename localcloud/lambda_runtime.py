"""The Lambda service, locally: functions as in-process execution environments, SQS event source pollers.

moto can create functions and event source mappings but cannot run them without Docker, so this module
does what the Lambda service would, from what the emulator's CloudFormation created:

* ``FunctionConfig`` is read back from the emulator (``GetFunctionConfiguration``): handler, timeout,
  memory, reserved concurrency and the environment variables, whose ``Ref``/``Fn::GetAtt`` tokens the
  emulator's CloudFormation already resolved to the emulated resources. The local cloud adds only what the
  Lambda runtime itself provides (reserved variables, credentials of the "role", the emulator endpoint)
  and may redirect named variables (``DEPENDENCY_BASE_URL`` -> the local fault-injecting partner).
* ``ExecutionEnvironment``: one cold start = the handler module imported fresh with the function's
  environment (``localcloud.isolation``); then one invocation at a time, each with a fake context whose
  ``get_remaining_time_in_millis`` counts down the function's timeout. An invocation that overruns the
  timeout is reported as ``Task timed out`` and its result discarded, as Lambda would (the thread cannot be
  killed, so its side effects still happen, like a real timed-out invocation's partial work).
* ``SqsEventSourcePoller`` honours one ``AWS::Lambda::EventSourceMapping``: ``BatchSize``,
  ``MaximumBatchingWindowInSeconds``, ``ScalingConfig.MaximumConcurrency`` (as that many active poller
  threads, each with its own environment: real parallelism), ``FunctionResponseTypes:
  ReportBatchItemFailures`` (delete only the successes; any malformed response fails the whole batch), and
  the ``Enabled`` state. State and MaximumConcurrency are re-read every second, so
  ``UpdateEventSourceMapping`` pauses, resumes and re-scales it at run time (the circuit controller resumes
  at 2 and ramps up): a slot above the current maximum finishes its batch, then idles. Failed messages are not
  touched: they become visible again when the queue's visibility timeout expires, and the emulator's
  redrive policy moves them to the DLQ after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud import isolation
from localcloud.emulator import Emulator
from localcloud.moto_patches.inprocess_lambda import FakeLambdaContext, register_inprocess_function

# How long an idle poller waits between empty receives (Lambda long-polls; short polls keep the
# emulator's receive path single-threaded, see SqsEventSourcePoller._receive), and how often a poller
# gathering a batch looks for more within the batching window.
EMPTY_POLL_INTERVAL_S = 0.25
GATHER_POLL_INTERVAL_S = 0.1
MAPPING_REFRESH_S = 1.0
# Slots of a mapping without ScalingConfig.MaximumConcurrency.
DEFAULT_CONCURRENCY = 5


class _InitFailedError(Exception):
    """The environment's init failed; every invocation reports that error."""


class TooManyRequestsError(RuntimeError):
    """Every environment the function may have (its reserved concurrency) is busy."""


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    arn: str
    handler: str
    timeout_s: float
    memory_mb: int
    environment: Mapping[str, str]
    reserved_concurrency: int | None
    runtime: str
    version: str = "$LATEST"
    alias_arn: str | None = None

    @classmethod
    def read(cls, emulator: Emulator, function_name: str) -> FunctionConfig:
        client = emulator.client("lambda")
        configuration = client.get_function_configuration(FunctionName=function_name)
        concurrency = client.get_function_concurrency(FunctionName=function_name)
        aliases = client.list_aliases(FunctionName=function_name).get("Aliases", [])
        live = next((a for a in aliases if a["Name"] == "live"), aliases[0] if aliases else None)
        return cls(
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            handler=configuration["Handler"],
            timeout_s=float(configuration.get("Timeout", 3)),
            memory_mb=int(configuration.get("MemorySize", 128)),
            environment=dict(configuration.get("Environment", {}).get("Variables", {})),
            reserved_concurrency=concurrency.get("ReservedConcurrentExecutions"),
            runtime=configuration.get("Runtime", "python3"),
            version=live["FunctionVersion"] if live else "$LATEST",
            alias_arn=live["AliasArn"] if live else None,
        )

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True)
class InvocationResult:
    status: str  # "ok" | "error" | "timeout"
    payload: Any
    duration_s: float
    request_id: str
    started: float = 0.0  # time.monotonic() when the handler was called

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ExecutionEnvironment:
    """One cold-started copy of a function: its own modules, environment and log stream."""

    def __init__(self, function: Function, index: int) -> None:
        self.function = function
        self.index = index
        self.log_stream = f"local/{index}/{uuid.uuid4().hex[:8]}"
        self.environ = {**function.environ, "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream}
        self._lock = threading.Lock()
        module_name, _, attribute = function.config.handler.rpartition(".")
        self.handler: Callable[[Any, Any], Any] | None = None
        self.init_error: dict[str, Any] | None = None
        with isolation.function_scope(self.environ, function.logs):
            try:
                module = isolation.import_fresh(module_name)
                self.handler = getattr(module, attribute)
            except Exception as exc:
                # Lambda reports a failed init on every invocation of that environment
                # (Runtime.ImportModuleError / Runtime.HandlerNotFound / an init exception).
                if isinstance(exc, ImportError):
                    kind = "Runtime.ImportModuleError"
                elif isinstance(exc, AttributeError):
                    kind = "Runtime.HandlerNotFound"
                else:
                    kind = "Runtime.InitError"
                self.init_error = {"errorType": kind, "errorMessage": f"{type(exc).__name__}: {exc}"}
                print(json.dumps({"level": "ERROR", "message": "Init Error", **self.init_error}))

    def context(self, request_id: str) -> FakeLambdaContext:
        config = self.function.config
        return FakeLambdaContext(
            function_name=config.name,
            function_version=config.version,
            invoked_function_arn=config.alias_arn or config.arn,
            memory_limit_in_mb=config.memory_mb,
            aws_request_id=request_id,
            log_group_name=config.log_group_name,
            log_stream_name=self.log_stream,
            _deadline=time.monotonic() + config.timeout_s,
        )

    def invoke(self, event: Any, context: Any = None) -> InvocationResult:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("an execution environment runs one invocation at a time")
        try:
            context = context or self.context(str(uuid.uuid4()))
            request_id = context.aws_request_id
            started = time.monotonic()
            with isolation.function_scope(self.environ, self.function.logs):
                try:
                    if self.handler is None:
                        raise _InitFailedError(self.init_error or {})
                    payload = json.loads(json.dumps(self.handler(event, context)))
                    status = "ok"
                except _InitFailedError:
                    status, payload = "error", {**(self.init_error or {}), "requestId": request_id}
                except Exception as exc:
                    status = "error"
                    payload = {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "requestId": request_id,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    }
                    print(json.dumps({"level": "ERROR", "message": "Invoke Error", **payload}))
                duration = time.monotonic() - started
                if duration > self.function.config.timeout_s:
                    status, payload = "timeout", {"errorMessage": "Task timed out"}
                    print(
                        json.dumps(
                            {
                                "level": "ERROR",
                                "message": f"Task timed out after {self.function.config.timeout_s:.2f} seconds",
                                "requestId": request_id,
                            }
                        )
                    )
            return InvocationResult(status, payload, duration, request_id, started)
        finally:
            self._lock.release()


class Function:
    """A deployed function and its pool of execution environments."""

    def __init__(
        self,
        config: FunctionConfig,
        *,
        platform_environ: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
        logs: isolation.LogSink | None = None,
    ) -> None:
        self.config = config
        self.logs = logs or isolation.LogSink(config.name)
        self.environ: dict[str, str] = {
            **_runtime_variables(config),
            **platform_environ,
            **config.environment,
            **(overrides or {}),
        }
        self._idle: list[ExecutionEnvironment] = []
        self._count = 0
        self._busy = 0
        self._lock = threading.Lock()
        self.errors = 0
        # (started, duration in s) of each invocation that ran past the timeout (localcloud.host_stalls).
        self.timed_out: list[tuple[float, float]] = []
        # Called as the Lambda service's metrics would count (localcloud.metrics): (function name,
        # "start" | "end" | "throttle", environments busy, duration in ms, the invocation failed).
        self.observers: list[Callable[[str, str, int, float, bool], None]] = []

    @property
    def init_error(self) -> dict[str, Any] | None:
        """The first failed init of any of its environments (None when every init succeeded)."""
        with self._lock:
            environments = list(self._idle)
        return next((e.init_error for e in environments if e.init_error), None)

    @property
    def timeouts(self) -> int:
        return len(self.timed_out)

    @property
    def limit(self) -> int:
        return self.config.reserved_concurrency or 1000

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    @property
    def environments(self) -> int:
        with self._lock:
            return self._count

    def warm(self, count: int) -> None:
        """Cold-start ``count`` environments now (before any poller runs; see ``isolation.import_fresh``)."""
        fresh = []
        with self._lock:
            wanted = max(0, min(count, self.limit) - self._count)
            self._count += wanted
        for index in range(wanted):
            fresh.append(ExecutionEnvironment(self, index + 1))
        with self._lock:
            self._idle.extend(fresh)

    def acquire(self) -> ExecutionEnvironment:
        with self._lock:
            if self._idle:
                self._busy += 1
                return self._idle.pop()
            if self._count >= self.limit:
                raise TooManyRequestsError(f"{self.config.name}: reserved concurrency {self.limit} in use")
            self._count += 1
            self._busy += 1
            index = self._count
        try:
            return ExecutionEnvironment(self, index)
        except BaseException:
            with self._lock:
                self._count -= 1
                self._busy -= 1
            raise

    def release(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._busy -= 1
            self._idle.append(environment)

    def invoke(self, event: Any, context: Any = None) -> InvocationResult:
        try:
            environment = self.acquire()
        except TooManyRequestsError:
            self._notify("throttle", 0, 0.0, True)
            raise
        self._notify("start", self.busy, 0.0, False)
        try:
            result = environment.invoke(event, context)
        finally:
            busy = self.busy
            self.release(environment)
        with self._lock:
            self.errors += result.status == "error"
            if result.status == "timeout":
                self.timed_out.append((result.started, result.duration_s))
        self._notify("end", busy, result.duration_s * 1000.0, not result.ok)
        return result

    def _notify(self, event: str, busy: int, duration_ms: float, failed: bool) -> None:
        for observer in list(self.observers):
            observer(self.config.name, event, busy, duration_ms, failed)

    def inprocess_handler(self, event: Any, context: Any) -> Any:
        """The handler Step Functions tasks reach (``moto_patches.inprocess_lambda.register_inprocess_function``)."""
        result = self.invoke(event, context)
        if result.status == "ok":
            return result.payload
        raise _remote_error(result.payload)


def _remote_error(payload: Mapping[str, Any]) -> Exception:
    """An exception named after the function's ``errorType``: Step Functions matches errors by that name."""
    name = str(payload.get("errorType") or "Exception")
    error_type = type(name if name.isidentifier() else "FunctionError", (Exception,), {})
    return error_type(str(payload.get("errorMessage", "")))


def _runtime_variables(config: FunctionConfig) -> dict[str, str]:
    """What the Lambda runtime puts in every environment, before the function's own variables."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_VERSION": config.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group_name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
        "_HANDLER": config.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        # No X-Ray daemon locally; Powertools' Tracer would otherwise try to emit segments.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def register_for_step_functions(function: Function, emulator: Emulator) -> None:
    register_inprocess_function(
        function.config.name,
        function.inprocess_handler,
        timeout_seconds=int(function.config.timeout_s),
        memory_mb=function.config.memory_mb,
        region=emulator.region,
        account_id=emulator.account_id,
    )


# ------------------------------------------------------------------------------------------ SQS pollers


@dataclass(frozen=True)
class SqsEventSource:
    """One SQS event source mapping, as the emulator holds it."""

    uuid: str
    queue_arn: str
    queue_url: str
    function_name: str
    batch_size: int
    batching_window_s: float
    max_concurrency: int | None
    report_batch_item_failures: bool
    visibility_timeout_s: int
    max_receive_count: int | None

    @classmethod
    def read(cls, emulator: Emulator, uuid_: str) -> SqsEventSource:
        mapping = emulator.client("lambda").get_event_source_mapping(UUID=uuid_)
        queue_arn = mapping["EventSourceArn"]
        sqs = emulator.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"]) if "RedrivePolicy" in attributes else None
        function_name = mapping["FunctionArn"].split(":function:", 1)[1].split(":", 1)[0]
        return cls(
            uuid=uuid_,
            queue_arn=queue_arn,
            queue_url=queue_url,
            function_name=function_name,
            batch_size=int(mapping.get("BatchSize", 10)),
            batching_window_s=float(mapping.get("MaximumBatchingWindowInSeconds", 0) or 0),
            max_concurrency=(mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"),
            report_batch_item_failures="ReportBatchItemFailures"
            in (mapping.get("FunctionResponseTypes") or []),
            visibility_timeout_s=int(attributes.get("VisibilityTimeout", 30)),
            max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
        )


@dataclass
class PollerStats:
    in_flight: int = 0  # invocations running now
    peak_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class SqsEventSourcePoller:
    """Delivers one queue to one function as the Lambda service's SQS pollers do (see module docstring)."""

    def __init__(self, source: SqsEventSource, function: Function, emulator: Emulator) -> None:
        self.source = source
        self.function = function
        self._region = emulator.region
        self.concurrency = self._bounded(source.max_concurrency)
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._enabled = threading.Event()
        self._enabled.set()
        self._queue_lock = threading.Lock()
        self._scale_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sqs = emulator.client("sqs", retries=3)
        self._lambda = emulator.client("lambda")

    def start(self) -> SqsEventSourcePoller:
        self.function.warm(self.concurrency)
        watcher = threading.Thread(target=self._watch_mapping, name="poller-mapping-watch", daemon=True)
        self._threads.append(watcher)
        watcher.start()
        self._scale_to(self.concurrency)
        return self

    @property
    def configured_concurrency(self) -> int:
        """The deployed MaximumConcurrency (within the function's limit): the bulkhead. ``concurrency`` is
        what is in force now, which the circuit controller lowers while it pauses and ramps."""
        return self._bounded(self.source.max_concurrency)

    def _bounded(self, maximum: int | None) -> int:
        return max(1, min(maximum or DEFAULT_CONCURRENCY, self.function.limit))

    def _scale_to(self, concurrency: int) -> None:
        """``concurrency`` slots are active from now on; threads are started as needed, never more than used."""
        with self._scale_lock:
            self.concurrency = concurrency
            started = sum(1 for t in self._threads if t.name.startswith("poller-slot"))
            new = [
                threading.Thread(
                    target=self._slot,
                    args=(index,),
                    name=f"poller-slot-{self.function.config.name[-12:]}-{index}",
                    daemon=True,
                )
                for index in range(started, concurrency)
            ]
            self._threads.extend(new)
        # Environments beyond the warmed ones cold-start on first use (Function.acquire), as on Lambda.
        for thread in new:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop receiving; waits for running invocations (up to ``timeout_s``) so they can settle."""
        self.request_stop()
        self.join(time.monotonic() + timeout_s)

    def request_stop(self) -> None:
        self._stop.set()
        self._enabled.set()  # wake paused slots so they can exit

    def join(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    @property
    def enabled(self) -> bool:
        return self._enabled.is_set()

    def _watch_mapping(self) -> None:
        while not self._stop.wait(MAPPING_REFRESH_S):
            try:
                mapping = self._lambda.get_event_source_mapping(UUID=self.source.uuid)
            except Exception:
                continue  # a transient emulator error must not pause delivery
            state = mapping.get("State", "Enabled")
            if state in ("Enabled", "Enabling", "Updating"):
                self._enabled.set()
            else:
                self._enabled.clear()
            concurrency = self._bounded((mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"))
            if concurrency != self.concurrency:
                self._scale_to(concurrency)

    # -- one concurrency slot: gather a batch, invoke, settle --------------------------------------

    def _slot(self, index: int) -> None:
        rng = random.Random()
        while not self._stop.is_set():
            if not self._enabled.is_set():
                self._enabled.wait(0.5)
                continue
            if index >= self.concurrency:  # above the mapping's current MaximumConcurrency: idle
                self._stop.wait(EMPTY_POLL_INTERVAL_S)
                continue
            try:
                messages = self._gather()
            except Exception:
                self._stop.wait(EMPTY_POLL_INTERVAL_S)
                continue
            if not messages:
                self._stop.wait(EMPTY_POLL_INTERVAL_S * (0.5 + rng.random()))
                continue
            self._deliver(messages)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        # One receive at a time per queue: moto's ReceiveMessage is not atomic across threads (two
        # concurrent receives can both take the same visible message), which real SQS never does.
        with self._queue_lock:
            response = self._sqs.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=max(1, min(10, count)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
        return list(response.get("Messages", []))

    def _gather(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, waiting at most the batching window after the first one."""
        batch = self._receive(self.source.batch_size)
        if not batch or self.source.batching_window_s <= 0:
            return batch
        deadline = time.monotonic() + self.source.batching_window_s
        while len(batch) < self.source.batch_size and not self._stop.is_set():
            more = self._receive(self.source.batch_size - len(batch))
            batch.extend(more)
            if time.monotonic() >= deadline:
                break
            if not more:
                self._stop.wait(min(GATHER_POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
        return batch

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        with self.stats.lock:
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        try:
            result = self.function.invoke(event)
        except TooManyRequestsError:
            result = None
        finally:
            with self.stats.lock:
                self.stats.in_flight -= 1
        failed_ids = self._failed_message_ids(messages, result)
        self._delete([m for m in messages if m["MessageId"] not in failed_ids])

    def _failed_message_ids(
        self, messages: list[dict[str, Any]], result: InvocationResult | None
    ) -> set[str]:
        every = {m["MessageId"] for m in messages}
        if result is None or not result.ok:
            return every  # error, timeout or throttle: the whole batch returns to the queue
        if not self.source.report_batch_item_failures:
            return set()
        payload = result.payload
        if payload is None or payload == {}:
            return set()
        if not isinstance(payload, dict):
            return every
        failures = payload.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            return every
        failed: set[str] = set()
        for item in failures:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in every:
                return every  # Lambda treats an empty or unknown identifier as a failure of the batch
            failed.add(identifier)
        return failed

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            with self._queue_lock:
                self._sqs.delete_message_batch(QueueUrl=self.source.queue_url, Entries=entries)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {}
        for name, value in (message.get("MessageAttributes") or {}).items():
            attributes[name] = {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            if attributes[name]["binaryValue"] is None:
                del attributes[name]["binaryValue"]
            if attributes[name]["stringValue"] is None:
                del attributes[name]["stringValue"]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody"),
            "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.source.queue_arn,
            "awsRegion": self._region,
        }
