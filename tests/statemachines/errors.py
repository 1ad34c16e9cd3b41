"""Exceptions the fake task handlers raise. Step Functions sees the class *name* as the error name."""


class TransientUpstreamError(Exception):
    pass


class PermanentUpstreamError(Exception):
    pass


class DependencyUnavailableError(Exception):
    pass


class ValidationError(Exception):
    pass


class CircuitWaitExpiredError(Exception):
    pass
