"""Order status: the model and the DynamoDB repository, one source for the writer and the reader.

The order consumer writes an order's status as it goes; ``GET /orders/{id}`` (lambdas/order_status) reads it.

    accepted ──> processing ──> done
        │             │
        └─────────────┴──────> failed (reason) ──> done   (only after a fix and a redrive)

``accepted``    the consumer received a valid order (first sight of it);
``processing``  a charge is being attempted (written once per real attempt, not for duplicate deliveries);
``done``        the partner confirmed the charge (``chargeId``). Final: nothing moves it again;
``failed``      the order can never succeed as it is (``reason``: the consumer's quarantine reason). It can
                still become ``done`` when the cause was fixed and the order was redriven from the DLQ.

Every write is conditional on the current state (see ``ALLOWED_FROM``), so a late duplicate or a message
redelivered out of order cannot move an order backwards: a refused write is not an error, it returns False.

Table: partition key ``orderId`` (S); attribute ``expiresAt`` (N, epoch seconds) is the TTL attribute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared.models import Identifier

KEY_ATTRIBUTE: Final = "orderId"
TTL_ATTRIBUTE: Final = "expiresAt"
MAX_DETAIL_CHARS: Final = 512
DEFAULT_TTL_SECONDS: Final = 90 * 24 * 3600


_ATTRIBUTES: Final = (
    KEY_ATTRIBUTE,
    "status",
    "updatedAt",
    "acceptedAt",
    "attempts",
    "reason",
    "detail",
    "chargeId",
    TTL_ATTRIBUTE,
)


class OrderState(StrEnum):
    ACCEPTED = "accepted"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


# The states a record may be in for a write of the key state to apply (absent record: always allowed).
# Same-state writes are refused too (except processing: a retry after a transient failure refreshes it),
# so the first reason of a failure and the first chargeId are kept.
ALLOWED_FROM: Final[dict[OrderState, tuple[OrderState, ...]]] = {
    OrderState.ACCEPTED: (),
    OrderState.PROCESSING: (OrderState.ACCEPTED, OrderState.PROCESSING),
    OrderState.DONE: (OrderState.ACCEPTED, OrderState.PROCESSING, OrderState.FAILED),
    OrderState.FAILED: (OrderState.ACCEPTED, OrderState.PROCESSING),
}


class OrderStatus(BaseModel):
    """What ``GET /orders/{id}`` returns (and what the table holds, less the TTL)."""

    model_config = ConfigDict(frozen=True)

    orderId: Identifier
    status: OrderState
    updatedAt: str
    acceptedAt: str | None = None
    reason: str | None = None
    detail: str | None = None
    chargeId: str | None = None
    attempts: int = Field(default=0, ge=0)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OrderStatus:
        def s(name: str) -> str | None:
            value = item.get(name)
            return value["S"] if value and "S" in value else None

        attempts = item.get("attempts", {}).get("N")
        return cls(
            orderId=item[KEY_ATTRIBUTE]["S"],
            status=OrderState(item["status"]["S"]),
            updatedAt=s("updatedAt") or "",
            acceptedAt=s("acceptedAt"),
            reason=s("reason"),
            detail=s("detail"),
            chargeId=s("chargeId"),
            attempts=int(attempts) if attempts is not None else 0,
        )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OrderStatusRepository:
    """Conditional writes and consistent reads of order status on one table (low-level DynamoDB client).

    The caller owns the client and its botocore Config (timeouts and retries): the consumer and the
    status reader have different time budgets.
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    # ---------------------------------------------------------------------------------------- writes

    def accepted(self, order_id: str) -> bool:
        return self.transition(order_id, OrderState.ACCEPTED)

    def processing(self, order_id: str) -> bool:
        return self.transition(order_id, OrderState.PROCESSING)

    def done(self, order_id: str, charge_id: str) -> bool:
        return self.transition(order_id, OrderState.DONE, charge_id=charge_id)

    def failed(self, order_id: str, reason: str, detail: str | None = None) -> bool:
        return self.transition(order_id, OrderState.FAILED, reason=reason, detail=detail)

    def transition(
        self,
        order_id: str,
        state: OrderState,
        *,
        reason: str | None = None,
        detail: str | None = None,
        charge_id: str | None = None,
    ) -> bool:
        """Move ``order_id`` to ``state`` if the current state allows it. False when refused.

        Raises botocore errors other than the refused condition (the caller decides how much they matter).
        """
        now = self._clock()
        # Every attribute through a placeholder: DynamoDB reserves hundreds of words (STATUS among them).
        names = {f"#{name}": name for name in _ATTRIBUTES}
        values: dict[str, Any] = {
            ":state": {"S": state.value},
            ":now": {"S": _iso(now)},
            ":expires": {"N": str(int(now) + self.ttl_seconds)},
        }
        sets = [
            "#status = :state",
            "#updatedAt = :now",
            "#acceptedAt = if_not_exists(#acceptedAt, :now)",
            f"#{TTL_ATTRIBUTE} = :expires",
        ]
        removes: list[str] = []
        if state is OrderState.PROCESSING:
            sets.append("#attempts = if_not_exists(#attempts, :zero) + :one")
            values[":zero"], values[":one"] = {"N": "0"}, {"N": "1"}
        if state is OrderState.FAILED:
            sets.append("#reason = :reason")
            values[":reason"] = {"S": reason or "unknown"}
            if detail:
                sets.append("#detail = :detail")
                values[":detail"] = {"S": detail[:MAX_DETAIL_CHARS]}
        if state is OrderState.DONE:
            sets.append("#chargeId = :charge")
            values[":charge"] = {"S": charge_id or ""}
            removes += ["#reason", "#detail"]  # a failure that a redrive recovered is history, not status
        condition = f"attribute_not_exists(#{KEY_ATTRIBUTE})"
        allowed = ALLOWED_FROM[state]
        if allowed:
            placeholders = []
            for index, previous in enumerate(allowed):
                values[f":from{index}"] = {"S": previous.value}
                placeholders.append(f":from{index}")
            condition += f" OR #status IN ({', '.join(placeholders)})"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        used = {name: attr for name, attr in names.items() if name in expression or name in condition}
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={KEY_ATTRIBUTE: {"S": order_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=used,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # ---------------------------------------------------------------------------------------- reads

    def get(self, order_id: str) -> OrderStatus | None:
        """The order's status, or None if the consumer has never seen it (strongly consistent read)."""
        response = self.client.get_item(
            TableName=self.table_name, Key={KEY_ATTRIBUTE: {"S": order_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else OrderStatus.from_item(item)
