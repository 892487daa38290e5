"""template.yaml's alarms and dashboard watch the metrics the code really emits: the
authorizer's EMF records (:mod:`iotauth.connect.decision_metrics`: namespace, metric names,
dimensions, the ``service`` and the deny ``reason`` values) and Lambda's and the HTTP API's own.
A renamed metric, dimension or reason fails here, not silently in CloudWatch. Also: nothing is
created with ``Monitoring=off``, the alarm topic is encrypted with a key CloudWatch may use,
and the required parameters come first and refuse empty and example values."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.connect.decision_metrics import NAMESPACE, DecisionMetrics
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template

ROOT = Path(__file__).resolve().parents[3]
ARN = ArnContext("aws", "us-east-1", "123456789012")
REQUIRED = ["OperatorPrincipalArns", "JwtIssuer", "JwtAudience"]
# What the stack's resources resolve to here (a Ref of a function is its name).
REFS: dict[str, str | list[str]] = {
    "AuthorizerFunction": "iotauth-local-authorizer",
    "SignerFunction": "iotauth-local-signer",
    "SignerApi": "api123",
    "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:alarms",
}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(TEMPLATE_PATH, ARN)


@pytest.fixture(scope="module")
def doc(template: Template) -> dict[str, Any]:
    return template.document


def _alarms(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def _string_constant(path: Path, name: str) -> str:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return node.value.value
    raise AssertionError(f"{path}: no {name} = '…'")


def _emitted_reasons() -> set[str]:
    """Every literal deny reason in the code: ``_deny("…")`` and ``Decision(reason="…")``."""
    reasons: set[str] = set()
    for path in [*sorted((ROOT / "iotauth" / "connect").glob("*.py")), ROOT / "authorizer/app.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            values = [k.value for k in node.keywords if k.arg == "reason"]
            if name == "_deny" and node.args:
                values.append(node.args[0])
            # A literal, or each branch of `"a" if … else "b"`.
            reasons |= {
                c.value
                for v in values
                for c in ast.walk(v)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return reasons


SERVICE = _string_constant(ROOT / "authorizer/app.py", "SERVICE")


def _emitted_directives() -> dict[str, set[str]]:
    """Metric name → its dimension names, from the records the authorizer's provider writes."""
    provider = DecisionMetrics(SERVICE)
    directives: dict[str, set[str]] = {}
    for allowed, reason in ((True, "allowed"), (False, "store-error")):
        provider.record(allowed, reason)
        record = provider.serialize_metric_set()
        provider.clear_metrics()
        for directive in record["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for metric in directive["Metrics"]:
                (dimensions,) = directive["Dimensions"]
                directives[metric["Name"]] = set(dimensions)
                assert all(d in record for d in dimensions)  # each has its value
        assert record["service"] == SERVICE
    return directives


def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """An alarm's metrics, single (``MetricName``…) or math (``Metrics`` with MetricStat)."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [{k: props[k] for k in ("Namespace", "MetricName", "Dimensions")}]
    found = [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
    assert found
    return found


def test_the_code_emits_what_the_tests_read() -> None:
    assert _emitted_directives() == {
        "Allowed": {"service"},
        "Denied": {"service"},
        "DeniedByReason": {"service", "reason"},
    }
    assert {"store-error", "store-timeout", "config-error", "internal-error"} <= _emitted_reasons()
    assert {"locked", "bad-password"} <= _emitted_reasons()
    app = (ROOT / "authorizer/app.py").read_text(encoding="utf-8")
    assert "decision_metrics(SERVICE)" in app


def test_every_alarm_watches_a_metric_that_is_emitted(doc: dict[str, Any]) -> None:
    directives, reasons = _emitted_directives(), _emitted_reasons()
    functions = {"AuthorizerFunction", "SignerFunction"}
    own = set()
    for name, alarm in _alarms(doc).items():
        for metric in _metric_stats(alarm):
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            namespace, metric_name = metric["Namespace"], metric["MetricName"]
            if namespace == NAMESPACE:
                assert metric_name in directives, name
                assert set(dimensions) == directives[metric_name], name
                assert dimensions["service"] == SERVICE, name
                if "reason" in dimensions:
                    assert dimensions["reason"] in reasons, (name, dimensions["reason"])
                    own.add(dimensions["reason"])
            elif namespace == "AWS/Lambda":
                assert metric_name in {"Errors", "Throttles"}, name
                assert dimensions.keys() == {"FunctionName"}
                assert dimensions["FunctionName"]["Ref"] in functions, name
            elif namespace == "AWS/ApiGateway":
                # HTTP API metric names (4xx/5xx, not REST's 5XXError), by ApiId.
                assert metric_name in {"4xx", "5xx", "Count"}, name
                assert dimensions == {"ApiId": {"Ref": "SignerApi"}}, name
            else:
                raise AssertionError(f"{name}: unexpected namespace {namespace}")
    assert own == {
        "store-error",
        "store-timeout",
        "config-error",
        "internal-error",
        "locked",
        "bad-password",
    }
    # The namespace the functions are given agrees with the provider's fixed one.
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    authorizer_env = doc["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]
    assert authorizer_env["Variables"]["POWERTOOLS_SERVICE_NAME"] == SERVICE


def test_alarms_are_named_for_the_topic_policy_and_notify_both_targets(
    doc: dict[str, Any],
) -> None:
    targets = [
        {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["UseAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
    ]
    alarms = _alarms(doc)
    assert len(alarms) == 10
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert alarm["Condition"] == "MonitoringOn", name
        alarm_name = props["AlarmName"]["Fn::Sub"]
        assert alarm_name.startswith("${AWS::StackName}-"), name  # the key and topic policy
        assert props["AlarmActions"] == targets and props["OKActions"] == targets, name
        assert props["TreatMissingData"] == "notBreaching", name
    spike = alarms["SignInFailureSpikeAlarm"]["Properties"]
    assert spike["Threshold"] == {"Ref": "SignInFailureAlarmThreshold"}
    assert [m["Id"] for m in spike["Metrics"] if m["ReturnData"]] == ["failures"]


def test_nothing_is_created_when_monitoring_is_off(doc: dict[str, Any]) -> None:
    conditions = doc["Conditions"]
    assert conditions["MonitoringOn"] == {"Fn::Equals": [{"Ref": "Monitoring"}, "on"]}
    for name in ("CreateAlarmTopic", "UseAlarmTopicArn"):
        assert {"Condition": "MonitoringOn"} in conditions[name]["Fn::And"]
    monitoring = {
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::SNS::Topic",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
    }
    for name, resource in doc["Resources"].items():
        if resource["Type"] in monitoring or name == "AlarmTopicKey":
            assert resource.get("Condition") in {"MonitoringOn", "CreateAlarmTopic"}, name


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(doc: dict[str, Any]) -> None:
    resources = doc["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # not aws/sns: CloudWatch can't
    key = resources["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    source = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source.endswith(":alarm:${AWS::StackName}-*")
    (publish,) = resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"] == source
    subscription = resources["AlarmEmailSubscription"]["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", {"Ref": "AlarmEmail"})


def test_the_dashboard_resolves_to_json_over_emitted_metrics(template: Template) -> None:
    resource = template.resource("Dashboard")
    alarm_refs = {
        f"{name}.Arn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
        for name in _alarms(template.document)
    }
    body = json.loads(
        template.resolve(resource["Properties"]["DashboardBody"], {**REFS, **alarm_refs})
    )
    directives, widgets = _emitted_directives(), body["widgets"]
    seen: set[tuple[str, str]] = set()
    for widget in widgets:
        if widget["type"] == "alarm":
            assert sorted(widget["properties"]["alarms"]) == sorted(alarm_refs.values())
            continue
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # an expression
                expression = row[0]["expression"]
                assert f'MetricName="DeniedByReason" service="{SERVICE}"' in expression
                assert expression.startswith(f"SEARCH('{{{NAMESPACE},service,reason}}")
                assert row[0]["label"] == "${PROP('Dim.reason')}"  # ${! … } unescaped by Sub
                seen.add((NAMESPACE, "DeniedByReason"))
                continue
            namespace, metric, *dimensions = [c for c in row if not isinstance(c, dict)]
            pairs = dict(zip(dimensions[::2], dimensions[1::2], strict=True))
            seen.add((namespace, metric))
            if namespace == NAMESPACE:
                assert set(pairs) == directives[metric] and pairs["service"] == SERVICE
            elif namespace == "AWS/Lambda":
                assert pairs["FunctionName"] in {REFS["AuthorizerFunction"], REFS["SignerFunction"]}
            else:
                assert namespace == "AWS/ApiGateway" and pairs == {"ApiId": REFS["SignerApi"]}
    assert {
        (NAMESPACE, "Allowed"),
        (NAMESPACE, "Denied"),
        (NAMESPACE, "DeniedByReason"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "ConcurrentExecutions"),
        ("AWS/ApiGateway", "Count"),
        ("AWS/ApiGateway", "5xx"),
    } <= seen


# --- parameters: the required ones first, empty and example values refused ------------------


def test_required_parameters_come_first_and_have_no_default(doc: dict[str, Any]) -> None:
    parameters = doc["Parameters"]
    # `sam deploy --guided` asks in this order (samcli get_template_parameters: a dict).
    assert list(parameters)[: len(REQUIRED)] == REQUIRED
    assert [p for p, v in parameters.items() if "Default" not in v] == REQUIRED
    groups = doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert groups[0]["Parameters"] == REQUIRED
    grouped = [p for g in groups for p in g["Parameters"]]
    assert sorted(grouped) == sorted(parameters)  # each once, none forgotten
    for name in REQUIRED:
        assert parameters[name]["ConstraintDescription"], name


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("JwtIssuer", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc123", True),
        ("JwtIssuer", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE", False),
        ("JwtIssuer", "https://issuer.example.com", False),
        ("JwtIssuer", "", False),
        ("JwtIssuer", "http://insecure.test", False),
        ("JwtAudience", "1h2k3j4l5m6n7b8v9c0x1z2a3s", True),
        ("JwtAudience", "example-app-client-id", False),
        ("JwtAudience", "", False),
        ("OperatorPrincipalArns", "arn:aws:iam::123456789012:role/iot-operators", True),
        ("OperatorPrincipalArns", "", False),
        ("OperatorPrincipalArns", "alice", False),
        ("AlarmEmail", "", True),
        ("AlarmEmail", "ops@company.test", True),
        ("AlarmEmail", "a@b.c,d@e.f", False),
        ("AlarmTopicArn", "arn:aws:sns:eu-west-1:123456789012:ops", True),
        ("AlarmTopicArn", "arn:aws:sns:eu-west-1:123456789012:ops.fifo", False),
    ],
)
def test_parameter_patterns(doc: dict[str, Any], name: str, value: str, ok: bool) -> None:
    """CloudFormation matches AllowedPattern against the whole value (each list item)."""
    declared = doc["Parameters"][name]
    items = value.split(",") if declared["Type"] == "CommaDelimitedList" else [value]
    assert all(re.fullmatch(declared["AllowedPattern"], v) for v in items) is ok


def test_rules_refuse_empty_required_values_with_a_message(doc: dict[str, Any]) -> None:
    assertions = doc["Rules"]["RequiredParametersAreGiven"]["Assertions"]
    text = json.dumps([a["Assert"] for a in assertions])
    for name in REQUIRED:
        assert f'{{"Ref": "{name}"}}' in text
        assert any(a["AssertDescription"].startswith(f"{name} is required") for a in assertions)
    off = doc["Rules"]["AlarmTargetsNeedMonitoring"]
    assert off["RuleCondition"] == {"Fn::Equals": [{"Ref": "Monitoring"}, "off"]}


def test_samconfig_example_overrides_pass_the_patterns(doc: dict[str, Any]) -> None:
    """The samconfig.toml example is meant to be copied: it must not be refused."""
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    (example,) = re.findall(r'^# parameter_overrides = "(OperatorPrincipalArns=[^"]+)"', text, re.M)
    for pair in example.split():
        name, value = pair.split("=", 1)
        declared = doc["Parameters"][name]
        pattern = declared.get("AllowedPattern")
        items = value.split(",") if declared["Type"] == "CommaDelimitedList" else [value]
        if pattern:
            assert all(re.fullmatch(pattern, v) for v in items), name
