"""The stack's two Lambda functions, the real handlers (``authorizer/app.py``,
``signer/app.py``) run in this process: :class:`LocalFunction` calls one with a Lambda
context of the stand-in account, its Powertools logs optionally sent to a stream of ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, TextIO

from iotauth.local.aws_standin import ACCOUNT, REGION
from iotauth.local.lambda_host import LambdaContext, function_arn, load_handler_module

__all__ = ["AUTHORIZER_FUNCTION", "SIGNER_FUNCTION", "LocalFunction", "redirect_logs"]

AUTHORIZER_FUNCTION = "iotauth-authorizer"
SIGNER_FUNCTION = "iotauth-signer"


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
