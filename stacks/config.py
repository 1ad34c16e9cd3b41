"""Typed, validated stage configuration, read once from cdk.json context.

cdk.json holds a ``service`` block (defaults for every stage) and a ``stages`` block
(per-stage overrides, deep-merged over the defaults). ``ServiceConfig.from_context``
builds one immutable object; a bad or missing value fails synth with the key path.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from lambdas.contracts.dependency_tunables import TUNABLES, DependencyTunables, check_delays

# CloudWatch Logs only accepts these retention periods (days), in RetentionDays order.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653
)  # fmt: skip
# API Gateway cuts every integration off at 29 s; latency alarms are measured against it.
API_INTEGRATION_TIMEOUT_SECONDS = 29
_NAME = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
# circuit_controller.asl.json's TimeoutSeconds, and the bounds its CheckInputValues state guards.
CONTROLLER_TIMEOUT_SECONDS = 28_800
CONTROLLER_MAX_RECOVERY_SECONDS = 900
CONTROLLER_MAX_REQUIRED_SUCCESSES = 10
# Probes per pause at most: each loop writes ~25 history events and a Standard execution holds 25,000.
CONTROLLER_MAX_PROBES_PER_PAUSE = 720


def log_retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a validated number of days."""
    members = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return members[LOG_RETENTION_DAYS.index(days)]


# Consumer handler packages that count their records' tries at the dependency themselves
# (lambdas/shared/dependency_tries.py): they need max_dependency_tries.
HANDLERS_COUNTING_TRIES = frozenset({"lambdas.order_consumer"})


