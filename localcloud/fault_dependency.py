"""Local twin of the demo partner API: a threaded HTTP server on 127.0.0.1 for tests, demos and benchmarks.

Same routes and contract as the Lambda partner (``lambdas.partner_api.service``), same ``FaultProfile``.
Its behaviour follows a scenario: phases ``(start_second, FaultProfile)`` measured from ``start()``, or a
profile set directly with ``set_profile``. ``enqueue`` scripts exact decisions for the next requests
(e.g. "two 503s, then normal") when a test needs determinism rather than probabilities.

It records what a test or benchmark needs to judge resilience:
  * total calls, calls per phase, current and peak concurrent in-flight requests;
  * a timeline of (t, method, path, status, latency) per request;
  * charges created per orderId. A *duplicate side effect* is a second charge CREATED for the same order
    (a new chargeId: different Idempotency-Key). Replays of the same key return the original charge and
    are not duplicates. A charge counts even if the client had given up waiting: that is exactly how
    duplicate charges happen in real life.

Usage::

    with FaultDependency(scenario=[(0, preset("healthy")), (5, preset("outage"))]) as partner:
        client_base_url = partner.base_url
        ...
        assert partner.duplicate_charges() == {}
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lambdas.contracts.api import IDEMPOTENCY_KEY_HEADER
from lambdas.partner_api.faults import BASELINES, HEALTHY, FaultDecision, FaultProfile, preset
from lambdas.partner_api.service import HttpResponse, PartnerService, fault_response
from localcloud.served import ServedOnThread, write_response
from localcloud.sigv4 import SigV4Verifier

__all__ = ["CallRecord", "FaultDependency", "Phase", "preset", "scenario"]


@dataclass(frozen=True)
class Phase:
    start_s: float
    profile: FaultProfile
    label: str


@dataclass(frozen=True)
class CallRecord:
    t: float  # seconds since start() when the request arrived
    method: str
    path: str
    status: int
    latency_ms: float
    phase: str
    idempotency_key: str | None
    order_id: str | None  # the request body's orderId, whatever the answer (a failed call too)
    new_charge: bool
    replayed: bool = False  # answered from the partner's idempotency record: no new side effect


# Recorded for a request abandoned without a response (the server was stopping).
ABANDONED_STATUS = 0
# How long stop() waits for in-flight requests to finish recording after waking them.
STOP_GRACE_SECONDS = 2.0

PhaseSpec = Phase | tuple[float, FaultProfile] | tuple[float, FaultProfile, str]


def scenario(name: str, *, after_s: float = 0.0) -> list[Phase]:
    """A named preset as a scenario: its baseline (healthy; 200 ms for "slow") until ``after_s``, then the fault."""
    profile = preset(name)
    if after_s <= 0:
        return [Phase(0.0, profile, name)]
    return [Phase(0.0, BASELINES.get(name, HEALTHY), "baseline"), Phase(after_s, profile, name)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck slow response must never block interpreter exit
    allow_reuse_address = True
    twin: FaultDependency

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_open_connections(self) -> None:
        """Close keep-alive connections too, so no handler thread outlives stop()."""
        with self.connections_lock:
            connections, self.open_connections = self.open_connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real partner: the client reuses connections
    timeout = 5  # close idle keep-alive connections so stop() does not leave threads parked forever
    # Headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per call.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self.server.twin._serve(self)

    def do_POST(self) -> None:
        self.server.twin._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the timeline is the log


class FaultDependency(ServedOnThread):
    """Threaded local partner API whose faults follow a scenario. All public methods are thread-safe."""

    _what = "fault dependency"

    def __init__(
        self,
        scenario: Iterable[PhaseSpec] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        iam_auth: SigV4Verifier | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._host = host
        self._requested_port = port
        self._api_key = api_key
        self._iam_auth = iam_auth  # the function URL's AWS_IAM check, in front of the partner
        self._rng = random.Random(seed)
        self._clock = clock
        self._wall_clock = wall_clock
        self._service = PartnerService()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # signalled when no request is in flight
        self._stopping = threading.Event()
        self._started_at = clock()
        self._phases: list[Phase] = _normalise(scenario or [Phase(0.0, HEALTHY, "healthy")])
        self._scripted: collections.deque[FaultDecision] = collections.deque()
        self._in_flight = 0
        self._reset_stats_locked()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultDependency:
        if self._server is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        server = _Server((self._host, self._requested_port), _Handler)
        server.twin = self
        with self._lock:
            self._started_at = self._clock()
        self._serve_on_thread(server, name="fault-dependency", poll_interval=0.05)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and release the port.

        Slow responses in flight are woken and abandoned (recorded with ABANDONED_STATUS).
        """
        if self._server is None:
            return
        self._stopping.set()
        server = self._detach()
        assert isinstance(server, _Server)
        server.close_open_connections()
        # Let woken requests record themselves, so counters are final once stop() returns.
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=STOP_GRACE_SECONDS)
        self._join()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # ------------------------------------------------------------------ behaviour

    def set_profile(self, profile: FaultProfile | str, label: str | None = None) -> None:
        """Switch to ``profile`` (or a preset name) now; earlier phases stay for the per-phase counts."""
        resolved = preset(profile) if isinstance(profile, str) else profile
        with self._lock:
            name = label or (profile if isinstance(profile, str) else f"phase-{len(self._phases)}")
            now = self._clock() - self._started_at
            kept = [phase for phase in self._phases if phase.start_s <= now]
            self._phases = [*kept, Phase(now, resolved, name)]

    def enqueue(self, *decisions: FaultDecision) -> None:
        """Force the decisions for the next requests (in order) before the scenario applies again."""
        with self._lock:
            self._scripted.extend(decisions)

    def current_phase(self) -> Phase:
        with self._lock:
            return self._phase_at(self._clock() - self._started_at)

    # ------------------------------------------------------------------ observations

    @property
    def total_calls(self) -> int:
        with self._lock:
            return self._total_calls

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        with self._lock:
            return self._peak_in_flight

    def calls_per_phase(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls_per_phase)

    def calls(self, path: str | None = None) -> list[CallRecord]:
        """The completed-request timeline, optionally for one path."""
        with self._lock:
            return [record for record in self._timeline if path is None or record.path == path]

    def timeline(self) -> list[tuple[float, int, float]]:
        """(t, status, latency_ms) per completed request, in completion order."""
        with self._lock:
            return [(record.t, record.status, record.latency_ms) for record in self._timeline]

    def charges_by_order(self) -> dict[str, int]:
        """Charges created (not replayed) per orderId."""
        with self._lock:
            return dict(self._charges_by_order)

    def duplicate_charges(self) -> dict[str, int]:
        """orderIds charged more than once, with their charge counts. Empty means no duplicate side effect."""
        with self._lock:
            return {order: count for order, count in self._charges_by_order.items() if count > 1}

    def reset_stats(self) -> None:
        with self._lock:
            self._reset_stats_locked()

    # ------------------------------------------------------------------ internals

    def _reset_stats_locked(self) -> None:
        self._total_calls = 0
        self._peak_in_flight = self._in_flight  # requests still in flight keep counting
        self._calls_per_phase: collections.Counter[str] = collections.Counter()
        self._charges_by_order: collections.Counter[str] = collections.Counter()
        self._timeline: list[CallRecord] = []

    def _phase_at(self, elapsed_s: float) -> Phase:
        current = self._phases[0]
        for phase in self._phases:
            if phase.start_s <= elapsed_s:
                current = phase
        return current

    def _refusal(self, request: _Handler, body: bytes) -> str | None:
        if self._iam_auth is None:
            return None
        url = f"{self.base_url}{request.path}"
        return self._iam_auth.refusal(request.command, url, dict(request.headers.items()), body)

    def _serve(self, request: _Handler) -> None:
        arrived = self._clock()
        path = request.path.split("?", 1)[0]
        with self._lock:
            t = arrived - self._started_at
            phase = self._phase_at(t)
            decision = self._scripted.popleft() if self._scripted else phase.profile.decide(self._rng, path)
            self._total_calls += 1
            self._calls_per_phase[phase.label] += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        response: HttpResponse | None = None
        charge_order: str | None = None
        new_charge = replayed = False
        try:
            length = int(request.headers.get("Content-Length") or 0)
            body = request.rfile.read(length) if length > 0 else b""
            # Whose call this was, even when the fault answers for the service: calls per order.
            charge_order = _order_id_of(body)
            refusal = self._refusal(request, body)
            # Event.wait instead of sleep: stop() wakes slow responses immediately.
            if (
                refusal is None
                and decision.latency_ms > 0
                and self._stopping.wait(decision.latency_ms / 1000.0)
            ):
                request.close_connection = True
                return
            if refusal is not None:  # the function URL refuses it: neither the fault nor the partner see it
                response = HttpResponse(403, {"Message": "Forbidden", "reason": refusal})
            elif decision.status is not None:
                response = fault_response(decision.status, decision.retry_after_header(self._wall_clock()))
            else:
                headers = dict(request.headers.items())
                result = self._service.handle(request.command, path, headers, body, self._api_key)
                response = result.response
                replayed = result.replayed
                if result.charge is not None:
                    charge_order = result.charge.orderId
                    new_charge = not result.replayed
        finally:
            # Recorded BEFORE the response is written: once a client holds the response, the twin's
            # counters already include it (no race for tests reading them right after a call). A charge
            # counts even if the client has already given up: the side effect happened either way.
            record = CallRecord(
                t=t,
                method=request.command,
                path=path,
                status=response.status if response is not None else ABANDONED_STATUS,
                latency_ms=(self._clock() - arrived) * 1000.0,
                phase=phase.label,
                idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER),
                order_id=charge_order,
                new_charge=new_charge,
                replayed=replayed,
            )
            with self._lock:
                if new_charge and charge_order is not None:
                    self._charges_by_order[charge_order] += 1
                self._in_flight -= 1
                self._timeline.append(record)
                if self._in_flight == 0:
                    self._idle.notify_all()
        _write(request, response)


def _order_id_of(body: bytes) -> str | None:
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None
    value = document.get("orderId") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _write(request: _Handler, response: HttpResponse) -> None:
    try:
        write_response(request, response.status, response.headers, response.encoded_body())
    except (BrokenPipeError, ConnectionResetError):
        request.close_connection = True  # the client timed out and left; nothing more to say


def _normalise(phases: Iterable[PhaseSpec]) -> list[Phase]:
    normalised: list[Phase] = []
    for index, spec in enumerate(phases):
        if isinstance(spec, Phase):
            normalised.append(spec)
            continue
        start, profile, *label = spec
        normalised.append(Phase(float(start), profile, str(label[0]) if label else f"phase-{index}"))
    if not normalised:
        raise ValueError("a scenario needs at least one phase")
    normalised.sort(key=lambda phase: phase.start_s)
    if normalised[0].start_s > 0:
        normalised.insert(0, Phase(0.0, HEALTHY, "healthy"))
    return normalised
