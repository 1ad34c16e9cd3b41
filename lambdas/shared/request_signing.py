"""SigV4 for HTTP calls to an IAM-authorized endpoint (a Lambda function URL with ``AuthType AWS_IAM``).

The demo twins of the dependencies sit behind function URLs. Open (``AuthType NONE``), anyone on the
internet could exhaust their reserved concurrency and so open the circuit and pause the consumers; with
IAM auth only principals granted ``lambda:InvokeFunctionUrl`` get through, and each request is signed with
the caller's own role credentials (refreshed by boto3 as they rotate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from requests import PreparedRequest
from requests.auth import AuthBase

from lambdas.shared import aws

# The caller's environment names the SigV4 service of its dependency's endpoint
# (lambdas.contracts.environment.DEPENDENCY_SIGNING_SERVICE; a function URL's is api.FUNCTION_URL_SERVICE).
# Hop-by-hop and transport headers a connection may rewrite: signing them would break the signature.
UNSIGNED_HEADERS: Final = frozenset({"connection", "accept-encoding", "user-agent", "content-length"})


class SigV4RequestAuth(AuthBase):
    """``requests`` auth that signs each prepared request for ``service`` in ``region``."""

    def __init__(self, service: str, region: str, credentials: Callable[[], Any]) -> None:
        """``credentials``: returns botocore credentials (``boto3.Session().get_credentials``)."""
        self.service = service
        self.region = region
        self._credentials = credentials

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        credentials = self._credentials()
        if credentials is None:
            # Unsigned, the endpoint answers 403: a configuration failure the caller reports as such.
            return request
        body = request.body or b""
        # As the wire carries them: a header value given as bytes is Latin-1 text to HTTP.
        headers = {
            name: value.decode("latin-1") if isinstance(value, bytes) else value
            for name, value in request.headers.items()
            if name.lower() not in UNSIGNED_HEADERS
        }
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            data=body.encode() if isinstance(body, str) else body,
            headers=headers,
        )
        SigV4Auth(credentials.get_frozen_credentials(), self.service, self.region).add_auth(signed)
        for name, value in signed.headers.items():
            if name not in headers:  # Authorization, X-Amz-Date, X-Amz-Security-Token
                request.headers[name] = value
        return request


def signing_auth(service: str | None) -> SigV4RequestAuth | None:
    """Auth for a dependency whose policy names a ``signing_service``: the environment's role credentials."""
    if not service:
        return None
    shared = aws.session()
    return SigV4RequestAuth(service, shared.region_name, shared.get_credentials)
