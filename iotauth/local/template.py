"""What the local stack takes from ``template.yaml``, so local runs as deployed.

The deployed stack is defined once, in the SAM template. The local stack reads from it, at
start, the IoT client role's own policies (``IotClientRole``: the upper bound of every
presigned URL) and each function's environment (``Globals`` + the function's
``Environment.Variables``), with the parameters' defaults unless overridden. No copy to keep
in step, and a template change the local stack cannot follow fails its start loudly.

The YAML is read with PyYAML (which moto's server requires anyway) and a loader that
knows CloudFormation's short tags (``!Sub`` → ``{"Fn::Sub": …}``, ``!GetAtt a.b`` →
``{"Fn::GetAtt": ["a", "b"]}``, …): the same shapes cfn-lint's decoder produces. Resolution
handles what those parts of the template use: ``Ref`` (parameters, pseudo parameters, resources
given by the caller), ``Fn::Sub``, ``Fn::Join``, ``Fn::GetAtt`` (given by the caller) and
``Fn::Select``; anything else raises :class:`TemplateError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iotauth.access.scoping import ArnContext
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration

__all__ = ["DOMAIN_CONFIGURATION", "Template", "TemplateError"]

#: The logical id of the endpoint's domain configuration (COORDINATION.md, interface 2).
DOMAIN_CONFIGURATION = "IotDomainConfiguration"

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Short tag → intrinsic function; GetAtt's scalar form "A.B" is split below.
_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "Sub",
            "GetAtt",
            "Join",
            "Select",
            "Split",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "FindInMap",
            "Base64",
            "Cidr",
            "GetAZs",
            "ImportValue",
            "Length",
            "ToJsonString",
        )
    },
}
#: What the local stack stands in for: a Ref name or "Resource.Attribute" → its local value.
Refs = Mapping[str, str | list[str]]
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template cannot be read, or holds something the local stack cannot resolve."""


class _CfnLoader(_BaseLoader):  # type: ignore[valid-type,misc]  # C or Python loader
    """SafeLoader plus CloudFormation's short-form intrinsic functions."""


