"""The local gateway (:mod:`iotauth.local.gateway`) on an asyncio loop in a thread of its own,
so the synchronous stack and its tests can start it, stop it and call into it.

Main entry: :class:`GatewayThread`. A listener that cannot bind is :class:`PortInUse`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from iotauth.local import PortInUse
from iotauth.local.gateway import LocalGateway

__all__ = ["GatewayThread"]


class GatewayThread:
    """Runs ``gateway`` on a loop in the daemon thread ``iotauth-gateway`` (started at once)."""

    def __init__(self, gateway: LocalGateway) -> None:
        self.gateway = gateway
        self._running = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="iotauth-gateway", daemon=True
        )
        self._thread.start()

    def start(self) -> Any:
        """Start the gateway's listeners; returns their ports. Call :meth:`stop` even if not."""
        try:
            ports = self._run(self.gateway.start(), timeout=10)
        except Exception as exc:
            if isinstance(exc.__cause__, OSError) or "address already in use" in str(exc):
                raise PortInUse(f"a gateway port is already in use: {exc}") from None
            raise
        self._running = True
        return ports

    def stop(self) -> None:
        """Stop the gateway, then the loop and its thread."""
        self._running = False
        loop = self._loop
        with contextlib.suppress(Exception):
            self._run(self.gateway.stop(), timeout=10)
        with contextlib.suppress(Exception):
            self._run(loop.shutdown_default_executor(), timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=5)
        loop.close()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 5.0) -> Any:
        """Run ``coroutine`` on the gateway's loop and wait for its result."""
        if not self._running:
            coroutine.close()
            raise RuntimeError("the local stack is not running")
        return self._run(coroutine, timeout)

    def live_client_ids(self) -> list[str]:
        gateway = self.gateway

        async def ids() -> list[str]:
            return gateway.live_client_ids()

        result: list[str] = self.call(ids())
        return result

    def delete_connection(self, client_id: str, clean: bool, prevent_will: bool) -> bool:
        closed: bool = self.call(
            self.gateway.delete_connection(
                client_id, clean_session=clean, prevent_will=prevent_will
            )
        )
        return closed

    def _run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
