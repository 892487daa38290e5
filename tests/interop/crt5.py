"""A thin, bounded wrapper over an awscrt MQTT 5 client (awsiotsdk's mqtt5_client_builder)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from awscrt import mqtt5

from tests.interop.conftest import WAIT

AT_LEAST_ONCE = mqtt5.QoS.AT_LEAST_ONCE


class Crt5:
    """An awscrt MQTT 5 client's lifecycle events and messages, with bounded waits."""

    def __init__(self) -> None:
        self.connected: Future[Any] = Future()
        self.disconnections: queue.Queue[mqtt5.LifecycleDisconnectData] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.stopped = threading.Event()
        self.client: Any = None

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        def success(data: mqtt5.LifecycleConnectSuccessData) -> None:
            if not self.connected.done():
                self.connected.set_result(data.connack_packet)

        def failure(data: mqtt5.LifecycleConnectFailureData) -> None:
            if not self.connected.done():
                self.connected.set_exception(ConnectRefused(data))

        def received(data: mqtt5.PublishReceivedData) -> None:
            packet = data.publish_packet
            self.messages.put((packet.topic, bytes(packet.payload)))

        return {
            "on_lifecycle_connection_success": success,
            "on_lifecycle_connection_failure": failure,
            "on_lifecycle_disconnection": self.disconnections.put,
            "on_lifecycle_stopped": lambda data: self.stopped.set(),
            "on_publish_received": received,
        }

    def start(self, client: Any) -> mqtt5.ConnackPacket:
        self.client = client
        client.start()
        return self.connected.result(WAIT)  # type: ignore[no-any-return]

    def subscribe(self, topic: str) -> mqtt5.SubackReasonCode:
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic, AT_LEAST_ONCE)])
        suback = self.client.subscribe(packet).result(WAIT)
        return suback.reason_codes[0]  # type: ignore[no-any-return]

    def publish(self, topic: str, payload: bytes) -> mqtt5.PubackReasonCode:
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=AT_LEAST_ONCE)
        completion = self.client.publish(packet).result(WAIT)
        return completion.puback.reason_code  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop()
            self.stopped.wait(WAIT)


class ConnectRefused(Exception):
    def __init__(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        super().__init__(data.exception)
        self.exception = data.exception
        self.connack = data.connack_packet
