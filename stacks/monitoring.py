"""One monitoring construct: every other construct registers its resources here, so each
failure mode is alarmed exactly once, every alarm notifies the on-call topic, and the
dashboard reads left to right like the pipeline.

``treat_missing_data`` per alarm:
- NOT_BREACHING for counters that only exist when something happens (throttles, errors,
  DLQ depth, circuit transitions): no data means nothing happened.
- NOT_BREACHING for queue age and depth too: SQS stops publishing for idle queues.
- MISSING for ratios (error rate) whose denominator may be absent: no traffic is not health,
  but it is not an incident either; the alarm keeps its last state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from lambdas.contracts import log_fields as lf
from lambdas.contracts.metrics import (
    CALL_OUTCOME_CONFIGURATION,
    CALL_OUTCOMES,
    CALL_OUTCOMES_FAILED,
    DIMENSION_CONSUMER,
    DIMENSION_OUTCOME,
    METRIC_CIRCUIT_PROBES_FAILED,
    METRIC_CIRCUIT_REJECTIONS,
    METRIC_CIRCUIT_TRANSITION,
    METRIC_FALLBACK_USED,
    METRIC_IDEMPOTENCY_STORE_ERRORS,
    METRIC_LOGICAL_CALLS,
    METRIC_PAUSED_SECONDS,
    METRIC_UPSTREAM_CALLS,
    METRIC_UPSTREAM_ERRORS,
)
from stacks.alarm_topic import AlarmTopic
from stacks.config import API_INTEGRATION_TIMEOUT_SECONDS, ServiceConfig
from stacks.durable_queue import parking_queue
from stacks.service_function import ServiceFunction

PERIOD = Duration.minutes(1)
# Status classes that mean "the dependency is unwell" (a permanent 4xx is our request's fault).
UNHEALTHY_STATUS_CLASSES = ("5xx", "429", lf.STATUS_CLASS_TIMEOUT, lf.STATUS_CLASS_CONNECTION)
# Kinds of alarm, recorded per resource so tests can check coverage template-wide.
QUEUE_AGE, QUEUE_GROWING, DLQ_DEPTH = "queue-age", "queue-growing", "dlq-depth"
THROTTLES, ERROR_RATE, DURATION, CONCURRENCY = "throttles", "error-rate", "duration", "concurrency"
EXECUTIONS_FAILED = "executions-failed"
CONSUMER_PAUSED = "consumer-paused"
TABLE_THROTTLES, TABLE_SYSTEM_ERRORS = "table-throttles", "table-system-errors"
# SystemErrors is only published per operation (its CloudWatch name). Every item operation, and no
# more: an alarm's metric math may read at most 10 metrics.
TABLE_OPERATIONS = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
)


@dataclass
class _Column:
    """Dashboard widgets of one pipeline stage, laid out left to right."""

    title: str
    widgets: list[cloudwatch.IWidget] = field(default_factory=list)


class ServiceMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: ServiceConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.thresholds = config.alarms
        self.namespace = config.service_name
        self.alarm_topic = AlarmTopic(
            self,
            "AlarmTopic",
            display_name=f"{config.stack_name} alarms",
            removal_policy=config.removal_policy,
        )
        self.topic = self.alarm_topic.topic
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        # (alarm kind, logical path of the watched resource) for the coverage tests.
        self.coverage: dict[str, set[str]] = {}
        self._degraded_signals: list[cloudwatch.IAlarm] = []
        # Per dependency: the alarm whose ALARM state starts the circuit controller (stacks/workflows.py):
        # the failure RATE of logical calls after retries, with a minimum number of calls.
        self.upstream_error_alarms: dict[str, cloudwatch.Alarm] = {}
        # Per dependency: any failed attempt (a retry may have fixed it); for paging and dashboards only.
        self.upstream_attempt_alarms: dict[str, cloudwatch.Alarm] = {}
        # Alarms that mean harm beyond a planned fault (work parked in a DLQ, requests not stored,
        # events lost): the stop conditions of fault-injection experiments.
        self.harm_alarms: list[cloudwatch.Alarm] = []
        self._columns = {
            name: _Column(title)
            for name, title in (
                ("api", "1. Accepted at the API"),
                ("queue", "2. Queue depth and age"),
                ("consumer", "3. Consumers"),
                ("dependency", "4. Dependencies"),
                ("dlq", "5. Dead-letter queues"),
                ("tables", "6. Tables"),
            )
        }
        self._account_concurrency_alarm()
        self._idempotency_store_alarm()
        if self.thresholds.email:
            # An undeliverable notification must not vanish either.
            undelivered = parking_queue(
                self,
                "UndeliveredNotifications",
                reason="This queue is the dead-letter queue of the alarm e-mail subscription (an SNS redrive "
                "policy, which the rule does not recognise)",
                removal_policy=config.removal_policy,
            )
            self.topic.add_subscription(
                subscriptions.EmailSubscription(self.thresholds.email, dead_letter_queue=undelivered)
            )
            self.watch_dead_letter_queue("alarm-email", undelivered)

    # -- registration API --------------------------------------------------------------------

    def watch_queue(self, name: str, queue: sqs.IQueue, dead_letter_queue: sqs.IQueue) -> None:
        age = queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")
        age_alarm = self._alarm(
            f"{name}-queue-age",
            age,
            threshold=self.thresholds.queue_age_threshold_seconds,
            description=f"Oldest message in the {name} queue is older than "
            f"{self.thresholds.queue_age_threshold_seconds} s: consumers are not keeping up (backpressure)",
            kind=QUEUE_AGE,
            resource=queue,
        )
        visible = queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
        growth = _math("RATE(visible) * 60", f"{name} visible messages per minute", {"visible": visible})
        self._alarm(
            f"{name}-queue-growing",
            growth,
            threshold=0,
            periods=max(5, self.thresholds.evaluation_periods),
            description=f"The {name} queue has grown for {max(5, self.thresholds.evaluation_periods)} minutes "
            "in a row: arrivals outpace the consumer",
            kind=QUEUE_GROWING,
            resource=queue,
        )
        self._degraded_signals.append(age_alarm)
        self.watch_dead_letter_queue(name, dead_letter_queue)
        self._graph(
            "queue",
            title=f"{name}: depth and age",
            left=[visible, queue.metric_approximate_number_of_messages_not_visible(period=PERIOD)],
            right=[age],
        )

    def watch_dead_letter_queue(self, name: str, dead_letter_queue: sqs.IQueue) -> None:
        depth = dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        dlq_alarm = self._alarm(
            f"{name}-dlq-depth",
            depth,
            threshold=0,
            periods=1,
            description=f"Messages are waiting in the {name} dead-letter queue: inspect and redrive them",
            kind=DLQ_DEPTH,
            resource=dead_letter_queue,
        )
        self._degraded_signals.append(dlq_alarm)
        self.harm_alarms.append(dlq_alarm)
        self._graph("dlq", title=f"{name} DLQ depth", left=[depth])

    def watch_rule(self, name: str, rule: events.IRule, bus: events.IEventBus) -> None:
        """A rule that cannot deliver, and worse, cannot dead-letter: the only way to lose an event."""
        dimensions = {"RuleName": rule.rule_name, "EventBusName": bus.event_bus_name}
        lost = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="InvocationsFailedToBeSentToDlq",
            dimensions_map=dimensions,
            period=PERIOD,
            statistic="Sum",
        )
        failed = cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map=dimensions,
            period=PERIOD,
            statistic="Sum",
        )
        self._degraded_signals.append(
            self._alarm(
                f"{name}-rule-events-lost",
                lost,
                threshold=0,
                periods=1,
                description=f"Rule {name} could neither deliver events nor send them to its DLQ: events were lost",
                kind="rule-lost",
                resource=rule,
            )
        )
        self._alarm(
            f"{name}-rule-failed-invocations",
            failed,
            threshold=0,
            periods=1,
            description=f"Rule {name} exhausted its retries for some events; they are in its DLQ",
            kind="rule-failed",
            resource=rule,
        )

    def watch_function(self, name: str, function: ServiceFunction) -> None:
        fn = function.function
        throttles = fn.metric_throttles(period=PERIOD, statistic="Sum")
        self._alarm(
            f"{name}-throttles",
            throttles,
            threshold=0,
            periods=1,
            description=f"{name} was throttled: its reserved concurrency (bulkhead) or the account limit is hit",
            kind=THROTTLES,
            resource=fn,
        )
        errors = fn.metric_errors(period=PERIOD, statistic="Sum")
        invocations = fn.metric_invocations(period=PERIOD, statistic="Sum")
        error_rate = _math(
            "IF(invocations > 0, 100 * errors / invocations, 0)",
            f"{name} error rate (%)",
            {"errors": errors, "invocations": invocations},
        )
        self._alarm(
            f"{name}-error-rate",
            error_rate,
            threshold=self.thresholds.error_rate_percent,
            description=f"More than {self.thresholds.error_rate_percent}% of {name} invocations failed",
            kind=ERROR_RATE,
            resource=fn,
            missing=cloudwatch.TreatMissingData.MISSING,
        )
        timeout_ms = function.timeout.to_milliseconds()
        duration = fn.metric_duration(period=PERIOD, statistic="p99")
        self._alarm(
            f"{name}-duration",
            duration,
            threshold=timeout_ms * self.thresholds.duration_near_timeout_percent / 100,
            description=f"{name} p99 duration is above {self.thresholds.duration_near_timeout_percent}% of its "
            "timeout: a slow dependency is about to cause timeouts",
            kind=DURATION,
            resource=fn,
        )
        concurrent = fn.metric("ConcurrentExecutions", period=PERIOD, statistic="Maximum")
        if function.reserved_concurrency:
            utilisation = _math(
                f"100 * concurrent / {function.reserved_concurrency}",
                f"{name} concurrency utilisation (%)",
                {"concurrent": concurrent},
            )
            self._alarm(
                f"{name}-concurrency",
                utilisation,
                threshold=self.thresholds.concurrency_utilisation_percent,
                description=f"{name} uses more than {self.thresholds.concurrency_utilisation_percent}% of its "
                f"reserved concurrency ({function.reserved_concurrency}): the bulkhead is nearly full",
                kind=CONCURRENCY,
                resource=fn,
            )
        self._graph(
            "consumer",
            title=f"{name}: concurrency, throttles, errors",
            left=[concurrent, throttles, errors],
            right=[duration],
        )

    def watch_dependency(self, name: str, *, falls_back: bool) -> None:
        """Upstream errors by dependency (the client's EMF metrics), its circuit and its fallback.

        ``falls_back``: the dependency is non-critical, so its client answers with a fallback
        instead of failing (a critical one never emits ``FallbackUsed``).
        """
        per_class = {
            f"m{index}": self._dependency_metric(
                METRIC_UPSTREAM_ERRORS, name, {lf.STATUS_CLASS: status_class}
            )
            for index, status_class in enumerate(UNHEALTHY_STATUS_CLASSES)
        }
        upstream_errors = _sum(f"{name} upstream errors", per_class)
        # Sensitive: one failed attempt is enough, even one a retry fixed. Pages; never pauses anything.
        self.upstream_attempt_alarms[name] = self._alarm(
            f"{name}-upstream-errors",
            upstream_errors,
            threshold=0,
            description=f"Attempts at the {name} dependency answered 5xx/429 or timed out / refused "
            "connections (retries may have absorbed them)",
            kind="upstream-errors",
            resource=None,
        )
        self.upstream_error_alarms[name] = self._logical_failure_rate_alarm(name)
        configuration = self._dependency_metric(
            METRIC_LOGICAL_CALLS, name, {DIMENSION_OUTCOME: CALL_OUTCOME_CONFIGURATION}
        )
        self._alarm(
            f"{name}-configuration-errors",
            configuration,
            threshold=0,
            periods=1,
            description=f"The {name} dependency refused our API key (401/403, also after re-reading the "
            "secret) or a route (another 4xx): records wait in the queue; fix the key or the deployment",
            kind="dependency-configuration",
            resource=None,
        )
        opened = self._dependency_metric(METRIC_CIRCUIT_TRANSITION, name, {"to_state": "OPEN"})
        rejected = self._dependency_metric(METRIC_CIRCUIT_REJECTIONS, name, {})
        # While the consumer is paused nothing is rejected: the controller's failed probes (one per
        # recovery window) keep the alarm in ALARM until the circuit closes.
        probes_failed = self._dependency_metric(METRIC_CIRCUIT_PROBES_FAILED, name, {})
        circuit_open = _sum(
            f"{name} circuit open (transitions + rejected calls + failed probes)",
            {"opened": opened, "rejected": rejected, "probes_failed": probes_failed},
        )
        circuit_alarm = self._alarm(
            f"{name}-circuit-open",
            circuit_open,
            threshold=0,
            # In ALARM at the first breaching period; OK only after enough periods without one that
            # each holds a probe: probes come one recovery window apart, which can exceed a period.
            periods=math.ceil(self.config.dependencies[name].breaker_recovery_seconds / PERIOD.to_seconds())
            + 1,
            datapoints=1,
            description=f"The {name} circuit is open: calls fail fast and the queue holds the work",
            kind="circuit-open",
            resource=None,
        )
        self._degraded_signals.append(circuit_alarm)
        right: list[cloudwatch.IMetric] = [circuit_open]
        if falls_back:
            fallbacks = self._dependency_metric(METRIC_FALLBACK_USED, name, {})
            self._alarm(
                f"{name}-fallback-used",
                fallbacks,
                threshold=0,
                description=f"Calls to the non-critical {name} dependency are answered by the fallback "
                "(last known good or default): callers see stale or default data, or defer work",
                kind="fallback-used",
                resource=None,
            )
            right.append(fallbacks)
        calls = self._dependency_metric(METRIC_UPSTREAM_CALLS, name, {})
        by_status = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{self.namespace},{lf.DEPENDENCY},service,{lf.STATUS_CLASS}}} "
                f'MetricName="{METRIC_UPSTREAM_ERRORS}" {lf.DEPENDENCY}="{name}"\', \'Sum\', 60)'
            ),
            label="",
            period=PERIOD,
        )
        self._graph(
            "dependency",
            title=f"{name}: calls, errors by status class, circuit, fallback",
            left=[calls, by_status],
            right=right,
        )

    def _logical_failure_rate_alarm(self, name: str) -> cloudwatch.Alarm:
        """Failed logical calls (after retries) / logical calls, judged only above a minimum of calls."""
        outcomes = {
            f"o{index}": self._dependency_metric(METRIC_LOGICAL_CALLS, name, {DIMENSION_OUTCOME: outcome})
            for index, outcome in enumerate(CALL_OUTCOMES)
        }
        failed = _filled_sum(
            f"o{index}" for index, outcome in enumerate(CALL_OUTCOMES) if outcome in CALL_OUTCOMES_FAILED
        )
        total = _filled_sum(outcomes)
        minimum = self.thresholds.dependency_min_calls
        rate = _math(
            f"IF(({total}) >= {minimum}, 100 * ({failed}) / ({total}), 0)",
            f"{name} failed logical calls (%)",
            outcomes,
        )
        percent = self.thresholds.dependency_failure_rate_percent
        return self._alarm(
            f"{name}-failure-rate",
            rate,
            threshold=percent,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description=f"At least {percent}% of calls to {name} failed after their retries (at least "
            f"{minimum} calls a minute): its consumers are paused by the circuit controller",
            kind="dependency-failure-rate",
            resource=None,
        )

    def _idempotency_store_alarm(self) -> None:
        errors = self._service_metric(METRIC_IDEMPOTENCY_STORE_ERRORS)
        self._alarm(
            "idempotency-store-unavailable",
            errors,
            threshold=0,
            periods=1,
            description="A consumer could not read or write its idempotency table: the records stay in "
            "their queue (never processed unguarded) until the table answers again",
            kind="idempotency-store",
            resource=None,
        )

    def watch_deferred_work(self, name: str, metric_name: str) -> None:
        """A consumer's counter of records it completed without doing the work (a non-critical
        dependency was unavailable): the queue stays empty, so only this counter shows the backlog."""
        deferred = self._service_metric(metric_name)
        self._alarm(
            f"{name}-deferred",
            deferred,
            threshold=0,
            description=f"The {name} consumer is deferring work ({metric_name}): it was not done and will "
            "not be retried; replay the outage window from the archive once the dependency is back",
            kind="deferred",
            resource=None,
        )
        self._graph("consumer", title=f"{name}: deferred", left=[deferred])

    def watch_paused_consumer(self, name: str, paused_minutes: int) -> cloudwatch.Alarm:
        """How long the consumer's event source mapping has been disabled, as the reconciler measures
        it every run (lambdas/reconciler). MISSING keeps the last state: no datapoint means the
        reconciler did not run (its own alarms say so), not that the consumer runs again."""
        paused = self._service_metric(METRIC_PAUSED_SECONDS, {DIMENSION_CONSUMER: name}, statistic="Maximum")
        alarm = self._alarm(
            f"{name}-consumer-paused",
            paused,
            threshold=paused_minutes * 60,
            periods=1,
            description=f"The {name} consumer has been paused (event source mapping disabled) for more than "
            f"{paused_minutes} minutes: a long outage, an operator's hold, or a controller that gave up; "
            "see the runbook (ops consumer status)",
            kind=CONSUMER_PAUSED,
            resource=None,
            missing=cloudwatch.TreatMissingData.MISSING,
        )
        self._degraded_signals.append(alarm)
        self._graph("consumer", title=f"{name}: paused seconds", left=[paused])
        return alarm

    def watch_table(self, name: str, table: dynamodb.ITableV2) -> None:
        """A table the pipeline reads or writes on every record: throttled or failing requests
        turn into retries, stuck circuits or lost idempotency."""
        throttles = _sum(
            f"{name} throttled reads + writes",
            {
                "reads": table.metric("ReadThrottleEvents", period=PERIOD, statistic="Sum"),
                "writes": table.metric("WriteThrottleEvents", period=PERIOD, statistic="Sum"),
            },
        )
        self._alarm(
            f"{name}-table-throttles",
            throttles,
            threshold=0,
            periods=1,
            description=f"Requests to the {name} table were throttled: on-demand capacity ramp-up, a hot "
            "key, or the account's table limit",
            kind=TABLE_THROTTLES,
            resource=table,
        )
        per_operation = {
            operation.lower(): table.metric(
                "SystemErrors",
                dimensions_map={"TableName": table.table_name, "Operation": operation},
                period=PERIOD,
                statistic="Sum",
            )
            for operation in TABLE_OPERATIONS
        }
        # FILL: an operation the callers never use publishes nothing, which would blank the sum.
        system_errors = _sum(f"{name} system errors", per_operation)
        self._alarm(
            f"{name}-table-system-errors",
            system_errors,
            threshold=0,
            periods=1,
            description=f"DynamoDB answered 500s for the {name} table: its callers are retrying; "
            "check the AWS Health Dashboard",
            kind=TABLE_SYSTEM_ERRORS,
            resource=table,
        )
        self._graph(
            "tables", title=f"{name}: throttles, system errors", left=[throttles], right=[system_errors]
        )

    def watch_state_machine(self, name: str, state_machine: sfn.IStateMachine) -> None:
        failures = {
            "failed": state_machine.metric_failed(period=PERIOD, statistic="Sum"),
            "timedout": state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
            "throttled": state_machine.metric_throttled(period=PERIOD, statistic="Sum"),
            "aborted": state_machine.metric_aborted(period=PERIOD, statistic="Sum"),
        }
        expression = _sum(f"{name} executions failed/timed out/throttled/aborted", failures)
        self._alarm(
            f"{name}-executions-failed",
            expression,
            threshold=0,
            periods=1,
            description=f"{name} executions failed, timed out, were throttled or aborted",
            kind=EXECUTIONS_FAILED,
            resource=state_machine,
        )
        self._graph("consumer", title=f"{name} executions", left=list(failures.values()))

    def watch_api(self, name: str, api: apigw.RestApi, storage_routes: Sequence[str]) -> None:
        server_errors = api.metric_server_error(period=PERIOD, statistic="Sum")
        # Per route (the stage publishes method metrics): only a 5xx of a route that stores counts.
        stored = {
            f"route{index}": cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map={
                    "ApiName": api.rest_api_name,
                    # The stage is named after the config's stage (stacks/ingestion_api.py); a literal, not
                    # the Stage's Ref, which the local cloud's emulator cannot resolve.
                    "Stage": self.config.stage,
                    "Method": route.split(" ", 1)[0],
                    "Resource": route.split(" ", 1)[1],
                },
                period=PERIOD,
                statistic="Sum",
            )
            for index, route in enumerate(storage_routes)
        }
        storage_errors = _sum(f"{name} 5XX of the routes that store ({', '.join(storage_routes)})", stored)
        server_alarm = self._alarm(
            f"{name}-5xx",
            storage_errors,
            threshold=0,
            periods=1,
            description=f"{name} answered 5xx on a route that stores ({', '.join(storage_routes)}): requests "
            "may not have been stored. The status read's deliberate 503s while shedding do not count",
            kind="api-5xx",
            resource=api,
        )
        self._degraded_signals.append(server_alarm)
        self.harm_alarms.append(server_alarm)
        count = api.metric_count(period=PERIOD, statistic="Sum")
        client_errors = api.metric_client_error(period=PERIOD, statistic="Sum")
        rate = _math(
            f"IF(requests >= {self.thresholds.api_4xx_rate_min_requests}, 100 * clienterrors / requests, 0)",
            f"{name} 4XX rate (%)",
            {"requests": count, "clienterrors": client_errors},
        )
        self._alarm(
            f"{name}-4xx-rate",
            rate,
            threshold=self.thresholds.api_4xx_rate_percent,
            description=f"More than {self.thresholds.api_4xx_rate_percent}% of {name} requests were rejected "
            f"(bad input, throttling or auth; judged from {self.thresholds.api_4xx_rate_min_requests} requests "
            "a period): a producer is misbehaving or throttled",
            kind="api-4xx",
            resource=api,
            missing=cloudwatch.TreatMissingData.MISSING,
        )
        latency = api.metric_latency(period=PERIOD, statistic="p99")
        self._alarm(
            f"{name}-latency",
            latency,
            threshold=API_INTEGRATION_TIMEOUT_SECONDS
            * 1000
            * self.thresholds.duration_near_timeout_percent
            / 100,
            description=f"{name} p99 latency is near API Gateway's {API_INTEGRATION_TIMEOUT_SECONDS} s "
            "integration timeout",
            kind="api-latency",
            resource=api,
        )
        self._graph(
            "api",
            title=f"{name}: requests, 4XX, 5XX",
            left=[count, client_errors, server_errors],
            right=[latency],
        )

    # -- finishing -----------------------------------------------------------------------------

    def finish(self) -> None:
        """Build what depends on everything being registered: the composite alarm and dashboard."""
        self.degraded = cloudwatch.CompositeAlarm(
            self,
            "PipelineDegraded",
            alarm_description="The pipeline is degraded: a circuit is open, a consumer stays paused, work is "
            "ageing in a queue, messages reached a DLQ, or the API failed to store requests",
            alarm_rule=cloudwatch.AlarmRule.any_of(*self._degraded_signals),
        )
        self.degraded.add_alarm_action(self._action)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=Duration.hours(3),
        )
        for column in self._columns.values():
            if column.widgets:
                self.dashboard.add_widgets(
                    cloudwatch.TextWidget(markdown=f"### {column.title}", width=24, height=1)
                )
                self.dashboard.add_widgets(*column.widgets)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=[*self.alarms, self.degraded], width=24)
        )

    def add_queries(self, log_groups: list[logs.ILogGroup]) -> None:
        """Saved Logs Insights queries over the functions' structured logs (field names from log_fields)."""
        for query_id, name, parts in insights_queries():
            logs.QueryDefinition(
                self,
                query_id,
                query_definition_name=f"{self.config.stack_name}/{name}",
                query_string=logs.QueryString(**parts),
                log_groups=log_groups,
            )

    # -- helpers -------------------------------------------------------------------------------

    def _service_metric(
        self, metric_name: str, dimensions: dict[str, str] | None = None, *, statistic: str = "Sum"
    ) -> cloudwatch.Metric:
        """A metric the handlers publish: Powertools ``Metrics(service=...)`` adds ``service`` to every one."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=metric_name,
            dimensions_map={"service": self.config.service_name, **(dimensions or {})},
            period=PERIOD,
            statistic=statistic,
        )

    def _dependency_metric(
        self, metric_name: str, dependency: str, extra: dict[str, str]
    ) -> cloudwatch.Metric:
        return self._service_metric(metric_name, {lf.DEPENDENCY: dependency, **extra})

    def _graph(
        self,
        column: str,
        *,
        title: str,
        left: Sequence[cloudwatch.IMetric],
        right: Sequence[cloudwatch.IMetric] | None = None,
    ) -> None:
        """A graph in ``column`` of the dashboard: a third of its width."""
        widget = cloudwatch.GraphWidget(
            title=title, left=list(left), right=list(right) if right else None, width=8
        )
        self._columns[column].widgets.append(widget)

    def _account_concurrency_alarm(self) -> None:
        unreserved = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="UnreservedConcurrentExecutions",
            period=PERIOD,
            statistic="Maximum",
        )
        self._alarm(
            "account-concurrency-headroom",
            unreserved,
            threshold=self.thresholds.account_concurrency_limit
            - self.thresholds.unreserved_concurrency_floor,
            description="The account's shared concurrency pool has fewer than "
            f"{self.thresholds.unreserved_concurrency_floor} executions left: unreserved functions are "
            "about to be throttled",
            kind="account-concurrency",
            resource=None,
        )
        self._columns["consumer"].widgets.append(
            cloudwatch.SingleValueWidget(
                title="Account: unreserved concurrency in use", metrics=[unreserved], width=8
            )
        )

    def _alarm(
        self,
        alarm_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        kind: str,
        resource: IConstruct | None,
        periods: int | None = None,
        datapoints: int | None = None,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        evaluation = periods or self.thresholds.evaluation_periods
        alarm = cloudwatch.Alarm(
            self,
            _pascal(alarm_id),
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation,
            datapoints_to_alarm=datapoints or evaluation,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        if resource is not None:
            self.coverage.setdefault(kind, set()).add(resource.node.path)
        return alarm


def _math(
    expression: str, label: str, metrics: Mapping[str, cloudwatch.IMetric]
) -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        expression=expression, using_metrics=dict(metrics), label=label, period=PERIOD
    )


def _filled_sum(keys: Iterable[str]) -> str:
    """The sum of the metrics named ``keys``; FILL: one that publishes nothing would blank the sum."""
    return " + ".join(f"FILL({key}, 0)" for key in keys)


def _sum(label: str, metrics: Mapping[str, cloudwatch.IMetric]) -> cloudwatch.MathExpression:
    return _math(_filled_sum(metrics), label, metrics)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def insights_queries() -> list[tuple[str, str, dict[str, list[str] | str]]]:
    """(construct id, name, logs.QueryString parts) — every field name comes from log_fields."""
    return [
        (
            "UpstreamErrorsQuery",
            "upstream-errors-by-dependency",
            {
                "filter_statements": [
                    f"message = '{lf.UPSTREAM_CALL_MESSAGE}'",
                    f"{lf.OUTCOME} != '{lf.OUTCOME_SUCCESS}'",
                ],
                "stats_statements": [
                    "count_distinct(function_request_id) as invocations, count(*) as attempts "
                    f"by {lf.DEPENDENCY}, {lf.METHOD}, {lf.ROUTE}, {lf.STATUS}, {lf.STATUS_CLASS}"
                ],
                "sort": "invocations desc",
            },
        ),
        (
            "TimeoutsQuery",
            "function-timeouts",
            {
                "filter_statements": ["@message like /Task timed out/"],
                "stats_statements": ["count(*) as timeouts by @log, bin(5m)"],
            },
        ),
        (
            "OutOfMemoryQuery",
            "out-of-memory",
            {
                "filter_statements": ["@type = 'REPORT'", "@maxMemoryUsed >= @memorySize"],
                "stats_statements": [
                    "count(*) as out_of_memory, max(@maxMemoryUsed / 1000 / 1000) as max_mb by @log"
                ],
            },
        ),
        (
            "ThrottlingQuery",
            "dependency-throttling",
            {
                "filter_statements": [
                    f"message = '{lf.UPSTREAM_CALL_MESSAGE}'",
                    f"{lf.STATUS_CLASS} = '429'",
                ],
                "stats_statements": [
                    f"count(*) as throttled, max({lf.RETRY_AFTER_S}) as max_retry_after_s by {lf.DEPENDENCY}, bin(5m)"
                ],
            },
        ),
    ]
