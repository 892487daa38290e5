"""A thin, bounded wrapper over an ``awscrt.mqtt.Connection`` (MQTT 3.1.1) built by awsiotsdk."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

from awscrt import mqtt
from awscrt.exceptions import AwsCrtError

from tests.interop.conftest import WAIT

AT_LEAST_ONCE = mqtt.QoS.AT_LEAST_ONCE


class Crt3:
    """Callbacks for a builder's ``on_connection_*`` arguments, then blocking helpers."""

    def __init__(self) -> None:
        self.interrupted: queue.Queue[Exception] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.closed = threading.Event()
        self.connection: Any = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        def interrupted(connection: Any, error: Exception, **kwargs: Any) -> None:
            self.interrupted.put(error)

        def closed(connection: Any, callback_data: Any) -> None:
            self.closed.set()

        return {"on_connection_interrupted": interrupted, "on_connection_closed": closed}

    def connect(self, connection: Any) -> dict[str, Any]:
        self.connection = connection
        return connection.connect().result(WAIT)  # type: ignore[no-any-return]

    def _on_message(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.messages.put((topic, bytes(payload)))

    def subscribe(self, topic: str) -> Any:
        """The granted QoS; raises ``awscrt.mqtt.SubscribeError`` on a SUBACK failure (0x80)."""
        future, _ = self.connection.subscribe(topic, AT_LEAST_ONCE, callback=self._on_message)
        return future.result(WAIT)["qos"]

    def publish(self, topic: str, payload: bytes) -> Any:
        future, _ = self.connection.publish(topic, payload, AT_LEAST_ONCE)
        return future

    def disconnect(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.disconnect().result(WAIT)


def round_trip_and_refusals(events: Crt3, own: str, foreign: str) -> Exception:
    """Own namespace works; outside it the SUBACK fails and a PUBLISH ends the connection.

    Returns the error the SDK reports for the interrupted connection.
    """
    assert events.subscribe(own) == AT_LEAST_ONCE
    events.publish(own, b"21.5").result(WAIT)  # PUBACK
    assert events.messages.get(timeout=WAIT) == (own, b"21.5")

    try:
        events.subscribe(foreign)
    except mqtt.SubscribeError:
        pass  # SUBACK 0x80
    else:
        raise AssertionError("a SUBSCRIBE outside the policy was granted")

    refused = events.publish(foreign, b"x")
    error = events.interrupted.get(timeout=WAIT)  # the broker closed the connection
    if refused.done():
        # Never a PUBACK: the SDK reconnects (clean session) and fails the request.
        failure = refused.exception()
        assert isinstance(failure, AwsCrtError), "a refused PUBLISH was acknowledged"
        assert failure.name == "AWS_ERROR_MQTT_CANCELLED_FOR_CLEAN_SESSION"
    assert events.messages.empty()
    return error
