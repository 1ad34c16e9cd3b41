"""How long the local cloud's threads went unscheduled: an emulation artifact, measured, not assumed.

The emulator, every execution environment and the scenario's clients share one process on a machine that
may be busy (the test suite runs two local clouds beside its own workers). Starved of CPU, the process
can stop for seconds; with time compressed /10 a 3 s stall is half a consumer's timeout, a freeze no
Lambda function in the cloud sees. An invocation that timed out only because of such a stall says
nothing about the consumer's time accounting.

``HostStalls`` is a thread that asks to sleep ``interval_s`` and records every time it woke more than
``threshold_s`` late (the stall: when its sleep should have ended until it ran again). A timed-out
invocation is **explained** by the stalls when, without the stalled time inside its window, it would have
finished within the timeout. Stalls shorter than the threshold are not recorded, so they never explain
anything: the measure only ever under-excuses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

DEFAULT_INTERVAL_S: Final = 0.05
DEFAULT_THRESHOLD_S: Final = 0.2


class HostStalls:
    """``start``, then ``stalls`` (monotonic (start, end) pairs) and ``stalled_within``; ``stop`` at the end."""

    def __init__(
        self,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        threshold_s: float = DEFAULT_THRESHOLD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stalls: list[tuple[float, float]] = []
        self._thread: threading.Thread | None = None

    def start(self) -> HostStalls:
        self._thread = threading.Thread(target=self._watch, name="host-stalls", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _watch(self) -> None:
        while True:
            asleep = self._clock()
            if self._stop.wait(self.interval_s):
                return
            self.observe(asleep, self._clock())

    def observe(self, asleep: float, awake: float) -> None:
        """One sleep of ``interval_s`` from ``asleep`` that ended at ``awake``: a stall if it woke late."""
        due = asleep + self.interval_s
        if awake - due >= self.threshold_s:
            with self._lock:
                self._stalls.append((due, awake))

    @property
    def stalls(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._stalls)

    def stalled_within(self, start: float, end: float) -> float:
        """Seconds of recorded stalls inside ``[start, end]``."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.stalls)

    def explains(self, start: float, duration_s: float, timeout_s: float) -> bool:
        """Whether an invocation that started at ``start`` and ran ``duration_s`` would have fit
        ``timeout_s`` without the stalls inside it."""
        return duration_s - self.stalled_within(start, start + duration_s) <= timeout_s
