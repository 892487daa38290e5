"""``iotauth local``: the whole product on 127.0.0.1 (what ``make run`` starts)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from iotauth.cli import CommandError

__all__ = ["register"]

_PORT_FLAGS = (
    ("web", "the chat page"),
    ("signer", "the signer's HTTP API (GET /mqtt-url)"),
    ("aws", "the AWS stand-in (moto server: DynamoDB, IAM, STS)"),
    ("mqtt", "MQTT over TCP"),
    ("mqtts", "MQTT over TLS, ALPN 'mqtt' (IoT Core uses 443)"),
    ("ws", "MQTT over WebSocket at /mqtt"),
)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE: {text!r}")
    return name.strip(), value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from iotauth.local import LocalPorts  # noqa: PLC0415 - cheap; no amqtt here

    defaults = LocalPorts()
    parser = subparsers.add_parser(
        "local",
        help="run the gateway, signer and chat page locally (no AWS account needed)",
        description=(
            "Start a local stand-in for AWS IoT Core (an MQTT broker enforcing the custom "
            "authorizer and IoT policies), the signer and the chat page, all on 127.0.0.1. "
            "Port 0 picks a free port."
        ),
    )
    for name, what in _PORT_FLAGS:
        parser.add_argument(
            f"--{name}-port",
            type=_port,
            default=getattr(defaults, name),
            metavar="PORT",
            help=f"{what} (default {getattr(defaults, name)})",
        )
    parser.add_argument(
        "--web-root",
        type=Path,
        default=None,
        help="directory of the chat page (default: web/ of the source checkout)",
    )
    parser.add_argument(
        "--parameter",
        "-p",
        dest="parameters",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template.yaml parameter, e.g. WebPublishGrants=chat/lobby,chat/news "
        "(repeatable; default: the template's defaults, as deployed)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also log the broker's own activity"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iotauth.local import LocalPorts, PortInUse  # noqa: PLC0415
    from iotauth.local.stack import LocalStack, TemplateError, banner  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("amqtt", "transitions", "websockets", "werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose else logging.ERROR)
    logging.getLogger("iotauth").setLevel(logging.INFO)

    ports = LocalPorts(**{name: getattr(args, f"{name}_port") for name, _ in _PORT_FLAGS})
    stack = LocalStack(ports, web_root=args.web_root, parameters=dict(args.parameters))
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            info = stack.start()
        except PortInUse as exc:
            raise CommandError(str(exc)) from None
        except (FileNotFoundError, TemplateError) as exc:
            raise CommandError(str(exc)) from None
        print(banner(info), flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nstopping…", file=sys.stderr, flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
