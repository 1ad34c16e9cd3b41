"""Clients for one account/region/endpoint: a real account (``--profile``/``--region``) or the local cloud
(``--endpoint-url http://127.0.0.1:PORT``, every service on one endpoint, as moto's server serves them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@dataclass
class Aws:
    session: Any
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(
        cls, *, region: str | None = None, profile: str | None = None, endpoint_url: str | None = None
    ) -> Aws:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return cls(session=session, endpoint_url=endpoint_url)

    @property
    def region(self) -> str | None:
        region: str | None = self.session.region_name
        return region

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs: dict[str, Any] = {"config": CLIENT_CONFIG}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def queue_name_of_arn(arn: str) -> tuple[str, str]:
    """(queue name, account id) of ``arn:aws:sqs:region:account:name``."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn}")
    return parts[5], parts[4]
