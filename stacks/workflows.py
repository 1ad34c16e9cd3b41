"""Step Functions workflows, loaded from ``statemachines/*.asl.json`` (the same files the tests
validate and execute), with the functions their tasks invoke and only the permissions each
state needs.

- order fulfilment: Charge -> Ship -> Notify with per-task retry (backoff + full jitter) and
  failures recorded on a failure queue; started once per PaymentReceived event.
- circuit controller: pauses the consumers of a dependency whose circuit opened, probes it,
  and resumes them once it is healthy; started by the consumers' breaker (CircuitOpened event)
  or by the dependency's upstream-error alarm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lambdas.contracts.circuit_wait import CIRCUIT_WAIT_LIMIT_VARIABLE, CIRCUIT_WAIT_SECONDS_VARIABLE
from lambdas.contracts.dependency_tunables import DEPENDENCY_MAX_ATTEMPTS
from lambdas.contracts.events import CIRCUIT_OPENED
from stacks.circuit_breaker import CircuitBreakerStore
from stacks.compliance import acknowledge
from stacks.config import DependencySettings, ServiceConfig, WorkflowSettings, log_retention
from stacks.downstream_dependency import DownstreamDependency
from stacks.durable_queue import parking_queue
from stacks.event_fanout import Subscription
from stacks.load_leveling_consumer import LoadLevelingConsumer, PausableMapping
from stacks.monitoring import ServiceMonitoring
from stacks.service_function import ServiceFunction

STATEMACHINES = Path(__file__).resolve().parent.parent / "statemachines"
# The fulfilment starter as a paused mapping and a watched function (alarms, reconciler metrics).
STARTER_NAME = "fulfilment-starter"
# Every Lambda task in the ASL files has TimeoutSeconds 30; the functions match it.
TASK_TIMEOUT = Duration.seconds(30)


class DeadLetterSink(Construct):
    """A queue where failed work is parked for people: encrypted, SSL-only, 14 days, alarmed."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, config: ServiceConfig,
                 monitoring: ServiceMonitoring) -> None:  # fmt: skip
        super().__init__(scope, construct_id)
        self.queue = parking_queue(
            self,
            "Queue",
            reason=f"This queue is the {name} failure sink written by a state machine's Catch",
            removal_policy=config.removal_policy,
        )
        monitoring.watch_dead_letter_queue(name, self.queue)


