"""How the status endpoint's Retry-After advice compared with when the circuit's state then changed."""

from __future__ import annotations

from localcloud import report
from localcloud.scenarios import StatusRead
from tests.unit.localcloud.runs import run_result, sample


def test_each_shed_read_is_paired_with_when_the_circuit_left_open_and_the_next_read() -> None:
    samples = [sample(t / 4, circuit="OPEN" if 8 <= t < 40 else "CLOSED") for t in range(60)]  # OPEN 2-10 s
    reads = [
        StatusRead(1.0, 200),
        StatusRead(3.0, 503, 4.0, "circuit_open"),
        StatusRead(7.0, 503, 3.0, "circuit_open"),
        StatusRead(10.5, 200),
    ]
    result = run_result(samples=samples, status_reads=reads)

    shed = result.shed_status_reads()

    assert [(read.t, changed, following.t if following else None) for read, changed, following in shed] == [
        (3.0, 7.0, 7.0),
        (7.0, 3.0, 10.5),
    ]
    summary = report.summary(result)
    assert (summary["status_reads"], summary["status_reads_shed"]) == (4, 2)
    assert summary["status_advice_median_s"] == 3.5 and summary["status_changed_median_s"] == 5.0
    assert (summary["status_retried_ok"], summary["status_retried"]) == (1, 2)
    assert "2 shed with 503 + Retry-After" in report.text(result)


def test_a_run_without_status_reads_reports_none() -> None:
    summary = report.summary(run_result(samples=[sample(0.0)]))
    assert summary["status_reads"] == 0 and "status_advice_median_s" not in summary
