"""The local front door: the synthesized REST API's contract, served on 127.0.0.1.

moto creates the REST API's resources and methods but does not run API Gateway service integrations, so
this server does what API Gateway would, driven by the synthesized template rather than by a copy of it:

* routes and methods from ``AWS::ApiGateway::Resource`` / ``Method``, under the stage's path (``/dev/``);
* request validation with the method's request models (the ``AWS::ApiGateway::Model`` schemas, JSON
  Schema draft 4, ``jsonschema.Draft4Validator``) and required request parameters, when the method's
  ``RequestValidator`` asks for them;
* SigV4 on ``AWS_IAM`` methods (``localcloud.sigv4``): a request signed for ``execute-api`` with the
  local producer's credentials (``producer_auth``) gets through as that caller (``$context.identity``);
  no signature is a 403 ``MISSING_AUTHENTICATION_TOKEN``, a wrong one a 403 ``INVALID_SIGNATURE``;
* stage throttling from the stage's ``MethodSettings`` (a token bucket per method: rate and burst);
* the integration: the method's request mapping template (VTL: airspeed-ext, ``localcloud.vtl``) becomes
  the service request (SQS query-protocol ``SendMessage``, or a JSON-protocol call such as
  ``AWSEvents.PutEvents``) sent to the emulator; the service's answer picks the integration response by
  its ``SelectionPattern`` and is rendered with that response's template and headers, then with what the
  template overrode (``$context.responseOverride.status`` and ``.header.<name>``);
* every error API Gateway itself produces (400 / 403 / 415 / 429 / 5xx) uses the template's
  ``AWS::ApiGateway::GatewayResponse`` for that type (or the DEFAULT_4XX / DEFAULT_5XX one).

Not emulated: IAM policies (who may invoke what: the API's resource policy is checked on the template),
API keys and usage plans, the 29 s integration timeout, access logs.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.request_signing import SigV4RequestAuth
from localcloud import vtl
from localcloud.deploy import DeployedStack
from localcloud.emulator import FAKE_CREDENTIALS
from localcloud.served import ServedOnThread, write_response
from localcloud.sigv4 import Principal, SigV4Verifier

API_SERVICE = "execute-api"
# Who the local cloud's producers are: its one set of credentials, as an assumed role would appear.
LOCAL_PRODUCER_ROLE = "local-producer"
LOCAL_PRODUCER_SESSION = "local-cloud"


def local_producer(account_id: str) -> Principal:
    return Principal(
        access_key=FAKE_CREDENTIALS["aws_access_key_id"],
        secret_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        token=FAKE_CREDENTIALS["aws_session_token"],
        account_id=account_id,
        user_arn=f"arn:aws:sts::{account_id}:assumed-role/{LOCAL_PRODUCER_ROLE}/{LOCAL_PRODUCER_SESSION}",
        caller=f"AROALOCALPRODUCER:{LOCAL_PRODUCER_SESSION}",
    )


def producer_auth(region: str) -> SigV4RequestAuth:
    """``requests`` auth that signs as the local producer (``session.auth = producer_auth(region)``).
    Its credentials do not depend on the account, which only names who signed."""
    credentials = local_producer("").credentials
    return SigV4RequestAuth(API_SERVICE, region, lambda: credentials)


JSON = "application/json"

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST payload quota
# API Gateway's own messages and default status codes for the response types the front door produces.
GATEWAY_DEFAULTS: dict[str, tuple[int, str]] = {
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "BAD_REQUEST_PARAMETERS": (400, "Invalid request parameters"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_SIGNATURE": (
        403,
        "The request signature we calculated does not match the signature you provided.",
    ),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "THROTTLED": (429, "Too Many Requests"),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "API_CONFIGURATION_ERROR": (500, "Internal server error"),
}


# ------------------------------------------------------------------------------------------ the contract


@dataclass(frozen=True)
class GatewayResponse:
    response_type: str
    status: int | None
    templates: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class IntegrationResponse:
    status: int
    selection_pattern: str | None
    templates: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    authorization: str
    request_models: Mapping[str, dict[str, Any]]  # content type -> JSON Schema
    validate_body: bool
    validate_parameters: bool
    parameters: Mapping[str, bool]  # "header.Idempotency-Key" -> required
    integration_type: str  # AWS | AWS_PROXY | ...
    integration_uri: str
    integration_headers: Mapping[str, str]
    request_templates: Mapping[str, str]
    passthrough: str
    integration_responses: tuple[IntegrationResponse, ...]


@dataclass(frozen=True)
class Throttle:
    rate: float
    burst: int


@dataclass(frozen=True)
class ApiContract:
    stage: str
    routes: Mapping[tuple[str, str], Route]
    gateway_responses: Mapping[str, GatewayResponse]
    throttles: Mapping[tuple[str, str], Throttle]  # (resource path or "/*", method or "*")

    @classmethod
    def from_stack(cls, stack: DeployedStack) -> ApiContract:
        resources = stack.template["Resources"]

        def of_type(kind: str) -> dict[str, dict[str, Any]]:
            return {k: v for k, v in resources.items() if v["Type"] == f"AWS::ApiGateway::{kind}"}

        apis = of_type("RestApi")
        if len(apis) != 1:
            raise ValueError(f"the front door serves exactly one REST API; the template has {len(apis)}")

        def path_of(reference: Any) -> str:
            if isinstance(reference, dict) and "Fn::GetAtt" in reference:
                return ""  # the API's RootResourceId
            logical_id = reference["Ref"]
            properties = resources[logical_id]["Properties"]
            return f"{path_of(properties['ParentId'])}/{properties['PathPart']}"

        models = {k: v["Properties"]["Schema"] for k, v in of_type("Model").items()}
        validators = {k: v["Properties"] for k, v in of_type("RequestValidator").items()}
        routes: dict[tuple[str, str], Route] = {}
        for method in of_type("Method").values():
            p = method["Properties"]
            if p["HttpMethod"] == "OPTIONS":
                continue
            path = path_of(p["ResourceId"]) or "/"
            integration = p.get("Integration", {})
            validator = validators.get(p.get("RequestValidatorId", {}).get("Ref", ""), {})
            request_models = {}
            for content_type, model in (p.get("RequestModels") or {}).items():
                if isinstance(model, dict):
                    request_models[content_type] = models[model["Ref"]]
            routes[(path, p["HttpMethod"])] = Route(
                path=path,
                method=p["HttpMethod"],
                authorization=p.get("AuthorizationType", "NONE"),
                request_models=request_models,
                validate_body=bool(validator.get("ValidateRequestBody")),
                validate_parameters=bool(validator.get("ValidateRequestParameters")),
                parameters={
                    name.removeprefix("method.request."): bool(required)
                    for name, required in (p.get("RequestParameters") or {}).items()
                },
                integration_type=str(integration.get("Type", "AWS")),
                integration_uri=str(stack.resolve(integration.get("Uri", ""))),
                integration_headers={
                    name.removeprefix("integration.request.header."): _literal(value)
                    for name, value in (integration.get("RequestParameters") or {}).items()
                    if name.startswith("integration.request.header.")
                },
                request_templates=stack.resolve(integration.get("RequestTemplates") or {}),
                passthrough=integration.get("PassthroughBehavior", "WHEN_NO_MATCH"),
                integration_responses=tuple(
                    IntegrationResponse(
                        status=int(r["StatusCode"]),
                        selection_pattern=r.get("SelectionPattern"),
                        templates=stack.resolve(r.get("ResponseTemplates") or {}),
                        headers={
                            name.removeprefix("method.response.header."): _literal(value)
                            for name, value in (r.get("ResponseParameters") or {}).items()
                        },
                    )
                    for r in integration.get("IntegrationResponses", [])
                ),
            )
        gateway_responses = {}
        for response in of_type("GatewayResponse").values():
            p = response["Properties"]
            gateway_responses[p["ResponseType"]] = GatewayResponse(
                response_type=p["ResponseType"],
                status=int(p["StatusCode"]) if "StatusCode" in p else None,
                templates=p.get("ResponseTemplates") or {},
                headers={
                    name.removeprefix("gatewayresponse.header."): _literal(value)
                    for name, value in (p.get("ResponseParameters") or {}).items()
                },
            )
        stages = of_type("Stage")
        if len(stages) != 1:
            raise ValueError(f"the front door serves exactly one stage; the template has {len(stages)}")
        stage = next(iter(stages.values()))["Properties"]
        throttles = {
            (s.get("ResourcePath", "/*"), s.get("HttpMethod", "*")): Throttle(
                float(s["ThrottlingRateLimit"]), int(s["ThrottlingBurstLimit"])
            )
            for s in stage.get("MethodSettings", [])
            if "ThrottlingRateLimit" in s and "ThrottlingBurstLimit" in s
        }
        return cls(stage["StageName"], routes, gateway_responses, throttles)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        """The route for a request path (relative to the stage), with its path parameters."""
        exact = self.routes.get((path, method))
        if exact is not None:
            return exact, {}
        segments = [s for s in path.split("/") if s]
        for (template, route_method), route in self.routes.items():
            if route_method not in (method, "ANY"):
                continue
            parts = [p for p in template.split("/") if p]
            parameters: dict[str, str] = {}
            for index, part in enumerate(parts):
                if part.startswith("{") and part.endswith("+}"):
                    parameters[part[1:-2]] = "/".join(segments[index:])
                    break
                if index >= len(segments):
                    break
                if part.startswith("{") and part.endswith("}"):
                    parameters[part[1:-1]] = urllib.parse.unquote(segments[index])
                elif part != segments[index]:
                    break
            else:
                if len(parts) == len(segments):
                    return route, parameters
                continue
            if parts and parts[-1].endswith("+}") and len(segments) >= len(parts):
                return route, parameters
        return None, {}

    def throttle_for(self, route: Route) -> Throttle | None:
        # MethodSettings paths use "~1" for "/" inside a resource path: /orders -> "/~1orders".
        escaped = "/" + route.path.replace("/", "~1")
        for key in ((escaped, route.method), (escaped, "*"), ("/*", route.method), ("/*", "*")):
            if key in self.throttles:
                return self.throttles[key]
        return None

    def possible_status_codes(self) -> set[int]:
        """Every status the front door can answer with (method responses + gateway responses)."""
        codes = {r.status for route in self.routes.values() for r in route.integration_responses}
        codes |= {502}  # a response template may override the status; a failed Lambda proxy call is 502
        for response_type, (default_status, _) in GATEWAY_DEFAULTS.items():
            configured = self.gateway_responses.get(response_type)
            codes.add(configured.status if configured and configured.status else default_status)
        return codes


def _literal(value: Any) -> str:
    """A mapping expression that is a static value: ``'text'`` -> ``text``."""
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    raise ValueError(f"only static ('quoted') mapping values are supported, got {text!r}")


# ------------------------------------------------------------------------------------------ throttling


class TokenBucket:
    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = throttle.rate
        self.capacity = float(throttle.burst)
        self._tokens = float(throttle.burst)
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


# ------------------------------------------------------------------------------------------ the server


@dataclass
class Response:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class FrontDoor(ServedOnThread):
    """HTTP server on 127.0.0.1 speaking the API's contract; ``base_url`` ends with the stage ("/dev/")."""

    _what = "front door"

    def __init__(
        self,
        stack: DeployedStack,
        *,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        invoke_function: Callable[[str, dict[str, Any]], tuple[bool, Any]] | None = None,
    ) -> None:
        """``invoke_function(function_arn, event) -> (succeeded, payload)`` serves Lambda proxy routes."""
        super().__init__()
        self.stack = stack
        self._invoke_function = invoke_function
        self.contract = ApiContract.from_stack(stack)
        self._iam = SigV4Verifier(
            API_SERVICE, stack.emulator.region, [local_producer(stack.emulator.account_id)]
        )
        self._requested_port = port
        self._buckets = {
            key: TokenBucket(throttle, clock)
            for key, route in self.contract.routes.items()
            if (throttle := self.contract.throttle_for(route)) is not None
        }
        self._emulator = stack.emulator
        self._queue_urls: dict[str, str] = {}
        self._queue_urls_lock = threading.Lock()
        self.status_counts: Counter[int] = Counter()
        self._stats_lock = threading.Lock()
        # Called after every request with (method, resource path or None when no route matched, status,
        # latency in ms): what API Gateway publishes as metrics (localcloud/metrics.py).
        self.observers: list[Callable[[str, str | None, int, float], None]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FrontDoor:
        front_door = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffer the response so headers and body leave in one segment: unbuffered, the body waits
            # for the client's delayed ACK of the headers (Nagle), about 40 ms per request.
            wbufsize = 64 * 1024

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                response = front_door.handle(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    raw.decode("utf-8", errors="replace"),
                    raw,
                )
                write_response(self, response.status, response.headers, response.body.encode())

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self._requested_port), Handler)
        server.daemon_threads = True
        self._serve_on_thread(server, name="front-door", poll_interval=0.1)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.contract.stage}/"

    # -- one request -------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: str, raw: bytes | None = None
    ) -> Response:
        """API Gateway's request pipeline for one request (also callable without the HTTP server).

        ``raw``: the body's bytes as sent (what a signature covers); ``body`` encoded as UTF-8 when absent.
        """
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        raw = body.encode("utf-8", "surrogatepass") if raw is None else raw
        response = self._handle(method, raw_path, headers, body, raw, request_id)
        response.headers.setdefault("Content-Type", JSON)
        response.headers["x-amzn-RequestId"] = request_id
        with self._stats_lock:
            self.status_counts[response.status] += 1
        latency_ms = (time.monotonic() - started) * 1000.0
        if self.observers:
            route, _ = self._route(method, raw_path)
            for observer in list(self.observers):
                observer(method.upper(), route.path if route else None, response.status, latency_ms)
        return response

    def _route(self, method: str, raw_path: str) -> tuple[Route | None, dict[str, str]]:
        """The route a request is for (None: no route under this stage), with its path parameters."""
        path = urllib.parse.urlsplit(raw_path).path.rstrip("/") or "/"
        prefix = f"/{self.contract.stage}"
        if path == prefix or path.startswith(prefix + "/"):
            return self.contract.match(method.upper(), path[len(prefix) :] or "/")
        return None, {}

    def _handle(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, str],
        body: str,
        raw: bytes,
        request_id: str,
    ) -> Response:
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path.rstrip("/") or "/"
        route, path_parameters = self._route(method, raw_path)
        context: dict[str, Any] = {
            "requestId": request_id,
            "stage": self.contract.stage,
            "httpMethod": method.upper(),
            "resourcePath": route.path if route else path,
            "responseOverride": {},
        }
        if len(body.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
            return self._gateway_error("REQUEST_TOO_LARGE", context)
        if route is None:
            return self._gateway_error("MISSING_AUTHENTICATION_TOKEN", context)
        context["identity"] = {"sourceIp": "127.0.0.1"}
        if route.authorization == "AWS_IAM":
            host = next((v for k, v in headers.items() if k.lower() == "host"), "")
            verdict = self._iam.verify(method.upper(), f"http://{host}{raw_path}", headers, raw)
            if verdict.principal is None:
                kind = "INVALID_SIGNATURE" if verdict.signed else "MISSING_AUTHENTICATION_TOKEN"
                return self._gateway_error(kind, context)
            context["identity"] |= {
                "accountId": verdict.principal.account_id,
                "caller": verdict.principal.caller,
                "user": verdict.principal.caller,
                "userArn": verdict.principal.user_arn,
            }
        bucket = self._buckets.get((route.path, route.method))
        if bucket is not None and not bucket.take():
            return self._gateway_error("THROTTLED", context)

        header_params = dict(headers)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        if route.validate_parameters:
            lowered = {k.lower() for k in header_params}
            missing = [
                name.split(".", 1)[1]
                for name, required in route.parameters.items()
                if required
                and (
                    (name.startswith("header.") and name.split(".", 1)[1].lower() not in lowered)
                    or (name.startswith("querystring.") and name.split(".", 1)[1] not in query)
                )
            ]
            if missing:
                message = f"Missing required request parameters: [{', '.join(missing)}]"
                return self._gateway_error("BAD_REQUEST_PARAMETERS", context, message, message)

        if route.integration_type == "AWS_PROXY":
            return self._lambda_proxy(route, method, parsed, headers, body, query, path_parameters, context)

        content_type = (headers.get("Content-Type") or headers.get("content-type") or JSON).split(";")[0]
        content_type = content_type.strip().lower()
        schema = route.request_models.get(content_type)
        if route.validate_body and schema is not None:
            problem = _validation_error(schema, body)
            if problem is not None:
                return self._gateway_error("BAD_REQUEST_BODY", context, None, problem)
        template = route.request_templates.get(content_type)
        if template is None:
            if route.passthrough == "NEVER" or (
                route.passthrough == "WHEN_NO_TEMPLATES" and route.request_templates
            ):
                return self._gateway_error("UNSUPPORTED_MEDIA_TYPE", context)
            template = "$input.body"
        request_input = vtl.Input(
            body, {"header": header_params, "querystring": query, "path": path_parameters}
        )
        try:
            rendered = vtl.render(template, input=request_input, context=context)
            status, service_body = self._call_service(route, rendered)
        except vtl.VtlError:
            return self._gateway_error("API_CONFIGURATION_ERROR", context)
        except (BotoCoreError, OSError):
            return self._gateway_error("INTEGRATION_FAILURE", context)
        return self._integration_response(route, status, service_body, context, request_input)

    def _lambda_proxy(
        self,
        route: Route,
        method: str,
        parsed: urllib.parse.SplitResult,
        headers: Mapping[str, str],
        body: str,
        query: dict[str, str],
        path_parameters: dict[str, str],
        context: dict[str, Any],
    ) -> Response:
        """A Lambda proxy integration (REST API payload format 1.0)."""
        match = re.fullmatch(
            r"arn:[^:]+:apigateway:[^:]*:lambda:path/[^/]+/functions/(.+)/invocations", route.integration_uri
        )
        if match is None or self._invoke_function is None:
            return self._gateway_error("API_CONFIGURATION_ERROR", context)
        event = {
            "resource": route.path,
            "path": parsed.path[len(self.contract.stage) + 1 :] or "/",
            "httpMethod": method.upper(),
            "headers": dict(headers),
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method.upper(),
                "path": parsed.path,
                "stage": self.contract.stage,
                "requestId": context["requestId"],
                "accountId": self.stack.emulator.account_id,
                "protocol": "HTTP/1.1",
                "identity": dict(context["identity"]),
            },
            "body": body or None,
            "isBase64Encoded": False,
        }
        try:
            succeeded, payload = self._invoke_function(match.group(1), event)
        except Exception:
            succeeded, payload = False, None
        if not succeeded or not isinstance(payload, dict) or "statusCode" not in payload:
            # API Gateway answers a failed or malformed proxy response with 502.
            return self._gateway_error("INTEGRATION_FAILURE", context, status=502)
        response_headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            response_headers[str(name)] = ",".join(str(v) for v in values)
        return Response(int(payload["statusCode"]), str(payload.get("body") or ""), response_headers)

    def _integration_response(
        self,
        route: Route,
        status: int,
        service_body: str,
        context: dict[str, Any],
        request: vtl.Input | None = None,
    ) -> Response:
        """``$input`` is the service's response body; its ``params()`` are still the method request's."""
        chosen = None
        default = None
        for candidate in route.integration_responses:
            if candidate.selection_pattern is None:
                default = default or candidate
            elif re.fullmatch(candidate.selection_pattern, str(status)):
                chosen = candidate
                break
        chosen = chosen or default
        if chosen is None:
            return self._gateway_error("API_CONFIGURATION_ERROR", context)
        template = chosen.templates.get(JSON)
        context["responseOverride"] = {"header": {}}
        try:
            body = (
                vtl.render(
                    template,
                    input=vtl.Input(service_body, request.params_by_kind if request else {}),
                    context=context,
                )
                if template is not None
                else service_body
            )
        except vtl.VtlError:
            return self._gateway_error("API_CONFIGURATION_ERROR", context)
        override = context["responseOverride"]
        final_status = int(override.get("status") or chosen.status)
        headers = {**chosen.headers, **{str(k): vtl.to_text(v) for k, v in override["header"].items()}}
        return Response(final_status, body.strip(), headers)

    def _gateway_error(
        self,
        response_type: str,
        context: dict[str, Any],
        message: str | None = None,
        validation_error: str = "",
        status: int | None = None,
    ) -> Response:
        default_status, default_message = GATEWAY_DEFAULTS[response_type]
        configured = self.contract.gateway_responses.get(response_type)
        status = status or (configured.status if configured and configured.status else default_status)
        if configured is None:
            family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
            configured = self.contract.gateway_responses.get(family)
        text = message or default_message
        context = {
            **context,
            "error": {
                "message": text,
                "messageString": json.dumps(text),
                "responseType": response_type,
                "validationErrorString": validation_error,
            },
        }
        template = configured.templates.get(JSON) if configured else None
        body = vtl.render(template, context=context) if template else json.dumps({"message": text})
        headers = dict(configured.headers) if configured else {}
        return Response(status, body, headers)

    # -- the integration: a request to the emulated service ------------------------------------

    def _client(self, service: str) -> Any:
        return self._emulator.client(service, retries=1, timeout_s=10)  # cached by the emulator

    def _call_service(self, route: Route, rendered: str) -> tuple[int, str]:
        match = re.fullmatch(r"arn:[^:]+:apigateway:[^:]*:([^:]+):(path|action)/(.+)", route.integration_uri)
        if match is None:
            raise vtl.VtlError(f"unsupported integration URI {route.integration_uri!r}")
        service, kind, target = match.groups()
        try:
            if service == "sqs" and kind == "path":
                return 200, self._sqs_query(target, rendered)
            amz_target = route.integration_headers.get("X-Amz-Target")
            if amz_target or kind == "action":
                return 200, self._json_protocol(service, amz_target or target, rendered)
        except ClientError as error:
            metadata = error.response.get("ResponseMetadata", {})
            return int(metadata.get("HTTPStatusCode", 400)), json.dumps(error.response.get("Error", {}))
        raise vtl.VtlError(f"unsupported integration {service}:{kind}/{target}")

    def _queue_url(self, queue_name: str) -> str:
        with self._queue_urls_lock:
            cached = self._queue_urls.get(queue_name)
        if cached is None:
            cached = self._client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
            with self._queue_urls_lock:
                self._queue_urls[queue_name] = cached
        return cached

    def _sqs_query(self, queue_path: str, rendered: str) -> str:
        """SQS's query protocol, as API Gateway's ``sqs:path/{account}/{queue}`` integration speaks it."""
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(rendered, keep_blank_values=True).items()}
        if params.get("Action") != "SendMessage":
            raise vtl.VtlError(f"SQS action {params.get('Action')!r} is not emulated")
        if "MessageBody" not in params:  # what SQS answers, before it stores anything
            raise ClientError(
                {
                    "Error": {"Code": "MissingParameter", "Message": "MessageBody is required"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "SendMessage",
            )
        sqs = self._client("sqs")
        queue_url = self._queue_url(queue_path.rstrip("/").rsplit("/", 1)[-1])
        attributes: dict[str, dict[str, str]] = {}
        index = 1
        while f"MessageAttribute.{index}.Name" in params:
            prefix = f"MessageAttribute.{index}.Value."
            attributes[params[f"MessageAttribute.{index}.Name"]] = {
                "DataType": params.get(prefix + "DataType", "String"),
                "StringValue": params.get(prefix + "StringValue", ""),
            }
            index += 1
        arguments: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": params.get("MessageBody", "")}
        if attributes:
            arguments["MessageAttributes"] = attributes
        for optional in ("DelaySeconds", "MessageGroupId", "MessageDeduplicationId"):
            if optional in params:
                arguments[optional] = (
                    int(params[optional]) if optional == "DelaySeconds" else params[optional]
                )
        result = sqs.send_message(**arguments)
        metadata = result.pop("ResponseMetadata", {})
        return json.dumps(
            {
                "SendMessageResponse": {
                    "ResponseMetadata": {"RequestId": metadata.get("RequestId")},
                    "SendMessageResult": {
                        "MD5OfMessageAttributes": result.get("MD5OfMessageAttributes"),
                        "MD5OfMessageBody": result.get("MD5OfMessageBody"),
                        "MD5OfMessageSystemAttributes": None,
                        "MessageId": result.get("MessageId"),
                        "SequenceNumber": result.get("SequenceNumber"),
                    },
                }
            }
        )

    def _json_protocol(self, service: str, amz_target: str, rendered: str) -> str:
        """A JSON-protocol call (``X-Amz-Target: Prefix.Operation``) made with the rendered body."""
        client = self._client(service)
        operation = amz_target.rsplit(".", 1)[-1]
        by_operation = {api: method for method, api in client.meta.method_to_api_mapping.items()}
        if operation not in by_operation:
            raise vtl.VtlError(f"{service} has no operation {operation}")
        result = getattr(client, by_operation[operation])(**json.loads(rendered))
        result.pop("ResponseMetadata", None)
        return json.dumps(result, default=str)


def ecma_pattern(pattern: str) -> str:
    """``pattern`` for Python's re with ECMA 262's meaning of ``$``: the end of the string.

    JSON Schema patterns are ECMA 262 regexes. Python's ``$`` also matches before a final newline, so
    without this ``"ord-1\\n"`` would pass an ``^...$`` pattern here that the consumers' models refuse.
    """
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return "".join(out)


def _ecma_pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and re.search(ecma_pattern(pattern), instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft-04, as API Gateway's request validation runs it, with ECMA 262 patterns.
GatewayValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"pattern": _ecma_pattern_keyword}
)


def _validation_error(schema: dict[str, Any], body: str) -> str | None:
    """API Gateway's ``validationErrorString`` for a body that fails its model, else None."""
    try:
        document = json.loads(body) if body.strip() else None
    except json.JSONDecodeError as exc:
        return f"[Invalid JSON: {exc.msg}]"
    validator = GatewayValidator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    described = []
    for error in errors[:10]:
        where = "/" + "/".join(str(part) for part in error.absolute_path)
        described.append(f"{error.message} (at {where})" if error.absolute_path else error.message)
    return "[" + ", ".join(described) + "]"
