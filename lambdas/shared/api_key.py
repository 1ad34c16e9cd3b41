"""The partner API key shared by the consumer (sender) and the partner API (checker)."""

from __future__ import annotations

import json
from typing import Final

API_KEY_HEADER: Final = "x-api-key"
# When the secret is a JSON document (e.g. CDK generateSecretString with a template), the key lives here.
API_KEY_JSON_FIELD: Final = "apiKey"


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
