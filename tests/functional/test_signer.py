"""The signer Lambda end to end in-process, with STS and IoT served by moto's server (over
real HTTP: the signer's AWS client is the standard-library one, iotauth.wire.aws_json).

Its own routing and CORS (iotauth.browser.http_api) must answer as Powertools'
``APIGatewayHttpResolver`` with the same CORS configuration did (the oracle below; it is
still a dependency), apart from the ``Vary: Origin`` it adds."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from iotauth.access.names import web_username
from iotauth.access.policy import PolicySet
from iotauth.wire.sigv4 import verify_presigned_url
from tests.conftest import ROOT, FakeLambdaContext, load_event

SUB = "0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"  # the sub claim of events/signer/mqtt-url.json
ORIGIN = "https://app.example.com"
REGION = "us-east-1"  # the region of the shared FakeLambdaContext's function ARN
ACCOUNT = "123456789012"


@pytest.fixture
def signer_app(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """``signer.app`` with fresh container state, and a spy on what STS is asked and returns."""
    import boto3

    import signer.app as app_module
    from iotauth.browser import aws_adapters

    role = boto3.client("iam").create_role(
        RoleName="iotauth-web-client",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", role)
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "")
    monkeypatch.setenv("IOTAUTH_WEB_PUBLISH", "chat/lobby")
    monkeypatch.setenv("IOTAUTH_WEB_SUBSCRIBE", "chat/lobby")
    monkeypatch.setenv("IOTAUTH_ALLOWED_ORIGINS", f"{ORIGIN},http://localhost:8080")
    monkeypatch.setenv("IOTAUTH_URL_SESSION_SECONDS", "900")

    calls: list[dict[str, Any]] = []
    real = aws_adapters.StsCredentialIssuer.assume_role

    def spy(self: Any, **kwargs: Any) -> Any:
        credentials = real(self, **kwargs)
        calls.append({**kwargs, "credentials": credentials})
        return credentials

    monkeypatch.setattr(aws_adapters.StsCredentialIssuer, "assume_role", spy)
    monkeypatch.setattr(app_module, "_container", {})
    yield app_module, calls


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the signer's Powertools logger writes (its handler bound stdout at import)."""
    import signer.app as app_module

    buffer = io.StringIO()
    monkeypatch.setattr(app_module.logger.registered_handler, "stream", buffer)
    return buffer


def invoke(app_module: Any, event: dict[str, Any], context: Any) -> dict[str, Any]:
    result: dict[str, Any] = app_module.lambda_handler(event, context)
    assert result["headers"]["Cache-Control"] == "no-store"
    return result


def test_issues_a_scoped_url(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    logs: io.StringIO,
) -> None:
    app_module, calls = signer_app
    result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    me = web_username(SUB)
    assert body["clientId"] == me
    assert body["topics"] == {
        "publish": [f"{me}/#", "chat/lobby"],
        "subscribe": [f"{me}/#", "chat/lobby"],
    }
    assert body["expiresAt"].endswith("Z")

    # STS was asked for the IoT client role, 900 s, with a session policy for this caller only.
    assert len(calls) == 1
    call = calls[0]
    assert call["role_arn"].endswith(":role/iotauth-web-client")
    assert call["duration_seconds"] == 900
    assert call["session_name"] == me
    policy = PolicySet([call["policy"]])

    def res(kind: str, name: str) -> str:
        return f"arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{name}"

    assert policy.allows("iot:Connect", res("client", me))
    assert not policy.allows("iot:Connect", res("client", web_username("mallory")))
    assert not policy.allows("iot:Connect", res("client", "demo-device"))
    assert policy.allows("iot:Publish", res("topic", f"{me}/hello"))
    assert policy.allows("iot:Publish", res("topic", "chat/lobby"))
    assert policy.allows("iot:Subscribe", res("topicfilter", "chat/lobby"))
    assert not policy.allows("iot:Publish", res("topic", f"{web_username('mallory')}/x"))
    assert not policy.allows("iot:Subscribe", res("topicfilter", "#"))

    # The URL is signed with the moto-issued credentials, the token appended after.
    creds = call["credentials"]
    endpoint = body["url"].split("/")[2]
    assert "-ats.iot." in endpoint  # from iot:DescribeEndpoint (iot:Data-ATS)
    assert body["url"].endswith("&X-Amz-Security-Token=" + quote(creds.session_token, ""))
    secrets = {creds.access_key_id: creds.secret_access_key}
    assert verify_presigned_url(body["url"], endpoint, REGION, secrets.get) == creds.access_key_id

    # Nothing secret reached the logs; the useful facts did.
    text = logs.getvalue()
    assert "issued a presigned URL" in text and me in text
    signature = body["url"].split("X-Amz-Signature=")[1][:64]
    for secret in (creds.secret_access_key, creds.session_token, signature, "X-Amz-", "eyJ"):
        assert secret not in text


