"""Fixtures shared by every test folder. Tests never need AWS credentials or a network."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from localcloud.deploy import use_project_node

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Any boto3 client a test builds by accident talks to nobody: fake credentials, fixed region.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
use_project_node()  # before anything starts aws-cdk-lib's jsii runtime


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context, as the CLI would pass it, with top-level keys replaced."""
    context: dict[str, Any] = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    context.update(overrides)
    return context


def upper_bound(model: Any, field: str) -> int:
    """The ``le`` bound a config model declares for ``field``: the largest value a stage may set."""
    [bound] = [m.le for m in model.model_fields[field].metadata if getattr(m, "le", None) is not None]
    return int(bound)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's calibrated, time-compressed synth (tests/e2e/support.py), shared by every worker."""
    from tests.e2e.support import compressed_for_session

    return compressed_for_session(tmp_path_factory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that read the background fault runs' results (tests/e2e/support.py) go last.

    The runner starts with the first end-to-end test and takes minutes; a worker that reached one of
    its readers early would sit idle until then instead of running the rest of the suite.
    """
    items.sort(key=lambda item: bool({"fault_runs", "long_runs"} & set(getattr(item, "fixturenames", ()))))
