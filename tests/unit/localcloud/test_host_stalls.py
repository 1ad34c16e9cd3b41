"""HostStalls: when the local cloud's process went unscheduled, and which timeouts that explains."""

from __future__ import annotations

import pytest

from localcloud.host_stalls import HostStalls


def stalls_at(*windows: tuple[float, float]) -> HostStalls:
    """A monitor that recorded these stalls (each a 50 ms sleep that ended ``end - start`` late)."""
    monitor = HostStalls(interval_s=0.05, threshold_s=0.2)
    for start, end in windows:
        monitor.observe(start - 0.05, end)
    return monitor


def test_a_sleep_that_woke_late_by_the_threshold_is_a_stall_and_a_shorter_lag_is_not() -> None:
    monitor = HostStalls(interval_s=0.05, threshold_s=0.2)
    monitor.observe(10.0, 10.2)  # 150 ms late: scheduling noise
    monitor.observe(20.0, 23.05)  # due at 20.05, ran at 23.05
    assert monitor.stalls == [(pytest.approx(20.05), 23.05)]


def test_stalled_time_is_counted_inside_a_window_only() -> None:
    monitor = stalls_at((2.0, 5.0), (9.0, 10.0))
    assert monitor.stalled_within(0.0, 20.0) == pytest.approx(4.0)
    assert monitor.stalled_within(4.0, 9.5) == pytest.approx(1.5)  # the end of one, the start of the other
    assert monitor.stalled_within(6.0, 8.0) == 0.0


def test_a_timeout_is_explained_only_if_it_would_have_fit_without_the_stalled_time() -> None:
    monitor = stalls_at((34.7, 37.7))  # 3 s unscheduled
    assert monitor.explains(33.6, 5.2, timeout_s=5.0)  # 2.2 s of its own work
    assert not monitor.explains(33.6, 8.5, timeout_s=5.0)  # 5.5 s of its own: the consumer's overrun
    assert not monitor.explains(40.0, 5.2, timeout_s=5.0)  # no stall inside it


def test_the_monitor_thread_starts_and_stops() -> None:
    monitor = HostStalls(interval_s=0.01).start()
    monitor.stop()
    assert monitor._thread is not None and not monitor._thread.is_alive()
