"""The reconciler's control document, parsed (its shape and names: ``lambdas.contracts.consumer_control``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ControlledConsumer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: str = Field(min_length=1)
    circuit: str = Field(min_length=1)


class ConsumerControl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    controller_arn: str = Field(min_length=1)
    circuit_table: str = Field(min_length=3)
    circuits: dict[str, dict[str, Any]]
    consumers: dict[str, ControlledConsumer] = Field(min_length=1)

    def paused_by_controller(self, consumer: str) -> bool:
        return self.consumers[consumer].circuit in self.circuits
