"""Where an AWS service is and how it is signed: :class:`Service`, :class:`Endpoint`, and
region and endpoint resolution from AWS's standard environment variables.

Contract: :func:`resolve_region` reads ``AWS_REGION``, else ``AWS_DEFAULT_REGION``;
:func:`resolve_endpoint` reads ``AWS_ENDPOINT_URL_<SERVICE>``, else ``AWS_ENDPOINT_URL``,
else builds ``https://<prefix>[-fips].<region>.<partition suffix>``. Either raises
:class:`~iotauth.wire.aws_errors.ConfigError` rather than guess. Design: docs/design/aws-json.md
"""

from __future__ import annotations

from collections.abc import Mapping

from iotauth.wire.aws_errors import ConfigError

__all__ = [
    "DYNAMODB",
    "IOT",
    "KMS",
    "STS",
    "Endpoint",
    "Service",
    "resolve_endpoint",
    "resolve_region",
]

_TRUE = frozenset({"true", "1", "yes"})
_PARTITION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)


class Service:
    """How one AWS service is addressed and signed.

    (A plain class, not a dataclass: cold start, docs/design/aws-json.md.)
    """

    __slots__ = (
        "backoff_base",
        "check_crc32",
        "endpoint_id",
        "endpoint_prefix",
        "json_version",
        "signing_name",
        "target_prefix",
    )

    def __init__(  # noqa: PLR0917 - a record
        self,
        endpoint_id: str,  # the AWS_ENDPOINT_URL_<ID> suffix, e.g. "DYNAMODB"
        signing_name: str,  # SigV4 service name, e.g. "dynamodb"
        endpoint_prefix: str,  # host label, e.g. "dynamodb"
        target_prefix: str = "",  # JSON protocol X-Amz-Target prefix
        json_version: str = "1.0",
        backoff_base: float = 0.05,  # non-throttling backoff scale (botocore: 50 ms)
        check_crc32: bool = False,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.signing_name = signing_name
        self.endpoint_prefix = endpoint_prefix
        self.target_prefix = target_prefix
        self.json_version = json_version
        self.backoff_base = backoff_base
        self.check_crc32 = check_crc32


DYNAMODB = Service(
    "DYNAMODB", "dynamodb", "dynamodb", "DynamoDB_20120810", "1.0", 0.025, check_crc32=True
)
KMS = Service("KMS", "kms", "kms", "TrentService", "1.1")
STS = Service("STS", "sts", "sts")
IOT = Service("IOT", "iot", "iot")


class Endpoint:
    __slots__ = ("base_path", "host", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, base_path: str = "") -> None:
        self.scheme = scheme  # "https" or "http"
        self.host = host  # without brackets for IPv6
        self.port = port
        self.base_path = base_path

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Endpoint):
            return NotImplemented
        mine = (self.scheme, self.host, self.port, self.base_path)
        return mine == (other.scheme, other.host, other.port, other.base_path)

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port, self.base_path))

    def __repr__(self) -> str:
        return f"Endpoint({self.scheme}://{self.signed_host}{self.base_path})"

    @property
    def signed_host(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        from urllib.parse import urlsplit  # noqa: PLC0415 - only with an endpoint URL

        parts = urlsplit(url.strip())
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ConfigError("an endpoint URL must be http(s)://host[:port]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError("an endpoint URL must not carry a query, fragment or user")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError("an endpoint URL has an invalid port") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def resolve_region(env: Mapping[str, str]) -> str:
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise ConfigError("no region: set AWS_REGION or AWS_DEFAULT_REGION")
    if not all(c.isalnum() or c == "-" for c in region):
        raise ConfigError("the region name is not valid")
    return region


def resolve_endpoint(service: Service, region: str, env: Mapping[str, str]) -> Endpoint:
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() not in _TRUE:
        for name in (f"AWS_ENDPOINT_URL_{service.endpoint_id}", "AWS_ENDPOINT_URL"):
            url = env.get(name, "").strip()
            if url:
                return Endpoint.from_url(url)
    if env.get("AWS_USE_DUALSTACK_ENDPOINT", "").strip().lower() in _TRUE:
        raise ConfigError("dual-stack endpoints are not supported: set AWS_ENDPOINT_URL")
    suffix = "amazonaws.com"
    for prefix, partition_suffix in _PARTITION_SUFFIXES:
        if region.startswith(prefix):
            suffix = partition_suffix
            break
    label = service.endpoint_prefix
    if env.get("AWS_USE_FIPS_ENDPOINT", "").strip().lower() in _TRUE:
        label += "-fips"
    return Endpoint("https", f"{label}.{region}.{suffix}", 443)
