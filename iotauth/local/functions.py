"""The stack's two Lambda functions, the real handlers (``authorizer/app.py``,
``signer/app.py``) run in this process: :class:`LocalFunction` calls one with a Lambda
context of the stand-in account, its Powertools logs optionally sent to a stream of ours.
:class:`DelayedFunction` answers later, by a random uniform delay in a range: Lambda-like
latency (``LocalStack(authorizer_latency=…)``, ``iotauth local --authorizer-latency``) to make
revocation races as likely as on Lambda (docs/design/revocation.md).
:func:`token_environment` is what points the authorizer's token check (issue 17) at the
local OIDC issuer (:mod:`iotauth.local.oidc`) instead of the deployment's identity provider.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TextIO

from iotauth.local.aws_standin import ACCOUNT, REGION
from iotauth.local.lambda_host import LambdaContext, function_arn, load_handler_module

__all__ = [
    "AUTHORIZER_FUNCTION",
    "DEFAULT_TOKEN_KEY_NAME",
    "MAX_LATENCY_SECONDS",
    "SIGNER_FUNCTION",
    "DelayedFunction",
    "LocalFunction",
    "parse_latency",
    "redirect_logs",
    "token_environment",
]

AUTHORIZER_FUNCTION = "iotauth-authorizer"
SIGNER_FUNCTION = "iotauth-signer"
MAX_LATENCY_SECONDS = 4.0  # below IoT's 5 s for an authorizer: a delay, not a timeout
DEFAULT_TOKEN_KEY_NAME = "iotauth-token"  # noqa: S105 - a parameter name, not a secret


def token_environment(
    issuer_url: str,
    jwks_url: str,
    audience: str,
    algorithms: Sequence[str],
    token_key_name: str | None,
) -> dict[str, str]:
    """The authorizer's token settings for the local issuer (the rest, e.g. the group
    grants, stays the template's): its exact ``iss``, audience, JWKS, both algorithms, the
    ``groups`` claim it issues, and the authorizer's TokenKeyName when the stand-in has one."""
    environment = {
        "IOTAUTH_TOKEN_ISSUER": issuer_url,
        "IOTAUTH_TOKEN_AUDIENCE": audience,
        "IOTAUTH_TOKEN_JWKS_URL": jwks_url,
        "IOTAUTH_TOKEN_ALGORITHMS": ",".join(algorithms),
        "IOTAUTH_TOKEN_GROUPS_CLAIM": "groups",
    }
    if token_key_name:
        environment["IOTAUTH_TOKEN_KEY_NAME"] = token_key_name
    return environment


def redirect_logs(module: ModuleType, stream: TextIO) -> Callable[[], None]:
    """Send a handler module's Powertools logs to ``stream``; returns the undo.

    Powertools writes to ``sys.stdout`` through its own handler (as in Lambda, where stdout is
    the log). The logger is process-wide (one per service name), hence the undo.
    """
    from aws_lambda_powertools import Logger  # noqa: PLC0415

    restore: list[tuple[logging.StreamHandler[Any], Any]] = []
    for value in list(vars(module).values()):
        if isinstance(value, Logger):
            handler = value.registered_handler
            if isinstance(handler, logging.StreamHandler):
                restore.append((handler, handler.stream))
                handler.setStream(stream)

    def undo() -> None:
        for handler, previous in restore:
            handler.setStream(previous)

    return undo


class LocalFunction:
    """``<folder>/app.py``'s ``lambda_handler``, loaded now, called as function ``name``.

    Raises :class:`FileNotFoundError` (one line) outside a source checkout. ``logs``: where
    its Powertools logs go (None: stdout, as in Lambda); :meth:`close` undoes that.
    """

    def __init__(
        self,
        name: str,
        folder: str,
        *,
        logs: TextIO | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        module = load_handler_module(folder)
        self.close: Callable[[], None] = (
            redirect_logs(module, logs) if logs is not None else lambda: None
        )
        self._handler: Callable[[Any, Any], Any] = module.lambda_handler
        self._name = name
        self._timeout = timeout_seconds

    def __call__(self, event: dict[str, Any]) -> Any:
        arn = function_arn(self._name, region=REGION, account=ACCOUNT)
        if self._timeout is None:
            context = LambdaContext(self._name, arn)
        else:
            context = LambdaContext(self._name, arn, timeout_seconds=self._timeout)
        return self._handler(event, context)


def parse_latency(text: str) -> tuple[float, float]:
    """``"0.15-0.4"`` (or one number, ``"0.2"``) → ``(low, high)`` seconds; ValueError."""
    low_text, sep, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if sep else low
    except ValueError:
        raise ValueError(f"expected SECONDS or LOW-HIGH seconds: {text!r}") from None
    return check_latency((low, high))


def check_latency(latency: tuple[float, float]) -> tuple[float, float]:
    low, high = latency
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
        raise ValueError(f"a latency range is 0 <= LOW <= HIGH seconds, not {low:g}-{high:g}")
    if high > MAX_LATENCY_SECONDS:
        raise ValueError(f"a latency above {MAX_LATENCY_SECONDS:g} s is a timeout, not a delay")
    return low, high


class DelayedFunction:
    """``function``, answering a random ``latency`` (uniform in ``(low, high)`` seconds) later.

    The delay comes after the function has run, between its answer and the caller's use of
    it: the record is read early and the answer arrives late, the widest window for a
    revocation race (on Lambda: the response's way back, a slow invoke, a GC pause). ``seed``
    makes the delays repeatable (tests); ``sleep`` is injectable.
    """

    def __init__(
        self,
        function: Callable[[dict[str, Any]], Any],
        latency: tuple[float, float],
        *,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._function = function
        self.latency = check_latency(latency)
        self._random = random.Random(seed)  # noqa: S311 - a delay, not a secret
        self._lock = threading.Lock()  # called from the gateway's executor threads
        self._sleep = sleep

    def __call__(self, event: dict[str, Any]) -> Any:
        answer = self._function(event)
        with self._lock:
            delay = self._random.uniform(*self.latency)
        self._sleep(delay)
        return answer
