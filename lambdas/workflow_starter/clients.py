"""The starter's AWS client settings, in their own module so synth can count them without importing the
handler (``stacks/retry_budget.py``: the SDK's attempts are a retry layer of the starter's path)."""

from __future__ import annotations

from typing import Final

from botocore.config import Config

# total_max_attempts, not max_attempts: botocore reads max_attempts as retries (3 would be 4 attempts).
STEP_FUNCTIONS_CLIENT_CONFIG: Final = Config(retries={"mode": "standard", "total_max_attempts": 3})
