"""Who may call the demo dependencies: their function URLs take IAM-signed calls from the callers only.

Open (``AuthType NONE``), anyone could use up a twin's reserved concurrency and so open the circuit and
pause the dev consumers (checkov CKV_AWS_258). Rules over the whole template: every function URL is
``AWS_IAM``, no resource policy opens a function to everyone, and each function that calls a twin signs
(its environment names the SigV4 service) and may invoke exactly that twin's URL, and the function only
through it (both actions are required since October 2025).
"""

from __future__ import annotations

from typing import Any

from lambdas.contracts.api import FUNCTION_URL_SERVICE
from lambdas.contracts.environment import DEPENDENCY_SIGNING_SERVICE
from tests.infra.conftest import Synthesized


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_every_function_url_requires_iam_and_nothing_is_public(dev: Synthesized) -> None:
    urls = dev.of_type("AWS::Lambda::Url")
    assert len(urls) == len(dev.stack.config.dependencies)  # one twin per dependency in dev
    assert {url["Properties"]["AuthType"] for url in urls.values()} == {"AWS_IAM"}
    for permission in dev.of_type("AWS::Lambda::Permission").values():
        assert permission["Properties"]["Principal"] != "*", permission


def test_each_caller_signs_and_may_invoke_its_own_twin_through_the_url_only(dev: Synthesized) -> None:
    twin_of = {
        name: dev.stack.get_logical_id(dependency.demo.alias.node.default_child)  # type: ignore[union-attr]
        for name, dependency in dev.stack.downstream.items()
    }
    by_role = dev.statements_by_role()
    callers = 0
    for function in dev.of_type("AWS::Lambda::Function").values():
        properties = function["Properties"]
        variables = properties.get("Environment", {}).get("Variables", {})
        dependency = variables.get("DEPENDENCY_NAME")
        statements = by_role.get(properties["Role"]["Fn::GetAtt"][0], [])
        invokes = [
            s for s in statements if _actions(s) & {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
        ]
        if dependency is None or "DEPENDENCY_BASE_URL" not in variables:
            assert not any("lambda:InvokeFunctionUrl" in _actions(s) for s in invokes), properties["Handler"]
            continue
        callers += 1
        assert variables.get(DEPENDENCY_SIGNING_SERVICE) == FUNCTION_URL_SERVICE, properties["Handler"]
        assert invokes, properties["Handler"]
        for statement in invokes:
            assert statement["Resource"] == {"Ref": twin_of[dependency]}, (properties["Handler"], statement)
            if "lambda:InvokeFunction" in _actions(statement):
                assert statement["Condition"] == {"Bool": {"lambda:InvokedViaFunctionUrl": True}}
            else:
                assert statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}
        assert {a for s in invokes for a in _actions(s)} == {
            "lambda:InvokeFunctionUrl",
            "lambda:InvokeFunction",
        }
    assert callers >= 5  # both consumers, the fulfilment tasks and the probe


def test_a_real_partner_is_called_unsigned(prod: Synthesized) -> None:
    """Production names its partners' URLs (no twin): nothing signs for, or is granted, a function URL."""
    assert not prod.of_type("AWS::Lambda::Url")
    for function in prod.of_type("AWS::Lambda::Function").values():
        assert DEPENDENCY_SIGNING_SERVICE not in function["Properties"].get("Environment", {}).get(
            "Variables", {}
        )
