"""What a command that runs the local cloud (the demo, the benchmark) sets up before anything else."""

from __future__ import annotations

import os
import signal
from types import FrameType


def start_command(*stop_signals: signal.Signals) -> None:
    """Silence jsii's end-of-life warning for the pinned Node.js (the Makefile says why it is pinned), and
    make each of ``stop_signals`` stop the run as Ctrl-C does: a KeyboardInterrupt that releases every port."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    for stop_signal in stop_signals:
        signal.signal(stop_signal, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
