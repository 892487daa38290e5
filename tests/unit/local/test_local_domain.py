"""The endpoint's domain configuration, read from a SAM template (iotauth.local.template)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template, TemplateError

ARN = ArnContext("aws", "us-east-1", "123456789012")

SMALL = """
Parameters:
  AuthorizerName:
    Type: String
    Default: my-authorizer
Resources:
  IotAuthorizer:
    Type: AWS::IoT::Authorizer
    Properties:
      AuthorizerName: !Ref AuthorizerName
  IotDomainConfiguration:
    Type: AWS::IoT::DomainConfiguration
    Properties:
      AuthenticationType: CUSTOM_AUTH
      ApplicationProtocol: SECURE_MQTT
      AuthorizerConfig:
        DefaultAuthorizerName: {default}
        AllowAuthorizerOverride: {override}
"""


def _load(tmp_path: Path, text: str, **parameters: str) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return Template.load(path, ARN, parameters)


@pytest.mark.parametrize("default", ["!Ref AuthorizerName", "!Ref IotAuthorizer"])
def test_reads_the_domain_configuration(tmp_path: Path, default: str) -> None:
    template = _load(tmp_path, SMALL.format(default=default, override="true"))
    domain = template.domain_configuration({"IotAuthorizer": "my-authorizer"})
    assert domain == DomainConfiguration(
        default_authorizer="my-authorizer",
        allow_authorizer_override=True,
        authentication_type="CUSTOM_AUTH",
        application_protocol="SECURE_MQTT",
    )
    assert domain.custom_auth_without_alpn


def test_parameter_overrides_and_no_override(tmp_path: Path) -> None:
    text = SMALL.format(default="!Ref AuthorizerName", override="false")
    domain = _load(tmp_path, text, AuthorizerName="other").domain_configuration()
    assert domain.default_authorizer == "other" and not domain.allow_authorizer_override
    assert domain.authorizer_for("other", frozenset({"other", "x"})) == "other"
    assert domain.authorizer_for("x", frozenset({"other", "x"})) == "other"  # no override


def test_without_one_no_default_authorizer(tmp_path: Path) -> None:
    text = "Resources:\n  Thing:\n    Type: AWS::IoT::Thing\n"
    assert _load(tmp_path, text).domain_configuration() == NO_DOMAIN
    assert NO_DOMAIN.authorizer_for(None, frozenset({"a"})) is None
    assert NO_DOMAIN.authorizer_for("a", frozenset({"a"})) == "a"
    assert not NO_DOMAIN.custom_auth_without_alpn


def test_wrong_type_is_an_error(tmp_path: Path) -> None:
    text = "Resources:\n  IotDomainConfiguration:\n    Type: AWS::IoT::Thing\n"
    with pytest.raises(TemplateError, match="DomainConfiguration"):
        _load(tmp_path, text).domain_configuration()


def test_the_projects_template() -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    domain = template.domain_configuration({"IotAuthorizer": "iotauth"})
    assert domain.default_authorizer == template.text_parameter("AuthorizerName")
