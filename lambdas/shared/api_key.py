"""The partner API key shared by the callers (senders) and the partner API (checker).

Callers read it once per execution environment with :func:`load_api_key` (the order and notifications
consumers, the fulfilment tasks); the partner API checks it against ``API_KEY_HEADER``.
"""

from __future__ import annotations

import json
from typing import Final, Protocol

from aws_lambda_powertools.utilities import parameters

API_KEY_HEADER: Final = "x-api-key"
# When the secret is a JSON document (e.g. CDK generateSecretString with a template), the key lives here.
API_KEY_JSON_FIELD: Final = "apiKey"
# The key is read once per execution environment; max_age only bounds the Parameters provider's cache.
API_KEY_SECRET_MAX_AGE_SECONDS: Final = 3600


def parse_api_key_secret(secret_value: str) -> str:
    """Accept either the raw key or a JSON object ``{"apiKey": "..."}``; reject empty values."""
    value = secret_value.strip()
    if value.startswith("{"):
        try:
            document = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError("API key secret looks like JSON but does not parse") from exc
        key = document.get(API_KEY_JSON_FIELD) if isinstance(document, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"API key secret JSON has no non-empty '{API_KEY_JSON_FIELD}' field")
        return key.strip()
    if not value:
        raise ValueError("API key secret is empty")
    return value


class HasApiKeySecret(Protocol):
    """Any settings object naming the partner API key secret (the consumers', the fulfilment tasks')."""

    @property
    def dependency_api_key_secret_arn(self) -> str | None: ...


def load_api_key(settings: HasApiKeySecret) -> str | None:
    """Fetch the partner API key (call once, at init). None when no secret is configured."""
    if settings.dependency_api_key_secret_arn is None:
        return None
    secret = parameters.get_secret(
        settings.dependency_api_key_secret_arn, max_age=API_KEY_SECRET_MAX_AGE_SECONDS
    )
    return parse_api_key_secret(secret if isinstance(secret, str) else secret.decode())
