"""What the event buses carry: detail-types, producers (the ``source`` suffix) and the side-effects tag.

The detail models of the domain events live with the consumers that parse them (lambdas/shared/events.py,
pydantic), which checks at import that its registry holds exactly ``DETAIL_TYPES``.
"""

from __future__ import annotations

from typing import Final

# Domain events on the service bus, put by the ingestion API (``<service_name>.ingestion``).
INGESTION: Final = "ingestion"
ORDER_CANCELLED: Final = "OrderCancelled"
PAYMENT_RECEIVED: Final = "PaymentReceived"
CUSTOMER_UPDATED: Final = "CustomerUpdated"
DETAIL_TYPES: Final[tuple[str, ...]] = (ORDER_CANCELLED, PAYMENT_RECEIVED, CUSTOMER_UPDATED)

# Circuit openings, announced by the callers' breakers (``<service_name>.circuits``) to start the circuit
# controller (lambdas/shared/circuit_events.py).
CIRCUITS_PRODUCER: Final = "circuits"
CIRCUIT_OPENED: Final = "CircuitOpened"


def circuit_events_source(service_name: str) -> str:
    """The EventBridge ``source`` of circuit events in the service ``service_name`` (never ``ingestion``:
    the ingestion rules cannot match them, so an announcement cannot loop back into the work queues)."""
    return f"{service_name}.{CIRCUITS_PRODUCER}"


# Tag on a subscriber's rule whose processing has side effects outside the service (its value says
# what they are): stacks/event_fanout.py sets it, and a replay to such a rule needs
# allow_side_effects (ops replay, ops/replay.py).
SIDE_EFFECTS_TAG: Final = "side-effects"
