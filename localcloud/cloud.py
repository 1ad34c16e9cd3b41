"""The whole data path on one machine: emulator + deployed stack + functions + pollers + front door.

    synthesized = synthesize(context)            # the CDK app, as `cdk synth` builds it
    with LocalCloud(synthesized) as cloud:       # deploy into moto, start everything on 127.0.0.1
        requests.post(cloud.front_door.base_url + "orders", json=order, headers={"Idempotency-Key": key},
                      auth=producer_auth(cloud.emulator.region))
        ...

Every port (emulator, front door, fault-injecting partner) is bound to 127.0.0.1 and released by
``stop()`` (also on an exception inside the ``with`` block).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lambdas.contracts.api import FUNCTION_URL_SERVICE
from lambdas.contracts.environment import (
    DEPENDENCY_API_KEY_SECRET_ARN,
    DEPENDENCY_BASE_URL,
    DEPENDENCY_NAME,
    DEPENDENCY_SIGNING_SERVICE,
)
from localcloud import isolation
from localcloud.deploy import DeployedStack, Synthesized, deploy
from localcloud.emulator import Emulator
from localcloud.fault_dependency import FaultDependency
from localcloud.front_door import FrontDoor
from localcloud.lambda_runtime import (
    Function,
    FunctionConfig,
    SqsEventSource,
    SqsEventSourcePoller,
    register_for_step_functions,
)
from localcloud.moto_patches.inprocess_lambda import unregister_inprocess_function
from localcloud.sigv4 import Principal, SigV4Verifier


class LocalCloud:
    """Start/stop the local data path for one synthesized stack. Not re-entrant; one per process at a time."""

    def __init__(
        self,
        synthesized: Synthesized,
        *,
        seed: int | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.synthesized = synthesized
        self._seed = seed
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self.emulator = Emulator()
        self.stack: DeployedStack | None = None
        self.dependencies: dict[str, FaultDependency] = {}
        self.dependency_started_at: dict[str, float] = {}  # time.monotonic() when each twin started
        self.functions: dict[str, Function] = {}
        self.pollers: list[SqsEventSourcePoller] = []
        self.front_door: FrontDoor | None = None
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> LocalCloud:
        isolation.install()
        self._started = True
        try:
            self.emulator.start()
            self.stack = deploy(self.emulator, self.synthesized)
            configs = self._function_configs()
            self._start_dependencies(configs)
            self._create_functions(configs)
            self._start_pollers()
            self.front_door = FrontDoor(self.stack, invoke_function=self._invoke_from_gateway).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Release everything; safe to call twice and after a failed start."""
        if not self._started:
            return
        self._started = False
        errors: list[BaseException] = []
        for step in (self._stop_front_door, self._stop_pollers, self._stop_dependencies, self.emulator.stop):
            try:
                step()
            except BaseException as exc:  # keep releasing the other ports
                errors.append(exc)
        for function in self.functions.values():
            unregister_inprocess_function(function.config.name)
            function.logs.close()
        isolation.uninstall()
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _stop_front_door(self) -> None:
        if self.front_door is not None:
            self.front_door.stop()

    def _stop_pollers(self, timeout_s: float = 5.0) -> None:
        """Stop every poller at once; running invocations get ``timeout_s`` in all to finish."""
        for poller in self.pollers:
            poller.request_stop()
        deadline = time.monotonic() + timeout_s
        for poller in self.pollers:
            poller.join(deadline)

    def _stop_dependencies(self) -> None:
        for dependency in self.dependencies.values():
            dependency.stop()

    # -- wiring -------------------------------------------------------------------------------------

    @property
    def deployed(self) -> DeployedStack:
        if self.stack is None:
            raise RuntimeError("the local cloud is not started")
        return self.stack

    def _function_configs(self) -> dict[str, FunctionConfig]:
        return {
            resource.physical_id: FunctionConfig.read(self.emulator, resource.physical_id)
            for resource in self.deployed.of_type("AWS::Lambda::Function").values()
        }

    def _start_dependencies(self, configs: Mapping[str, FunctionConfig]) -> None:
        """One fault-injecting twin per dependency a function calls (by ``DEPENDENCY_NAME``)."""
        secrets = self.emulator.client("secretsmanager")
        for config in configs.values():
            name = config.environment.get(DEPENDENCY_NAME)
            if not name or DEPENDENCY_BASE_URL not in config.environment or name in self.dependencies:
                continue
            api_key = None
            secret_arn = config.environment.get(DEPENDENCY_API_KEY_SECRET_ARN)
            if secret_arn:
                api_key = secrets.get_secret_value(SecretId=secret_arn)["SecretString"]
            # Callers that sign for a function URL call a function URL with IAM auth: so does the twin.
            iam_auth = None
            if config.environment.get(DEPENDENCY_SIGNING_SERVICE) == FUNCTION_URL_SERVICE:
                credentials = self.emulator.lambda_environment()
                functions = Principal(
                    access_key=credentials["AWS_ACCESS_KEY_ID"],
                    secret_key=credentials["AWS_SECRET_ACCESS_KEY"],
                    token=credentials["AWS_SESSION_TOKEN"],
                    account_id=self.emulator.account_id,
                )
                iam_auth = SigV4Verifier(FUNCTION_URL_SERVICE, self.emulator.region, [functions])
            twin = FaultDependency(api_key=api_key, iam_auth=iam_auth, seed=self._seed)
            self.dependency_started_at[name] = time.monotonic()
            self.dependencies[name] = twin.start()

    def _create_functions(self, configs: Mapping[str, FunctionConfig]) -> None:
        platform = self.emulator.lambda_environment()
        twin_urls = {
            url.rstrip("/") for c in configs.values() if (url := c.environment.get(DEPENDENCY_BASE_URL))
        }
        for name, config in configs.items():
            if config.environment.get(DEPENDENCY_BASE_URL) is None and self._serves_dependency(
                config, twin_urls
            ):
                continue
            overrides = {}
            dependency = config.environment.get(DEPENDENCY_NAME)
            if dependency in self.dependencies:
                overrides[DEPENDENCY_BASE_URL] = self.dependencies[dependency].base_url
            log_path = None
            if self._log_dir is not None:
                self._log_dir.mkdir(parents=True, exist_ok=True)
                log_path = str(self._log_dir / f"{config.name}.log")
            logs = isolation.LogSink(config.name, path=log_path)
            function = Function(config, platform_environ=platform, overrides=overrides, logs=logs)
            self.functions[name] = function
            register_for_step_functions(function, self.emulator)

    def _serves_dependency(self, config: FunctionConfig, twin_urls: set[str]) -> bool:
        """The demo partner function (behind the URL a consumer calls) is replaced by its local twin."""
        client = self.emulator.client("lambda")
        try:
            url = client.get_function_url_config(FunctionName=config.name)["FunctionUrl"]
        except client.exceptions.ResourceNotFoundException:
            return False
        return url.rstrip("/") in twin_urls

    def _start_pollers(self) -> None:
        client = self.emulator.client("lambda")
        mappings = client.list_event_source_mappings().get("EventSourceMappings", [])
        for mapping in mappings:
            if ":sqs:" not in mapping["EventSourceArn"]:
                continue
            source = SqsEventSource.read(self.emulator, mapping["UUID"])
            function = self.functions.get(source.function_name)
            if function is not None:
                poller = SqsEventSourcePoller(source, function, self.emulator)
                self.pollers.append(poller)
        # Every cold start happens before any environment runs: an import while others run could hand
        # a running environment's lazy imports a fresh module (see isolation.import_fresh).
        for poller in self.pollers:
            poller.function.warm(poller.concurrency)
        for function in self.functions.values():
            function.warm(1)
        for poller in self.pollers:
            poller.start()

    def _invoke_from_gateway(self, function_arn: str, event: dict[str, Any]) -> tuple[bool, Any]:
        """API Gateway's Lambda integration: a synchronous invoke of the (alias-qualified) function."""
        name = function_arn.split(":function:", 1)[-1].split(":", 1)[0]
        function = self.functions.get(name)
        if function is None:
            return False, None
        result = function.invoke(event)
        return result.ok, result.payload

    # -- conveniences for demos and tests -----------------------------------------------------------

    def function_for_handler(self, handler_prefix: str) -> Function:
        for function in self.functions.values():
            if function.config.handler.startswith(handler_prefix):
                return function
        raise KeyError(f"no function with handler {handler_prefix}*")

    def poller_for(self, function: Function) -> SqsEventSourcePoller:
        for poller in self.pollers:
            if poller.function is function:
                return poller
        raise KeyError(f"{function.config.name} has no SQS event source")

    def queue_depth(self, queue_url: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attributes = self.deployed.queue_attributes(queue_url)
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain_queue(self, queue_url: str) -> list[dict[str, Any]]:
        """Receive and delete every visible message (e.g. to inspect a DLQ); returns them."""
        sqs = self.emulator.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not batch:
                return out
            out.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )

    def describe(self) -> dict[str, Any]:
        """What is running where (for the demo's header and for debugging)."""
        return {
            "emulator": self.emulator.endpoint_url,
            "front_door": self.front_door.base_url if self.front_door else None,
            "dependencies": {name: twin.base_url for name, twin in self.dependencies.items()},
            "functions": {
                f.config.handler: {
                    "timeout_s": f.config.timeout_s,
                    "environments": f.environments,
                    **({"init_error": f.init_error} if f.init_error else {}),
                }
                for f in self.functions.values()
            },
            "pollers": [
                {
                    "queue": p.source.queue_url.rsplit("/", 1)[-1],
                    "batch_size": p.source.batch_size,
                    "window_s": p.source.batching_window_s,
                    "max_concurrency": p.concurrency,
                    "visibility_timeout_s": p.source.visibility_timeout_s,
                    "max_receive_count": p.source.max_receive_count,
                }
                for p in self.pollers
            ],
            "not_emulated": sorted(set(self.deployed.not_emulated.values())),
        }
