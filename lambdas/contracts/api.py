"""Headers, routes and message attributes shared by the front door (stacks/ingestion_api.py), the consumers,
the partner API and whoever calls them (the local cloud, the benchmark, the tests).
"""

from __future__ import annotations

from typing import Final

# A producer's Idempotency-Key: 1-255 visible ASCII characters. It travels to the partner as an HTTP
# header, which cannot carry a tab or anything outside Latin-1, and a padded key would be another key.
# The gateway checks the same class (stacks/ingestion_api.py, a Java regex), so a key the consumer would
# refuse is a 400 at the door, never a 202 followed by poison.
IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
IDEMPOTENCY_KEY_CHARACTERS: Final = "[!-~]"  # 0x21-0x7E
IDEMPOTENCY_KEY_PATTERN: Final = rf"^{IDEMPOTENCY_KEY_CHARACTERS}{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"

# The seconds a caller told "not now" should wait before it retries: the front door sets it on its 429
# (throttled) and its 503s (the order queue or the event bus could not store the request for now), the
# status reader on its 503s (shedding load).
RETRY_AFTER_HEADER: Final = "Retry-After"

# Message attributes of an order on the queue: the producer's key, the gateway's request id, and who sent
# it (its caller's IAM identity, $context.identity.userArn); a producer's key is only unique among that
# producer's orders.
IDEMPOTENCY_KEY_ATTRIBUTE: Final = "IdempotencyKey"
REQUEST_ID_ATTRIBUTE: Final = "RequestId"
PRODUCER_ARN_ATTRIBUTE: Final = "ProducerArn"

# Attributes of a message a consumer quarantined in its DLQ (lambdas/shared/poison.py, ops dlq).
QUARANTINE_REASON_ATTRIBUTE: Final = "QuarantineReason"
QUARANTINE_DETAIL_ATTRIBUTE: Final = "QuarantineDetail"
# The QuarantineReason of a record whose counted tries at its dependency all failed
# (lambdas/shared/dependency_tries.py).
REASON_RETRIES_EXHAUSTED: Final = "retries_exhausted"

# The partner API. Set on a response the partner replayed for a known Idempotency-Key.
REPLAYED_HEADER: Final = "Idempotent-Replayed"
CHARGES_PATH: Final = "/charges"
SHIPMENTS_PATH: Final = "/shipments"
NOTIFICATIONS_PATH: Final = "/notifications"

# The SigV4 service of a Lambda function URL with IAM auth (the demo twins of the dependencies).
FUNCTION_URL_SERVICE: Final = "lambda"
