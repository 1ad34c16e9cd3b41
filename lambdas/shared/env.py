"""Helpers to read typed configuration from environment variables with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ValidationError


class ConfigurationError(ValueError):
    """Raised at init when the function's environment is missing a variable or holds a bad value."""


def read_required(env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """Return {field: raw value} for every env var in ``names`` ({field: ENV_VAR}); all must be set."""
    missing = [var for var in names.values() if not env.get(var, "").strip()]
    if missing:
        raise ConfigurationError(f"missing required environment variable(s): {', '.join(sorted(missing))}")
    return {field: env[var].strip() for field, var in names.items()}


def read_optional(env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """Return {field: raw value} for the env vars in ``names`` that are set and not blank."""
    return {field: env[var].strip() for field, var in names.items() if env.get(var, "").strip()}


def parse_bool(value: str, var: str) -> bool:
    """Strict "true"/"false" parsing: a typo must not silently flip a safety switch."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfigurationError(f"environment variable {var} must be 'true' or 'false', got {value!r}")


def validation_error_to_config_error(
    exc: ValidationError, names: Mapping[str, str], model: type[BaseModel]
) -> ConfigurationError:
    """Translate pydantic field errors into one message that names the offending env vars."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        var = names.get(field, field or model.__name__)
        problems.append(f"{var}={error.get('input')!r}: {error['msg']}")
    return ConfigurationError(f"invalid {model.__name__} configuration: " + "; ".join(problems))
