"""Environment variable names the stacks set and the functions read (``EnvironmentSettings`` maps them
onto fields). Names a single construct and a single handler share stay beside them; here are the ones
that several stacks, functions, the local cloud or the tests refer to.
"""

from __future__ import annotations

from typing import Final

# Powertools: the service name (also the ``service`` dimension) and the EMF namespace.
SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"

# A caller of a dependency (stacks/downstream_dependency.py -> lambdas/shared/dependency_client.py
# DependencyPolicy, lambdas/shared/caller.py). DEPENDENCY_NAME is also the circuit's name. The variables
# of its retry, timeout and breaker tunables (DEPENDENCY_MAX_ATTEMPTS, BREAKER_*...) are declared with
# their types and bounds in ``dependency_tunables``.
DEPENDENCY_NAME: Final = "DEPENDENCY_NAME"
DEPENDENCY_BASE_URL: Final = "DEPENDENCY_BASE_URL"
DEPENDENCY_API_KEY_SECRET_ARN: Final = "DEPENDENCY_API_KEY_SECRET_ARN"
# The SigV4 service of the dependency's endpoint ("lambda" for a function URL, ``api.FUNCTION_URL_SERVICE``).
DEPENDENCY_SIGNING_SERVICE: Final = "DEPENDENCY_SIGNING_SERVICE"
CIRCUIT_BREAKER_TABLE_NAME: Final = "CIRCUIT_BREAKER_TABLE_NAME"
CIRCUIT_EVENTS_BUS_NAME: Final = "CIRCUIT_EVENTS_BUS_NAME"

# A consumer that counts its tries at its dependency (lambdas/shared/dependency_tries.py): set by
# stacks/load_leveling_consumer.py from the consumer's ``max_dependency_tries``.
DEPENDENCY_MAX_TRIES: Final = "DEPENDENCY_MAX_TRIES"
