"""What a command that runs the local cloud (the demo, the benchmark) sets up before anything else."""

from __future__ import annotations

import signal
from types import FrameType


def start_command(*stop_signals: signal.Signals) -> None:
    """Make each of ``stop_signals`` stop the run as Ctrl-C does: a KeyboardInterrupt that releases every
    port."""
    for stop_signal in stop_signals:
        signal.signal(stop_signal, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