class ConfigError(ValueError):
    """The stage configuration in cdk.json is invalid; the message names every bad key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_retention(value: int, key: str) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{key} must be one of {LOG_RETENTION_DAYS}, got {value}")
    return value


# The API's routes, as its resource policy names them ("METHOD /path"; a path parameter is "{name}").
API_ROUTES = ("POST /orders", "POST /events", "GET /orders/{id}")
# The routes that store a request: a 5xx there may mean a request was not stored (a harm alarm). The
# status read answers 503 on purpose while it sheds load, which harms nothing.
STORAGE_ROUTES = ("POST /orders", "POST /events")
# An IAM role or user ARN; "*" wildcards as ArnLike takes them.
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|\*):(role|user)/[A-Za-z0-9+=,.@_/*-]{1,512}$")


def _principal_arns(arns: list[str], field: str) -> None:
    bad = [arn for arn in arns if not _PRINCIPAL_ARN.match(arn)]
    if not arns or bad:
        raise ValueError(f"{field}: name at least one IAM role or user ARN; not ARNs: {bad}")


class ApiSettings(_Model):
    """The storage-first front door."""

    throttling_rate_limit: float = Field(gt=0, le=10_000, description="Steady-state requests per second.")
    throttling_burst_limit: int = Field(gt=0, le=5_000)
    # Every method is authorized with IAM (SigV4); API keys add per-producer usage plans on top.
    api_key_required: bool = False
    api_key_quota_per_day: int = Field(default=100_000, gt=0)
    access_log_retention_days: int = 30
    # Seconds a throttled client is told to wait: Retry-After on the 429 response, and on the 503 for an
    # event the bus throttled (stacks/ingestion_api.py, event_accepted_template).
    throttled_retry_after_seconds: int = Field(default=1, ge=1, le=60)
    # Who may call each route (API_ROUTES -> IAM principal ARNs): the API's resource policy refuses every
    # other caller, whatever its identity policy says. A route left out admits any principal of the
    # account that IAM lets invoke it (production stages must name every route).
    producers: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _retention(self) -> ApiSettings:
        _check_retention(self.access_log_retention_days, "access_log_retention_days")
        for route, arns in self.producers.items():
            if route not in API_ROUTES:
                raise ValueError(f"producers.{route}: not a route of the API ({', '.join(API_ROUTES)})")
            _principal_arns(arns, f"producers.{route}")
        return self


SIDE_EFFECT_FREE_METHODS = ("GET", "HEAD")


class CanarySettings(_Model):
    """The request the circuit controller's probe sends: what the real calls exercise, without their effect.

    A GET/HEAD canary is read-only by HTTP's contract. Any other method is sent with ``Dry-Run: true``
    (and a fixed ``Idempotency-Key``) and counts as healthy only if the answer echoes ``Dry-Run: true``,
    so a partner that ignored the header is unhealthy, not charged again and again
    (``lambdas/fulfilment/probe.py``).
    """

    method: Literal["GET", "HEAD", "POST", "PUT"] = "GET"
    path: str = Field(
        default="/health", pattern=r"^/[A-Za-z0-9/_.~%-]*(\?[A-Za-z0-9=&_.~%-]*)?$", max_length=512
    )
    # JSON body (only for POST/PUT), e.g. a charge the partner validates but, in a dry run, never makes.
    body: dict[str, Any] | list[Any] | None = None
    # Healthy iff the canary answers one of these (2xx: anything else is an upstream error anyway).
    expected_statuses: list[int] = Field(default_factory=lambda: [200], min_length=1, max_length=10)

    @model_validator(mode="after")
    def _request(self) -> CanarySettings:
        if self.body is not None and self.method in SIDE_EFFECT_FREE_METHODS:
            raise ValueError(f"canary.body: a {self.method} canary takes no body")
        if self.body is not None and len(json.dumps(self.body)) > 4_096:
            raise ValueError("canary.body must serialise to at most 4096 bytes")
        bad = [s for s in self.expected_statuses if not 200 <= s <= 299]
        if bad or len(set(self.expected_statuses)) != len(self.expected_statuses):
            raise ValueError(
                f"canary.expected_statuses must be distinct 2xx codes, got {self.expected_statuses}"
            )
        return self

    def environment_value(self) -> str:
        """``PROBE_CANARY`` of the probe function (parsed by ``lambdas.fulfilment.environment.Canary``)."""
        return json.dumps(
            {
                "method": self.method,
                "path": self.path,
                "body": self.body,
                "expectedStatuses": self.expected_statuses,
            },
            separators=(",", ":"),
        )


# The tunables a caller reads back from its environment, from their one declaration
# (lambdas/contracts/dependency_tunables.py): built with their bounds and cdk.json defaults. mypy cannot
# see through create_model, so it reads the contract's class instead.
if TYPE_CHECKING:
    _Tunables = DependencyTunables
else:
    _Tunables = create_model(
        "DependencyTunables",
        __base__=_Model,
        **{name: (kind, Field(t.default, **t.bounds)) for name, (kind, t) in TUNABLES.items()},
    )


class DependencySettings(_Tunables, _Model):
    """A downstream HTTP dependency and how to protect callers from it: the shared tunables (critical,
    retries, timeouts, breaker), plus what only the stack uses."""

    # None: deploy the demo partner API with the stack and call it.
    base_url: str | None = Field(default=None, pattern=r"^https://\S+$")
    # The Secrets Manager secret (complete ARN) holding the key the partner issued, created and rotated
    # by you. None: the stack generates a random placeholder, which only its demo twin accepts; so
    # production stages must name a secret (validated below), and consumers never call a real partner
    # with a key nobody issued.
    api_key_secret_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^:]+-[A-Za-z0-9]{6}$",
    )
    # The most calls one accepted message may cause at this dependency along any path, every retry
    # layer multiplied (stacks/retry_budget.py): synth fails above it.
    retry_budget: int = Field(default=10, ge=1, le=1_000)
    # Reserved concurrency of the demo twin deployed when base_url is None.
    demo_capacity: int = Field(default=10, ge=1, le=1_000)
    # What the circuit controller probes while the circuit is open (default: today's GET /health).
    canary: CanarySettings = CanarySettings()

    @model_validator(mode="after")
    def _delays(self) -> DependencySettings:
        check_delays(self)
        return self


class ConsumerSettings(_Model):
    """A load-leveling consumer: its queue, its function and its bulkhead."""

    dependency: str = Field(description="Key in `dependencies` this consumer calls.")
    # Read this fan-out subscription's queue (events) instead of a queue of its own; the
    # subscription's queue settings (visibility, retention, receive count) then apply.
    subscription: str | None = None
    handler: str = Field(pattern=r"^lambdas(\.[a-z_][a-z0-9_]*)+$", description="Dotted path of the handler.")
    timeout_seconds: int = Field(ge=3, le=900)
    memory_mb: int = Field(default=512, ge=128, le=10_240)
    batch_size: int = Field(ge=1, le=10_000)
    batching_window_seconds: int = Field(default=0, ge=0, le=300)
    # Bulkhead: the most executions a sick dependency can hold.
    reserved_concurrency: int = Field(ge=1, le=1_000)
    # Event source cap; must not exceed the bulkhead or SQS pollers hit throttles.
    max_concurrency: int = Field(ge=2, le=1_000)
    max_receive_count: int = Field(ge=5, le=1_000)
    # A consumer that counts its own tries at its dependency (lambdas/shared/dependency_tries.py)
    # quarantines a record after this many; maxReceiveCount is then only the backstop.
    max_dependency_tries: int | None = Field(default=None, ge=1, le=100)
    retention_days: int = Field(default=4, ge=1, le=13)
    idempotency_ttl_seconds: int = Field(default=3_600, ge=60)

    @model_validator(mode="after")
    def _bulkhead(self) -> ConsumerSettings:
        if self.max_concurrency > self.reserved_concurrency:
            raise ValueError(
                f"max_concurrency ({self.max_concurrency}) must be <= reserved_concurrency "
                f"({self.reserved_concurrency}): the event source must not out-scale the bulkhead"
            )
        counts_its_tries = self.handler_package in HANDLERS_COUNTING_TRIES
        if self.max_dependency_tries is None and counts_its_tries:
            raise ValueError(f"max_dependency_tries is required by {self.handler}, which counts its tries")
        if self.max_dependency_tries is not None and not counts_its_tries:
            # Its receives would be its tries, yet the retry budget would count the tries.
            raise ValueError(f"max_dependency_tries: {self.handler} does not count its tries")
        if self.max_dependency_tries is not None and self.max_receive_count <= self.max_dependency_tries:
            raise ValueError(
                f"max_receive_count ({self.max_receive_count}) must be > max_dependency_tries "
                f"({self.max_dependency_tries}): the receives are the backstop for records that never try"
            )
        if self.batch_size > 10 and self.batching_window_seconds < 1:
            raise ValueError("batch_size > 10 requires batching_window_seconds >= 1 (SQS event source rule)")
        return self

    @property
    def handler_package(self) -> str:
        """``lambdas.order_consumer`` for ``lambdas.order_consumer.handler.handler``."""
        return self.handler.rsplit(".", 2)[0]

    @property
    def visibility_timeout_seconds(self) -> int:
        """AWS guidance: >= 6 x function timeout, plus the batching window."""
        return 6 * self.timeout_seconds + self.batching_window_seconds


class EventSettings(_Model):
    """The service event bus, its archive, its rules and their subscriber queues."""

    archive_retention_days: int = Field(default=30, ge=1, le=3650)
    # Rule-target delivery: how long and how often EventBridge keeps trying before the DLQ.
    target_max_event_age_seconds: int = Field(default=3_600, ge=60, le=86_400)
    target_retry_attempts: int = Field(default=20, ge=0, le=185)
    # Fan-out: subscriber name -> the detail-types (lambdas/shared/events.py) it receives. Each
    # subscriber gets its own rule, queue and DLQ, so subscribers scale and fail independently.
    subscriptions: dict[str, list[str]] = Field(default_factory=dict)
    # Subscriber queues, until each subscriber's consumer derives its own (>= 6 x its timeout).
    subscription_visibility_timeout_seconds: int = Field(default=180, ge=0, le=43_200)
    subscription_retention_days: int = Field(default=4, ge=1, le=13)
    subscription_max_receive_count: int = Field(default=5, ge=5, le=1_000)
    # Besides the ingestion API, the only principals that may put events on the domain bus: the operators
    # who redrive a subscriber's DLQ onto it (python -m ops dlq redrive). Empty: the API alone.
    operator_role_arns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _subscriptions(self) -> EventSettings:
        from lambdas.contracts.events import DETAIL_TYPES

        if self.operator_role_arns:
            _principal_arns(self.operator_role_arns, "operator_role_arns")
        for name, detail_types in self.subscriptions.items():
            if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name):
                raise ValueError(f"subscriptions.{name}: name must be lowercase letters, digits and dashes")
            unknown = [t for t in detail_types if t not in DETAIL_TYPES]
            if not detail_types or unknown or len(set(detail_types)) != len(detail_types):
                raise ValueError(
                    f"subscriptions.{name}: {detail_types} must be distinct event contracts, "
                    f"one or more of {list(DETAIL_TYPES)}"
                )
        return self


class WorkflowSettings(_Model):
    """The Step Functions workflows and their task functions."""

    # The dependency the fulfilment tasks call, and the (non-critical) one Notify calls: a separate
    # circuit, so failing notifications never pause the consumers of the critical dependency.
    dependency: str = "partner"
    notification_dependency: str = "notifier"
    # The fan-out subscription whose PaymentReceived events start fulfilment.
    subscription: str = "fulfilment"
    # Bulkhead of every task function (and the starter's event source cap).
    task_concurrency: int = Field(default=5, ge=2, le=1_000)
    # Client attempts per task invocation. Step Functions' Retry already repeats a failed task (with
    # backoff, visibly, and without a function waiting): retrying inside too multiplies the two layers.
    task_max_attempts: int = Field(default=1, ge=1, le=10)
    starter_timeout_seconds: int = Field(default=30, ge=3, le=900)
    # ALL event types, but without execution data (below), so history is complete and data stays out.
    log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ALL"
    # Execution data can hold customer data; off unless a stage needs it for debugging.
    include_execution_data: bool = False
    # The circuit controller (statemachines/circuit_controller.asl.json). While the circuit is open it
    # probes every breaker_recovery_seconds of the dependency, never longer (so a long outage does not
    # delay closing), then every controller_probe_interval_seconds until breaker_success_threshold
    # consecutive probes passed.
    controller_probe_interval_seconds: int = Field(default=10, ge=1, le=300)
    # Give up (ConsumerLeftPaused, alarmed) on the first failed probe this long after pausing. With
    # the ramp and a last probe cycle it must fit the machine's TimeoutSeconds (CONTROLLER_TIMEOUT_SECONDS).
    controller_max_pause_seconds: int = Field(default=14_400, ge=60, le=14_400)
    # Resume gently: MaximumConcurrency starts here (2 is the API minimum) and doubles every
    # controller_ramp_step_seconds, while the circuit stays closed, up to the consumer's max_concurrency.
    # 10 s: longer than a breaker's cache age (5 s), so a step that fails real calls reopens the circuit
    # before the next; at 30 s a consumer of 5 drained its backlog at part concurrency for a whole minute.
    controller_resume_concurrency: int = Field(default=2, ge=2, le=1_000)
    controller_ramp_step_seconds: int = Field(default=10, ge=1, le=300)

    def resume_levels(self, max_concurrency: int) -> list[int]:
        """The MaximumConcurrency levels of a resumed consumer: the resume level doubling up to its maximum."""
        levels = [min(self.controller_resume_concurrency, max_concurrency)]
        while levels[-1] < max_concurrency:
            levels.append(min(2 * levels[-1], max_concurrency))
        return levels


class ReconcilerSettings(_Model):
    """The consumer reconciler: no event source mapping stays disabled without someone owning it."""

    # How often it compares each mapping with its circuit and its controller (EventBridge rate).
    schedule_minutes: int = Field(default=1, ge=1, le=60)
    # A consumer paused this long alarms, whoever paused it (an outage this long deserves a person too).
    paused_alarm_minutes: int = Field(default=30, ge=2, le=1_440)

    @model_validator(mode="after")
    def _alarm_after_a_run(self) -> ReconcilerSettings:
        if self.paused_alarm_minutes <= self.schedule_minutes:
            raise ValueError(
                "paused_alarm_minutes must be > schedule_minutes (the metric comes from each run)"
            )
        return self


class FaultInjectionSettings(_Model):
    """AWS FIS experiments; never in production (validated below)."""

    enabled: bool = False
    duration_minutes: int = Field(default=5, ge=1, le=60)
    invocation_percentage: int = Field(default=50, ge=1, le=100)
    delay_milliseconds: int = Field(default=8_000, ge=1, le=900_000)


class StatusSettings(_Model):
    """GET /orders/{id}: its budget and when it sheds load."""

    timeout_seconds: int = Field(default=5, ge=1, le=28)
    reserved_concurrency: int = Field(default=10, ge=1, le=1_000)
    # Every downstream call must fit in this, well under API Gateway's 29 s.
    request_budget_ms: int = Field(default=3_000, ge=200, le=28_000)
    # Queue depth above which readers are told to come back later (drain rate x age threshold).
    backlog_threshold: int = Field(default=1_000, ge=1)
    shed_retry_after_seconds: int = Field(default=30, ge=1, le=3_600)

    @model_validator(mode="after")
    def _budget(self) -> StatusSettings:
        if self.request_budget_ms >= self.timeout_seconds * 1000:
            raise ValueError("request_budget_ms must be below timeout_seconds")
        return self


class AlarmSettings(_Model):
    """Alarm thresholds (see docs for the reasoning behind each default)."""

    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    queue_age_threshold_seconds: int = Field(default=300, ge=60)
    concurrency_utilisation_percent: int = Field(default=80, ge=1, le=100)
    error_rate_percent: int = Field(default=5, ge=1, le=100)
    duration_near_timeout_percent: int = Field(default=80, ge=1, le=100)
    api_4xx_rate_percent: int = Field(default=10, ge=1, le=100)
    # Below this many requests in a period the 4XX rate is not judged: three 404s are not a trend.
    api_4xx_rate_min_requests: int = Field(default=20, ge=1)
    # The account's concurrent-executions quota and how much of it must stay free.
    account_concurrency_limit: int = Field(default=1_000, ge=10)
    unreserved_concurrency_floor: int = Field(default=100, ge=1)
    evaluation_periods: int = Field(default=3, ge=1)
    # The alarm that pauses a dependency's consumers: this share of logical calls (after retries) failed,
    # in a minute with at least dependency_min_calls calls (fewer say too little to pause on).
    dependency_failure_rate_percent: int = Field(default=50, ge=1, le=100)
    dependency_min_calls: int = Field(default=10, ge=1)


class ServiceConfig(_Model):
    """Everything a stage needs; built once in app.py and passed down to every construct."""

    service_name: str = Field(pattern=_NAME)
    stage: str = Field(pattern=_NAME.replace("{1,30}", "{0,30}"))
    production: bool = False
    log_retention_days: int = 30
    # Stateful resources (tables, DLQs) are retained in production, destroyed elsewhere.
    retain_data: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    api: ApiSettings
    # The consumer whose queue POST /orders writes to.
    orders_consumer: str = "orders"
    events: EventSettings = EventSettings()
    workflows: WorkflowSettings = WorkflowSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    fault_injection: FaultInjectionSettings = FaultInjectionSettings()
    status: StatusSettings = StatusSettings()
    dependencies: dict[str, DependencySettings] = Field(min_length=1)
    consumers: dict[str, ConsumerSettings] = Field(min_length=1)
    alarms: AlarmSettings = AlarmSettings()
    tags: dict[str, str] = Field(default_factory=dict)
    # The retry budget of paths whose dependency is an AWS API (stacks/retry_budget.py). Above a partner's
    # 10: a keyed DynamoDB write or a named StartExecution is cheap to repeat, and the SDK's retry quota
    # (500 tokens per client, 14 per retry) stops a fleet's retries against a struggling service.
    aws_retry_budget: int = Field(default=20, ge=1, le=1_000)
    # Where Powertools comes from: "bundled" in the service's dependencies layer (works offline and in the
    # local cloud), or the layer AWS publishes, found through its public SSM parameter at deploy time; the
    # service's own layer then carries only what that layer lacks (stacks/lambda_packaging.py).
    powertools_layer: Literal["bundled", "aws-published"] = "bundled"

    @model_validator(mode="after")
    def _references(self) -> ServiceConfig:
        _check_retention(self.log_retention_days, "log_retention_days")
        for name in (*self.dependencies, *self.consumers):
            if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name):
                raise ValueError(f"name {name!r} must be lowercase letters, digits and dashes")
        for name, consumer in self.consumers.items():
            if consumer.dependency not in self.dependencies:
                raise ValueError(
                    f"consumers.{name}.dependency: {consumer.dependency!r} is not one of "
                    f"dependencies {sorted(self.dependencies)}"
                )
        for name, consumer in self.consumers.items():
            if consumer.subscription is None:
                continue
            if consumer.subscription not in self.events.subscriptions:
                raise ValueError(
                    f"consumers.{name}.subscription: {consumer.subscription!r} is not an events subscription"
                )
            needed = consumer.visibility_timeout_seconds
            if self.events.subscription_visibility_timeout_seconds < needed:
                raise ValueError(
                    f"consumers.{name}: events.subscription_visibility_timeout_seconds must be >= {needed} "
                    "(6 x timeout_seconds + batching_window_seconds)"
                )
        for name, consumer in self.consumers.items():
            retention_days = (
                self.events.subscription_retention_days if consumer.subscription else consumer.retention_days
            )
            # A record must outlive every redelivery of its message, or a late duplicate acts twice.
            if consumer.idempotency_ttl_seconds < retention_days * 86_400:
                raise ValueError(
                    f"consumers.{name}.idempotency_ttl_seconds must be >= the queue retention "
                    f"({retention_days} days = {retention_days * 86_400} s)"
                )
        readers = [c.subscription for c in self.consumers.values() if c.subscription]
        readers.append(self.workflows.subscription)
        if len(readers) != len(set(readers)):
            raise ValueError(f"each events subscription may have one reader; got {sorted(readers)}")
        if self.orders_consumer not in self.consumers or self.consumers[self.orders_consumer].subscription:
            raise ValueError(
                f"orders_consumer: {self.orders_consumer!r} must be one of consumers {sorted(self.consumers)} "
                "with a queue of its own"
            )
        if self.workflows.notification_dependency not in self.dependencies:
            raise ValueError(
                f"workflows.notification_dependency: {self.workflows.notification_dependency!r} is not one of dependencies"
            )
        if self.workflows.dependency not in self.dependencies:
            raise ValueError(
                f"workflows.dependency: {self.workflows.dependency!r} is not one of dependencies"
            )
        if self.workflows.subscription not in self.events.subscriptions:
            raise ValueError(
                f"workflows.subscription: {self.workflows.subscription!r} is not an events subscription"
            )
        starter_visibility = self.events.subscription_visibility_timeout_seconds
        if starter_visibility < 6 * self.workflows.starter_timeout_seconds:
            raise ValueError(
                f"events.subscription_visibility_timeout_seconds ({starter_visibility}) must be >= 6 x "
                f"workflows.starter_timeout_seconds ({self.workflows.starter_timeout_seconds})"
            )
        for name in self.paused_dependencies:
            dependency = self.dependencies[name]
            prefix = f"dependencies.{name}"
            if dependency.breaker_recovery_seconds > CONTROLLER_MAX_RECOVERY_SECONDS:
                raise ValueError(
                    f"{prefix}.breaker_recovery_seconds must be <= {CONTROLLER_MAX_RECOVERY_SECONDS}: the circuit "
                    "controller probes once per recovery window"
                )
            if dependency.breaker_success_threshold > CONTROLLER_MAX_REQUIRED_SUCCESSES:
                raise ValueError(
                    f"{prefix}.breaker_success_threshold must be <= {CONTROLLER_MAX_REQUIRED_SUCCESSES} "
                    "(the circuit controller's input bound)"
                )
            probes = self.workflows.controller_max_pause_seconds / dependency.breaker_recovery_seconds
            if probes > CONTROLLER_MAX_PROBES_PER_PAUSE:
                raise ValueError(
                    f"workflows.controller_max_pause_seconds / {prefix}.breaker_recovery_seconds is "
                    f"{probes:.0f} probes; at most {CONTROLLER_MAX_PROBES_PER_PAUSE} fit one execution's history"
                )
        if self.production and self.fault_injection.enabled:
            raise ValueError(
                "fault_injection.enabled: fault-injection experiments are for non-production stages"
            )
        unnamed = [route for route in API_ROUTES if route not in self.api.producers]
        if self.production and unnamed:
            raise ValueError(f"production stages must name the producers of every API route: {unnamed}")
        if self.production and any(d.base_url is None for d in self.dependencies.values()):
            raise ValueError("production stages must point every dependency at a real base_url")
        placeholders = sorted(n for n, d in self.dependencies.items() if d.api_key_secret_arn is None)
        if self.production and placeholders:
            raise ValueError(
                f"production stages must name the API key secret of every dependency "
                f"(dependencies.<name>.api_key_secret_arn), not deploy a generated placeholder: {placeholders}"
            )
        return self

    @property
    def paused_dependencies(self) -> list[str]:
        """Critical dependencies with consumers: the circuit controller pauses those consumers."""
        used = {c.dependency for c in self.consumers.values()}
        return [name for name, d in self.dependencies.items() if d.critical and name in used]

    @property
    def stack_name(self) -> str:
        return f"{self.service_name}-{self.stage}"

    @property
    def event_source(self) -> str:
        """The EventBridge ``source`` the ingestion API stamps on every event."""
        return f"{self.service_name}.ingestion"

    @property
    def removal_policy(self) -> RemovalPolicy:
        """For stateful resources: kept in production, destroyed with throwaway stages."""
        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @classmethod
    def from_context(cls, service: Mapping[str, Any], stages: Mapping[str, Any], stage: str) -> ServiceConfig:
        """Deep-merge ``stages[stage]`` over ``service`` and validate."""
        if stage not in stages:
            raise ConfigError(
                f"stage {stage!r} is not defined in cdk.json context 'stages' ({sorted(stages)})"
            )
        merged = _deep_merge(dict(service), dict(stages[stage]))
        merged["stage"] = stage
        try:
            return cls.model_validate(merged)
        except ValidationError as error:
            raise ConfigError(_describe(error, f"stages.{stage}")) from None


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _describe(error: ValidationError, prefix: str) -> str:
    lines = [f"invalid configuration for {prefix} (cdk.json context):"]
    for issue in error.errors():
        key = ".".join(str(part) for part in issue["loc"]) or "<root>"
        lines.append(f"  - {key}: {issue['msg']}")
    return "\n".join(lines)
