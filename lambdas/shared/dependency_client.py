"""Resilient HTTP client for one downstream ("upstream") dependency.

What it does, in the order a call goes through it:

1. Budget: the caller passes ``remaining_ms`` (``context.get_remaining_time_in_millis``). The call's budget
   is ``remaining_ms() - safety_margin_ms`` taken when the call starts; every attempt and every backoff
   sleep must fit in what is left of it, so the function always returns before Lambda kills it.
2. Circuit breaker (Powertools ``circuit_breaker``, state in DynamoDB shared by every execution
   environment): an open circuit rejects the call without touching the network. The breaker sees ONE
   outcome per logical call (after the retry loop) and only transient failures count. Powertools counts
   them per environment; the store (``lambdas.shared.fleet_circuit.FleetCircuitStore``) also keeps the
   fleet's streak of failed logical calls on the circuit's record, and the failure that brings it to the
   threshold opens the circuit for every environment (not N environments x threshold). While the fleet
   has a streak, calls get one attempt fewer (``attempts_allowed``), and before each retry a call re-reads the
   circuit (not the cache): it stops once another environment opened it, or once the streak has used up
   its attempts. The cache age is the policy's, to the millisecond. A caller whose circuit another layer
   owns (the circuit controller's probe) builds the client with ``external_circuit``: no breaker, no
   circuit reads or writes, everything else below the same.
3. Retry loop: each answer is classified by what it means (``classify_status``):
     * transient (retried with exponential backoff and full jitter, honouring ``Retry-After``): connection
       errors, timeouts, 5xx, 429, 408, 409, 423, 425 and 3xx (redirects are not followed: a 3xx is a
       partner-side state, such as a deploy in progress, not a fault of this request);
     * permanent (``PermanentUpstreamError``, the caller quarantines): 400, 422, or any 4xx whose body
       carries an explicit partner code in ``PERMANENT_ERROR_CODES``: only what can never succeed;
     * configuration (``UpstreamConfigurationError``): 401/403 (after ONE re-read of the credentials and
       one more attempt, when the re-read found a new key) and every other 4xx (e.g. 404 after a deploy
       changed a route). Nothing is wrong with the record: it fails without quarantine, and the failure
       counts toward the breaker so a misconfigured fleet pauses instead of draining its queue.
   Retries exist only here: the ``requests`` adapter has retries disabled so they never stack.
4. Fallback: for a non-critical dependency a transient failure or an open circuit returns the
   last-known-good body (per method + path) or a caller-supplied default instead of raising. A local
   time shortfall (``BudgetExhaustedError``) never falls back: the caller keeps the work for a later
   invocation with a full budget instead of reporting it done.

Time spent before the first attempt (the breaker's own DynamoDB read) is ours, not the dependency's: a
call that made no attempt raises ``BudgetExhaustedError`` without counting toward the breaker.

Observability: one structured log line per attempt (field names in ``log_fields``), EMF metrics
``UpstreamCalls``, ``UpstreamLatency``, ``UpstreamErrors`` (per attempt; dimensions dependency +
status_class), ``UpstreamLogicalCalls`` (one per logical call that reached the dependency, after retries;
dimensions dependency + outcome, values ``CALL_OUTCOMES``; only the calls a breaker sees, as the failure-rate
alarm on them opens the circuit too), ``FallbackUsed``, ``CircuitOpenRejections`` and ``CircuitTransition``
(dimensions dependency + to_state).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

import requests
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.circuit_breaker import (
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitInfo,
    CircuitState,
    CircuitTransition,
    circuit_breaker,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerPersistenceLayer
from pydantic import Field, create_model, field_validator, model_validator
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from lambdas.contracts import environment as env
from lambdas.contracts import log_fields as lf
from lambdas.contracts.dependency_tunables import TUNABLES, DependencyTunables, check_delays
from lambdas.contracts.metrics import (
    CALL_OUTCOME_CONFIGURATION,
    CALL_OUTCOME_PERMANENT,
    CALL_OUTCOME_SUCCESS,
    CALL_OUTCOME_TRANSIENT,
    DIMENSION_OUTCOME,
    DIMENSION_TO_STATE,
    METRIC_CIRCUIT_PROBES_FAILED,
    METRIC_CIRCUIT_REJECTIONS,
    METRIC_CIRCUIT_TRANSITION,
    METRIC_FALLBACK_USED,
    METRIC_LOGICAL_CALLS,
    METRIC_UPSTREAM_CALLS,
    METRIC_UPSTREAM_ERRORS,
    METRIC_UPSTREAM_LATENCY,
)
from lambdas.shared import aws
from lambdas.shared.env import ConfigurationError, EnvironmentSettings
from lambdas.shared.fleet_circuit import FleetCircuitStore
from lambdas.shared.request_signing import signing_auth
from lambdas.shared.stores import TABLE_CLIENT_CONFIG

__all__ = [
    "BudgetExhaustedError",
    "DependencyClient",
    "DependencyPolicy",
    "DependencyResponse",
    "DependencyUnavailableError",
    "PermanentUpstreamError",
    "TransientUpstreamError",
    "UpstreamConfigurationError",
    "UpstreamError",
    "classify_status",
    "create_session",
    "parse_retry_after",
    "shared_session",
    "status_class_for",
]

# An attempt whose read timeout would be shorter than this cannot realistically succeed: stop instead.
MIN_READ_TIMEOUT_MS: Final = 50
# Bound on the last-known-good cache so a non-critical dependency with many paths cannot grow memory.
LAST_GOOD_MAX_ENTRIES: Final = 256

# -- what an answer means (classify_status)
VERDICT_SUCCESS: Final = "success"
VERDICT_TRANSIENT: Final = "transient"
VERDICT_PERMANENT: Final = "permanent"
VERDICT_AUTH: Final = "auth"
VERDICT_CONFIGURATION: Final = "configuration"
# 4xx that say "not now" rather than "never": timeout, conflict / still in progress, locked, too early.
TRANSIENT_CLIENT_STATUSES: Final = frozenset({408, 409, 423, 425, 429})
# The only statuses that say the request itself can never succeed.
PERMANENT_STATUSES: Final = frozenset({400, 422})
AUTH_STATUSES: Final = frozenset({401, 403})
# Partner error bodies are {"error": <code>, "message": ...} (lambdas/partner_api/service.py); these codes
# mean "never", whatever the status (409 idempotency_conflict: the key was used for another body).
ERROR_CODE_FIELD: Final = "error"
PERMANENT_ERROR_CODES: Final = frozenset({"idempotency_conflict"})
CIRCUIT_HOOK_FAILED_MESSAGE: Final = "circuit_transition_hook_failed"
FLEET_TRIP_FAILED_MESSAGE: Final = "circuit_fleet_trip_failed"
FLEET_BOOKKEEPING_SKIPPED_MESSAGE: Final = "circuit_fleet_bookkeeping_skipped"
# Requests a failed call's fleet bookkeeping may make after the call: add to the streak, open the circuit,
# announce the opening (the transition hook). Each is allowed the circuit table's slowest recent request.
FLEET_FAILURE_REQUESTS: Final = 3


# The tunables the stack sets, from their one declaration (lambdas/contracts/dependency_tunables.py): built
# with their bounds, every one required (cdk.json's defaults are the stack's business, not the function's).
# mypy cannot see through create_model, so it reads the contract's class instead.
if TYPE_CHECKING:
    _Tunables = DependencyTunables
else:
    _Tunables = create_model(
        "DependencyTunables",
        __base__=EnvironmentSettings,
        **{name: (kind, Field(..., **t.bounds)) for name, (kind, t) in TUNABLES.items()},
    )


class DependencyPolicy(_Tunables, EnvironmentSettings):
    """How one dependency is called: retry, timeout-budget and circuit-breaker tunables.

    ``DependencyPolicy.from_environment(env)`` reads the DEPENDENCY_* / BREAKER_* variables; ints are parsed
    from strings ("5" is fine, "5.5" or "five" is an error naming the variable).
    """

    # Also the circuit name and the metric dimension, so keep it short and stable.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    base_url: str
    # SigV4 service name when the endpoint is IAM-authorized ("lambda" for a function URL); None: unsigned.
    signing_service: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")

    # field -> environment variable (names are part of the contract with the CDK stacks).
    REQUIRED: ClassVar[Mapping[str, str]] = {
        "name": env.DEPENDENCY_NAME,
        "base_url": env.DEPENDENCY_BASE_URL,
        **{name: tunable.variable for name, (_, tunable) in TUNABLES.items()},
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {"signing_service": env.DEPENDENCY_SIGNING_SERVICE}

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def full_attempt_budget_ms(self) -> int:
        """Time an invocation needs left to start a call whose first attempt gets its whole timeout."""
        return self.safety_margin_ms + self.connect_timeout_ms + self.attempt_timeout_ms

    @model_validator(mode="after")
    def _delay_cap_covers_base(self) -> DependencyPolicy:
        check_delays(self)
        return self


# ---------------------------------------------------------------------------------------------- errors


class UpstreamError(Exception):
    """A call to a dependency did not produce a usable response."""

    def __init__(
        self,
        message: str,
        *,
        dependency: str,
        status_class: str,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.status = status
        self.status_class = status_class
        self.retry_after = retry_after
        self.attempts = attempts


class PermanentUpstreamError(UpstreamError):
    """400, 422 or an explicit partner code: this request can never succeed. Never retried, never counted."""


class UpstreamConfigurationError(UpstreamError):
    """401/403 (after a credential re-read) or another unexpected 4xx: our key or route is wrong.

    Not the record's fault, so callers must not quarantine it; counted by the breaker, so a misconfigured
    fleet pauses its consumers instead of failing every record.
    """


class TransientUpstreamError(UpstreamError):
    """5xx, 429, timeout or connection failure that survived the retry loop. Counts toward the breaker."""


class BudgetExhaustedError(TransientUpstreamError):
    """The time budget cannot fit another attempt (or the backoff / Retry-After wait before it)."""


class DependencyUnavailableError(UpstreamError):
    """The circuit is open: the dependency was not called. ``retry_in_seconds`` is when a probe is due."""

    def __init__(self, message: str, *, dependency: str, retry_in_seconds: float) -> None:
        super().__init__(
            message,
            dependency=dependency,
            status_class=lf.STATUS_CLASS_CIRCUIT_OPEN,
            retry_after=retry_in_seconds,
        )
        self.retry_in_seconds = retry_in_seconds


def made_no_call(error: UpstreamError) -> bool:
    """The logical call never reached the dependency: refused by an open circuit, or no time for an attempt."""
    return isinstance(error, DependencyUnavailableError) or error.attempts == 0


# ---------------------------------------------------------------------------------------------- helpers


class SupportsLog(Protocol):
    """Either a Powertools ``Logger`` or a stdlib ``logging.Logger``."""

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class DependencyResponse:
    """A successful response, or (``from_fallback``) the fallback that replaced a failed call."""

    status: int | None
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    latency_ms: float = 0.0  # of the attempt that answered
    from_fallback: bool = False
    fallback_source: str | None = None  # "last_known_good" | "default"


class CredentialSource(Protocol):
    """Headers that authenticate a call (e.g. ``lambdas.shared.api_key.ApiKeyProvider``)."""

    def headers(self) -> Mapping[str, str]: ...

    def refresh(self) -> bool:
        """Re-read the credentials; True when they changed (so another attempt may succeed)."""
        ...


def classify_status(status: int, body: Any = None) -> str:
    """What an HTTP answer means for the call: one of the ``VERDICT_*`` values."""
    if 200 <= status < 300:
        return VERDICT_SUCCESS
    code = body.get(ERROR_CODE_FIELD) if isinstance(body, dict) else None
    if 400 <= status < 500 and code in PERMANENT_ERROR_CODES:
        return VERDICT_PERMANENT
    if status >= 500 or status < 400 or status in TRANSIENT_CLIENT_STATUSES:
        return VERDICT_TRANSIENT
    if status in PERMANENT_STATUSES:
        return VERDICT_PERMANENT
    if status in AUTH_STATUSES:
        return VERDICT_AUTH
    return VERDICT_CONFIGURATION


def status_class_for(status: int) -> str:
    """``429`` stays on its own (throttling is not an error of ours); others collapse to ``Nxx``."""
    if status == 429:
        return "429"
    return f"{status // 100}xx"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


def create_session(pool_maxsize: int = 4) -> requests.Session:
    """A session whose adapter never retries: the retry loop in DependencyClient is the only one."""
    session = requests.Session()
    # read=False re-raises read timeouts as ReadTimeout (read=0 would wrap them in a ConnectionError).
    no_retries = Retry(total=0, connect=0, read=False, status=0, other=0, redirect=0, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=no_retries, pool_connections=1, pool_maxsize=pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_SHARED_SESSION: requests.Session | None = None
_SHARED_SESSION_LOCK = threading.Lock()


def shared_session() -> requests.Session:
    """The execution environment's session, created once so warm invocations reuse connections."""
    global _SHARED_SESSION
    with _SHARED_SESSION_LOCK:
        if _SHARED_SESSION is None:
            _SHARED_SESSION = create_session()
        return _SHARED_SESSION


