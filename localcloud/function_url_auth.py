"""The IAM check a function URL with ``AuthType AWS_IAM`` makes before its function runs, for the local twins.

The demo partners sit behind IAM-authorized function URLs; locally a fault-injecting twin stands in for
them, so it checks what Lambda would: a SigV4 signature for service ``lambda`` in the region, made with
the credentials the emulator hands the functions, over this very request (method, path, signed headers,
body). Anything else gets the 403 a function URL answers, before any fault or the partner sees it.
Grants (``lambda:InvokeFunctionUrl``) are checked on the template by tests/infra, not here.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdas.shared.request_signing import FUNCTION_URL_SERVICE as SERVICE

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class FunctionUrlIamAuth:
    region: str
    access_key: str
    secret_key: str
    token: str | None = None

    def refusal(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the request is refused, or ``None`` when it is signed as Lambda requires."""
        lowered = {name.lower(): value for name, value in headers.items()}
        match = _AUTHORIZATION.match(lowered.get("authorization", ""))
        if match is None:
            return "missing or malformed SigV4 Authorization header"
        if match["key"] != self.access_key:
            return "signed with unknown credentials"
        if (match["region"], match["service"]) != (self.region, SERVICE):
            return f"signed for {match['service']} in {match['region']}, not {SERVICE} in {self.region}"
        timestamp = lowered.get("x-amz-date", "")
        if not timestamp.startswith(match["date"]):
            return "X-Amz-Date does not match the credential scope"
        signed_names = match["headers"].split(";")
        missing = [name for name in signed_names if name not in lowered]
        if missing:
            return f"signed headers not sent: {', '.join(missing)}"
        request = AWSRequest(
            method=method, url=url, data=body, headers={name: lowered[name] for name in signed_names}
        )
        request.context["timestamp"] = timestamp
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.token), SERVICE, self.region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return "the signature does not match the request"
        return None
