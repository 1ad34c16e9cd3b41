"""AWS-published SSM parameters (``/aws/service/...``) a template resolves at deploy time."""

from __future__ import annotations

__all__ = ["put_aws_public_parameter"]


def put_aws_public_parameter(account_id: str, region_name: str, name: str, value: str) -> None:
    """Store an AWS-published SSM parameter (``/aws/service/...``) that moto does not ship.

    Works around: CDK resolves some values through public parameters at deploy time (a template
    ``Parameter`` of type ``AWS::SSM::Parameter::Value<String>`` whose default is e.g.
    ``/aws/service/fis/lambda-extension/AWS-FIS-extension-arm64/1.x.x``). moto only bundles a few public
    trees (AMIs, regions, services), so ``CreateStack`` crashed resolving the parameter
    (``'NoneType' object has no attribute 'value'``), and its ``PutParameter`` refuses the reserved
    ``/aws`` prefix (``AccessDeniedException``), so the value cannot be put through the API either.
    The parameter is added to the backend the way moto adds its own bundled public parameters.

    Verified by ``tests/e2e/test_deploy.py``: with the value seeded by ``localcloud.deploy`` the
    synthesized stack deploys, and ``GetParameter`` returns it.
    """
    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ssm_backends

    backend = ssm_backends[account_id][region_name]
    versions = backend._parameters[name]
    versions.append(
        Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description="AWS-published parameter (stand-in seeded by the local cloud)",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=len(versions) + 1,
            data_type="text",
            tier="Standard",
        )
    )
