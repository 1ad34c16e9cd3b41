"""Per-function isolation inside one Python process: environment variables, stdout and module state.

Lambda gives every execution environment its own process: its own ``os.environ`` (the function's
configuration plus the runtime's reserved variables), its own stdout (shipped to the function's log
group) and its own copy of every module (module-level init runs once per environment). The local cloud
runs several environments of several functions as threads of one process, so each of the three has to be
isolated explicitly.

Why threads with overlays, not a lock around invocations or a process per function
------------------------------------------------------------------------------------
* A global lock that swaps ``os.environ`` around each invocation would serialise the invocations, and
  the consumer's maximum concurrency has to be real parallelism (the peak concurrency the dependency sees
  is one of the things the demo measures).
* A process per function would isolate everything for free, but Step Functions executions run inside the
  emulator's process and call Lambda tasks there (``moto_patches.inprocess_lambda.register_inprocess_function``), so the
  handlers must live in that process too.

So each execution environment is a thread that carries a *thread-local overlay*:

* ``os.environ`` is switched (once, reversibly) to a subclass of its own class whose reads and writes go
  through the calling thread's overlay when it has one. The object stays the same, so code that captured
  ``os.environ`` early (botocore's config chain, ``os.getenv``) sees the overlay as well. Threads without
  an overlay (the emulator, the front door, the observer) see the process environment unchanged.
* ``sys.stdout`` is replaced by a router that writes to the calling thread's log sink, so Powertools'
  JSON log lines and EMF metric lines of a function land in that function's "log group" (a ``LogSink``)
  and never interleave with the demo's progress display.
* Module state: ``import_fresh`` imports a handler with every ``lambdas.*`` and ``aws_lambda_powertools.*``
  module loaded anew (and the process's own copies put back afterwards), so each environment has its own
  ``BatchProcessor``, idempotency config, HTTP session, breaker cache and Powertools caches, as separate
  processes would. (boto3, botocore, pydantic and requests are shared: they keep no state that outlives
  a client, and every environment creates its own clients at init.)
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

_local = threading.local()
_DELETED = object()
_INSTALL_LOCK = threading.RLock()
_IMPORT_LOCK = threading.Lock()
_original_environ_class: type | None = None
_original_stdout: TextIO | None = None
_install_count = 0


def _overlay() -> dict[str, Any] | None:
    return getattr(_local, "environ", None)


class _OverlayEnviron(os._Environ):
    """``os.environ`` whose view depends on the calling thread's overlay (see the module docstring)."""

    def __getitem__(self, key: str) -> str:
        overlay = _overlay()
        if overlay is not None:
            value = overlay.get(key, _DELETED)
            if value is _DELETED:
                raise KeyError(key)
            return value
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: str) -> None:
        overlay = _overlay()
        if overlay is not None:
            if not isinstance(value, str):
                raise TypeError(f"str expected, not {type(value).__name__}")
            overlay[key] = value
            return
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        overlay = _overlay()
        if overlay is not None:
            if key not in overlay:
                raise KeyError(key)
            del overlay[key]
            return
        super().__delitem__(key)

    def __iter__(self) -> Iterator[str]:
        overlay = _overlay()
        if overlay is not None:
            return iter(list(overlay))
        return super().__iter__()

    def __len__(self) -> int:
        overlay = _overlay()
        if overlay is not None:
            return len(overlay)
        return super().__len__()

    def copy(self) -> dict[str, str]:
        return dict(self)


class _StdoutRouter(io.TextIOBase):
    """Writes to the calling thread's sink, or to the real stdout for threads without one."""

    def __init__(self, fallback: TextIO) -> None:
        self._fallback = fallback

    def write(self, text: str) -> int:
        sink = getattr(_local, "sink", None)
        if sink is not None:
            sink.write(text)
            return len(text)
        return self._fallback.write(text)

    def flush(self) -> None:
        if getattr(_local, "sink", None) is None:
            self._fallback.flush()

    def isatty(self) -> bool:
        return self._fallback.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._fallback, "encoding", "utf-8")


