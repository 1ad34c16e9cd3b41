"""An HTTP server of the local cloud (the API's front door, a dependency's twin) served on a thread of
its own: ``start()`` returns the server, ``stop()`` releases its port, and ``with`` does both."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def write_response(
    request: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], payload: bytes
) -> None:
    """Answer ``request``: the status line, ``headers``, the length of ``payload``, then ``payload``."""
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    request.wfile.write(payload)


class ServedOnThread:
    """Subclasses build their server in ``start()`` (then ``_serve_on_thread``) and release it in ``stop()``."""

    _what = "server"  # for the error when the server is not started

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and release the port."""
        server = self._detach()
        if server is not None:
            self._join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._what} not started")
        return int(self._server.server_address[1])

    def _serve_on_thread(self, server: ThreadingHTTPServer, *, name: str, poll_interval: float) -> None:
        """Serve ``server`` on a daemon thread; a short ``poll_interval`` keeps ``stop()`` fast (shutdown
        waits for the serve loop to notice)."""
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        self._thread.start()

    def _detach(self) -> ThreadingHTTPServer | None:
        """Stop the serve loop and close the listening socket; the server, or None if none was running."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        return server

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
