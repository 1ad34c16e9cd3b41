"""Event contracts: every event type the service bus carries, defined once.

A contract names the EventBridge ``detail-type``, the producer whose ``source`` the event
carries and the pydantic model of its ``detail``. Everything else derives from it:

- the API's request schema, schemas/event.schema.json, is generated from these models
  (``python -m stacks.event_contracts``; a unit test fails if the file drifts), so a malformed
  event gets a 400 at the gateway and never reaches the bus;
- the EventBridge rules route on the contracts' detail-types and source;
- consumers parse what their queue delivers with :func:`parse_event`.

This module lives in ``lambdas/`` because consumer functions import it at run time and only
``lambdas/`` is packaged into the function asset. It depends on pydantic and lambdas.contracts alone.

Evolving a contract: add optional fields only. Details are strict (unknown fields are
rejected, as ``additionalProperties: false`` does at the gateway), and the archive keeps old
events for replay, so a removed or retyped field needs a new detail-type (e.g.
``OrderCancelled.v2``) that consumers subscribe to alongside the old one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lambdas.contracts.events import (
    CUSTOMER_UPDATED,
    DETAIL_TYPES,
    INGESTION,
    ORDER_CANCELLED,
    PAYMENT_RECEIVED,
)
from lambdas.shared.models import AmountCents, Currency, Email, Identifier, Text

# The only producer today: API Gateway stamps ``<service_name>.ingestion`` (contracts.events.INGESTION)
# on every event it puts on the bus (ServiceConfig.event_source), so producers cannot impersonate one another.

# RFC 3339 UTC timestamp. A pattern rather than pydantic's datetime so the gateway (draft-04,
# no enforced ``format``) and the consumers accept exactly the same strings.
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"

Timestamp = Annotated[str, Field(pattern=TIMESTAMP_PATTERN, description="UTC, RFC 3339")]


# -- details ------------------------------------------------------------------------------------


class _Detail(BaseModel):
    """An event detail: strict, and an optional field is omitted, never ``null``.

    The generated gateway schema declares optional fields with their plain type (draft-04 has
    no "absent or string" without also admitting null), so null is refused here too. Strict
    types: the gateway does not coerce ``"yes"`` to true or ``"4999"`` to 4999, nor does this.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _omit_instead_of_null(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            nulls = sorted(str(key) for key, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"omit optional fields instead of sending null: {', '.join(nulls)}")
        return data


class OrderCancelled(_Detail):
    """An order was cancelled: stop fulfilling it, tell the customer."""

    orderId: Identifier
    customerId: Identifier
    reason: Literal["customer_request", "payment_failed", "out_of_stock", "fraud_suspected"]
    cancelledAt: Timestamp


class PaymentReceived(_Detail):
    """A payment for an order settled: release it for fulfilment, book it in the ledger."""

    paymentId: Identifier
    orderId: Identifier
    amountCents: AmountCents
    currency: Currency
    method: Literal["card", "bank_transfer", "wallet"]
    receivedAt: Timestamp


class CustomerUpdated(_Detail):
    """A customer's contact details changed (a thin event: only the changed fields are sent)."""

    customerId: Identifier
    email: Email | None = None
    displayName: Annotated[Text, Field(min_length=1, max_length=128)] | None = None
    marketingOptIn: bool | None = None


# -- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventContract:
    """One event type: what it is called on the bus, who sends it, what its detail holds."""

    detail_type: str
    detail: type[_Detail]
    # Detail fields that identify the business fact; with the detail-type they form the
    # idempotency key, so EventBridge's at-least-once redeliveries are processed once.
    key_fields: tuple[str, ...]
    producer: str = INGESTION

    def source(self, service_name: str) -> str:
        """The EventBridge ``source`` of this event in the service ``service_name``."""
        return f"{service_name}.{self.producer}"

    def business_key(self, fields: object) -> str:
        """``<detail-type>:<key field values>``, read from ``fields`` (the detail, or a model that
        carries its key fields, e.g. the fulfilment order built from a PaymentReceived).

        The business fact itself: the same for every redelivery, redrive and replay of the event,
        so side effects keyed on it happen once however often the event is processed.
        """
        if not self.key_fields:
            raise ValueError(f"{self.detail_type} has no key fields: its events have no business key")
        values = [getattr(fields, name, None) for name in self.key_fields]
        if missing := [name for name, value in zip(self.key_fields, values, strict=True) if value is None]:
            raise ValueError(f"no {', '.join(missing)}: cannot key on the {self.detail_type}")
        return ":".join((self.detail_type, *(str(value) for value in values)))

    @property
    def description(self) -> str:
        return " ".join((self.detail.__doc__ or self.detail_type).split())


CONTRACTS: tuple[EventContract, ...] = (
    EventContract(ORDER_CANCELLED, OrderCancelled, key_fields=("orderId",)),
    EventContract(PAYMENT_RECEIVED, PaymentReceived, key_fields=("paymentId",)),
    # Several updates per customer are expected: the event id tells them apart.
    EventContract(CUSTOMER_UPDATED, CustomerUpdated, key_fields=()),
)
BY_DETAIL_TYPE: Mapping[str, EventContract] = {c.detail_type: c for c in CONTRACTS}
# The names the stacks route on (lambdas.contracts.events): a model for each, in the same order.
if tuple(BY_DETAIL_TYPE) != DETAIL_TYPES:
    raise RuntimeError(f"event models {tuple(BY_DETAIL_TYPE)} are not the contracts' {DETAIL_TYPES}")


def contract_for(detail_model: type[BaseModel]) -> EventContract:
    """The contract whose detail is ``detail_model`` (refer to an event type by its model, not its name)."""
    for contract in CONTRACTS:
        if detail_model is contract.detail:
            return contract
    raise KeyError(f"{detail_model.__name__} is not an event contract")


def contract_of(detail: BaseModel) -> EventContract:
    return contract_for(type(detail))


def publish_request(detail: BaseModel) -> dict[str, Any]:
    """The ``POST /events`` body that publishes ``detail`` (the gateway adds the source)."""
    return {
        "detailType": contract_of(detail).detail_type,
        "detail": detail.model_dump(mode="json", exclude_none=True),
    }


# -- the consumer side --------------------------------------------------------------------------


class InvalidEventError(ValueError):
    """The message is not an event this service accepts: poison, never worth a retry."""


class EventEnvelope(BaseModel):
    """The EventBridge envelope an SQS target receives as the message body."""

    # Tolerant reader: EventBridge may add envelope fields without breaking consumers.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Required: what routing, parsing and idempotency rely on. The rest is informational.
    id: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type")
    source: str
    detail: dict[str, Any]
    version: str = "0"
    time: str | None = None
    account: str | None = None
    region: str | None = None
    resources: list[str] = Field(default_factory=list)
    # Present only on events replayed from the archive (the name of the replay).
    replay_name: str | None = Field(default=None, alias="replay-name")


@dataclass(frozen=True)
class ReceivedEvent:
    envelope: EventEnvelope
    contract: EventContract
    detail: BaseModel

    @property
    def is_replay(self) -> bool:
        return self.envelope.replay_name is not None

    @property
    def idempotency_key(self) -> str:
        """Deduplicates redeliveries of one event; a replay is deliberately a new key.

        A replay exists to process again what was processed wrongly, so the key carries the
        replay's name: each replay runs once per event, retries inside it stay deduplicated.
        Calls with side effects outside this service (a partner charge) must not use it: they
        key on :meth:`EventContract.business_key`, which a replay does not change.
        """
        if self.contract.key_fields:
            identity = self.contract.business_key(self.detail)
        else:
            identity = f"{self.contract.detail_type}:{self.envelope.id}"
        if self.envelope.replay_name:
            identity += f"#replay:{self.envelope.replay_name}"
        return identity


def parse_event(body: str | bytes | Mapping[str, Any], *, source: str) -> ReceivedEvent:
    """Validate an EventBridge event against its contract; raises :class:`InvalidEventError`.

    ``source`` is the only source the consumer accepts (its EVENT_SOURCE setting): the rules
    already filter on it, so anything else means a misrouted or forged message.
    """
    try:
        raw = json.loads(body) if isinstance(body, str | bytes) else dict(body)
        envelope = EventEnvelope.model_validate(raw)
    except (ValueError, TypeError) as error:  # ValidationError is a ValueError
        raise InvalidEventError(f"not an EventBridge event: {error}") from None
    except RecursionError:  # nested deeper than the parser goes: it would fail the same way every time
        raise InvalidEventError("not an EventBridge event: JSON nested too deeply") from None
    if envelope.source != source:
        raise InvalidEventError(f"unexpected source {envelope.source!r} (expected {source!r})")
    contract = BY_DETAIL_TYPE.get(envelope.detail_type)
    if contract is None:
        raise InvalidEventError(f"unknown detail-type {envelope.detail_type!r}")
    try:
        detail = contract.detail.model_validate(envelope.detail)
    except ValidationError as error:
        raise InvalidEventError(f"{contract.detail_type} detail is invalid: {error}") from None
    return ReceivedEvent(envelope=envelope, contract=contract, detail=detail)
