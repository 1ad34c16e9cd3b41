"""EventBridge rules deliver to Step Functions and in-process Lambda targets (moto raises for them)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from localcloud.moto_patches.inprocess_lambda import get_inprocess_function, invoke_inprocess

__all__ = ["install_eventbridge_service_targets"]

_LOCK = threading.Lock()
_ORIGINAL: list[Any] = []


def install_eventbridge_service_targets() -> None:
    """Deliver EventBridge rule matches to Step Functions and (in-process) Lambda targets.

    Works around: moto's ``Rule.send_to_targets`` delivers only to log groups, archives, SQS queues,
    other buses and API destinations; any other target raises ``NotImplementedError`` inside
    ``PutEvents``, so the *producer's* ``PutEvents`` call fails with HTTP 500 (seen when the order
    consumer published ``CircuitOpened`` to the bus whose rule targets the circuit-controller state
    machine).

    Now a ``arn:aws:states:...:stateMachine:NAME`` target starts an execution in moto's executing Step
    Functions backend (see ``stack_state_machines.register_stack_state_machines_for_execution``), and an
    ``arn:aws:lambda:...:function:NAME`` target is invoked asynchronously when ``NAME`` is registered
    with ``register_inprocess_function``; each with the target's ``Input`` (constant), ``InputPath`` or
    ``InputTransformer`` applied to the event, as EventBridge does. Other targets go to moto's original
    code. Delivery failures are swallowed (EventBridge retries asynchronously and, after its retry
    policy, sends to the target's DLQ; that retry loop is not emulated).

    Verified by ``tests/e2e/test_deploy.py``: an event put on a deployed bus whose rule targets a state
    machine starts one execution with the event (or the transformed input) as its input, and
    ``PutEvents`` succeeds.
    """
    import contextlib
    import copy

    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser

    with _LOCK:
        if _ORIGINAL:
            return
        original = Rule.send_to_targets
        _ORIGINAL.append(original)

    def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
        if "Input" in target:
            return str(target["Input"])
        if "InputTransformer" in target:
            transformer = target["InputTransformer"]
            return str(
                EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=event,  # type: ignore[arg-type]
                )
            )
        document: Any = event
        path = target.get("InputPath")
        if path:
            for part in path.lstrip("$").strip(".").split("."):
                document = document.get(part) if isinstance(document, dict) and part else document
        return json.dumps(document, default=str)

    def deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = str(target["Arn"])
        service = arn.split(":")[2]
        payload = target_input(target, event)
        if service == "states":
            from moto.stepfunctions.parser.models import stepfunctions_parser_backends

            backend = stepfunctions_parser_backends[rule.account_id][rule.region_name]
            # A fresh name per delivery, as EventBridge does (moto would treat two unnamed starts as one).
            backend.start_execution(arn, name=str(uuid.uuid4()), execution_input=payload)
        elif service == "lambda":
            function = get_inprocess_function(arn)
            if function is not None:
                threading.Thread(
                    target=invoke_inprocess,
                    args=(function, {"Payload": payload}),
                    name=f"events-to-{function.name}",
                    daemon=True,
                ).start()

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        handled = [
            t for t in self.targets if str(t.get("Arn", "")).split(":")[2:3] in (["states"], ["lambda"])
        ]
        if handled and self.event_pattern.matches_event(original_event):
            event = dict(original_event)
            if isinstance(event.get("time"), int | float):
                event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(event["time"])))
            for target in handled:
                # EventBridge delivers asynchronously: a target's failure never fails PutEvents.
                with contextlib.suppress(Exception):
                    deliver(self, target, event)
        if len(handled) == len(self.targets):
            return
        if handled:
            others = copy.copy(self)
            others.targets = [t for t in self.targets if t not in handled]
            original(others, original_event, transform_input)
        else:
            original(self, original_event, transform_input)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
