"""Throttling drill: set a function's reserved concurrency to 0 for a bounded time, then restore it.

Lambda then throttles every invocation: an SQS event source keeps the messages in the queue (they
wait, they are not lost), and the function's Throttles alarm must fire. The previous setting is
restored in a ``finally``, so Ctrl-C or an error during the wait restores it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from ops.aws import Aws
from ops.console import Console
from ops.errors import EXIT_OK, UsageError

MAX_DRILL_SECONDS: Final = 900


def throttle(
    aws: Aws,
    console: Console,
    function: str,
    seconds: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    if not 1 <= seconds <= MAX_DRILL_SECONDS:
        raise UsageError(f"--seconds must be between 1 and {MAX_DRILL_SECONDS}")
    client = aws.client("lambda")
    previous = client.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")
    console.confirm(
        f"throttle {function} for {seconds} s (reserved concurrency {previous if previous is not None else 'none'}"
        " -> 0)"
    )
    client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
    console.info(f"{function}: reserved concurrency 0 (every invocation is throttled) for {seconds} s")
    try:
        sleep(seconds)
    finally:
        if previous is None:
            client.delete_function_concurrency(FunctionName=function)
        else:
            client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=previous)
        console.info(
            f"{function}: reserved concurrency restored to {previous if previous is not None else 'none'}"
        )
    console.result({"function": function, "seconds": seconds, "restored": previous})
    return EXIT_OK
