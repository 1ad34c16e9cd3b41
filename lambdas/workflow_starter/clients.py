"""The starter's AWS client settings. Synth counts the SDK's attempts as a retry layer of the starter's path
(``stacks/retry_budget.py``), from the figure in ``lambdas.contracts.retries`` this client is built with."""

from __future__ import annotations

from typing import Final

from botocore.config import Config

from lambdas.contracts.retries import STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS

# total_max_attempts, not max_attempts: botocore reads max_attempts as retries (3 would be 4 attempts).
STEP_FUNCTIONS_CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "total_max_attempts": STEP_FUNCTIONS_TOTAL_MAX_ATTEMPTS}
)
