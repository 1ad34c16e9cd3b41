"""The reconciler's moto: Step Functions must NOT run executions, so a stand-in controller stays RUNNING.

moto keeps ``execute_state_machine`` in a process-wide config that a state-machine test elsewhere in the
same worker may have switched on; say it explicitly here instead of depending on test order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):  # type: ignore[arg-type]
        yield
