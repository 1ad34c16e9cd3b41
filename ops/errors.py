"""Errors every command reports the same way: one line on stderr and a non-zero exit status."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the operation was attempted and did not (fully) succeed
EXIT_USAGE: Final = 2  # bad arguments, or a resource that does not exist / does not fit the command
EXIT_ABORTED: Final = 3  # a destructive command was not confirmed (or could not be)
EXIT_TIMEOUT: Final = 4  # still running when the command stopped waiting (it goes on in AWS)


class OpsError(Exception):
    """Something the operator must know about; ``exit_code`` says what kind."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(OpsError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class Aborted(OpsError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_ABORTED)
