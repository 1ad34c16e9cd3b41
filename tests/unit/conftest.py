"""Fixtures for the Lambda-side unit tests: fake AWS credentials, moto, a local partner twin, a virtual clock."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from localcloud.fault_dependency import FaultDependency
from tests.unit.helpers import REGION, BreakerTable, VirtualClock, create_key_table


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach AWS: fake credentials and region, tracing off, a metrics namespace for EMF."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ResilientServerlessTest")
    monkeypatch.delenv("POWERTOOLS_CIRCUIT_BREAKER_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    # The Parameters utility caches per process; a value cached by one test must not leak into another.
    parameters.clear_caches()
    yield
    parameters.clear_caches()


@pytest.fixture
def aws() -> Iterator[None]:
    # moto keeps execute_state_machine in a process-wide config that a state-machine or e2e test in the
    # same worker may have switched on; unit tests never want executions run, so say it here.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):  # type: ignore[arg-type]
        yield


@pytest.fixture
def breaker_table(aws: None) -> BreakerTable:
    client = boto3.client("dynamodb", region_name=REGION)
    name = "circuits"
    create_key_table(client, name)
    return BreakerTable(name=name, client=client)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def twin() -> Iterator[FaultDependency]:
    with FaultDependency(seed=1) as server:
        yield server
