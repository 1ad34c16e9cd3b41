"""A downstream HTTP dependency: its credentials, its circuit, and (outside production)
a deployable demo twin whose faults can be changed on a live stack."""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from lambdas.contracts import dependency_tunables as tunables
from lambdas.contracts import environment as env
from lambdas.contracts.api import FUNCTION_URL_SERVICE
from stacks.circuit_breaker import CircuitBreakerStore
from stacks.compliance import acknowledge
from stacks.config import DependencySettings, ServiceConfig
from stacks.monitoring import ServiceMonitoring
from stacks.service_function import ServiceFunction

HEALTHY_FAULT_PROFILE: dict[str, object] = {}
PARTNER_TIMEOUT = Duration.seconds(15)


class DownstreamDependency(Construct):
    """Everything a caller of one dependency needs, handed out as environment and grants."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        settings: DependencySettings,
        config: ServiceConfig,
        circuits: CircuitBreakerStore,
        monitoring: ServiceMonitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.settings = settings
        self.circuits = circuits
        self.api_key = self._api_key_secret(config)
        self.demo: ServiceFunction | None = None
        self.fault_profile: ssm.StringParameter | None = None
        if settings.base_url is None:
            self.base_url = self._deploy_demo_twin(config)
            assert self.demo is not None
            monitoring.watch_function(f"{name}-demo", self.demo)
        else:
            self.base_url = settings.base_url
        monitoring.watch_dependency(name, falls_back=not settings.critical)

    def _api_key_secret(self, config: ServiceConfig) -> secretsmanager.ISecret:
        """The partner-issued key's secret when the stage names one (production must: stacks/config.py);
        otherwise a generated placeholder that only the demo twin, reading the same secret, accepts."""
        if self.settings.api_key_secret_arn is not None:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, "ApiKey", self.settings.api_key_secret_arn
            )
        placeholder = secretsmanager.Secret(
            self,
            "ApiKey",
            description=f"Placeholder API key for the {self.name} dependency (non-production stages only)",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
            removal_policy=config.removal_policy,
        )
        acknowledge(
            placeholder,
            "AwsSolutions::AwsSolutions-SMG4",
            "A placeholder for the demo twin of a non-production stage; a real partner's key is issued and "
            "rotated by its owner and referenced with api_key_secret_arn",
        )
        return placeholder

    def _deploy_demo_twin(self, config: ServiceConfig) -> str:
        self.fault_profile = ssm.StringParameter(
            self,
            "FaultProfile",
            description=f"Faults the demo {self.name} dependency injects (JSON FaultProfile); edit to rehearse",
            string_value=json.dumps(HEALTHY_FAULT_PROFILE),
        )
        self.demo = ServiceFunction(
            self,
            "DemoPartner",
            config=config,
            handler="lambdas.partner_api.handler.handler",
            description=f"Demo twin of the {self.name} dependency with run-time fault injection",
            timeout=PARTNER_TIMEOUT,
            # A real partner has finite capacity; so does its twin (beyond it, Lambda answers 429).
            reserved_concurrency=self.settings.demo_capacity,
            environment={
                "FAULT_PROFILE_PARAMETER": self.fault_profile.parameter_name,
                "API_KEY_SECRET_ARN": self.api_key.secret_arn,
            },
        )
        acknowledge(
            self.demo.function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously through its function URL only; there is no async event to dead-letter",
        )
        self.fault_profile.grant_read(self.demo.function)
        self.api_key.grant_read(self.demo.function)
        # The demo authenticates callers with the shared API key, like a real partner would; IAM auth in
        # front of it keeps the internet out, who could otherwise use up its reserved concurrency and so
        # open the circuit and pause the consumers. Callers sign (environment) and are granted (grant_call).
        url = self.demo.alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        # Function URLs end with "/"; the client joins routes onto the base without doubling it.
        return url.url

    def environment(self) -> dict[str, str]:
        """Environment of a caller; parsed by lambdas.shared.dependency_client.DependencyPolicy."""
        return {
            env.DEPENDENCY_NAME: self.name,
            env.DEPENDENCY_BASE_URL: self.base_url,
            **tunables.environment(self.settings),
            env.DEPENDENCY_API_KEY_SECRET_ARN: self.api_key.secret_arn,
            # Callers of the demo twin sign for its function URL's IAM auth.
            **({env.DEPENDENCY_SIGNING_SERVICE: FUNCTION_URL_SERVICE} if self.demo is not None else {}),
            env.CIRCUIT_BREAKER_TABLE_NAME: self.circuits.table.table_name,
            env.CIRCUIT_EVENTS_BUS_NAME: self.circuits.events.event_bus_name,
        }

    def grant_call(self, grantee: iam.IGrantable, *, breaker: bool = True) -> None:
        """The API key, and the breaker of this dependency's circuit unless the caller's caller owns the
        circuit (the controller's probe touches no circuit record)."""
        self.api_key.grant_read(grantee)
        if self.demo is not None:
            # Both actions a function URL needs since October 2025; InvokeFunction only through the URL.
            self.demo.alias.grant_invoke_url(grantee)
        if breaker:
            self.circuits.grant_breaker(grantee, self.name)
