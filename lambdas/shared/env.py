"""One way for a function to read its environment: a settings model that names its variables.

A function's settings subclass :class:`EnvironmentSettings`: pydantic fields, plus ``REQUIRED`` and
``OPTIONAL`` maps of field -> environment variable (the names are the contract with the CDK stacks).
``from_environment(os.environ)`` runs once at init and either returns the validated, frozen settings or
raises :class:`ConfigurationError` naming every missing variable and every invalid value, so a bad
deployment fails its cold start with the variables to fix:

* values are stripped; a blank variable counts as unset (a required one is missing, an optional one takes
  the field's default);
* a ``bool`` field takes exactly ``true`` or ``false`` (any case): a typo must not silently flip a safety
  switch;
* a field whose type is itself an ``EnvironmentSettings`` (e.g. ``DependencyPolicy``) is read from the
  same environment by its own ``from_environment``, and its problems are reported with the outer ones;
* a subclass extends its parent's maps: ``REQUIRED = {**Parent.REQUIRED, "field": "VARIABLE"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigurationError(ValueError):
    """Raised at init when the function's environment is missing a variable or holds a bad value."""


class EnvironmentSettings(BaseModel):
    """A function's configuration, read from its environment (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # field -> environment variable
    REQUIRED: ClassVar[Mapping[str, str]] = {}
    OPTIONAL: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every variable this model reads itself (not its nested settings'), field -> variable."""
        return {**cls.REQUIRED, **cls.OPTIONAL}

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Self:
        """Parse and validate; raises ConfigurationError naming every missing or invalid variable."""
        variables = cls.variables()
        problems: list[str] = []
        missing = sorted(var for var in cls.REQUIRED.values() if not env.get(var, "").strip())
        if missing:
            problems.append(f"missing required environment variable(s): {', '.join(missing)}")
        raw: dict[str, Any] = {
            field: env[var].strip() for field, var in variables.items() if env.get(var, "").strip()
        }
        for field, info in cls.model_fields.items():
            nested = info.annotation
            try:
                if isinstance(nested, type) and issubclass(nested, EnvironmentSettings):
                    raw[field] = nested.from_environment(env)
                elif nested is bool and field in raw:
                    raw[field] = parse_bool(raw[field], variables[field])
            except ConfigurationError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigurationError(f"{cls.__name__} misconfigured: " + " | ".join(problems))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise _naming_variables(exc, variables, cls.__name__) from None


def parse_bool(value: str, var: str) -> bool:
    """Strict "true"/"false" parsing: a typo must not silently flip a safety switch."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigurationError(f"environment variable {var} must be 'true' or 'false', got {value!r}")


def _naming_variables(exc: ValidationError, variables: Mapping[str, str], model: str) -> ConfigurationError:
    """Translate pydantic field errors into one message that names the offending env vars."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        var = variables.get(field, field or model)
        problems.append(f"{var}={error.get('input')!r}: {error['msg']}")
    return ConfigurationError(f"invalid {model} configuration: " + "; ".join(problems))
