"""GET /orders/{id}: IAM-authorized proxy to the status reader's alias, read-only, budgeted."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import Synthesized


def _statements(dev: Synthesized, role: Any) -> list[dict[str, Any]]:
    role_id = dev.stack.get_logical_id(role.node.default_child)
    return [
        s
        for p in dev.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_get_order_is_an_iam_authorized_proxy_to_the_live_alias(dev: Synthesized) -> None:
    resources = dev.of_type("AWS::ApiGateway::Resource")
    (by_id,) = [k for k, v in resources.items() if v["Properties"]["PathPart"] == "{id}"]
    (method,) = [
        m["Properties"]
        for m in dev.of_type("AWS::ApiGateway::Method").values()
        if m["Properties"]["ResourceId"] == {"Ref": by_id}
    ]
    assert method["HttpMethod"] == "GET"
    assert method["AuthorizationType"] == "AWS_IAM"
    assert method["RequestParameters"] == {"method.request.path.id": True}
    assert method["Integration"]["Type"] == "AWS_PROXY"
    alias = dev.stack.get_logical_id(dev.stack.order_status.handler.alias.node.default_child)
    assert alias in json.dumps(method["Integration"]["Uri"])
    assert method["Integration"]["TimeoutInMillis"] <= 29_000


def test_status_reader_is_read_only_and_budgeted_under_the_gateway_limit(dev: Synthesized) -> None:
    reader = dev.stack.order_status.handler
    props = dev.resources[dev.stack.get_logical_id(reader.function.node.default_child)]["Properties"]
    env = props["Environment"]["Variables"]
    settings = dev.stack.config.status
    assert int(env["REQUEST_BUDGET_MS"]) < props["Timeout"] * 1000 < 29_000
    assert env["DEPENDENCY_NAME"] == dev.stack.config.consumers["orders"].dependency
    assert int(env["ORDER_QUEUE_BACKLOG_THRESHOLD"]) == settings.backlog_threshold
    actions = {
        a
        for s in _statements(dev, reader.role)
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    plumbing = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert actions - plumbing == {
        "dynamodb:GetItem",
        "sqs:GetQueueAttributes",
    }


def test_the_orders_consumer_records_statuses(dev: Synthesized) -> None:
    consumer = dev.stack.consumers["orders"]
    props = dev.resources[dev.stack.get_logical_id(consumer.handler.function.node.default_child)][
        "Properties"
    ]
    table = dev.stack.get_logical_id(dev.stack.order_status.table.node.default_child)
    assert props["Environment"]["Variables"]["ORDER_STATUS_TABLE_NAME"] == {"Ref": table}
    grants = [
        s for s in _statements(dev, consumer.handler.role) if s["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    ]
    assert [s["Action"] for s in grants] == ["dynamodb:UpdateItem"]