def test_cached_credentials_are_reused(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    app_module, calls = signer_app
    first = json.loads(invoke(app_module, events("signer/mqtt-url"), lambda_context)["body"])
    second = json.loads(invoke(app_module, events("signer/mqtt-url"), lambda_context)["body"])
    assert len(calls) == 1
    assert first["clientId"] == second["clientId"]
    access_key = calls[0]["credentials"].access_key_id
    assert f"X-Amz-Credential={access_key}%2F" in second["url"]

    other = events("signer/mqtt-url")
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "another-user"
    body = json.loads(invoke(app_module, other, lambda_context)["body"])
    assert body["clientId"] == "web-another-user"
    assert len(calls) == 2


def test_no_claims_is_401(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    app_module, calls = signer_app
    result = invoke(app_module, events("signer/mqtt-url-no-claims"), lambda_context)
    assert result["statusCode"] == 401
    assert json.loads(result["body"]) == {"message": "Unauthorized"}
    event = events("signer/mqtt-url")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = ""
    assert invoke(app_module, event, lambda_context)["statusCode"] == 401
    assert calls == []


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_sts_failure_is_a_generic_503(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    app_module, _ = signer_app
    port = str(_closed_port())
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")  # unreachable STS
    result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert result["statusCode"] == 503
    assert json.loads(result["body"]) == {"message": "Service unavailable, try again shortly"}
    assert port not in result["body"]
    assert "cannot issue a URL" in logs.getvalue()
    assert port not in logs.getvalue()


def test_sts_denied_is_a_generic_503(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    scripted: Any,
) -> None:
    """STS answers with a query-protocol error (not retried): 503, one request."""
    error = (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        b"<Type>Sender</Type><Code>AccessDenied</Code><Message>not you</Message></Error>"
        b"</ErrorResponse>"
    )
    url, requests = scripted((403, {"Content-Type": "text/xml"}, error))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    app_module, _ = signer_app
    result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert result["statusCode"] == 503
    assert len(requests) == 1
    assert requests[0]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/sts/aws4_request" in requests[0]["Authorization"]


def test_endpoint_failure_is_503_then_recovers(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    scripted: Any,
) -> None:
    """iot:DescribeEndpoint refused once (not retried), then answered: 503, then 200, and
    the endpoint is looked up once per container after that."""
    denied = (403, {"x-amzn-ErrorType": "AccessDeniedException"}, b'{"message":"no"}')
    found = (200, {}, b'{"endpointAddress":"recovered-ats.iot.us-east-1.amazonaws.com"}')
    url, describe_calls = scripted(denied, found)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOT", url)
    app_module, _ = signer_app
    assert invoke(app_module, events("signer/mqtt-url"), lambda_context)["statusCode"] == 503
    for _ in range(2):
        result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
        assert result["statusCode"] == 200
        assert json.loads(result["body"])["url"].startswith(
            "wss://recovered-ats.iot.us-east-1.amazonaws.com/mqtt?"
        )
    assert len(describe_calls) == 2  # the endpoint is looked up once per container
    assert "/iot/aws4_request" in describe_calls[0]["Authorization"]


def test_configured_endpoint_skips_describe_endpoint(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_module, _ = signer_app
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "custom-ats.iot.us-east-1.amazonaws.com")
    body = json.loads(invoke(app_module, events("signer/mqtt-url"), lambda_context)["body"])
    assert body["url"].startswith("wss://custom-ats.iot.us-east-1.amazonaws.com/mqtt?")
    assert app_module._container["app"][1]._endpoints._iot is None


def test_cors_preflight_for_allowed_origin(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    app_module, calls = signer_app
    result = invoke(app_module, events("signer/preflight"), lambda_context)
    assert result["statusCode"] == 204
    assert result["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in result["headers"]["Access-Control-Allow-Headers"].lower()
    assert calls == []

    stranger = events("signer/preflight")
    stranger["headers"]["origin"] = "https://evil.example.net"
    result = invoke(app_module, stranger, lambda_context)
    assert "Access-Control-Allow-Origin" not in result["headers"]

    ok = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert ok["headers"]["Access-Control-Allow-Origin"] == ORIGIN


def test_unknown_route_and_misconfiguration(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_module, _ = signer_app
    event = events("signer/mqtt-url")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/other"
    assert invoke(app_module, event, lambda_context)["statusCode"] == 404

    monkeypatch.setattr(app_module, "_container", {})
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", "")
    result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal error"}


def test_powertools_dev_mode_prints_neither_event_nor_url(
    signer_app: tuple[Any, list[dict[str, Any]]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # POWERTOOLS_DEV switches the event handler to debug mode, which prints every event
    # (the caller's bearer JWT) and answers errors with tracebacks: the signer pins it off.
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    app_module, _ = signer_app
    result = invoke(app_module, events("signer/mqtt-url"), lambda_context)
    assert result["statusCode"] == 200
    out = capsys.readouterr()
    for secret in ("eyJ", "Bearer", "X-Amz-"):
        assert secret not in out.out + out.err


# -- routing, CORS and init ---------------------------------------------------------------

ORIGINS = ["https://app.example.com", "http://localhost:8080"]


def powertools_app() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The signer's former routing: the resolver, CORS for ORIGINS, one GET route."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response

    cors = CORSConfig(
        allow_origin=ORIGINS[0],
        extra_origins=ORIGINS[1:],
        allow_headers=["Authorization"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    app = APIGatewayHttpResolver(cors=cors, debug=False)

    @app.get("/mqtt-url")
    def mqtt_url() -> Response[str]:  # the route's own answer is not what is compared
        status = 200 if app.current_event.request_context.authorizer.jwt_claim.get("sub") else 401
        return Response(status, "application/json", "{}", headers={"Cache-Control": "no-store"})

    def call(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app.resolve(event, FakeLambdaContext())
        result.setdefault("headers", {}).update({"Cache-Control": "no-store"})
        return result

    return call


def _variants() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for origin in (ORIGINS[0], ORIGINS[1], "https://evil.example.net", None):
        for name in ("signer/preflight", "signer/mqtt-url", "signer/mqtt-url-no-claims"):
            event = load_event(name)
            if origin is None:
                event["headers"].pop("origin", None)
            else:
                event["headers"]["origin"] = origin
            out.append((f"{name}@{origin}", event))
    for path, method in (("/other", "GET"), ("/mqtt-url/", "GET"), ("/mqtt-url", "POST"),
                         ("/other", "OPTIONS"), ("/mqtt-url", "DELETE")):  # fmt: skip
        event = load_event("signer/mqtt-url")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["routeKey"] = f"{method} {path}"
        out.append((f"{method} {path}", event))
    return out


@pytest.mark.parametrize(("label", "event"), _variants(), ids=[v[0] for v in _variants()])
def test_answers_as_the_powertools_resolver_did(
    signer_app: tuple[Any, list[Any]], label: str, event: dict[str, Any], monkeypatch: Any
) -> None:
    app_module, _ = signer_app
    monkeypatch.setenv("IOTAUTH_ALLOWED_ORIGINS", ",".join(ORIGINS))
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "example-ats.iot.us-east-1.amazonaws.com")
    ours = app_module.lambda_handler(json.loads(json.dumps(event)), FakeLambdaContext())
    theirs = powertools_app()(json.loads(json.dumps(event)))
    assert ours["statusCode"] == theirs["statusCode"]
    assert ours["isBase64Encoded"] is theirs["isBase64Encoded"] is False
    vary = ours["headers"].pop("Vary", None)
    assert ours["headers"] == theirs["headers"]
    assert vary == ("Origin" if "Access-Control-Allow-Origin" in ours["headers"] else None)
    if ours["statusCode"] not in {200, 401}:
        assert json.loads(ours["body"] or "null") == json.loads(theirs["body"] or "null")


def test_a_misconfigured_signer_imports_and_answers_500(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", "not-an-arn")
    spec = importlib.util.spec_from_file_location("_bad_signer", ROOT / "signer" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # does not raise
    result = module.lambda_handler(load_event("signer/mqtt-url"), FakeLambdaContext())
    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal error"}
    assert result["headers"]["Cache-Control"] == "no-store"


def test_clients_are_built_at_import(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
    monkeypatch.delenv("IOTAUTH_IOT_ENDPOINT", raising=False)
    spec = importlib.util.spec_from_file_location("_ok_signer", ROOT / "signer" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, signer, _ = module._container["app"]
    assert signer._issuer._sts is not None and signer._endpoints._iot is not None
