"""The one way to build a table of this service: a string key, items that expire, on-demand, recoverable."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


def durable_table(
    scope: Construct, construct_id: str, *, key: str, ttl_attribute: str, removal_policy: RemovalPolicy
) -> dynamodb.TableV2:
    """Keyed by the string ``key``; an item goes when the epoch seconds in ``ttl_attribute`` pass.
    On-demand (a burst needs no capacity planning) with point-in-time recovery."""
    return dynamodb.TableV2(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
        time_to_live_attribute=ttl_attribute,
        billing=dynamodb.Billing.on_demand(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=removal_policy,
    )
