"""Message and partner-API contracts: what a caller sends and reads, shared with the demo partner.

The ``Order`` rules are mirrored by schemas/order.schema.json (API Gateway request validation);
a test keeps the two in agreement, so change both together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from lambdas.contracts.api import REPLAYED_HEADER

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]+$"
SKU_PATTERN = r"^[A-Z0-9-]{3,32}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_AMOUNT_CENTS = 100_000_000
MAX_ITEMS = 50
MAX_QUANTITY = 1000

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]

# The producer's Idempotency-Key, the partner's routes and headers: lambdas.contracts.api.

# One character of free text: anything but a control character or a lone UTF-16 surrogate ("\ud800" is
# valid JSON that no UTF-8 encoder can write, so it would pass the gateway and fail after the 202). The
# second branch is a surrogate pair, which is how an ECMA 262 regex sees an emoji; Java and Python see it
# as one code point outside the range. Rust's regex (pydantic's) cannot express surrogates: the models
# check these patterns with Python's re (``matching``) and the schemas carry them for the gateway.
_TEXT_CHAR = r"(?:[^\u0000-\u001f\u007f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])"
_EMAIL_CHAR = r"(?:[^@\u0000-\u0020\u007f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])"
TEXT_PATTERN = rf"^{_TEXT_CHAR}*$"
EMAIL_PATTERN = rf"^{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+$"


def matching(pattern: str) -> AfterValidator:
    """A validator that checks ``pattern`` against the whole value (``$`` means the end, as in ECMA 262)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(f"must match {pattern}")
        return value

    return AfterValidator(check)


# The pattern in the JSON Schema (the gateway's model), the same pattern checked here.
Text = Annotated[str, Field(json_schema_extra={"pattern": TEXT_PATTERN}), matching(TEXT_PATTERN)]
Email = Annotated[
    str, Field(max_length=254, json_schema_extra={"pattern": EMAIL_PATTERN}), matching(EMAIL_PATTERN)
]


AmountCents = Annotated[int, Field(ge=1, le=MAX_AMOUNT_CENTS, strict=True)]
Currency = Annotated[str, Field(pattern=CURRENCY_PATTERN)]


class _Strict(BaseModel):
    # Producers must not smuggle fields past validation; the JSON Schema says additionalProperties: false.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderItem(_Strict):
    sku: Annotated[str, Field(pattern=SKU_PATTERN)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]


class Order(_Strict):
    """The order message accepted by the API and carried on the queue."""

    orderId: Identifier
    customerId: Identifier
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ITEMS)]
    amountCents: AmountCents
    currency: Currency


class ChargeRequest(_Strict):
    """Body of ``POST /charges`` on the partner API (sent with an ``Idempotency-Key`` header)."""

    orderId: Identifier
    amountCents: AmountCents
    currency: Currency

    @classmethod
    def for_order(cls, order: Order) -> ChargeRequest:
        return cls(orderId=order.orderId, amountCents=order.amountCents, currency=order.currency)


class ChargeResponse(BaseModel):
    """Body returned by ``POST /charges``; a replay of the same Idempotency-Key returns the same chargeId."""

    # Tolerant reader: the partner may add fields without breaking the consumer.
    model_config = ConfigDict(extra="ignore", frozen=True)

    chargeId: Annotated[str, Field(min_length=1)]
    orderId: Identifier
    amountCents: AmountCents
    currency: Currency
    status: Literal["succeeded"] = "succeeded"


class ErrorResponse(BaseModel):
    """Body of every non-2xx response from the partner API."""

    model_config = ConfigDict(frozen=True)

    error: str
    message: str = ""


# ------------------------------------------------------------------------------ partner API routes


def replayed_by_partner(headers: Mapping[str, str]) -> bool:
    """The partner's response ``headers`` say it replayed the answer to an earlier request with the key."""
    replayed = {name.lower(): value for name, value in headers.items()}.get(REPLAYED_HEADER.lower())
    return replayed == "true"


# Ids the partner hands out (chargeId, shipmentId): opaque to clients, bounded so they fit a header or a key.
PartnerId = Annotated[str, Field(min_length=1, max_length=128)]


# ------------------------------------------------------------------------------ shipment / notification


class ShipmentRequest(BaseModel):
    """Body of ``POST /shipments``: ship a paid order (``chargeId`` is the capture it ships against)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orderId: Identifier
    chargeId: PartnerId
    customerId: Identifier | None = None


class ShipmentResponse(BaseModel):
    """Body returned by ``POST /shipments``; a replay of the same Idempotency-Key returns the same shipmentId."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    shipmentId: PartnerId
    orderId: Identifier
    chargeId: PartnerId
    status: Literal["created"] = "created"


# Who uses which template: the fulfilment Notify task sends order_shipped (lambdas/fulfilment/tasks.py),
# the notifications consumer order_cancelled and customer_updated (lambdas/notifications_consumer).
NotificationTemplate = Literal["order_shipped", "order_cancelled", "customer_updated"]
# template -> the fields it needs; a field a template does not name must be absent.
NOTIFICATION_FIELDS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    # (required, optional). PaymentReceived carries no customerId: the partner resolves it from the order.
    "order_shipped": (frozenset({"orderId", "shipmentId"}), frozenset({"customerId"})),
    "order_cancelled": (frozenset({"orderId", "customerId"}), frozenset()),
    "customer_updated": (frozenset({"customerId"}), frozenset()),
}


class NotificationRequest(BaseModel):
    """Body of ``POST /notifications``: ids only, the partner resolves the recipient and renders the template.

    ``order_shipped``: orderId + shipmentId (customerId optional); ``order_cancelled``: orderId +
    customerId; ``customer_updated``: customerId. Other fields for a template are a 400.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: NotificationTemplate
    orderId: Identifier | None = None
    customerId: Identifier | None = None
    shipmentId: PartnerId | None = None

    @model_validator(mode="after")
    def _fields_match_the_template(self) -> NotificationRequest:
        required, optional = NOTIFICATION_FIELDS[self.template]
        present = {
            name for name in ("orderId", "customerId", "shipmentId") if getattr(self, name) is not None
        }
        if missing := sorted(required - present):
            raise ValueError(f"{self.template} needs {', '.join(missing)}")
        if unexpected := sorted(present - required - optional):
            raise ValueError(f"{self.template} takes no {', '.join(unexpected)}")
        return self


class NotificationResponse(BaseModel):
    """Body returned by ``POST /notifications``; a replay returns the same notificationId (sent once)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notificationId: PartnerId
    template: NotificationTemplate
    orderId: Identifier | None = None
    customerId: Identifier | None = None
    status: Literal["queued"] = "queued"
