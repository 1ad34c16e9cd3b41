"""Domain logic of the order consumer: validate an order message, charge it through the partner API."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from lambdas.contracts.api import (
    CHARGES_PATH,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_IDEMPOTENCY_KEY_LENGTH,
)
from lambdas.shared.dependency_client import DependencyClient
from lambdas.shared.models import ChargeRequest, ChargeResponse, Order
from lambdas.shared.poison import PoisonMessageError


class InvalidOrderError(PoisonMessageError):
    """The message can never be processed as it is (bad JSON or schema). ``reason`` is machine-readable."""


class UnconfirmedChargeError(Exception):
    """The partner answered 2xx but the body does not confirm this order's charge.

    Retrying is safe: the same Idempotency-Key makes the partner return the original charge.
    """


class ChargeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    orderId: str
    chargeId: str
    idempotencyKey: str
    attempts: int


def parse_order(body: str) -> Order:
    """Parse an SQS body into an Order, or raise InvalidOrderError (invalid_json / schema_violation)."""
    try:
        return Order.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise InvalidOrderError("invalid_json", errors[0]["msg"]) from None
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:10])
        raise InvalidOrderError("schema_violation", detail) from None


def validate_idempotency_key(key: str) -> str:
    """Producer-supplied keys travel to the partner as a header: the gateway's rule, checked again for
    messages that reached the queue another way (a redrive, a direct send)."""
    if re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is None:
        raise InvalidOrderError(
            "invalid_idempotency_key",
            f"must be 1..{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (0x21-0x7E)",
        )
    return key


_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/([^/]+)/.+$")
_IAM_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):((?:user|role)/.+)$")


def producer_scope(principal_arn: str) -> str:
    """Who sent an order, the same across the producer's sessions: ``<account>:role/<name>`` for an
    assumed role (its session name changes with every session, the role does not), ``<account>:user/...``
    for an IAM user; any other principal as it is."""
    if match := _ASSUMED_ROLE.match(principal_arn):
        return f"{match[1]}:role/{match[2]}"
    if match := _IAM_PRINCIPAL.match(principal_arn):
        return f"{match[1]}:{match[2]}"
    return principal_arn


def scoped_idempotency_key(producer: str | None, key: str) -> str:
    """The key an order is charged under, here and at the partner: the producer's key within its scope.

    Two producers may pick the same key for different orders; scoped, neither is refused as a reuse nor
    answered with the other's charge. Hashed, so it stays a valid header of fixed length (64 hex).
    Messages without a producer (sent before the gateway stamped one, or not through it) keep their key,
    so a message enqueued before an upgrade is charged under the key it may already have been charged with.
    """
    if not producer:
        return key
    return hashlib.sha256(f"{producer_scope(producer)}\n{key}".encode()).hexdigest()


def charge_order(
    client: DependencyClient,
    order: Order,
    *,
    idempotency_key: str,
    remaining_ms: Callable[[], int],
    max_attempts: int | None = None,
) -> ChargeResult:
    """POST {base}/charges once (with the client's retries); the Idempotency-Key makes retries safe.

    The client adds the API key (its ``credentials``).
    """
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key}
    request = ChargeRequest.for_order(order)
    response = client.post(
        CHARGES_PATH,
        json=request.model_dump(mode="json"),
        headers=headers,
        remaining_ms=remaining_ms,
        max_attempts=max_attempts,
    )
    if response.from_fallback:
        # A cached body is never proof of a charge; a payments dependency must be configured critical.
        raise UnconfirmedChargeError(f"{client.policy.name} returned a fallback, not a charge")
    try:
        charge = ChargeResponse.model_validate(response.body)
    except ValidationError as exc:
        raise UnconfirmedChargeError(f"unexpected charge response: {exc.error_count()} error(s)") from exc
    if (charge.orderId, charge.amountCents, charge.currency) != (
        order.orderId,
        order.amountCents,
        order.currency,
    ):
        raise UnconfirmedChargeError(f"charge {charge.chargeId} does not match order {order.orderId}")
    return ChargeResult(
        orderId=order.orderId,
        chargeId=charge.chargeId,
        idempotencyKey=idempotency_key,
        attempts=response.attempts,
    )