def install() -> None:
    """Enable overlays and stdout routing for this process (reference counted; see ``uninstall``)."""
    global _original_environ_class, _original_stdout, _install_count
    with _INSTALL_LOCK:
        _install_count += 1
        if _install_count > 1:
            return
        _original_environ_class = type(os.environ)
        os.environ.__class__ = _OverlayEnviron
        _original_stdout = sys.stdout
        sys.stdout = _StdoutRouter(sys.stdout)


def uninstall() -> None:
    global _original_environ_class, _original_stdout, _install_count
    with _INSTALL_LOCK:
        if _install_count == 0:
            return
        _install_count -= 1
        if _install_count > 0:
            return
        if _original_environ_class is not None:
            os.environ.__class__ = _original_environ_class
            _original_environ_class = None
        if _original_stdout is not None and isinstance(sys.stdout, _StdoutRouter):
            sys.stdout = _original_stdout
        _original_stdout = None


@contextmanager
def installed() -> Iterator[None]:
    install()
    try:
        yield
    finally:
        uninstall()


@contextmanager
def function_scope(environ: Mapping[str, str], sink: LogSink | None) -> Iterator[None]:
    """Run the body with ``environ`` as this thread's whole environment and ``sink`` as its stdout."""
    if _original_environ_class is None:
        raise RuntimeError("localcloud.isolation.install() must run first")
    previous = (getattr(_local, "environ", None), getattr(_local, "sink", None))
    _local.environ = dict(environ)
    _local.sink = sink
    try:
        yield
    finally:
        _local.environ, _local.sink = previous


# Packages loaded anew for every execution environment: the function code, and the Powertools library,
# whose module-level state is per process on Lambda (the parameter providers with their boto3 clients
# and cached values, the metric set all Metrics instances share, ...). Other libraries are shared.
FRESH_PACKAGES = ("lambdas", "aws_lambda_powertools")


def import_fresh(module_name: str, packages: tuple[str, ...] = FRESH_PACKAGES) -> Any:
    """Import ``module_name`` with every module of ``packages`` loaded anew; the process's copies are restored.

    Call it inside ``function_scope`` so module-level init sees the function's environment.
    """

    def owned(name: str) -> bool:
        return any(name == package or name.startswith(package + ".") for package in packages)

    with _IMPORT_LOCK:
        saved = {name: module for name, module in sys.modules.items() if owned(name)}
        for name in saved:
            del sys.modules[name]
        try:
            return importlib.import_module(module_name)
        finally:
            for name in [name for name in sys.modules if owned(name)]:
                del sys.modules[name]
            sys.modules.update(saved)


@dataclass
class LogRecord:
    t: float  # monotonic seconds
    text: str
    data: dict[str, Any] | None  # the parsed JSON object, if the line was one


@dataclass
class LogSink:
    """A function's "log group": every line its environments print, parsed when it is JSON.

    ``on_record`` observers see each record as it arrives (the demo counts circuit transitions there).
    ``path``, when given, receives every line too (like CloudWatch Logs, for a human to read).
    """

    name: str
    path: str | None = None
    clock: Callable[[], float] = time.monotonic
    records: list[LogRecord] = field(default_factory=list)
    on_record: list[Callable[[LogRecord], None]] = field(default_factory=list)
    _buffers: dict[int, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _file: TextIO | None = field(default=None, repr=False)

    def write(self, text: str) -> None:
        ident = threading.get_ident()
        with self._lock:
            pending = self._buffers.get(ident, "") + text
            *lines, rest = pending.split("\n")
            self._buffers[ident] = rest
        for line in lines:
            if line.strip():
                self._append(line)

    def _append(self, line: str) -> None:
        data: dict[str, Any] | None = None
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            data = parsed if isinstance(parsed, dict) else None
        record = LogRecord(self.clock(), line, data)
        with self._lock:
            self.records.append(record)
            if self.path is not None:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                self._file.write(line + "\n")
        for observer in list(self.on_record):
            observer(record)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