class Workflows(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        circuits: CircuitBreakerStore,
        dependencies: dict[str, DownstreamDependency],
        consumers: dict[str, LoadLevelingConsumer],
        fulfilment_queue: Subscription,
        monitoring: ServiceMonitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.settings = config.workflows
        self.circuits = circuits
        self._monitoring = monitoring
        dependency = dependencies[self.settings.dependency]
        self.functions: dict[str, ServiceFunction] = {}
        # circuit -> the controller input its rules send (the reconciler restarts it with the same).
        self.controller_inputs: dict[str, dict] = {}

        clock = self._task_function(
            "Clock", "lambdas.fulfilment.clock.handler", "Unix clock of the circuit workflows"
        )
        charge = self._task_function(
            "Charge", "lambdas.fulfilment.handler.charge_handler", "Captures the payment", dependency
        )
        ship = self._task_function(
            "Ship", "lambdas.fulfilment.handler.ship_handler", "Books the shipment", dependency
        )
        notify = self._task_function(
            "Notify",
            "lambdas.fulfilment.handler.notify_handler",
            "Notifies the customer",
            dependencies[self.settings.notification_dependency],
        )
        probe = self._task_function(
            "Probe",
            "lambdas.fulfilment.probe.handler",
            "Canary probe (a dry run of a real call)",
            dependency,
            extra_environment={"PROBE_CANARY": dependency.settings.canary.environment_value()},
            breaker=False,
        )

        self.failures = DeadLetterSink(self, "FulfilmentFailures", name="fulfilment-failures", config=config,
                                       monitoring=monitoring)  # fmt: skip
        self.notification_failures = DeadLetterSink(
            self, "NotificationFailures", name="notification-failures", config=config, monitoring=monitoring
        )

        self.fulfilment = self._state_machine(
            "OrderFulfilment",
            "order_fulfilment",
            {
                "ChargeFunctionArn": charge.alias.function_arn,
                "ShipFunctionArn": ship.alias.function_arn,
                "NotifyFunctionArn": notify.alias.function_arn,
                "FailureQueueUrl": self.failures.queue.queue_url,
                "NotificationFailureQueueUrl": self.notification_failures.queue.queue_url,
            },
        )
        for task in (charge, ship, notify):
            task.alias.grant_invoke(self.fulfilment)
        self.failures.queue.grant_send_messages(self.fulfilment)
        self.notification_failures.queue.grant_send_messages(self.fulfilment)

        self.controller = self._state_machine(
            "CircuitController",
            "circuit_controller",
            {
                "CircuitTableName": circuits.table.table_name,
                "ClockFunctionArn": clock.alias.function_arn,
                "ProbeFunctionArn": probe.alias.function_arn,
            },
        )
        circuits.table.grant(
            self.controller, "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        for task in (clock, probe):
            task.alias.grant_invoke(self.controller)

        self.starter, starter_mapping = self._starter(fulfilment_queue, dependency)
        # Every mapping the controllers pause, and the reconciler watches: the consumers, and the starter,
        # whose executions would otherwise charge into an open circuit and wait it out (or fail) in Charge.
        self.pausable: dict[str, PausableMapping] = {
            **{c.name: c.pausable for c in consumers.values()},
            STARTER_NAME: starter_mapping,
        }
        for name, settings in dependencies.items():
            # Only the work of a critical dependency waits for it; a non-critical one falls back.
            paused = [m for m in self.pausable.values() if m.circuit == name and settings.settings.critical]
            self._pause_on_open(name, settings, paused, circuits)

    # -- pieces --------------------------------------------------------------------------------

    def _task_function(
        self,
        name: str,
        handler: str,
        description: str,
        dependency: DownstreamDependency | None = None,
        extra_environment: dict[str, str] | None = None,
        *,
        breaker: bool = True,
    ) -> ServiceFunction:
        environment = {**(dependency.environment() if dependency else {}), **(extra_environment or {})}
        if dependency:
            # Step Functions' Retry is the retry layer of a workflow task (stacks/retry_budget.py).
            environment[DEPENDENCY_MAX_ATTEMPTS] = str(self.settings.task_max_attempts)
        function = ServiceFunction(
            self,
            f"{name}Task",
            config=self.config,
            handler=handler,
            description=f"Workflow task: {description}",
            timeout=TASK_TIMEOUT,
            reserved_concurrency=self.settings.task_concurrency,
            environment=environment or None,
        )
        if dependency:
            dependency.grant_call(function.function, breaker=breaker)
        acknowledge(
            function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously by Step Functions, whose Retry/Catch handle every failure",
        )
        self._monitoring.watch_function(f"{_kebab(name)}-task", function)
        self.functions[name] = function
        return function

    def _state_machine(
        self, construct_id: str, file_stem: str, substitutions: dict[str, str]
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=log_retention(self.config.log_retention_days),
            removal_policy=self.config.removal_policy,
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(STATEMACHINES / f"{file_stem}.asl.json")),
            definition_substitutions=substitutions,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group,
                level=sfn.LogLevel[self.settings.log_level],
                include_execution_data=self.settings.include_execution_data,
            ),
        )
        acknowledge(
            machine,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery and X-Ray actions support no resource-level permissions",
        )
        if self.settings.log_level != "ALL":
            acknowledge(
                machine,
                "AwsSolutions::AwsSolutions-SF1",
                f"This stage logs execution events at {self.settings.log_level} by configuration (cost)",
            )
        self._monitoring.watch_state_machine(_kebab(construct_id), machine)
        return machine

    def _pause_on_open(
        self,
        name: str,
        dependency: DownstreamDependency,
        mappings: list[PausableMapping],
        circuits: CircuitBreakerStore,
    ) -> None:
        """Start the controller when the consumers' breaker opens or the error alarm fires."""
        bus = circuits.events
        if not mappings:
            return
        for mapping in mappings:
            self.controller.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:UpdateEventSourceMapping"], resources=[mapping.mapping_arn]
                )
            )
        controller_input = controller_input_for(
            name, dependency.settings, {m.mapping_id: m.max_concurrency for m in mappings}, self.settings
        )
        self.controller_inputs[name] = controller_input
        opened = events.Rule(
            self,
            f"{_pascal(name)}CircuitOpened",
            event_bus=bus,
            description=f"The {name} circuit opened in a consumer -> pause its consumers",
            event_pattern=events.EventPattern(
                source=[circuits.event_source],
                detail_type=[CIRCUIT_OPENED],
                detail={"dependency": [name]},
            ),
        )
        # The event is a claim (anyone allowed on the circuit bus may send one): the controller checks the
        # record before pausing. The alarm comes from CloudWatch itself, so that run forces the record open.
        self._start_controller(
            opened, f"{name}-circuit-opened", {**controller_input, "trigger": "breaker"}, bus
        )
        alarmed = events.Rule(
            self,
            f"{_pascal(name)}ErrorAlarm",
            description=f"The {name} upstream-error alarm fired -> open its circuit and pause its consumers",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[self._monitoring.upstream_error_alarms[name].alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
        )
        default_bus = events.EventBus.from_event_bus_name(self, f"{_pascal(name)}DefaultBus", "default")
        self._start_controller(
            alarmed, f"{name}-error-alarm", {**controller_input, "trigger": "alarm"}, default_bus
        )

    def _start_controller(
        self, rule: events.Rule, name: str, controller_input: dict, bus: events.IEventBus
    ) -> None:
        # Each rule gets its own DLQ, so its queue policy can admit that rule alone.
        undelivered = DeadLetterSink(
            self, f"{_pascal(name)}Undelivered", name=f"{name}-undelivered", config=self.config,
            monitoring=self._monitoring,
        )  # fmt: skip
        rule.add_target(
            targets.SfnStateMachine(
                self.controller,
                input=events.RuleTargetInput.from_object(controller_input),
                dead_letter_queue=undelivered.queue,
                retry_attempts=self.config.events.target_retry_attempts,
                max_event_age=Duration.seconds(self.config.events.target_max_event_age_seconds),
            )
        )
        self._monitoring.watch_rule(name, rule, bus)

    def _starter(
        self, queue: Subscription, dependency: DownstreamDependency
    ) -> tuple[ServiceFunction, PausableMapping]:
        starter = ServiceFunction(
            self,
            "FulfilmentStarter",
            config=self.config,
            handler="lambdas.workflow_starter.handler.handler",
            description="Starts one fulfilment execution per PaymentReceived event (named by its key)",
            timeout=Duration.seconds(self.settings.starter_timeout_seconds),
            reserved_concurrency=self.settings.task_concurrency,
            environment={
                "STATE_MACHINE_ARN": self.fulfilment.state_machine_arn,
                **circuit_wait_environment(dependency.settings, self.settings),
            },
        )
        self.fulfilment.grant_start_execution(starter.function)
        source = sources.SqsEventSource(
            queue.queue,
            batch_size=10,
            report_batch_item_failures=True,
            max_concurrency=max(2, self.settings.task_concurrency),
        )
        starter.alias.add_event_source(source)
        for rule, reason in (
            (
                "Serverless::Serverless-LambdaDLQ",
                "Only invoked by its SQS event source; the queue's redrive is the DLQ",
            ),
            (
                "Serverless::Serverless-LambdaEventSourceMappingDestination",
                "SQS event sources take no on-failure destination; the source queue's redrive policy is the DLQ",
            ),
        ):
            acknowledge(starter, rule, reason)
        self._monitoring.watch_function(STARTER_NAME, starter)
        concurrency = max(2, self.settings.task_concurrency)
        return starter, PausableMapping(STARTER_NAME, source, concurrency, dependency.name)


def circuit_wait_environment(dependency: DependencySettings, workflows: WorkflowSettings) -> dict[str, str]:
    """How a fulfilment execution waits out its dependency's open circuit (lambdas/workflow_starter): one
    recovery window per wait, for as long as the controller can keep the starter paused and then close."""
    limit = (
        workflows.controller_max_pause_seconds
        + dependency.breaker_recovery_seconds
        + dependency.breaker_success_threshold * workflows.controller_probe_interval_seconds
    )
    return {
        CIRCUIT_WAIT_SECONDS_VARIABLE: str(dependency.breaker_recovery_seconds),
        CIRCUIT_WAIT_LIMIT_VARIABLE: str(limit),
    }


def controller_input_for(
    circuit: str,
    dependency: DependencySettings,
    mappings: dict[str, int],
    workflows: WorkflowSettings,
) -> dict[str, Any]:
    """The circuit controller's input for one dependency: its paused mappings (uuid -> max_concurrency).

    Every mapping gets the same number of ramp levels (its own levels, the last repeated), so the
    controller steps them together; stacks/config.py has validated every number.
    """
    levels = {uuid: workflows.resume_levels(maximum) for uuid, maximum in mappings.items()}
    steps = max(len(ramp) for ramp in levels.values())
    return {
        "circuit": circuit,
        "eventSourceMappings": [
            {"uuid": uuid, "levels": ramp + [ramp[-1]] * (steps - len(ramp))} for uuid, ramp in levels.items()
        ],
        "config": {
            "recoverySeconds": dependency.breaker_recovery_seconds,
            "probeIntervalSeconds": workflows.controller_probe_interval_seconds,
            "requiredSuccesses": dependency.breaker_success_threshold,
            "maxPauseSeconds": workflows.controller_max_pause_seconds,
            "rampStepSeconds": workflows.controller_ramp_step_seconds,
            "rampSteps": steps,
        },
    }


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
