"""Operations CLI for the resilient-serverless pipeline: ``python -m ops --help``.

Subcommands: ``dlq list|peek|redrive|redrive-to-bus``, ``replay``, ``circuit list|show|open|close``.
See docs/runbook.md for which command answers which alarm.
"""
