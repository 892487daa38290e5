"""A script that connects like the browser page does: with a presigned URL from the signer.

The signer (``GET /mqtt-url`` with the user's bearer token) answers
``{url, clientId, rooms, topics: {publish, subscribe}, expiresAt}``; the URL is a
SigV4-presigned ``wss://<endpoint>/mqtt?...`` good for about 15 minutes and scoped to that
user. This client opens an MQTT-over-WebSocket connection with it (paho-mqtt 2.x, MQTT 3.1.1,
no username or password), subscribes to the user's ``<namespace>/inbox`` and the shared
room's ``<room>/+``, and publishes to ``<room>/<its client id>``: the only topic of the room
it may publish to, so the topic names the sender (README: Trusting the sender).

Deployed (the stack's ``SignerUrl`` output; the token is the user's JWT, e.g. from Cognito)::

    export IOTAUTH_TOKEN='<JWT>'
    python examples/presigned_client.py \\
        --signer-url https://abc123.execute-api.eu-west-1.amazonaws.com/mqtt-url \\
        --message "hello from a script"

Local (``make run`` prints the signer URL and the development tokens)::

    IOTAUTH_TOKEN=<dev token> python examples/presigned_client.py \\
        --signer-url http://127.0.0.1:8001/mqtt-url --message hi

A URL made elsewhere (``iotauth sign-url …``) works too: ``--url-stdin --client-id ID``.
Like a browser, fetch a fresh URL for every (re)connect. The URL and the token are bearer
credentials: this script never prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import ssl
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT = 10.0


@dataclass
class SignedUrl:
    url: str
    client_id: str
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--signer-url", help="GET this with the bearer token ($IOTAUTH_TOKEN)")
    source.add_argument("--url-stdin", action="store_true", help="read a presigned URL on stdin")
    parser.add_argument("--client-id", help="with --url-stdin: the client id it was signed for")
    parser.add_argument("--ca-file", help="CA bundle to trust for wss:// (default: the system's)")
    parser.add_argument("--room", help="shared topic to use (default: from the signer's answer)")
    parser.add_argument("--message", action="append", default=[], help="publish to the room")
    parser.add_argument("--listen", type=float, default=2.0, help="seconds to print messages")
    args = parser.parse_args(argv)
    if args.url_stdin and not args.client_id:
        parser.error("--url-stdin needs --client-id")
    return args


def fetch_signed_url(signer_url: str, token: str) -> SignedUrl:
    request = urllib.request.Request(
        signer_url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"the signer answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SystemExit(f"cannot get a URL from the signer: {exc}") from None
    topics = body.get("topics") or {}
    return SignedUrl(
        url=body["url"],
        client_id=body["clientId"],
        publish=list(topics.get("publish") or []),
        subscribe=list(topics.get("subscribe") or []),
        rooms=[r for r in body.get("rooms") or [] if isinstance(r, str)],
    )


def namespace_of(signed: SignedUrl) -> str:
    """The user's own namespace: ``<ns>/#`` among the topics it may publish to."""
    for topic in signed.publish:
        head, _, tail = topic.rpartition("/")
        if tail in {"#", "*"} and head and not any(c in head for c in "+#*"):
            return head
    return signed.client_id


def room_of(signed: SignedUrl) -> str | None:
    return next((r for r in signed.rooms if not any(c in r for c in "+#*")), None)


def connect(signed: SignedUrl, ca_file: str | None) -> tuple[mqtt.Client, queue.Queue[Any]]:
    """An MQTT-over-WebSocket connection with the presigned URL's path and query."""
    url = urlsplit(signed.url)
    if url.scheme not in {"wss", "ws"} or not url.hostname:
        raise SystemExit("not a ws:// or wss:// URL")
    secure = url.scheme == "wss"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=signed.client_id,
        transport="websockets",
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=False,
    )
    # The signature covers the path and query exactly as signed: pass them through untouched.
    client.ws_set_options(path=f"{url.path}?{url.query}")
    if secure:
        client.tls_set_context(ssl.create_default_context(cafile=ca_file))  # no ALPN on WSS
    events: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: events.put(("connect", reason))
    client.on_disconnect = lambda c, u, flags, reason, props: events.put(("disconnect", reason))
    client.on_subscribe = lambda c, u, mid, reasons, props: events.put(("suback", list(reasons)))
    client.on_message = lambda c, u, message: print(
        json.dumps({"topic": message.topic, "payload": message.payload.decode("utf-8", "replace")}),
        flush=True,
    )
    port = url.port or (443 if secure else 80)
    try:
        client.connect(url.hostname, port, keepalive=60)
    except (OSError, ssl.SSLError, mqtt.WebsocketConnectionError) as exc:
        # A refused URL (tampered, expired, unknown) fails the WebSocket upgrade.
        raise SystemExit(f"connection refused: {exc}") from None
    client.loop_start()
    return client, events


def next_event(events: queue.Queue[Any]) -> tuple[str, Any]:
    try:
        event: tuple[str, Any] = events.get(timeout=WAIT)
    except queue.Empty:
        raise SystemExit("no answer from the server") from None
    return event


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url_stdin:
        signed = SignedUrl(url=sys.stdin.readline().strip(), client_id=args.client_id)
    else:
        token = os.environ.get("IOTAUTH_TOKEN")
        if not token:
            print("set IOTAUTH_TOKEN to the user's bearer token", file=sys.stderr)
            return 2
        signed = fetch_signed_url(args.signer_url, token)
    namespace = namespace_of(signed)
    room = args.room or room_of(signed)

    client, events = connect(signed, args.ca_file)
    closed = threading.Event()
    try:
        kind, reason = next_event(events)
        if kind != "connect" or reason.is_failure:
            print(f"connection refused: {reason}", file=sys.stderr)
            return 1
        print(f"connected as {signed.client_id}", file=sys.stderr)
        for topic in [f"{namespace}/inbox", *([f"{room}/+"] if room else [])]:
            client.subscribe(topic, qos=1)
            kind, reasons = next_event(events)
            if kind != "suback":
                print("disconnected while subscribing", file=sys.stderr)
                return 1
            print(
                f"{'refused' if reasons[0].is_failure else 'subscribed'}: {topic}", file=sys.stderr
            )
        for text in args.message:
            if room is None:
                print("no shared room to publish to (use --room)", file=sys.stderr)
                return 2
            topic = f"{room}/{signed.client_id}"  # the sender is the topic, not the payload
            info = client.publish(topic, json.dumps({"text": text}).encode(), qos=1)
            try:
                info.wait_for_publish(timeout=WAIT)
            except RuntimeError:
                print(f"publish to {topic} failed: disconnected", file=sys.stderr)
                return 1
            print(f"published to {topic}", file=sys.stderr)
        try:
            kind, reason = events.get(timeout=args.listen)
        except queue.Empty:
            return 0
        if kind == "disconnect":
            closed.set()
            print(f"disconnected by the server: {reason}", file=sys.stderr)
            return 1
        return 0
    finally:
        if not closed.is_set():
            client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