class _NoFallback:
    def __repr__(self) -> str:
        return "NO_FALLBACK"


NO_FALLBACK: Final = _NoFallback()


@dataclass
class _Call:
    """One logical call (all its attempts)."""

    method: str
    path: str
    route: str
    json_body: Any
    headers: dict[str, str]
    started: float
    budget_ms: float
    remaining_ms: Callable[[], int]
    max_attempts: int = 1
    attempts: int = 0
    credentials_refreshed: bool = False
    # The circuit as the call started: CLOSED, HALF_OPEN (this call is the probe) or the external owner's.
    circuit: str = ""


class _OpenedDuringCall(Exception):  # internal signal: never leaves the client
    """Raised inside the breaker when a re-check before a retry found the circuit no longer CLOSED.

    Not one of the breaker's handled exceptions: the circuit is already open, so this call's failure
    neither counts nor trips it again. Its ``error`` is what the caller gets: a ``TransientUpstreamError``,
    never ``DependencyUnavailableError`` (which says no call was made: the retry budget relies on it).
    """

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(str(error))
        self.error = error


class _NoAttemptMade(Exception):  # internal signal: never leaves the client
    """Raised inside the breaker when the budget ran out before any attempt: not counted as a failure."""

    def __init__(self, error: BudgetExhaustedError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _AttemptTimeout:
    connect_s: float
    read_s: float


# ---------------------------------------------------------------------------------------------- client


class DependencyClient:
    """Call one dependency with a time budget, retries, a shared circuit breaker and optional fallback.

    Parameters
    ----------
    policy:
        Tunables (``DependencyPolicy.from_environment(os.environ)`` in a handler).
    breaker_store / breaker_table_name / dynamodb_client:
        Where circuit state lives: pass a ready persistence layer, or a table name (partition key ``id``)
        and optionally a boto3 DynamoDB client (tests point it at moto).
    external_circuit:
        Instead of a breaker: another layer owns this dependency's circuit (e.g. ``"controller:OPEN"`` for
        the circuit controller's probe). No circuit checks or records and no ``UpstreamLogicalCalls``
        (the calls the breaker and its failure-rate alarm judge); the value is the log's circuit state.
    breaker_cache_seconds:
        How long an environment trusts its cached circuit state before re-reading DynamoDB, to the
        millisecond (default: the policy's ``breaker_cache_seconds``, i.e. BREAKER_CACHE_SECONDS). With a
        table name the store is a ``FleetCircuitStore``: the fleet shares its failure streak (below).
    session:
        Defaults to the environment-wide ``shared_session()``.
    sleep, clock, wall_clock, rng:
        Injected in tests; ``clock`` is monotonic seconds, ``wall_clock`` epoch seconds (HTTP-dates).
    credentials:
        Adds the authentication headers to every attempt; re-read once per call on a 401/403.
    request_auth:
        Signs every attempt (default: SigV4 with the environment's role credentials when the policy names
        a ``signing_service``, e.g. an IAM-authorized function URL; otherwise none).
    on_transition:
        Called with every ``CircuitTransition`` this environment makes, after it is logged and counted
        (e.g. to announce openings on an event bus). Its exceptions are logged and swallowed: a hook never
        changes the outcome of the call that caused the transition.
    """

    def __init__(
        self,
        policy: DependencyPolicy,
        *,
        breaker_store: CircuitBreakerPersistenceLayer | None = None,
        breaker_table_name: str | None = None,
        dynamodb_client: Any = None,
        breaker_cache_seconds: float | None = None,
        external_circuit: str | None = None,
        session: requests.Session | None = None,
        logger: SupportsLog | None = None,
        metrics_namespace: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        credentials: CredentialSource | None = None,
        request_auth: AuthBase | None = None,
        on_transition: Callable[[CircuitTransition], None] | None = None,
    ) -> None:
        if external_circuit is not None and (breaker_store is not None or breaker_table_name):
            raise ConfigurationError("DependencyClient takes a breaker or an external_circuit, not both")
        cache_seconds = (
            policy.breaker_cache_seconds if breaker_cache_seconds is None else breaker_cache_seconds
        )
        if breaker_store is None and external_circuit is None:
            if not breaker_table_name:
                raise ConfigurationError("DependencyClient needs breaker_store or breaker_table_name")
            # Short timeouts, standard retries (TABLE_CLIENT_CONFIG): a slow circuit table must not eat the
            # call's budget (reads fail open; an injected client keeps its own config).
            breaker_store = FleetCircuitStore(
                breaker_table_name,
                cache_seconds=cache_seconds,
                clock=clock,
                logger=logger,
                boto3_client=dynamodb_client or aws.client("dynamodb", config=TABLE_CLIENT_CONFIG),
            )
        self.policy = policy
        self._store = breaker_store
        # The fleet's shared failure streak (only a FleetCircuitStore keeps one; another store: per environment).
        self._fleet = breaker_store if isinstance(breaker_store, FleetCircuitStore) else None
        self._external_circuit = external_circuit
        self._session = session or shared_session()
        self._logger: SupportsLog = logger or logging.getLogger(__name__)
        self._namespace = metrics_namespace
        self._default_headers = {
            "User-Agent": f"resilient-serverless/{policy.name}",
            **(default_headers or {}),
        }
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._transition_hook = on_transition
        self._credentials = credentials
        self._request_auth = request_auth or signing_auth(policy.signing_service)
        self._last_good: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._last_good_lock = threading.Lock()
        # Consecutive failed logical calls in this environment (attempts_allowed).
        self._failure_streak = 0
        self._streak_lock = threading.Lock()
        self._breaker_config = CircuitBreakerConfig(
            failure_threshold=policy.breaker_failure_threshold,
            recovery_timeout=policy.breaker_recovery_seconds,
            success_threshold=policy.breaker_success_threshold,
            # A poison request or a budget we never had must not trip it; a sick dependency and a wrong
            # key or route must (the second pauses consumers instead of failing every record).
            handled_exceptions=(TransientUpstreamError, UpstreamConfigurationError),
            # Whole seconds for Powertools' own cache (a FleetCircuitStore keeps the fraction).
            local_cache_max_age=math.ceil(cache_seconds),
        )
        # Wrapping the whole retry loop gives the breaker exactly one outcome per logical call.
        self._guarded_call: Callable[[_Call], DependencyResponse] = (
            self._call_with_retries
            if breaker_store is None
            else circuit_breaker(
                name=policy.name,
                persistence_store=breaker_store,
                on_transition=self._on_transition,
                config=self._breaker_config,
            )(self._call_with_retries)
        )

    # ------------------------------------------------------------------------------------ public API

    @property
    def session(self) -> requests.Session:
        return self._session

    def circuit_state(self) -> CircuitState:
        """The circuit's state as this environment sees it (cached up to ``breaker_cache_seconds``)."""
        if self._store is None:
            raise ConfigurationError(
                f"{self.policy.name}: this client has no breaker ({self._external_circuit})"
            )
        return self._store.get_state(self.policy.name).state

    def get(self, path: str, *, remaining_ms: Callable[[], int], **kwargs: Any) -> DependencyResponse:
        return self.request("GET", path, remaining_ms=remaining_ms, **kwargs)

    def post(self, path: str, *, remaining_ms: Callable[[], int], **kwargs: Any) -> DependencyResponse:
        return self.request("POST", path, remaining_ms=remaining_ms, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        remaining_ms: Callable[[], int],
        route: str | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        fallback: Any = NO_FALLBACK,
        max_attempts: int | None = None,
    ) -> DependencyResponse:
        """Call ``{base_url}{path}``.

        ``route`` is the template logged instead of the concrete path (defaults to ``path``).
        ``fallback`` is the default returned for a non-critical dependency when nothing was cached yet.
        ``max_attempts`` lowers this call's attempts below ``attempts_allowed`` (a caller whose own
        layer retries too, e.g. a queue's redelivery: ``lambdas.contracts.retries``).

        Raises PermanentUpstreamError, UpstreamConfigurationError, TransientUpstreamError (incl.
        BudgetExhaustedError) and DependencyUnavailableError, except where a non-critical dependency's
        fallback applies (never to BudgetExhaustedError).
        """
        call = _Call(
            method=method.upper(),
            path=path if path.startswith("/") else f"/{path}",
            route=route or path.split("?", 1)[0],
            json_body=json,
            headers={**self._default_headers, **(headers or {})},
            started=self._clock(),
            budget_ms=float(remaining_ms() - self.policy.safety_margin_ms),
            remaining_ms=remaining_ms,
            max_attempts=min(self.attempts_allowed, max_attempts or self.policy.max_attempts),
        )
        try:
            if self._attempt_timeout(call) is None:
                # Raised before the breaker: a budget we never had says nothing about the dependency.
                raise BudgetExhaustedError(
                    f"{self.policy.name}: no time budget left for a first attempt",
                    dependency=self.policy.name,
                    status_class=lf.STATUS_CLASS_TIMEOUT,
                )
            response = self._guarded_call(call)
        except CircuitBreakerOpenError as exc:
            unavailable = self._unavailable(call, exc.circuit)
            return self._fallback_or_raise(call, unavailable, fallback)
        except _OpenedDuringCall as exc:
            # Its attempts failed (no retry once the fleet opened): a failed call, the circuit's already.
            self._count_logical_call(CALL_OUTCOME_TRANSIENT)
            self._note_outcome(call, failed=True)
            return self._fallback_or_raise(call, exc.error, fallback)
        except _NoAttemptMade as exc:
            raise exc.error from None
        except TransientUpstreamError as exc:
            if exc.attempts:  # a call that never reached the dependency is no data point about it
                self._count_logical_call(CALL_OUTCOME_TRANSIENT)
                self._note_outcome(call, failed=True)
                self._fleet_failure(call)
            return self._fallback_or_raise(call, exc, fallback)
        except PermanentUpstreamError:
            self._count_logical_call(CALL_OUTCOME_PERMANENT)
            self._note_outcome(call, failed=False)  # it answered: it is up
            raise
        except UpstreamConfigurationError:
            self._count_logical_call(CALL_OUTCOME_CONFIGURATION)
            self._note_outcome(call, failed=True)
            self._fleet_failure(call)
            raise
        self._count_logical_call(CALL_OUTCOME_SUCCESS)
        self._note_outcome(call, failed=False)
        if not self.policy.critical:
            self._remember(call, response.body)
        return response

    @property
    def attempts_allowed(self) -> int:
        """Attempts the next logical call may make: one fewer per consecutive failed call, at least one.

        A dependency that just failed a whole call is likely down: retrying every call in full would
        multiply the calls it gets before the breaker trips (max_attempts x threshold). A brown-out loses
        little: one success restores every attempt. The streak is this environment's; while the fleet has
        one (``FleetCircuitStore``: failed calls anywhere since the last success) a call gets at least one
        attempt fewer, and no more than one fewer for the fleet's sake: a brown-out fails some calls
        everywhere, and each attempt taken away makes its next call likelier to fail and the streak to
        reach the threshold (in a simple model of five busy environments and a 50 % brown-out, one fewer
        per fleet-wide failure doubled the chance that the circuit opens; one fewer in all, about a third).
        """
        with self._streak_lock:
            streak = self._failure_streak
        if self._fleet is not None:
            streak = max(streak, min(1, self._fleet.fleet_failures(self.policy.name)))
        return max(1, self.policy.max_attempts - streak)

    def _note_outcome(self, call: _Call, *, failed: bool) -> None:
        with self._streak_lock:
            self._failure_streak = self._failure_streak + 1 if failed else 0
        fleet = self._fleet
        if failed or fleet is None or not fleet.streak_recent(self.policy.name):
            return
        if self._bookkeeping_fits(call, fleet, requests=1):  # if not, the next success clears the streak
            fleet.clear_failures(self.policy.name)

    def _bookkeeping_fits(self, call: _Call, fleet: FleetCircuitStore, *, requests: int) -> bool:
        """Whether ``requests`` circuit-table requests fit in what the invocation has left after the call.

        The fleet's bookkeeping comes after the call's budget, inside the margin the caller keeps for its own
        work after the call: each request is allowed the table's slowest recent one, and when they do not
        fit they are skipped (logged). Skipping loses only the fleet's view: Powertools' own counter still
        trips the circuit in this environment, and the next call that has the time adds to the streak.
        """
        needed_ms = requests * fleet.slowest_request_ms
        left_ms = call.remaining_ms() - self.policy.safety_margin_ms
        if left_ms >= needed_ms:
            return True
        self._logger.warning(
            FLEET_BOOKKEEPING_SKIPPED_MESSAGE,
            extra={lf.DEPENDENCY: self.policy.name, "left_ms": round(left_ms), "needed_ms": round(needed_ms)},
        )
        return False

    def _fleet_failure(self, call: _Call) -> None:
        """Add this failed logical call to the fleet's streak; the environment whose failure makes it reach
        the threshold opens the circuit for everyone (Powertools' own counter trips it per environment).

        Only a call made while the circuit was CLOSED counts (a failed probe reopens it in Powertools), and
        none once this environment's cache sees it open (its own failure tripped Powertools' counter; the
        streak's write is conditional on CLOSED anyway). Only when the invocation has the time for it.
        """
        fleet, name = self._fleet, self.policy.name
        if fleet is None or call.circuit != str(CircuitState.CLOSED):
            return
        if fleet.cached_state(name) not in (None, CircuitState.CLOSED):
            return
        if not self._bookkeeping_fits(call, fleet, requests=FLEET_FAILURE_REQUESTS):
            return
        count = fleet.add_failure(name)
        if count is None or count < self.policy.breaker_failure_threshold:
            return
        opened_at = int(self._wall_clock())
        try:
            fleet.save_open(name, failure_count=count, opened_at=opened_at)
        except Exception as exc:  # like Powertools: a failed write never replaces the call's own error
            self._logger.warning(
                FLEET_TRIP_FAILED_MESSAGE, extra={lf.DEPENDENCY: name, lf.ERROR: type(exc).__name__}
            )
            return
        self._on_transition(CircuitTransition(name, CircuitState.CLOSED, CircuitState.OPEN, opened_at))

    # ------------------------------------------------------------------------------------ retry loop

    def _call_with_retries(self, call: _Call) -> DependencyResponse:
        # CLOSED, or HALF_OPEN when this call is the probe; or the external owner's word.
        circuit = call.circuit = self._external_circuit or str(self.circuit_state())
        url = f"{self.policy.base_url}{call.path}"
        while True:
            timeout = self._attempt_timeout(call)
            if timeout is None:  # sleeps are checked before sleeping: the breaker's read or a clock jump
                error = self._error(
                    BudgetExhaustedError, call, "ran out of time budget", None, lf.STATUS_CLASS_TIMEOUT
                )
                if call.attempts == 0:  # our own I/O used the time: says nothing about the dependency
                    raise _NoAttemptMade(error)  # type: ignore[arg-type]
                raise error
            call.attempts += 1
            headers = call.headers
            if self._credentials is not None:
                headers = {**headers, **self._credentials.headers()}
            attempt_started = self._clock()
            status: int | None = None
            http_response: requests.Response | None = None
            try:
                http_response = self._session.request(
                    call.method,
                    url,
                    json=call.json_body,
                    headers=headers,
                    auth=self._request_auth,
                    timeout=(timeout.connect_s, timeout.read_s),
                    allow_redirects=False,
                )
                status = http_response.status_code
                status_class = status_class_for(status)
            except requests.exceptions.ReadTimeout:
                status_class = lf.STATUS_CLASS_TIMEOUT
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
                # ConnectTimeout is a ConnectionError: the host could not be reached in time.
                status_class = lf.STATUS_CLASS_CONNECTION
            latency_ms = (self._clock() - attempt_started) * 1000.0
            body = _decode_body(http_response) if http_response is not None else None
            verdict = classify_status(status, body) if status is not None else VERDICT_TRANSIENT
            succeeded = http_response is not None and verdict == VERDICT_SUCCESS
            self._emit_attempt_metrics(None if succeeded else status_class, latency_ms)
            log = partial(self._log_attempt, call, status, status_class, latency_ms, circuit)
            fail = partial(self._failed, log, call, status, status_class)

            if succeeded and http_response is not None:
                log(lf.OUTCOME_SUCCESS)
                return DependencyResponse(
                    status=status,
                    body=body,
                    headers=dict(http_response.headers),
                    attempts=call.attempts,
                    latency_ms=latency_ms,
                )

            if verdict == VERDICT_AUTH and self._refreshed_credentials(call):
                # A rotated key: retry at once with the new one (no backoff; it is not a dependency fault).
                log(lf.OUTCOME_RETRY)
                continue
            if verdict == VERDICT_PERMANENT:
                raise fail(lf.OUTCOME_PERMANENT, PermanentUpstreamError, "was rejected")
            if verdict in (VERDICT_AUTH, VERDICT_CONFIGURATION):
                raise fail(lf.OUTCOME_CONFIGURATION, UpstreamConfigurationError, "was refused (key or route)")

            retry_after = parse_retry_after(
                http_response.headers.get("Retry-After") if http_response is not None else None,
                self._wall_clock(),
            )
            if call.attempts >= call.max_attempts:
                raise fail(lf.OUTCOME_GIVE_UP, TransientUpstreamError, "failed on every attempt", retry_after)

            delay_s = retry_after if retry_after is not None else self._backoff_seconds(call.attempts)
            if not self._fits_after_sleep(call, delay_s):
                # Waiting (e.g. a Retry-After beyond the budget) would overrun: give up now, keep the hint.
                raise fail(
                    lf.OUTCOME_GIVE_UP,
                    BudgetExhaustedError,
                    f"failed and waiting {delay_s:.3f}s for another attempt would exceed the time budget",
                    retry_after,
                )
            log(lf.OUTCOME_RETRY, retry_after=retry_after, backoff_ms=delay_s * 1000.0)
            self._sleep(delay_s)
            self._recheck(call, status, status_class, circuit, retry_after)

    def _recheck(
        self, call: _Call, status: int | None, status_class: str, circuit: str, retry_after: float | None
    ) -> None:
        """Before a retry of a call made while the circuit was CLOSED: re-read the circuit (not the cache).

        Ends the call when another environment opened it meanwhile (``_OpenedDuringCall``); otherwise
        lowers the call's attempts to what a call now gets (``attempts_allowed``: the fleet's streak may
        have grown) and ends it if none are left. Only a ``FleetCircuitStore`` re-reads (one read per
        retry: on the failure path only). The ending's log line has no latency (the attempt's line had it).
        """
        if self._fleet is None or call.circuit != str(CircuitState.CLOSED):
            return
        record = self._fleet.read_fresh(self.policy.name)
        log = partial(self._log_attempt, call, status, status_class, 0.0)
        if record.state != CircuitState.CLOSED:
            opened = record.to_circuit_info()
            error = self._failed(
                partial(log, str(opened.state)),
                call,
                status,
                status_class,
                lf.OUTCOME_GIVE_UP,
                TransientUpstreamError,
                "failed, and the circuit opened meanwhile",
                self._retry_in(opened),  # the record waits for the probe, not for a retry
            )
            raise _OpenedDuringCall(error)
        call.max_attempts = min(call.max_attempts, self.attempts_allowed)
        if call.attempts >= call.max_attempts:
            raise self._failed(
                partial(log, circuit),
                call,
                status,
                status_class,
                lf.OUTCOME_GIVE_UP,
                TransientUpstreamError,
                "failed, and the fleet's failed calls since left it no more attempts",
                retry_after,
            )

    def _refreshed_credentials(self, call: _Call) -> bool:
        """Re-read the credentials once per call; True when they changed, so one more attempt is worth it."""
        if self._credentials is None or call.credentials_refreshed:
            return False
        call.credentials_refreshed = True
        return self._credentials.refresh()

    def _failed(
        self,
        log: Callable[..., None],
        call: _Call,
        status: int | None,
        status_class: str,
        outcome: str,
        error_type: type[UpstreamError],
        what: str,
        retry_after: float | None = None,
    ) -> UpstreamError:
        """Log (``log``: the attempt's ``_log_attempt``) the attempt that ends the call, with ``outcome``,
        and build the error the call raises."""
        log(outcome, retry_after=retry_after)
        return self._error(error_type, call, what, status, status_class, retry_after)

    def _error(
        self,
        error_type: type[UpstreamError],
        call: _Call,
        what: str,
        status: int | None,
        status_class: str,
        retry_after: float | None = None,
    ) -> UpstreamError:
        shown = status if status is not None else status_class
        return error_type(
            f"{self.policy.name} {call.method} {call.route} {what} ({shown}, {call.attempts} attempt(s))",
            dependency=self.policy.name,
            status=status,
            status_class=status_class,
            retry_after=retry_after,
            attempts=call.attempts,
        )

    def _backoff_seconds(self, failed_attempts: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**n)) spreads retries from many environments apart."""
        ceiling_ms = min(self.policy.max_delay_ms, self.policy.base_delay_ms * 2 ** (failed_attempts - 1))
        return self._rng.uniform(0, ceiling_ms) / 1000.0

    def _left_ms(self, call: _Call) -> float:
        return call.budget_ms - (self._clock() - call.started) * 1000.0

    def _attempt_timeout(self, call: _Call, after_sleep_s: float = 0.0) -> _AttemptTimeout | None:
        """Timeouts for the next attempt, or None if the remaining budget cannot fit a useful one.

        The read timeout is capped so that connect + read never exceed what is left of the budget.
        """
        left_ms = self._left_ms(call) - after_sleep_s * 1000.0
        connect_ms = float(self.policy.connect_timeout_ms)
        read_ms = min(float(self.policy.attempt_timeout_ms), left_ms - connect_ms)
        if read_ms < MIN_READ_TIMEOUT_MS:
            return None
        return _AttemptTimeout(connect_s=connect_ms / 1000.0, read_s=read_ms / 1000.0)

    def _fits_after_sleep(self, call: _Call, delay_s: float) -> bool:
        return self._attempt_timeout(call, after_sleep_s=delay_s) is not None

    # ------------------------------------------------------------------------------------ circuit open

    def _retry_in(self, circuit: CircuitInfo | None) -> float:
        """Seconds until the open circuit lets a probe through."""
        recovery = float(self.policy.breaker_recovery_seconds)
        opened_at = circuit.opened_at if circuit is not None else None
        return recovery if opened_at is None else max(0.0, opened_at + recovery - self._wall_clock())

    def _unavailable(self, call: _Call, circuit: CircuitInfo | None) -> DependencyUnavailableError:
        retry_in = self._retry_in(circuit)
        state = str(circuit.state) if circuit is not None else str(CircuitState.OPEN)
        self._logger.warning(
            lf.UPSTREAM_CALL_MESSAGE,
            extra={
                lf.DEPENDENCY: self.policy.name,
                lf.METHOD: call.method,
                lf.ROUTE: call.route,
                lf.STATUS: None,
                lf.STATUS_CLASS: lf.STATUS_CLASS_CIRCUIT_OPEN,
                lf.ATTEMPT: 0,
                lf.MAX_ATTEMPTS: call.max_attempts,
                lf.LATENCY_MS: 0.0,
                lf.CIRCUIT_STATE: state,
                lf.OUTCOME: lf.OUTCOME_CIRCUIT_OPEN,
                lf.RETRY_AFTER_S: round(retry_in, 3),
            },
        )
        self._count(METRIC_CIRCUIT_REJECTIONS, {lf.DEPENDENCY: self.policy.name})
        return DependencyUnavailableError(
            f"{self.policy.name}: circuit is {state}; next probe in {retry_in:.1f}s",
            dependency=self.policy.name,
            retry_in_seconds=retry_in,
        )

    def _on_transition(self, transition: CircuitTransition) -> None:
        self._logger.warning(
            lf.CIRCUIT_TRANSITION_MESSAGE,
            extra={
                lf.DEPENDENCY: self.policy.name,
                lf.FROM_STATE: str(transition.from_state),
                lf.TO_STATE: str(transition.to_state),
            },
        )
        self._count(
            METRIC_CIRCUIT_TRANSITION,
            {lf.DEPENDENCY: self.policy.name, DIMENSION_TO_STATE: str(transition.to_state)},
        )
        if self._transition_hook is None:
            return
        try:
            self._transition_hook(transition)
        except Exception as exc:  # Powertools would swallow it too, but silently for our log pipeline
            self._logger.warning(
                CIRCUIT_HOOK_FAILED_MESSAGE,
                extra={
                    lf.DEPENDENCY: self.policy.name,
                    lf.TO_STATE: str(transition.to_state),
                    lf.ERROR: type(exc).__name__,
                },
            )

    # ------------------------------------------------------------------------------------ fallback

    def _remember(self, call: _Call, body: Any) -> None:
        with self._last_good_lock:
            key = (call.method, call.path)
            self._last_good[key] = body
            self._last_good.move_to_end(key)
            while len(self._last_good) > LAST_GOOD_MAX_ENTRIES:
                self._last_good.popitem(last=False)

    def _fallback_or_raise(self, call: _Call, error: UpstreamError, fallback: Any) -> DependencyResponse:
        # A budget that ran out is our shortfall: a fallback would report undone work as done.
        if self.policy.critical or isinstance(error, BudgetExhaustedError):
            raise error
        with self._last_good_lock:
            cached = self._last_good.get((call.method, call.path), NO_FALLBACK)
        if cached is not NO_FALLBACK:
            body, source = cached, "last_known_good"
        elif fallback is not NO_FALLBACK:
            body, source = fallback, "default"
        else:
            raise error
        self._logger.warning(
            lf.FALLBACK_MESSAGE,
            extra={
                lf.DEPENDENCY: self.policy.name,
                lf.METHOD: call.method,
                lf.ROUTE: call.route,
                lf.STATUS_CLASS: error.status_class,
                lf.ERROR: type(error).__name__,
                "fallback_source": source,
            },
        )
        self._count(METRIC_FALLBACK_USED, {lf.DEPENDENCY: self.policy.name})
        return DependencyResponse(
            status=None, body=body, attempts=error.attempts, from_fallback=True, fallback_source=source
        )

    # ------------------------------------------------------------------------------------ telemetry

    def _log_attempt(
        self,
        call: _Call,
        status: int | None,
        status_class: str,
        latency_ms: float,
        circuit: str,
        outcome: str,
        *,
        retry_after: float | None = None,
        backoff_ms: float | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            lf.DEPENDENCY: self.policy.name,
            lf.METHOD: call.method,
            lf.ROUTE: call.route,
            lf.STATUS: status,
            lf.STATUS_CLASS: status_class,
            lf.ATTEMPT: call.attempts,
            lf.MAX_ATTEMPTS: call.max_attempts,
            lf.LATENCY_MS: round(latency_ms, 1),
            lf.CIRCUIT_STATE: circuit,
            lf.OUTCOME: outcome,
        }
        if retry_after is not None:
            fields[lf.RETRY_AFTER_S] = round(retry_after, 3)
        if backoff_ms is not None:
            fields[lf.BACKOFF_MS] = round(backoff_ms, 1)
        log = self._logger.info if outcome == lf.OUTCOME_SUCCESS else self._logger.warning
        log(lf.UPSTREAM_CALL_MESSAGE, extra=fields)

    def _emit_attempt_metrics(self, error_class: str | None, latency_ms: float) -> None:
        dims = {lf.DEPENDENCY: self.policy.name}
        self._count(METRIC_UPSTREAM_CALLS, dims)
        with single_metric(
            name=METRIC_UPSTREAM_LATENCY,
            unit=MetricUnit.Milliseconds,
            value=latency_ms,
            namespace=self._namespace,
            default_dimensions=dims,
        ):
            pass
        if error_class is not None:
            self._count(METRIC_UPSTREAM_ERRORS, {**dims, lf.STATUS_CLASS: error_class})

    def count_failed_probe(self) -> None:
        """The circuit controller's probe found the dependency unhealthy (the circuit stays open)."""
        self._count(METRIC_CIRCUIT_PROBES_FAILED, {lf.DEPENDENCY: self.policy.name})

    def _count_logical_call(self, outcome: str) -> None:
        if self._store is None:  # not a call the breaker (nor its failure-rate alarm) judges
            return
        self._count(METRIC_LOGICAL_CALLS, {lf.DEPENDENCY: self.policy.name, DIMENSION_OUTCOME: outcome})

    def _count(self, name: str, dimensions: dict[str, str]) -> None:
        # single_metric: dimensions belong to this data point only, not to the handler's Metrics flush.
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=1,
            namespace=self._namespace,
            default_dimensions=dimensions,
        ):
            pass


def _decode_body(response: requests.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
