"""The names that cross layers: one home for every string and number the functions share with the CDK
stacks, the ops CLI, the local cloud, the benchmark and the scripts.

Shipped with the functions (only ``lambdas/`` is packaged), and pure: the standard library alone, and no
side effects at import time, so synth, ops and the benchmark can read a contract without loading boto3,
Powertools or pydantic. ``make lint`` holds both (import-linter, pyproject.toml): the stacks import
``lambdas`` only through this package, and this package imports nothing of the project nor any
third-party package.

One module per concern:

``circuit``           the circuit breaker's record in the circuit table, the controller's lock and an
                      operator's hold;
``circuit_wait``      how the fulfilment workflow waits out an open circuit (the starter's input);
``consumer_control``  the consumer reconciler's control document and the names it acts on;
``dependency_tunables``
                      how a dependency is called (retries, timeouts, breaker): each tunable's variable,
                      type, bounds and cdk.json default, which the stage config and the functions' policy
                      both validate with;
``environment``       environment variable names the stacks set and the functions read;
``errors``            exception names the state machines match (Step Functions matches class names);
``events``            event detail-types, producers and the side-effects tag;
``api``               headers, routes and message attributes of the front door and the partner API;
``log_fields``        structured-log field names and values;
``metrics``           EMF metric names, dimensions and their values;
``retries``           how many calls a retry layer makes (queue receives, SDK attempts).
"""
