"""One GET /mqtt-url of the signer handler as ``sub`` (the ``logs`` fixture: conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def call(
    app_module: Any, events: Callable[[str], dict[str, Any]], context: Any, sub: str
) -> dict[str, Any]:
    event = events("signer/mqtt-url")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    result: dict[str, Any] = app_module.lambda_handler(event, context)
    assert result["headers"]["Cache-Control"] == "no-store"
    return result
