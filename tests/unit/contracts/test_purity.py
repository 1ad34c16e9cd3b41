"""lambdas.contracts is pure: the standard library alone at import time, nothing of the project, no side
effects; the functions' SDK clients are built from its figures (what the retry budget counts)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.contracts import retries
from tests.conftest import PROJECT_ROOT

CONTRACTS = PROJECT_ROOT / "lambdas" / "contracts"
MODULES = sorted(CONTRACTS.glob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{path.name}: relative import"
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_contract_imports_the_standard_library_alone(path: Path) -> None:
    outside = {
        name
        for name in _imported(path)
        if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"
    }
    assert not outside, f"{path.name} imports {sorted(outside)}"


def test_importing_every_contract_loads_no_third_party_package() -> None:
    modules = ", ".join(f"lambdas.contracts.{p.stem}" for p in MODULES if p.stem != "__init__")
    code = (
        f"import sys, {modules}\n"
        "heavy = {'boto3', 'botocore', 'pydantic', 'requests', 'aws_lambda_powertools', 'urllib3'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_the_sdk_clients_are_built_from_the_contract_figures() -> None:
    from lambdas.shared.stores import TABLE_CLIENT_CONFIG
    from lambdas.workflow_starter.clients import STEP_FUNCTIONS_CLIENT_CONFIG

    assert TABLE_CLIENT_CONFIG.retries == {
        "mode": "standard",
        "total_max_attempts": retries.TABLE_TOTAL_MAX_ATTEMPTS,
    }
    assert (TABLE_CLIENT_CONFIG.connect_timeout, TABLE_CLIENT_CONFIG.read_timeout) == (
        retries.TABLE_CONNECT_TIMEOUT_SECONDS,
        retries.TABLE_READ_TIMEOUT_SECONDS,
    )
    assert STEP_FUNCTIONS_CLIENT_CONFIG.retries == {
        "mode": "standard",
        "total_max_attempts": retries.STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS,
    }
