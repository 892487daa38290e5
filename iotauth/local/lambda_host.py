"""Running a function's real handler from the source checkout, outside Lambda.

Shared by the local stack (``iotauth local``) and ``iotauth authorize``: load
``<repo>/<folder>/app.py`` as a private module and give it enough of a Lambda context for
Powertools and the handlers. Standard library only, so the CLI pays nothing for it.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

__all__ = ["REPO_ROOT", "LambdaContext", "function_arn", "load_handler_module"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(slots=True)
class LambdaContext:
    """Enough of a Lambda context for Powertools and the handlers."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    timeout_seconds: float = 5.0
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout_seconds - (time.monotonic() - self._started)
        return max(0, int(left * 1000))


def function_arn(name: str, *, region: str, account: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def load_handler_module(folder: str, *, prefix: str = "_iotauth_local") -> ModuleType:
    """``<repo>/<folder>/app.py`` (with its ``lambda_handler``), loaded as a private copy.

    Raises :class:`FileNotFoundError` (one line, safe to show) outside a source checkout.
    """
    path = REPO_ROOT / folder / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run this from a source checkout")
    spec = importlib.util.spec_from_file_location(f"{prefix}_{folder}_app", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "lambda_handler", None)):
        raise FileNotFoundError(f"{path} has no lambda_handler")
    return module
