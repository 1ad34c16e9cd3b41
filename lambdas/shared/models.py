"""Message and partner-API contracts.

The ``Order`` rules are mirrored by schemas/order.schema.json (API Gateway request validation);
a test keeps the two in agreement, so change both together.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-]+$"
SKU_PATTERN = r"^[A-Z0-9-]{3,32}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_AMOUNT_CENTS = 100_000_000
MAX_ITEMS = 50
MAX_QUANTITY = 1000

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]
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
