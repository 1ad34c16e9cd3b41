"""scripts/under_load.py: runs commands beside CPU burners and passes only when every run passed."""

from __future__ import annotations

import sys

import pytest

from scripts.under_load import main

PASS = [sys.executable, "-c", "print('ran')"]
FAIL = [sys.executable, "-c", "raise SystemExit(3)"]


def test_every_run_passing_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--burners", "1", "--runs", "2", "--", *PASS, "--", *PASS]) == 0

    out = capsys.readouterr().out
    assert out.count("=== run ") == 3  # the first command twice, the second once
    assert "with 1 CPU burners" in out


def test_one_failed_run_fails_the_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--burners", "0", "--runs", "2", "--", *PASS, "--", *FAIL]) == 1

    assert "FAILED (3)" in capsys.readouterr().out
