"""The authorizer's metrics: one CloudWatch EMF record per decision, its own service.

Namespace ``iotauth``. An allowed connect counts ``Allowed``, a denied one ``Denied`` (both
with dimension ``service``) and ``DeniedByReason`` (dimensions ``service`` and ``reason``).
The reason goes into the same record, as a second metric directive, rather than into a
record of its own (Powertools' ``single_metric``): serialising and printing a second record
was most of a warm decision's CPU.

Powertools' ``Metrics`` keeps its metrics and dimensions in class attributes shared by every
instance in the process; ``single_metric`` took its service from ``POWERTOOLS_SERVICE_NAME``
at call time. With both handlers in one process (the local stand-in) the authorizer's
records could so carry the signer's service. :func:`decision_metrics` gives the authorizer a
provider with state of its own and a fixed service.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

__all__ = ["NAMESPACE", "DecisionMetrics", "decision_metrics"]

NAMESPACE = "iotauth"


class DecisionMetrics(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, plus the deny reason as a second directive of the record."""

    def __init__(self, service: str) -> None:
        # Fresh dicts: nothing shared with other Metrics instances in the process.
        super().__init__(
            metric_set={}, dimension_set={}, metadata_set={}, namespace=NAMESPACE, service=service
        )
        self._reason: str | None = None

    def record(self, allowed: bool, reason: str) -> None:
        """Count one decision (flushed by ``log_metrics`` at the end of the invoke)."""
        if allowed:
            self.add_metric(name="Allowed", unit=MetricUnit.Count, value=1)
        else:
            self.add_metric(name="Denied", unit=MetricUnit.Count, value=1)
            self._reason = reason

    def serialize_metric_set(
        self,
        metrics: dict[str, Any] | None = None,
        dimensions: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        record: dict[str, Any] = dict(super().serialize_metric_set(metrics, dimensions, metadata))
        if self._reason is not None:
            record["_aws"]["CloudWatchMetrics"].append(
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service", "reason"]],
                    "Metrics": [{"Name": "DeniedByReason", "Unit": "Count"}],
                }
            )
            record["reason"] = self._reason
            record["DeniedByReason"] = [1.0]  # as Powertools writes values
        return record

    def clear_metrics(self) -> None:
        super().clear_metrics()
        self._reason = None


def decision_metrics(service: str) -> tuple[Metrics, DecisionMetrics]:
    """A ``Metrics`` (for ``@log_metrics``) over a :class:`DecisionMetrics` provider."""
    provider = DecisionMetrics(service)
    return Metrics(provider=provider), provider