def _construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _TAGS.get(tag_suffix)
    if name is None:
        raise TemplateError(f"unknown tag !{tag_suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct)


# One class (~235 lines): every lookup resolves against the same parameters, ARN and refs.
@dataclass(slots=True)
class Template:
    """A parsed SAM template and the values to resolve it with."""

    document: dict[str, Any]
    arn: ArnContext
    parameters: dict[str, str] = field(default_factory=dict)  # overrides of the defaults
    stack_name: str = "iotauth-local"

    @classmethod
    def load(
        cls,
        path: Path,
        arn: ArnContext,
        parameters: Mapping[str, str] | None = None,
        *,
        stack_name: str = "iotauth-local",
    ) -> Template:
        try:
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"cannot read {path}: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
            raise TemplateError(f"{path} is not a CloudFormation template")
        template = cls(document, arn, dict(parameters or {}), stack_name)
        for name, value in template.parameters.items():
            template._check_parameter(name, value)
        return template

    # --- parameters --------------------------------------------------------------------

    def _declared(self, name: str) -> dict[str, Any]:
        declared = self.document.get("Parameters", {}).get(name)
        if not isinstance(declared, dict):
            raise TemplateError(f"template.yaml has no parameter {name!r}")
        return declared

    def _check_parameter(self, name: str, value: str) -> None:
        """CloudFormation's checks of a parameter value: its type, AllowedValues,
        AllowedPattern, MinLength/MaxLength and MinValue/MaxValue (each item of a list)."""
        declared = self._declared(name)
        kind = declared.get("Type", "String")
        values = value.split(",") if kind == "CommaDelimitedList" else [value]
        if kind == "Number":
            try:
                number = float(value)
            except ValueError:
                raise TemplateError(f"parameter {name}: {value!r} is not a number") from None
            for bound, ok in (("MinValue", number.__ge__), ("MaxValue", number.__le__)):
                limit = declared.get(bound)
                if isinstance(limit, (int, float)) and not ok(limit):
                    raise TemplateError(
                        f"parameter {name}: {value} is out of range ({bound} {limit})"
                    )
        pattern = declared.get("AllowedPattern")
        if isinstance(pattern, str) and not all(re.fullmatch(pattern, v) for v in values):
            raise TemplateError(f"parameter {name}: {value!r} does not match {pattern!r}")
        allowed = declared.get("AllowedValues")
        if isinstance(allowed, list) and value not in [str(a) for a in allowed]:
            choices = ", ".join(str(a) for a in allowed)
            raise TemplateError(
                f"parameter {name}: {value!r} is not one of its allowed values ({choices})"
            )
        for bound, too in (("MinLength", "short"), ("MaxLength", "long")):
            limit = declared.get(bound)
            if isinstance(limit, int) and any(
                len(v) < limit if too == "short" else len(v) > limit for v in values
            ):
                raise TemplateError(f"parameter {name}: {value!r} is too {too} ({bound} {limit})")

    def parameter(self, name: str) -> str | list[str]:
        """A parameter's value (the override, else its default); lists for CommaDelimitedList."""
        declared = self._declared(name)
        if name in self.parameters:
            raw = self.parameters[name]
        elif "Default" in declared:
            raw = str(declared["Default"])
        else:
            raise TemplateError(f"parameter {name!r} has no default: give it a value")
        if declared.get("Type") == "CommaDelimitedList":
            return [item.strip() for item in raw.split(",")]
        return raw

    def text_parameter(self, name: str) -> str:
        value = self.parameter(name)
        return ",".join(value) if isinstance(value, list) else value

    def list_parameter(self, name: str) -> list[str]:
        value = self.parameter(name)
        return value if isinstance(value, list) else [value]

    # --- resolution ----------------------------------------------------------------------

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::Partition": self.arn.partition,
            "AWS::Region": self.arn.region,
            "AWS::AccountId": self.arn.account,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def _ref(self, name: str, refs: Refs) -> str | list[str]:
        if name in refs:
            return refs[name]
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.document.get("Parameters", {}):
            return self.parameter(name)
        raise TemplateError(f"cannot resolve Ref {name!r} locally")

    def resolve(self, value: Any, refs: Refs | None = None) -> Any:
        """``value`` with its intrinsic functions resolved.

        ``refs`` maps what the local stack stands in for: ``"CredentialsTable"`` (a Ref) or
        ``"IotClientRole.Arn"`` (a GetAtt) to its local value.
        """
        refs = refs or {}
        if isinstance(value, list):
            return [self.resolve(v, refs) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {k: self.resolve(v, refs) for k, v in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self._ref(str(argument), refs)
        if function == "Fn::GetAtt":
            name = ".".join(str(a) for a in argument)
            if name in refs:
                return refs[name]
            raise TemplateError(f"cannot resolve GetAtt {name!r} locally")
        if function == "Fn::Sub":
            return self._sub(argument, refs)
        if function == "Fn::Join":
            separator, items = argument
            resolved = self.resolve(items, refs)
            flat = [
                str(i) for item in resolved for i in (item if isinstance(item, list) else [item])
            ]
            return str(separator).join(flat)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items, refs)[int(self.resolve(index, refs))]
        raise TemplateError(f"cannot resolve {function} locally")

    def _sub(self, argument: Any, refs: Refs) -> str:
        if isinstance(argument, list):
            text, extra = argument
            variables = {k: self.resolve(v, refs) for k, v in extra.items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                found = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                found = self.resolve({"Fn::GetAtt": name.split(".", 1)}, refs)
            else:
                found = self._ref(name, refs)
            if isinstance(found, list):
                raise TemplateError(f"${{{name}}} is a list: it cannot be substituted")
            return str(found)

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")

    # --- what the local stack needs --------------------------------------------------------

    def resource(self, logical_id: str) -> dict[str, Any]:
        found = self.document["Resources"].get(logical_id)
        if not isinstance(found, dict):
            raise TemplateError(f"template.yaml has no resource {logical_id!r}")
        return found

    def role_policies(self, logical_id: str, refs: Refs | None = None) -> dict[str, Any]:
        """An ``AWS::IAM::Role``'s inline policies: ``{PolicyName: resolved document}``."""
        role = self.resource(logical_id)
        if role.get("Type") != "AWS::IAM::Role":
            raise TemplateError(f"{logical_id} is not an AWS::IAM::Role")
        policies = role.get("Properties", {}).get("Policies") or []
        if role.get("Properties", {}).get("ManagedPolicyArns"):
            raise TemplateError(f"{logical_id}: managed policies cannot be reproduced locally")
        resolved = {str(p["PolicyName"]): self.resolve(p["PolicyDocument"], refs) for p in policies}
        if not resolved:
            raise TemplateError(f"{logical_id} has no inline policy")
        return resolved

    def function_environment(self, logical_id: str, refs: Refs | None = None) -> dict[str, str]:
        """A function's environment variables: ``Globals`` then its own, resolved."""
        function = self.resource(logical_id)
        globals_ = self.document.get("Globals", {}).get("Function", {})
        variables: dict[str, Any] = {
            **(globals_.get("Environment", {}).get("Variables") or {}),
            **(function.get("Properties", {}).get("Environment", {}).get("Variables") or {}),
        }
        environment: dict[str, str] = {}
        for name, value in variables.items():
            resolved = self.resolve(value, refs)
            if isinstance(resolved, (list, dict)):
                raise TemplateError(f"{logical_id}: {name} does not resolve to text")
            environment[str(name)] = str(resolved)
        return environment

    def domain_configuration(self, refs: Refs | None = None) -> DomainConfiguration:
        """``IotDomainConfiguration`` (``AWS::IoT::DomainConfiguration``), resolved; without it,
        an endpoint with no default authorizer where port and ALPN decide."""
        resource = self.document["Resources"].get(DOMAIN_CONFIGURATION)
        if resource is None:
            return NO_DOMAIN
        if (
            not isinstance(resource, dict)
            or resource.get("Type") != "AWS::IoT::DomainConfiguration"
        ):
            raise TemplateError(f"{DOMAIN_CONFIGURATION} is not an AWS::IoT::DomainConfiguration")
        properties = resource.get("Properties") or {}
        if not isinstance(properties, dict):
            raise TemplateError(f"{DOMAIN_CONFIGURATION}: Properties must be a mapping")
        config = self.resolve(properties.get("AuthorizerConfig") or {}, refs)
        if not isinstance(config, dict):
            raise TemplateError(f"{DOMAIN_CONFIGURATION}: AuthorizerConfig must be a mapping")
        default = config.get("DefaultAuthorizerName")
        override = config.get("AllowAuthorizerOverride", False)
        if isinstance(override, str):
            override = override.lower() == "true"
        authentication = self.resolve(properties.get("AuthenticationType", "DEFAULT"), refs)
        protocol = self.resolve(properties.get("ApplicationProtocol", "DEFAULT"), refs)
        if default is not None and not isinstance(default, str):
            raise TemplateError(f"{DOMAIN_CONFIGURATION}: DefaultAuthorizerName must be text")
        return DomainConfiguration(
            default_authorizer=default or None,
            allow_authorizer_override=bool(override),
            authentication_type=str(authentication),
            application_protocol=str(protocol),
        )
