"""The SigV4 check AWS makes before an IAM-authorized call goes anywhere, for the local cloud's doors.

Two doors take IAM-signed calls: the ingestion API (every method ``AWS_IAM``, service ``execute-api``) and
the demo partners' function URLs (``AuthType AWS_IAM``, service ``lambda``), for which the local
fault-injecting twins stand in. Each checks what AWS would: a SigV4 signature for its service and region,
made with credentials it knows, over this very request (method, path, signed headers, body), and learns
who the caller is from the access key. Grants (``execute-api:Invoke``, ``lambda:InvokeFunctionUrl``, the
API's resource policy) are checked on the template by tests/infra, not here: the emulator has no IAM.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Principal:
    """Credentials the local cloud hands out, and who a call signed with them comes from."""

    access_key: str
    secret_key: str
    token: str | None
    account_id: str
    # As API Gateway reports an assumed role: $context.identity.userArn and .caller.
    user_arn: str = ""
    caller: str = ""

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key, self.token)


@dataclass(frozen=True)
class Verdict:
    principal: Principal | None  # who signed, when the signature holds
    refusal: str | None  # why not, otherwise
    signed: bool  # False: no SigV4 Authorization header at all


class SigV4Verifier:
    def __init__(self, service: str, region: str, principals: Iterable[Principal]) -> None:
        self.service = service
        self.region = region
        self._principals = {p.access_key: p for p in principals}

    def verify(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Verdict:
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization", "")
        match = _AUTHORIZATION.match(authorization)
        if match is None:
            why = "malformed SigV4 Authorization header" if authorization else "no SigV4 Authorization header"
            return Verdict(None, why, signed=bool(authorization))
        principal = self._principals.get(match["key"])
        if principal is None:
            return Verdict(None, "signed with unknown credentials", signed=True)
        if (match["region"], match["service"]) != (self.region, self.service):
            return Verdict(
                None,
                f"signed for {match['service']} in {match['region']}, not {self.service} in {self.region}",
                signed=True,
            )
        timestamp = lowered.get("x-amz-date", "")
        if not timestamp.startswith(match["date"]):
            return Verdict(None, "X-Amz-Date does not match the credential scope", signed=True)
        signed_names = match["headers"].split(";")
        missing = [name for name in signed_names if name not in lowered]
        if missing:
            return Verdict(None, f"signed headers not sent: {', '.join(missing)}", signed=True)
        request = AWSRequest(
            method=method, url=url, data=body, headers={name: lowered[name] for name in signed_names}
        )
        request.context["timestamp"] = timestamp
        signer = SigV4Auth(principal.credentials, self.service, self.region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return Verdict(None, "the signature does not match the request", signed=True)
        return Verdict(principal, None, signed=True)

    def refusal(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the request is refused, or ``None`` when it is signed as the service requires."""
        return self.verify(method, url, headers, body).refusal
