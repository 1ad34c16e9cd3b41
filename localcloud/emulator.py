"""The embedded AWS emulator: moto's threaded server on 127.0.0.1, an ephemeral port, clean state."""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
import warnings
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "eu-west-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
FAKE_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class Emulator:
    """A ``ThreadedMotoServer`` bound to 127.0.0.1 on a port the OS picks, reset on start and stop.

    Sets ``MOTO_PORT`` in the process environment while running (moto's Step Functions service tasks call
    ``localhost:$MOTO_PORT``) and restores the previous value on ``stop``. Not safe to run two at once in
    one process: moto's backends are process-global.
    """

    def __init__(self) -> None:
        self.region = DEFAULT_REGION
        self.account_id = DEFAULT_ACCOUNT_ID
        self._server: Any = None
        self._saved_moto_port: str | None = None
        self._clients: dict[tuple[str, str, int, float], Any] = {}
        self._clients_lock = threading.Lock()
        self.port = 0

    def start(self) -> Emulator:
        from moto.server import ThreadedMotoServer

        from localcloud.moto_patches import install_local_cloud_workarounds

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Tried to parse .* but it's not supported")
        install_local_cloud_workarounds()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        self.port = int(server.get_host_and_port()[1])
        self._saved_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(self.port)
        self._moto_api("reset")
        self._moto_api("config", {"stepfunctions": {"execute_state_machine": True}})
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        try:
            self._moto_api("reset")
        except OSError:
            pass
        finally:
            self._server = None
            server.stop()
            # ThreadedMotoServer.stop() ends serve_forever but leaves the listening socket open.
            server._server.server_close()
            if self._saved_moto_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = self._saved_moto_port

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, *, retries: int = 2, timeout_s: float = 30.0) -> Any:
        """A boto3 client for the emulator, cached per settings (boto3 clients are thread-safe to use;
        creating one costs tens of milliseconds)."""
        key = (self.endpoint_url, service, retries, timeout_s)
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._new_client(service, retries, timeout_s)
            return client

    def _new_client(self, service: str, retries: int, timeout_s: float) -> Any:
        session = boto3.session.Session(region_name=self.region, **FAKE_CREDENTIALS)
        return session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(
                retries={"max_attempts": retries, "mode": "standard"},
                connect_timeout=5,
                read_timeout=timeout_s,
                max_pool_connections=32,
            ),
        )

    def lambda_environment(self) -> dict[str, str]:
        """The variables a function needs to reach this emulator (credentials the "role" would give)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["aws_session_token"],
        }

    def _moto_api(self, action: str, payload: dict[str, Any] | None = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/{action}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
