"""One boto3 session per execution environment, shared by every AWS client the function builds.

A client built from a fresh session loads its service model, endpoint rules and partitions from disk
again: the order consumer's init built six clients from four sessions and spent about 200 ms on that
alone. Every client of this code, Powertools' persistence layers and parameter providers included, comes
from this session instead, so each model is read once per environment.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_SESSION: boto3.session.Session | None = None
_LOCK = threading.Lock()  # a boto3 session may not build clients from two threads at once


def session() -> boto3.session.Session:
    """The execution environment's session, created on first use."""
    global _SESSION
    with _LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION


def client(service: str, config: Config | None = None) -> Any:
    """A client of ``service`` from the shared session."""
    shared = session()
    with _LOCK:
        return shared.client(service, config=config)
