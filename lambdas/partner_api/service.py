"""The partner API's contract, shared by the Lambda partner and the local twin so both behave the same.

Routes:
    GET  /health         -> 200 {"status": "ok"}                  (no API key needed)
    POST /charges        -> 201 ChargeResponse                    (x-api-key + Idempotency-Key required)
    POST /shipments      -> 201 ShipmentResponse                  (x-api-key + Idempotency-Key required)
    POST /notifications  -> 201 NotificationResponse              (x-api-key + Idempotency-Key required)
                            templates: order_shipped, order_cancelled, customer_updated (NOTIFICATION_FIELDS)
Dry run: a POST with header ``Dry-Run: true`` is checked exactly like the real call (API key,
Idempotency-Key, body) and answered ``200 {"dryRun": true, "route": ...}`` with the response header
``Dry-Run: true``, but creates nothing and records nothing in the ledger (so it never replays or conflicts
with a real call). The circuit controller's canary uses it; fault injection happens before routing, so a
dry run fails whenever the real call would.
Every POST route is idempotent the same way:
    same Idempotency-Key + same body      -> the original result, header Idempotent-Replayed: true
    same Idempotency-Key + different body -> 409
Each route has its own ledger: one key may be used once per route.
Errors are ``{"error": ..., "message": ...}`` with 400 (bad input), 401 (bad key), 404, 405 or 409.

Request bodies are strict (unknown fields are a 400, like ``ChargeRequest``); responses are read
tolerantly by clients (the partner may add fields).

The idempotency ledgers are in memory: they live as long as one execution environment (Lambda) or one
server (local twin). That is enough for a demo dependency; a real partner persists them.
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from lambdas.contracts.api import (
    CHARGES_PATH,
    IDEMPOTENCY_KEY_HEADER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    NOTIFICATIONS_PATH,
    REPLAYED_HEADER,
    SHIPMENTS_PATH,
)
from lambdas.shared.api_key import API_KEY_HEADER
from lambdas.shared.models import (
    ChargeRequest,
    ChargeResponse,
    ErrorResponse,
    NotificationRequest,
    NotificationResponse,
    ShipmentRequest,
    ShipmentResponse,
)

DRY_RUN_HEADER: Final = "Dry-Run"
MAX_BODY_BYTES: Final = 64 * 1024
JSON_HEADERS: Final = {"Content-Type": "application/json"}

# ------------------------------------------------------------------------------ responses


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
    shipment: ShipmentResponse | None = None
    notification: NotificationResponse | None = None


def error_response(
    status: int, error: str, message: str = "", headers: Mapping[str, str] | None = None
) -> HttpResponse:
    return HttpResponse(
        status=status,
        body=ErrorResponse(error=error, message=message).model_dump(),
        headers={**JSON_HEADERS, **(headers or {})},
    )


# ------------------------------------------------------------------------------ ledgers


class IdempotencyConflictError(Exception):
    """An Idempotency-Key was reused with a different request body."""


RequestT = TypeVar("RequestT", bound=BaseModel)
ResultT = TypeVar("ResultT", bound=BaseModel)


class IdempotentLedger(Generic[RequestT, ResultT]):
    """Thread-safe in-memory map Idempotency-Key -> (request, result) for one route."""

    def __init__(self, create: Callable[[RequestT], ResultT]) -> None:
        self._create = create
        self._entries: dict[str, tuple[RequestT, ResultT]] = {}
        self._lock = threading.Lock()

    def record(self, idempotency_key: str, request: RequestT) -> tuple[ResultT, bool]:
        """Return (result, replayed). A replay returns the original result without a second side effect."""
        with self._lock:
            existing = self._entries.get(idempotency_key)
            if existing is not None:
                original_request, original_result = existing
                if original_request != request:
                    raise IdempotencyConflictError(idempotency_key)
                return original_result, True
            result = self._create(request)
            self._entries[idempotency_key] = (request, result)
            return result, False

    def results(self) -> list[ResultT]:
        """Every result created (not replayed), oldest first."""
        with self._lock:
            return [result for _, result in self._entries.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ChargeLedger(IdempotentLedger[ChargeRequest, ChargeResponse]):
    """Idempotency-Key -> (request, charge)."""

    def __init__(self, id_factory: Callable[[], str] | None = None) -> None:
        new_id = id_factory or (lambda: f"ch_{uuid.uuid4().hex}")
        super().__init__(lambda request: ChargeResponse(chargeId=new_id(), **request.model_dump()))

    def charge(self, idempotency_key: str, request: ChargeRequest) -> tuple[ChargeResponse, bool]:
        """Return (charge, replayed). A replay returns the original charge without charging again."""
        return self.record(idempotency_key, request)


def _new_shipment(request: ShipmentRequest) -> ShipmentResponse:
    return ShipmentResponse(
        shipmentId=f"sh_{uuid.uuid4().hex}", orderId=request.orderId, chargeId=request.chargeId
    )


def _new_notification(request: NotificationRequest) -> NotificationResponse:
    return NotificationResponse(
        notificationId=f"nt_{uuid.uuid4().hex}",
        template=request.template,
        orderId=request.orderId,
        customerId=request.customerId,
    )


# ------------------------------------------------------------------------------ routing


class PartnerService:
    """Routes one request. Fault injection happens before this, in the Lambda handler or the twin."""

    def __init__(self, ledger: ChargeLedger | None = None) -> None:
        self.ledger = ledger or ChargeLedger()
        self.shipments: IdempotentLedger[ShipmentRequest, ShipmentResponse] = IdempotentLedger(_new_shipment)
        self.notifications: IdempotentLedger[NotificationRequest, NotificationResponse] = IdempotentLedger(
            _new_notification
        )
        # Each POST route: its request, the ledger that creates or replays its result, PartnerResult's field.
        self._routes: dict[str, tuple[type[BaseModel], IdempotentLedger[Any, Any], str]] = {
            CHARGES_PATH: (ChargeRequest, self.ledger, "charge"),
            SHIPMENTS_PATH: (ShipmentRequest, self.shipments, "shipment"),
            NOTIFICATIONS_PATH: (NotificationRequest, self.notifications, "notification"),
        }

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
        if path in self._routes:
            if method != "POST":
                return PartnerResult(error_response(405, "method_not_allowed"))
            if api_key is not None and not _key_matches(lowered.get(API_KEY_HEADER), api_key):
                return PartnerResult(
                    error_response(401, "unauthorized", f"missing or invalid {API_KEY_HEADER}")
                )
            if lowered.get(DRY_RUN_HEADER.lower(), "").strip().lower() == "true":
                return self._dry_run(path, lowered, body)
            return self._post(path, lowered, body)
        return PartnerResult(error_response(404, "not_found", f"no route for {method} {path}"))

    def _dry_run(self, path: str, headers: Mapping[str, str], body: bytes | str | None) -> PartnerResult:
        """Everything the real POST checks, then nothing: no charge, shipment or notification, no ledger entry."""
        model, _, _ = self._routes[path]
        checked = _checked_request(headers, body, model)
        if isinstance(checked, HttpResponse):
            return PartnerResult(checked)
        return PartnerResult(
            HttpResponse(200, {"dryRun": True, "route": path}, {**JSON_HEADERS, DRY_RUN_HEADER: "true"})
        )

    def _post(self, path: str, headers: Mapping[str, str], body: bytes | str | None) -> PartnerResult:
        """Create (or replay) the charge, shipment or notification of ``path``."""
        model, ledger, field = self._routes[path]
        outcome = _idempotent_post(headers, body, model, ledger)
        if isinstance(outcome, HttpResponse):
            return PartnerResult(outcome)
        result, response, replayed = outcome
        return PartnerResult(response, replayed=replayed, **{field: result})


def _idempotent_post(
    headers: Mapping[str, str],
    body: bytes | str | None,
    request_model: type[RequestT],
    ledger: IdempotentLedger[RequestT, ResultT],
) -> HttpResponse | tuple[ResultT, HttpResponse, bool]:
    """Validate key and body, then create or replay: an error response, or (result, 201 response, replayed)."""
    checked = _checked_request(headers, body, request_model)
    if isinstance(checked, HttpResponse):
        return checked
    key, request = checked
    try:
        result, replayed = ledger.record(key, request)
    except IdempotencyConflictError:
        return error_response(409, "idempotency_conflict", "Idempotency-Key reused with a different body")
    headers_out = dict(JSON_HEADERS)
    if replayed:
        headers_out[REPLAYED_HEADER] = "true"
    return result, HttpResponse(201, result.model_dump(exclude_none=True), headers_out), replayed


def _checked_request(
    headers: Mapping[str, str], body: bytes | str | None, request_model: type[RequestT]
) -> HttpResponse | tuple[str, RequestT]:
    """(Idempotency-Key, parsed body), or the 400 the real call would get."""
    key = (headers.get(IDEMPOTENCY_KEY_HEADER.lower()) or "").strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        return error_response(400, "invalid_idempotency_key", "Idempotency-Key header required")
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_BODY_BYTES:
        return error_response(400, "invalid_request", "body too large")
    try:
        request = request_model.model_validate_json(raw)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(part) for part in err["loc"]) or "body" for err in exc.errors())
        return error_response(400, "invalid_request", f"invalid fields: {fields}")
    return key, request


def fault_response(status: int, retry_after: str | None) -> HttpResponse:
    """The response for an injected fault (429 throttle or an injected error status)."""
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return error_response(429, "throttled", "slow down", headers)
    return error_response(status, "injected_fault", "injected by the fault profile")


def _key_matches(presented: str | None, expected: str) -> bool:
    # Constant-time comparison so the key cannot be guessed byte by byte from response timing.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
