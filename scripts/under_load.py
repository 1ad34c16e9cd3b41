"""Run commands while other processes keep every core busy: a verdict must not depend on machine load.

    python scripts/under_load.py [--burners 2] [--runs 3] -- make test [-- make demo ...]

Starts ``--burners`` CPU-bound processes, runs the first command ``--runs`` times in a row and every
further command once, stops the burners however it ends, and prints each run's exit status and time.
Exit status 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time


def _burn() -> None:
    while True:
        pass


def _commands(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "--":
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/under_load.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes beside the runs")
    parser.add_argument("--runs", type=int, default=3, help="how often the first command runs in a row")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [-- COMMAND ...]")
    args = parser.parse_args(argv)
    commands = _commands(args.command)
    if not commands:
        parser.error("give at least one command after --")
    plan = [commands[0]] * args.runs + commands[1:]

    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    results: list[tuple[str, int, float]] = []
    try:
        for number, command in enumerate(plan, start=1):
            label = f"run {number}/{len(plan)}: {' '.join(command)}"
            print(f"=== {label} (with {args.burners} CPU burners)", flush=True)
            started = time.monotonic()
            status = subprocess.call(command)
            results.append((label, status, time.monotonic() - started))
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join()
    print(f"\n=== under load ({args.burners} CPU burners on {multiprocessing.cpu_count()} cores)")
    for label, status, seconds in results:
        print(f"{'passed' if status == 0 else f'FAILED ({status})':<12} {seconds:7.1f}s  {label}")
    return 0 if len(results) == len(plan) and all(status == 0 for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
