"""A device that signs in to AWS IoT Core with a username and password (paho-mqtt 2.x).

AWS IoT Core (custom authorizer)::

    export IOTAUTH_PASSWORD='<the secret printed by `iotauth devices add sensor-1`>'
    python examples/device_client.py --endpoint abc123-ats.iot.eu-west-1.amazonaws.com \\
        --authorizer iotauth --username sensor-1 --message "hello"

The local gateway (``make run`` prints the ports, the CA file and the demo secrets)::

    python examples/device_client.py --local --port 8883 --ca-file .local/ca.pem \\
        --username sensor-1 --message "hello"            # TLS with the local CA
    python examples/device_client.py --local --port 1883 --username sensor-1   # plain TCP

What makes custom authentication work on IoT Core, and what most failed attempts miss:
- port **443** with the TLS ALPN protocol **``mqtt``** (not 8883, and not without ALPN);
- the username carries the authorizer: ``sensor-1?x-amz-customauthorizer-name=iotauth``
  (unless the account has a default authorizer);
- the client id must be one the identity is bound to (by default its own name).

The password is read from ``$IOTAUTH_PASSWORD``, ``--password-stdin`` or a prompt, never
from the command line (other users can read a process's arguments).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import queue
import ssl
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

AUTHORIZER_QUERY = "x-amz-customauthorizer-name"
WAIT = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    where = parser.add_argument_group("where to connect")
    where.add_argument("--endpoint", help="the account's iot:Data-ATS endpoint host")
    where.add_argument("--authorizer", default="iotauth", help="custom authorizer name")
    where.add_argument("--local", action="store_true", help="the local gateway on 127.0.0.1")
    where.add_argument(
        "--host", default="localhost", help="with --local (default localhost: TLS sends SNI)"
    )
    where.add_argument("--port", type=int, help="443 for IoT Core; the gateway's port locally")
    where.add_argument("--ca-file", help="CA bundle to trust (locally: the gateway's CA => TLS)")
    who = parser.add_argument_group("who")
    who.add_argument("--username", required=True)
    who.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    who.add_argument("--client-id", help="default: the username")
    what = parser.add_argument_group("what")
    what.add_argument("--subscribe", action="append", help="topic filter (default: NAME/inbox)")
    what.add_argument("--topic", help="where --message goes (default: NAME/telemetry)")
    what.add_argument("--message", action="append", default=[], help="publish this (repeatable)")
    what.add_argument(
        "--listen", type=float, default=2.0, help="seconds to print incoming messages"
    )
    args = parser.parse_args(argv)
    if not args.local and not args.endpoint:
        parser.error("give --endpoint (AWS IoT Core) or --local (the local gateway)")
    return args


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    from_env = os.environ.get("IOTAUTH_PASSWORD")
    if from_env:
        return from_env
    return getpass.getpass(f"password for {args.username}: ")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    # IoT Core accepts custom authentication on port 443 only when ALPN says "mqtt".
    context.set_alpn_protocols(["mqtt"])
    return context


class Device:
    """A paho client with blocking, bounded steps: connect, subscribe, publish, listen."""

    def __init__(self, client_id: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        self.answers: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.answers.put(reason)

    def _on_disconnect(self, c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.closed.set()
        self.answers.put(reason)

    def _on_subscribe(self, c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self.answers.put(list(reasons))

    def _on_message(self, c: Any, userdata: Any, message: Any) -> None:
        text = message.payload.decode("utf-8", "replace")
        print(json.dumps({"topic": message.topic, "payload": text}), flush=True)

    def answer(self) -> Any:
        try:
            return self.answers.get(timeout=WAIT)
        except queue.Empty:
            raise SystemExit("no answer from the server") from None

    def connect(self, host: str, port: int) -> str | None:
        """None when connected, else why not."""
        try:
            self.client.connect(host, port, keepalive=60)
        except (OSError, ssl.SSLError) as exc:
            return f"cannot reach {host}:{port}: {exc}"
        self.client.loop_start()
        reason = self.answer()
        if self.closed.is_set() or reason.is_failure:
            # IoT Core closes the connection on a refused sign-in; the gateway may say why.
            return f"connection refused: {reason}"
        return None

    def subscribe(self, topic: str) -> bool:
        self.client.subscribe(topic, qos=1)
        reasons = self.answer()
        if self.closed.is_set():
            raise SystemExit(f"disconnected while subscribing to {topic}")
        return not reasons[0].is_failure

    def publish(self, topic: str, payload: bytes) -> bool:
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout=WAIT)
        except RuntimeError:  # not even queued: the connection is gone
            return False
        return not self.closed.is_set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(args: argparse.Namespace, password: str) -> int:
    client_id = args.client_id or args.username
    use_tls = not args.local or args.ca_file is not None
    host = args.host if args.local else args.endpoint
    port = args.port or (443 if not args.local else (8883 if use_tls else 1883))

    device = Device(client_id)
    # The authorizer name travels in the username; the Lambda sees the whole string.
    device.client.username_pw_set(f"{args.username}?{AUTHORIZER_QUERY}={args.authorizer}", password)
    if use_tls:
        device.client.tls_set_context(tls_context(args.ca_file))
    try:
        problem = device.connect(host, port)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"connected to {host}:{port} as {client_id}", file=sys.stderr)
        for topic in args.subscribe or [f"{args.username}/inbox"]:
            state = "subscribed" if device.subscribe(topic) else "refused"
            print(f"{state}: {topic}", file=sys.stderr)
        topic = args.topic or f"{args.username}/telemetry"
        for text in args.message:
            if not device.publish(topic, text.encode()):
                print(f"publish to {topic} not allowed: disconnected", file=sys.stderr)
                return 1
            print(f"published to {topic}", file=sys.stderr)
        if device.closed.wait(args.listen):
            # IoT Core answers a PUBLISH its policy does not allow by closing the connection.
            print("disconnected by the server", file=sys.stderr)
            return 1
        return 0
    finally:
        device.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args, read_password(args))


if __name__ == "__main__":
    sys.exit(main())
