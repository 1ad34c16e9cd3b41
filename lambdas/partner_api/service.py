"""The partner API's contract, shared by the Lambda partner and the local twin so both behave the same.

Routes:
    GET  /health   -> 200 {"status": "ok"}                       (no API key needed)
    POST /charges  -> 201 ChargeResponse                          (x-api-key + Idempotency-Key required)
                      same Idempotency-Key + same body -> same chargeId, header Idempotent-Replayed: true
                      same Idempotency-Key + different body -> 409
Errors are ``{"error": ..., "message": ...}`` with 400 (bad input), 401 (bad key), 404, 405 or 409.

The idempotency ledger is in memory: it lives as long as one execution environment (Lambda) or one
server (local twin). That is enough for a demo dependency; a real partner persists it.
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from lambdas.shared.api_key import API_KEY_HEADER
from lambdas.shared.models import ChargeRequest, ChargeResponse, ErrorResponse

IDEMPOTENCY_KEY_HEADER: Final = "idempotency-key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
MAX_BODY_BYTES: Final = 64 * 1024
JSON_HEADERS: Final = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))

    def encoded_body(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PartnerResult:
    """The response plus what happened, so the local twin can count side effects."""

    response: HttpResponse
    charge: ChargeResponse | None = None
    replayed: bool = False


def error_response(
    status: int, error: str, message: str = "", headers: Mapping[str, str] | None = None
) -> HttpResponse:
    return HttpResponse(
        status=status,
        body=ErrorResponse(error=error, message=message).model_dump(),
        headers={**JSON_HEADERS, **(headers or {})},
    )


class IdempotencyConflictError(Exception):
    """An Idempotency-Key was reused with a different request body."""


class ChargeLedger:
    """Thread-safe in-memory map Idempotency-Key -> (request, charge)."""

    def __init__(self, id_factory: Callable[[], str] | None = None) -> None:
        self._id_factory = id_factory or (lambda: f"ch_{uuid.uuid4().hex}")
        self._charges: dict[str, tuple[ChargeRequest, ChargeResponse]] = {}
        self._lock = threading.Lock()

    def charge(self, idempotency_key: str, request: ChargeRequest) -> tuple[ChargeResponse, bool]:
        """Return (charge, replayed). A replay returns the original charge without charging again."""
        with self._lock:
            existing = self._charges.get(idempotency_key)
            if existing is not None:
                original_request, original_charge = existing
                if original_request != request:
                    raise IdempotencyConflictError(idempotency_key)
                return original_charge, True
            charge = ChargeResponse(chargeId=self._id_factory(), **request.model_dump())
            self._charges[idempotency_key] = (request, charge)
            return charge, False

    def __len__(self) -> int:
        with self._lock:
            return len(self._charges)


class PartnerService:
    """Routes one request. Fault injection happens before this, in the Lambda handler or the twin."""

    def __init__(self, ledger: ChargeLedger | None = None) -> None:
        self.ledger = ledger or ChargeLedger()

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | str | None,
        api_key: str | None,
    ) -> PartnerResult:
        lowered = {name.lower(): value for name, value in headers.items()}
        path = path.split("?", 1)[0].rstrip("/") or "/"
        method = method.upper()
        if path == "/health":
            if method != "GET":
                return PartnerResult(error_response(405, "method_not_allowed"))
            return PartnerResult(HttpResponse(200, {"status": "ok"}))
        if path == "/charges":
            if method != "POST":
                return PartnerResult(error_response(405, "method_not_allowed"))
            if api_key is not None and not _key_matches(lowered.get(API_KEY_HEADER), api_key):
                return PartnerResult(
                    error_response(401, "unauthorized", f"missing or invalid {API_KEY_HEADER}")
                )
            return self._charge(lowered, body)
        return PartnerResult(error_response(404, "not_found", f"no route for {method} {path}"))

    def _charge(self, headers: Mapping[str, str], body: bytes | str | None) -> PartnerResult:
        key = (headers.get(IDEMPOTENCY_KEY_HEADER) or "").strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            return PartnerResult(
                error_response(400, "invalid_idempotency_key", "Idempotency-Key header required")
            )
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if len(raw) > MAX_BODY_BYTES:
            return PartnerResult(error_response(400, "invalid_request", "body too large"))
        try:
            request = ChargeRequest.model_validate_json(raw)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(part) for part in err["loc"]) or "body" for err in exc.errors())
            return PartnerResult(error_response(400, "invalid_request", f"invalid fields: {fields}"))
        try:
            charge, replayed = self.ledger.charge(key, request)
        except IdempotencyConflictError:
            return PartnerResult(
                error_response(409, "idempotency_conflict", "Idempotency-Key reused with a different body")
            )
        headers_out = dict(JSON_HEADERS)
        if replayed:
            headers_out[REPLAYED_HEADER] = "true"
        return PartnerResult(
            HttpResponse(201, charge.model_dump(), headers_out), charge=charge, replayed=replayed
        )


def fault_response(status: int, retry_after: str | None) -> HttpResponse:
    """The response for an injected fault (429 throttle or an injected error status)."""
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return error_response(429, "throttled", "slow down", headers)
    return error_response(status, "injected_fault", "injected by the fault profile")


def _key_matches(presented: str | None, expected: str) -> bool:
    # Constant-time comparison so the key cannot be guessed byte by byte from response timing.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
