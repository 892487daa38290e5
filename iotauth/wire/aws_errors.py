"""How an AWS call fails: :class:`AwsError` (safe to log) and the error codes that decide a retry.

Contract: ``str(AwsError)`` is ``"<operation> failed: <code>"``, never the request, the
answer's text or a credential; :class:`ConfigError` names no secret either. The code sets
are botocore ``standard`` mode's: throttling and transient codes are retried, credential
codes never are (fail closed). Design: docs/design/aws-json.md
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_CODES",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "TRANSIENT_STATUS",
    "AwsError",
    "ConfigError",
]

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
#: Codes meaning the credentials are expired or not valid: never retried (fail closed).
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
        "RequestExpired",
    }
)


class AwsError(Exception):
    """A call failed. ``str()`` is ``"<operation> failed: <code>"``: safe to log."""

    def __init__(self, operation: str, code: str, status: int | None = None) -> None:
        super().__init__(f"{operation} failed: {code}")
        self.operation = operation
        self.code = code
        self.status = status

    @property
    def credentials_rejected(self) -> bool:
        return self.code in CREDENTIAL_CODES


class ConfigError(ValueError):
    """Region, endpoint or credentials cannot be determined. The message names no secret."""
