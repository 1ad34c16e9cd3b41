"""The consumer reconciler: a scheduled function that makes sure no consumer stays paused unowned.

The circuit controller disables a consumer's event source mapping while its dependency's circuit is
open. If the controller gives up, fails to enable, or is blocked by a stale lock, nothing would ever
enable the mapping again. Every ``reconciler.schedule_minutes`` this function compares each mapping with
its circuit record and the controller's running executions and resumes the consumer or restarts the
controller (lambdas/reconciler/decisions.py), and publishes each consumer's paused time, which
``ServiceMonitoring.watch_paused_consumer`` alarms on.

Least privilege: read and enable only the consumers' own mappings; list, describe and start only the
controller's executions; read items of the circuit table and delete (conditionally, a stale lock) only there.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from lambdas.contracts.consumer_control import CONTROL_ENV, CONTROL_OUTPUT
from stacks.compliance import acknowledge
from stacks.config import ServiceConfig
from stacks.monitoring import ServiceMonitoring
from stacks.service_function import ServiceFunction
from stacks.workflows import DeadLetterSink, Workflows

# Enough for a handful of consumers' reads and one write each, with SDK retries.
TIMEOUT = Duration.seconds(30)


class ConsumerReconciler(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ServiceConfig,
        workflows: Workflows,
        monitoring: ServiceMonitoring,
    ) -> None:
        """Reconciles every mapping ``workflows`` pauses with its circuit and the circuit controller."""
        super().__init__(scope, construct_id)
        settings = config.reconciler
        circuits, mappings, controller = workflows.circuits, workflows.pausable, workflows.controller
        self.control = {
            "controller_arn": controller.state_machine_arn,
            "circuit_table": circuits.table.table_name,
            "circuits": workflows.controller_inputs,
            "consumers": {
                name: {"mapping": mapping.mapping_id, "circuit": mapping.circuit}
                for name, mapping in mappings.items()
            },
        }
        control_json = Stack.of(self).to_json_string(self.control)
        self.function = ServiceFunction(
            self,
            "Reconciler",
            config=config,
            handler="lambdas.reconciler.handler.handler",
            description="Resumes consumers left paused and restarts circuit controllers that stopped",
            timeout=TIMEOUT,
            # One run at a time: two would only race each other to the same decisions.
            reserved_concurrency=1,
            environment={CONTROL_ENV: control_json},
        )
        function = self.function.function
        for mapping in mappings.values():
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
                    resources=[mapping.mapping_arn],
                )
            )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:ListExecutions"], resources=[controller.state_machine_arn])
        )
        controller.grant_start_execution(function)
        controller.grant_execution(function, "states:DescribeExecution")
        circuits.table.grant(function, "dynamodb:GetItem", "dynamodb:DeleteItem")

        # A failed run is retried by the next one; the sink makes a run that never happened visible.
        self.failures = DeadLetterSink(
            self, "Undelivered", name="consumer-reconciler-undelivered", config=config, monitoring=monitoring
        )
        self.function.alias.configure_async_invoke(
            retry_attempts=0,
            max_event_age=Duration.seconds(60),
            on_failure=destinations.SqsDestination(self.failures.queue),
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Reconcile the consumers' event source mappings with their circuits and controller",
            schedule=events.Schedule.rate(Duration.minutes(settings.schedule_minutes)),
        )
        self.schedule.add_target(
            targets.LambdaFunction(
                self.function.alias,
                dead_letter_queue=self.failures.queue,
                retry_attempts=config.events.target_retry_attempts,
                max_event_age=Duration.seconds(config.events.target_max_event_age_seconds),
            )
        )
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        monitoring.watch_rule("consumer-reconciler", self.schedule, default_bus)
        monitoring.watch_function("consumer-reconciler", self.function)
        self.paused_alarms = {
            name: monitoring.watch_paused_consumer(name, settings.paused_alarm_minutes) for name in mappings
        }
        # The finding names the execution ARN as cdk-nag renders grant_execution's Fn::Split of the ARN.
        machine = Stack.of(self).get_logical_id(controller.node.default_child)
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}:*'
        )
        acknowledge(
            self.function,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{executions}]",
            "Execution names are chosen by whoever starts the controller (rules name them at random); "
            "DescribeExecution is scoped to this controller's executions",
        )
        acknowledge(
            self.function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked asynchronously by its schedule only; a failed run goes to the EventInvokeConfig's "
            "on-failure destination (the alarmed Undelivered queue) and the next run retries",
        )
        CfnOutput(
            Stack.of(self),
            CONTROL_OUTPUT,
            value=control_json,
            description="Consumers, their mappings and circuits, the controller and its inputs (ops consumer)",
        )
