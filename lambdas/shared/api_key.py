"""The partner API key shared by the callers (senders) and the partner API (checker).

Callers hold an :class:`ApiKeyProvider` (the order and notifications consumers, the fulfilment tasks):
the key comes from the Powertools Parameters cache, re-read from Secrets Manager once it is older than
``API_KEY_SECRET_MAX_AGE_SECONDS``, so a rotated key reaches warm execution environments without a
redeploy. The dependency client also asks for one forced re-read when the partner answers 401/403
(``refresh``), at most once per ``API_KEY_MIN_REFRESH_SECONDS`` per environment, so a wrong key cannot
turn every record into a Secrets Manager call. The partner API checks the key against ``API_KEY_HEADER``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from aws_lambda_powertools.utilities import parameters

from lambdas.shared import aws

API_KEY_HEADER: Final = "x-api-key"
# When the secret is a JSON document (e.g. CDK generateSecretString with a template), the key lives here.
API_KEY_JSON_FIELD: Final = "apiKey"
# How stale a cached key may get: a rotation reaches every warm environment within this.
API_KEY_SECRET_MAX_AGE_SECONDS: Final = 300
# Forced re-reads (after a 401/403) happen at most this often per environment.
API_KEY_MIN_REFRESH_SECONDS: Final = 30


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


class ApiKeyProvider:
    """The partner API key from a Secrets Manager secret, cached with a max age (a ``CredentialSource``)."""

    def __init__(
        self,
        secret_arn: str,
        *,
        max_age_seconds: int = API_KEY_SECRET_MAX_AGE_SECONDS,
        min_refresh_seconds: float = API_KEY_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_arn = secret_arn
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._last_refresh: float | None = None
        self._secrets: parameters.SecretsProvider | None = None

    def get(self) -> str:
        return self._read(force=False)

    def headers(self) -> Mapping[str, str]:
        return {API_KEY_HEADER: self.get()}

    def refresh(self) -> bool:
        """Force one re-read (rate-limited); True when the key changed."""
        now = self._clock()
        if self._last_refresh is not None and now - self._last_refresh < self._min_refresh:
            return False
        self._last_refresh = now
        before = self.get()
        return self._read(force=True) != before

    def _read(self, *, force: bool) -> str:
        if self._secrets is None:  # its client comes from the environment's shared session
            self._secrets = parameters.SecretsProvider(boto3_session=aws.session())
        secret = self._secrets.get(self.secret_arn, max_age=self._max_age, force_fetch=force)
        if not isinstance(secret, str | bytes):
            raise ValueError("API key secret has no string value")
        return parse_api_key_secret(secret if isinstance(secret, str) else secret.decode())


def api_key_provider(settings: HasApiKeySecret) -> ApiKeyProvider | None:
    """The provider for the configured secret (read now, so a missing secret fails the cold start)."""
    if settings.dependency_api_key_secret_arn is None:
        return None
    provider = ApiKeyProvider(settings.dependency_api_key_secret_arn)
    provider.get()
    return provider


def load_api_key(settings: HasApiKeySecret) -> str | None:
    """The key as it is now, for a caller that reads it once (prefer ``api_key_provider``)."""
    provider = api_key_provider(settings)
    return provider.get() if provider is not None else None
