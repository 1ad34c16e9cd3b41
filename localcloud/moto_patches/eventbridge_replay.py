"""EventBridge ``StartReplay`` replays the window it is given to the rules it names, as EventBridge does."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

__all__ = ["install_eventbridge_replay_window"]

_LOCK = threading.Lock()
_INSTALLED: list[bool] = []
# The InputTemplate moto gives the hidden rule that feeds an archive (EventsBackend.create_archive).
ARCHIVE_RULE_MARKER = '"archive-arn"'


def install_eventbridge_replay_window() -> None:
    """Make moto's replay honour ``EventStartTime``/``EventEndTime``, ``Destination.FilterArns`` and the
    archive rule's skipping of replays.

    Works around: moto 5.2.5's ``Replay.replay_events`` sends every event of the archive, whatever the
    window, to every rule on the bus, whatever ``FilterArns`` names, the archive's own rule included (so
    a replay is archived again). A replay of one window to one subscriber, what ``python -m ops replay``
    asks for (ops/replay.py), would reach every subscriber with every event ever archived.

    Now an archived event is replayed when ``start <= its time < end`` (the ``time`` moto stored at
    ``PutEvents``), to the rules in ``FilterArns`` (every rule when absent), never to an archive's rule
    (EventBridge's managed archive rule skips replayed events), with a new ``id`` and ``replay-name`` as
    before. The replay still completes inside ``StartReplay`` (EventBridge replays asynchronously: the
    ops tool polls ``DescribeReplay`` either way).

    Verified by ``tests/unit/localcloud/test_eventbridge_replay.py``: of events inside and outside the
    window, only the inside ones reach the named rule's queue; another rule's queue gets none; the
    archive's count does not grow. Idempotent.
    """
    from moto.core.utils import unix_time
    from moto.events.models import Replay, ReplayState, events_backends

    with _LOCK:
        if _INSTALLED:
            return
        _INSTALLED.append(True)

    def replay_events(self: Any, archive: Any) -> None:
        backend = events_backends[self.account_id][self.region]
        bus = backend.describe_event_bus(self.destination["Arn"].split("/")[-1])
        wanted = set(self.destination.get("FilterArns") or [])
        start, end = _epoch(self.event_start_time), _epoch(self.event_end_time)
        rules = [
            rule
            for rule in bus.rules.values()
            if (not wanted or rule.arn in wanted) and not _feeds_an_archive(rule)
        ]
        for event in list(archive.events):
            if not start <= _epoch(event.get("time")) < end:
                continue
            for rule in rules:
                replayed: Any = dict(event, **{"id": str(uuid.uuid4()), "replay-name": self.name})
                rule.send_to_targets(replayed, transform_input=False)
        self.state = ReplayState.COMPLETED
        self.end_time = unix_time()

    Replay.replay_events = replay_events  # type: ignore[method-assign]


def _feeds_an_archive(rule: Any) -> bool:
    return any(
        ARCHIVE_RULE_MARKER in str((target.get("InputTransformer") or {}).get("InputTemplate", ""))
        for target in rule.targets
    )


def _epoch(value: Any) -> float:
    """Seconds since the epoch of a time as moto keeps it: a number, a datetime or an ISO 8601 string."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    raise ValueError(f"not a time: {value!r}")
