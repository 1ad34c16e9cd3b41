"""DynamoDB conditional writes are atomic, as on AWS (moto checks the condition and writes unlocked)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["install_dynamodb_atomic_writes"]

_DYNAMODB_ITEM_LOCK = threading.RLock()
_DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)
_ORIGINAL_DYNAMODB_OPERATIONS: dict[str, Callable[..., Any]] = {}


def install_dynamodb_atomic_writes() -> None:
    """Make each DynamoDB item operation atomic, as DynamoDB's conditional writes are.

    Works around: moto 5.2.5's ``DynamoDBBackend.update_item`` / ``put_item`` / ``delete_item`` /
    ``transact_write_items`` evaluate the ``ConditionExpression`` and then write, with no lock between.
    Threads of one process (Step Functions executions, the local cloud's consumer slots, the threaded
    server's request handlers) interleave there, so several callers racing a condition such as
    ``attribute_not_exists(owner)`` can all succeed: the breaker's half-open election let two probers
    through, and idempotency records could be claimed twice. On AWS exactly one wins.

    The patch runs those operations, and the reads (so a read never sees half an update), under one
    process-wide re-entrant lock. Verified by ``tests/statemachines/test_moto_patches.py``: with a
    tiny thread switch interval, threads racing one conditional write produce exactly one winner per
    item (without the patch, almost every round had several).

    Idempotent.
    """
    from moto.dynamodb.models import DynamoDBBackend

    with _DYNAMODB_ITEM_LOCK:
        if _ORIGINAL_DYNAMODB_OPERATIONS:
            return
        for name in _DYNAMODB_ITEM_OPERATIONS:
            original = getattr(DynamoDBBackend, name)
            _ORIGINAL_DYNAMODB_OPERATIONS[name] = original
            setattr(DynamoDBBackend, name, _serialised(original))


def _serialised(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def _locked(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_ITEM_LOCK:
            return operation(*args, **kwargs)

    return _locked
