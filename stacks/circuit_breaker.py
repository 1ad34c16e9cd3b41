"""Shared circuit state: one record per dependency, read by every execution environment.

The table layout is the Powertools circuit breaker's (partition key ``id`` = circuit name,
TTL attribute ``expiration``), so the Lambda consumers and the Step Functions workflows
agree on one state per dependency.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.contracts.circuit import RECORD_EXPIRATION, RECORD_KEY
from lambdas.contracts.events import CIRCUIT_OPENED, circuit_events_source
from stacks.durable_table import durable_table
from stacks.monitoring import ServiceMonitoring


class CircuitBreakerStore(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        monitoring: ServiceMonitoring,
        service_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.event_source = circuit_events_source(service_name)
        self.table = durable_table(
            self,
            "Circuits",
            key=RECORD_KEY,
            ttl_attribute=RECORD_EXPIRATION,
            removal_policy=removal_policy,
        )
        monitoring.watch_table("circuits", self.table)

        # Control plane, apart from the domain bus: breakers announce openings here so the
        # circuit controller can pause the consumers of that dependency.
        self.events = events.EventBus(self, "Events", description="Circuit transitions announced by breakers")

    def grant_breaker(self, grantee: iam.IGrantable, circuit: str) -> None:
        """What the Powertools breaker of ``circuit`` needs, on that circuit alone.

        Read state, elect a prober and write transitions on its own record (``dynamodb:LeadingKeys``):
        a caller of one dependency cannot force another dependency's circuit open, and no breaker can
        write the controller's lock item (``<circuit>#controller``). Announce openings on the circuit
        bus only as the breakers' source and detail type.
        """
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[self.table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [circuit]}},
            )
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[self.events.event_bus_arn],
                conditions={
                    "StringEquals": {
                        "events:source": [self.event_source],
                        "events:detail-type": [CIRCUIT_OPENED],
                    }
                },
            )
        )
