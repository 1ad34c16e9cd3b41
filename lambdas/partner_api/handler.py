"""Demo partner API: a Lambda behind a Function URL (payload format 2.0) with run-time fault injection.

Environment:
    FAULT_PROFILE_PARAMETER   SSM parameter name holding a FaultProfile as JSON. Re-read at most every
                              FAULT_PROFILE_MAX_AGE_SECONDS (default 5) so faults change on a live stack.
    API_KEY_SECRET_ARN        Secrets Manager secret holding the API key (raw string or {"apiKey": ...}),
                              cached for API_KEY_MAX_AGE_SECONDS (default 300).

Faults are applied before routing: latency first, then a 429 (throttle) or an injected error status.
An unreadable or invalid fault profile is logged and the last good one (initially healthy) is used, so a
typo in the parameter never takes the demo dependency down by itself.
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from lambdas.partner_api.faults import HEALTHY, FaultProfile
from lambdas.partner_api.service import HttpResponse, PartnerService, fault_response
from lambdas.shared.api_key import parse_api_key_secret
from lambdas.shared.env import EnvironmentSettings


class PartnerSettings(EnvironmentSettings):
    fault_profile_parameter: str = Field(min_length=1)
    api_key_secret_arn: str = Field(min_length=1)
    fault_profile_max_age_seconds: int = Field(default=5, ge=0, le=300)
    api_key_max_age_seconds: int = Field(default=300, ge=0, le=86_400)

    REQUIRED: ClassVar[Mapping[str, str]] = {
        "fault_profile_parameter": "FAULT_PROFILE_PARAMETER",
        "api_key_secret_arn": "API_KEY_SECRET_ARN",
    }
    OPTIONAL: ClassVar[Mapping[str, str]] = {
        "fault_profile_max_age_seconds": "FAULT_PROFILE_MAX_AGE_SECONDS",
        "api_key_max_age_seconds": "API_KEY_MAX_AGE_SECONDS",
    }


class PartnerApp:
    """Everything the handler does, with rng and sleep injectable for tests."""

    def __init__(
        self,
        settings: PartnerSettings,
        logger: Logger,
        service: PartnerService | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.service = service or PartnerService()
        self._logger = logger
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._last_good_profile: FaultProfile = HEALTHY

    def fault_profile(self) -> FaultProfile:
        try:
            document = parameters.get_parameter(
                self.settings.fault_profile_parameter,
                transform="json",
                max_age=self.settings.fault_profile_max_age_seconds,
            )
            self._last_good_profile = FaultProfile.model_validate(document)
        except (parameters.GetParameterError, parameters.TransformParameterError) as exc:
            self._logger.warning(
                "fault profile unreadable; keeping the last good one", extra={"error": str(exc)}
            )
        except ValidationError as exc:
            self._logger.error("fault profile invalid; keeping the last good one", extra={"error": str(exc)})
        return self._last_good_profile

    def api_key(self) -> str:
        # Cached by the Parameters provider for api_key_max_age_seconds: not a Secrets Manager call per request.
        secret = parameters.get_secret(
            self.settings.api_key_secret_arn, max_age=self.settings.api_key_max_age_seconds
        )
        return parse_api_key_secret(secret if isinstance(secret, str) else secret.decode())

    def handle(self, event: LambdaFunctionUrlEvent) -> dict[str, Any]:
        method = event.request_context.http.method
        path = event.raw_path or "/"
        headers = dict(event.headers)
        # Bytes rather than decoded_body: a non-UTF-8 body must become a 400, not an exception.
        body: bytes | str | None = event.body
        if body is not None and event.is_base64_encoded:
            body = base64.b64decode(body)

        profile = self.fault_profile()
        decision = profile.decide(self._rng, path)
        if decision.latency_ms > 0:
            self._sleep(decision.latency_ms / 1000.0)
        if decision.status is not None:
            self._logger.info(
                "fault injected", extra={"status": decision.status, "action": decision.action, "path": path}
            )
            return to_function_url_response(
                fault_response(decision.status, decision.retry_after_header(self._wall_clock()))
            )

        result = self.service.handle(method, path, headers, body, self.api_key())
        if result.charge is not None:
            charge = result.charge
            self._logger.info(
                "charge",
                extra={"order_id": charge.orderId, "charge_id": charge.chargeId, "replayed": result.replayed},
            )
        return to_function_url_response(result.response)


def to_function_url_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": response.encoded_body().decode(),
        "isBase64Encoded": False,
    }


# ------------------------------------------------------------------ execution-environment init (once)
logger = Logger()
app = PartnerApp(PartnerSettings.from_environment(os.environ), logger)


@logger.inject_lambda_context
@event_source(data_class=LambdaFunctionUrlEvent)
def handler(event: LambdaFunctionUrlEvent, context: LambdaContext) -> dict[str, Any]:
    return app.handle(event)
