"""The circuit record as the whole fleet shares it: Powertools' DynamoDB persistence plus what it lacks.

Powertools (``aws_lambda_powertools.utilities.circuit_breaker``) keeps a circuit's state in one DynamoDB item,
caches it in each execution environment and counts failures in memory, per environment: with N environments
calling a dead dependency, up to N x threshold logical calls fail before the first one trips the circuit.
``FleetCircuitStore`` is that persistence layer with three additions, nothing else changed:

* **A fractional cache age on an injected clock.** Powertools caches until ``int(time.time()) + age`` (whole
  seconds: a "1 s" cache lasts anywhere from 0 to 1 s, and no age can be shorter than 1 s), so the age the
  stage configures is what an environment trusts here, to the millisecond (``cache_seconds``).
* **A fresh read** (``read_fresh``): a logical call re-checks the circuit before each retry, bypassing the
  cache, so a call stops retrying once another environment opened the circuit.
* **The fleet's failure streak**, an attribute of the circuit's own item (``fleet_failures``,
  ``lambdas.contracts.circuit.RECORD_FLEET_FAILURES``): every failed logical call made while the circuit is
  CLOSED adds one atomically (``add_failure``, which answers the new count), a success that knows of a streak
  clears it (``clear_failures``), both writes ``lambdas.contracts.circuit``'s (the module that owns the
  record and every write this project makes to it), and any change of state wipes it:
  Powertools opens and elects a prober with PutItem (the whole item), and its close and reopen updates
  remove it too (``_build_update_query``). The healthy path stays write-free: a success writes only when
  this environment last saw a streak.

Reads of the streak piggyback on the state reads (``fleet_failures`` answers what this environment last
read, written or was answered); a success clears the streak while this environment saw one within its cache
age (``streak_recent``), since other environments may have added to it after its last read. Every write of
the streak fails open: an error is logged and the call's outcome stands, and Powertools' own
per-environment counter still trips the circuit.

Every request to the table is timed (``slowest_request_ms``, the slowest of the last ``RECENT_REQUESTS``):
the bookkeeping after a call happens after the call's time budget, so a caller does it only when the time
left fits it (``DependencyClient``), and a busy table or host never pushes an invocation past its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from aws_lambda_powertools.utilities.circuit_breaker import CircuitState
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence
from aws_lambda_powertools.utilities.circuit_breaker.persistence.record import CircuitStateRecord
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.contracts import circuit as circuit_record
from lambdas.contracts import log_fields as lf
from lambdas.contracts.circuit import RECORD_FLEET_FAILURES

__all__ = ["FleetCircuitStore"]

STREAK_WRITE_FAILED_MESSAGE: Final = "circuit_fleet_streak_write_failed"
FRESH_READ_FAILED_MESSAGE: Final = "circuit_fresh_read_failed"

_logger = logging.getLogger(__name__)
_RECORD_SHAPE: Final = (
    circuit_record.RECORD_KEY,
    None,  # no sort key: the circuit name is the partition key
    circuit_record.RECORD_STATE,
    circuit_record.RECORD_FAILURE_COUNT,
    circuit_record.RECORD_OPENED_AT,
    circuit_record.RECORD_HALF_OPEN_OWNER,
    circuit_record.RECORD_PROBE_LEASE_EXPIRY,
    circuit_record.RECORD_EXPIRATION,
)


class FleetCircuitStore(CircuitBreakerDynamoDBPersistence):
    """Powertools' DynamoDB circuit persistence with a fractional cache age, fresh reads and a fleet streak.

    ``cache_seconds``: how long this environment trusts its cached circuit state (any fraction, 0: every
    read goes to the table). ``clock``: monotonic seconds (injected in tests). ``logger``: where a failed
    read or write of the streak is logged (a Powertools or stdlib logger). Other keywords go to
    ``CircuitBreakerDynamoDBPersistence`` (``boto3_client`` in practice); the key is the circuit name and the
    attribute names are Powertools' defaults, which ``lambdas.contracts.circuit`` names (anything else is a
    ValueError).
    """

    RECENT_REQUESTS: Final = 10

    def __init__(
        self,
        table_name: str,
        *,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
        **persistence: Any,
    ) -> None:
        if cache_seconds < 0:
            raise ValueError(f"cache_seconds must be >= 0, got {cache_seconds!r}")
        super().__init__(table_name, **persistence)
        shape = (
            self.key_attr,
            self.sort_key_attr,
            self.state_attr,
            self.failure_count_attr,
            self.opened_at_attr,
            self.half_open_owner_attr,
            self.probe_lease_expiry_attr,
            self.expiry_attr,
        )
        if shape != _RECORD_SHAPE:  # the streak's writes and every other writer name the contract's
            raise ValueError(
                f"the circuit record's attribute names are lambdas.contracts.circuit's, not {shape}"
            )
        self.cache_seconds = float(cache_seconds)
        self._clock = clock
        self._logger = logger or _logger
        self._streaks: dict[str, int] = {}
        self._streak_seen_at: dict[str, float] = {}
        self._streak_lock = threading.Lock()
        self._recent_ms: deque[float] = deque(maxlen=self.RECENT_REQUESTS)

    # -- how long a request to the table takes ---------------------------------------------------

    @property
    def slowest_request_ms(self) -> float:
        """The slowest of this environment's last table requests (0 before the first one)."""
        with self._streak_lock:
            return max(self._recent_ms, default=0.0)

    @contextmanager
    def _timed(self) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            elapsed_ms = (self._clock() - started) * 1000.0
            with self._streak_lock:
                self._recent_ms.append(elapsed_ms)

    def cached_state(self, name: str) -> CircuitState | None:
        """The circuit's state as this environment's cache holds it, without a read (None: not cached)."""
        record = self._retrieve_from_cache(name)
        return None if record is None else record.state

    # -- the cache, on a fractional age -----------------------------------------------------------

    def _save_to_cache(self, record: CircuitStateRecord) -> None:
        with self._lock:
            self._cache[self._cache_key(record.name)] = (self._clock() + self.cache_seconds, record)

    def _retrieve_from_cache(self, name: str) -> CircuitStateRecord | None:
        with self._lock:
            cached = self._cache.get(self._cache_key(name))
            if cached is None:
                return None
            fresh_until, record = cached
            if self._clock() >= fresh_until:
                del self._cache[self._cache_key(name)]
                return None
            return record

    # -- reads -----------------------------------------------------------------------------------

    def _item_to_record(self, item: dict) -> CircuitStateRecord:
        record = super()._item_to_record(item)
        self._set_streak(record.name, int(item.get(RECORD_FLEET_FAILURES, {}).get("N", 0)))
        return record

    def _get_record(self, name: str) -> CircuitStateRecord | None:
        with self._timed():
            return super()._get_record(name)

    def read_fresh(self, name: str) -> CircuitStateRecord:
        """The circuit as the table holds it now (cached afterwards); the cached view if the read fails."""
        try:
            record = self._get_record(name)
        except Exception as exc:  # fail open like Powertools' own reads: the cached view, or CLOSED
            self._logger.warning(
                FRESH_READ_FAILED_MESSAGE, extra={lf.DEPENDENCY: name, lf.ERROR: type(exc).__name__}
            )
            return self.get_state(name)
        if record is None:
            record = CircuitStateRecord(name=name, state=CircuitState.CLOSED)
            self._set_streak(name, 0)
        self._save_to_cache(record)
        return record

    def fleet_failures(self, name: str) -> int:
        """The fleet's streak of failed logical calls as this environment last read, wrote or was answered."""
        with self._streak_lock:
            return self._streaks.get(name, 0)

    # -- the streak ------------------------------------------------------------------------------

    def add_failure(self, name: str) -> int | None:
        """Add one failed logical call to the fleet's streak while the circuit is CLOSED: the new count, or
        None when the circuit is not CLOSED (nothing is added) or the write failed."""
        try:
            with self._timed():
                response = self.client.update_item(
                    # A circuit nobody has written yet gets a valid CLOSED record (Powertools needs its state).
                    **circuit_record.ADD_FAILURE.request(self.table_name, name),
                    ReturnValues="UPDATED_NEW",
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                self._write_failed(name, exc)
            return None
        except BotoCoreError as exc:
            self._write_failed(name, exc)
            return None
        count = int(response["Attributes"][RECORD_FLEET_FAILURES]["N"])
        self._set_streak(name, count)
        return count

    def streak_recent(self, name: str) -> bool:
        """Whether a success here should end the fleet's streak: this environment's view has one, or had one
        within the cache age. A view can be that old while other environments keep failing (a brown-out):
        a success that left their streak standing would let failures add up across successes."""
        with self._streak_lock:
            if self._streaks.get(name, 0):
                return True
            seen = self._streak_seen_at.get(name)
        return seen is not None and self._clock() - seen <= self.cache_seconds

    def clear_failures(self, name: str) -> None:
        """End the fleet's streak (a logical call succeeded); a write only while ``streak_recent``: the
        healthy path stays write-free."""
        if not self.streak_recent(name):
            return
        self._set_streak(name, 0)
        try:
            with self._timed():
                self.client.update_item(**circuit_record.CLEAR_FAILURES.request(self.table_name, name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                self._write_failed(name, exc)
        except BotoCoreError as exc:
            self._write_failed(name, exc)

    # -- Powertools' writes end the streak ---------------------------------------------------------

    def _put_record(self, record: CircuitStateRecord, *args: Any, **kwargs: Any) -> None:
        with self._timed():
            super()._put_record(record, *args, **kwargs)  # the whole item: the streak is gone
        self._set_streak(record.name, 0)

    def _build_update_query(self, record: CircuitStateRecord) -> dict:
        """Powertools' close / reopen update, removing the streak too (its expression ends in REMOVE)."""
        query = super()._build_update_query(record)
        if " REMOVE " not in query["UpdateExpression"]:  # pragma: no cover - a Powertools change
            raise RuntimeError(
                "Powertools' circuit update no longer ends in REMOVE: revisit FleetCircuitStore"
            )
        query["UpdateExpression"] += f", {circuit_record.FLEET_FAILURES_ALIAS}"
        query["ExpressionAttributeNames"][circuit_record.FLEET_FAILURES_ALIAS] = RECORD_FLEET_FAILURES
        return query

    def _update_record(self, record: CircuitStateRecord) -> None:
        with self._timed():
            super()._update_record(record)
        self._set_streak(record.name, 0)

    def _set_streak(self, name: str, count: int) -> None:
        with self._streak_lock:
            self._streaks[name] = count
            if count:
                self._streak_seen_at[name] = self._clock()

    def _write_failed(self, name: str, exc: Exception) -> None:
        self._logger.warning(
            STREAK_WRITE_FAILED_MESSAGE, extra={lf.DEPENDENCY: name, lf.ERROR: type(exc).__name__}
        )
