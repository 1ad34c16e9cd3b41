"""State machines CloudFormation created become runnable in moto's executing Step Functions backend."""

from __future__ import annotations

__all__ = ["register_stack_state_machines_for_execution"]


def register_stack_state_machines_for_execution(account_id: str, region_name: str) -> list[str]:
    """Copy every state machine of moto's plain Step Functions backend into its executing backend.

    Works around: with ``{"stepfunctions": {"execute_state_machine": true}}`` moto serves the Step
    Functions API from a second backend (``stepfunctions_parser_backends``), but CloudFormation creates
    state machines in the first one (``stepfunctions_backends``), so ``StartExecution`` on a state
    machine of the deployed stack answers ``StateMachineDoesNotExist``. Re-creating each one (same
    name, hence same ARN, same definition, role, type, logging and tracing configuration) in the
    executing backend makes it runnable; the executing backend validates the definition on the way.

    Call it after ``CreateStack`` and after enabling execution. Returns the ARNs registered (existing ones
    are left as they are). Verified by ``tests/e2e/test_deploy.py`` with a state machine created by
    CloudFormation whose execution reaches ``SUCCEEDED``.
    """
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    plain = stepfunctions_backends[account_id][region_name]
    executing = stepfunctions_parser_backends[account_id][region_name]
    known = {machine.arn for machine in executing.state_machines}
    registered = []
    for machine in list(plain.state_machines):
        if machine.arn in known:
            continue
        executing.create_state_machine(
            name=machine.name,
            definition=machine.definition,
            roleArn=machine.roleArn,
            tags=plain.get_tags_list_for_state_machine(machine.arn) or None,
            loggingConfiguration=machine.loggingConfiguration,  # type: ignore[arg-type]
            tracingConfiguration=machine.tracingConfiguration,  # type: ignore[arg-type]
            sm_type=machine.type,
        )
        registered.append(machine.arn)
    return registered
