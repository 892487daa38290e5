"""``iotauth local``: the whole product on 127.0.0.1 (what ``make run`` starts).

Registers the command and its ``--*-port`` flags (cheaply: the stack is imported only when
the command runs), starts :class:`~iotauth.local.stack.LocalStack`, prints its banner and
waits for Ctrl-C, SIGTERM or SIGHUP. Every log goes to the one place the banner names: a new
owner-only file (it names users and clients), or stderr with ``-v``. While it runs, a state
file (ports, no secret: :mod:`iotauth.local.state`) lets ``iotauth local env`` print the
``export`` line that points the CLI at it. A bad ``-p`` value is refused (exit 2) before
anything is reported ready.

Design: docs/design/local-stack.md
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from iotauth.cli import CommandError

__all__ = ["register"]

_PORT_FLAGS = (
    ("iot", "IoT Core's port: TLS, ALPN 'mqtt' → MQTT, else HTTPS/wss at /mqtt"),
    ("web", "the chat page"),
    ("signer", "the signer's HTTP API (GET /mqtt-url)"),
    ("aws", "the AWS stand-in (moto server: DynamoDB, IAM, STS)"),
    ("mqtt", "MQTT over TCP"),
    ("mqtts", "MQTT over TLS, ALPN 'mqtt'"),
    ("ws", "MQTT over WebSocket at /mqtt"),
    ("issuer", "the local OIDC issuer (discovery, JWKS, POST /token)"),
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


def _latency(text: str) -> tuple[float, float]:
    from iotauth.local.functions import parse_latency  # noqa: PLC0415

    try:
        return parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from iotauth.local import LocalPorts  # noqa: PLC0415 - cheap; no gateway here

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
        default = getattr(defaults, name)
        shown = "443 when it may be bound, else 8443" if default is None else default
        parser.add_argument(
            f"--{name}-port",
            type=_port,
            default=default,
            metavar="PORT",
            help=f"{what} (default {shown})",
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
        help="override a template.yaml parameter, e.g. WebRooms=chat/lobby,chat/ops "
        "(repeatable; checked as CloudFormation and the functions check it; default: the "
        "template's defaults, as deployed)",
    )
    parser.add_argument(
        "--authorizer-latency",
        type=_latency,
        default=None,
        metavar="LOW-HIGH",
        help="delay every authorizer answer by a random LOW-HIGH seconds (e.g. 0.15-0.4, "
        "Lambda-like), to make revocation races as likely as on Lambda (default: none)",
    )
    logging_options = parser.add_mutually_exclusive_group()
    logging_options.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="where the handlers' and the gateway's logs go (default: a new file in a temporary "
        "run directory, named in the banner)",
    )
    logging_options.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="log to the terminal (stderr) instead of the log file, the broker's activity included",
    )
    parser.set_defaults(func=run)
    commands = parser.add_subparsers(dest="local_command", metavar="{env}", required=False)
    env = commands.add_parser(
        "env",
        help="print the shell lines pointing the CLI at the running stack",
        description='For a running `iotauth local`: eval "$(iotauth local env)" sets '
        "AWS_ENDPOINT_URL, AWS_REGION, the stand-in's fake credentials and IOTAUTH_TABLE.",
    )
    env.set_defaults(func=print_env)


def print_env(args: argparse.Namespace) -> int:
    from iotauth.local.state import read_state, shell_lines, state_path  # noqa: PLC0415

    state = read_state()
    if state is None:
        raise CommandError(f"no running `iotauth local` ({state_path()}): start it with make run")
    print("\n".join(shell_lines(state)))
    return 0


_QUIET = ("transitions", "websockets", "werkzeug", "botocore", "boto3", "urllib3")
_LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def _open_log(path: Path | None) -> tuple[Path, TextIO]:
    """The run's log file (owner-only: it names users and clients), appended to."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="iotauth-run-")) / "iotauth-local.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise CommandError(f"cannot write the log file {path}: {exc.strerror}") from None
    return path, os.fdopen(fd, "a", encoding="utf-8", buffering=1)


def _configure_logging(verbose: bool, log: TextIO) -> list[logging.Handler]:
    """Everything to ``log``, errors and tracebacks included: the banner names one place.

    Uncaught exceptions in threads (which Python prints to stderr) are logged there too.
    """
    root = logging.getLogger()
    handlers: list[logging.Handler] = [logging.StreamHandler(log)]
    if log is not sys.stderr:
        threading.excepthook = _log_thread_exception
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The gateway's per-connection activity only when asked for.
    logging.getLogger("iotauth.local.engine").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("iotauth").setLevel(logging.INFO)
    return handlers


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "?"
    if args.exc_value is not None:
        logging.getLogger("iotauth.local").error(
            "uncaught error in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )


def _publish_state(state: dict[str, object]) -> Path | None:
    """The state file for ``iotauth local env``, removed by the janitor if this process dies."""
    from iotauth.local.janitor import current  # noqa: PLC0415
    from iotauth.local.state import write_state  # noqa: PLC0415

    try:
        path = write_state(state)
    except OSError as exc:
        logging.getLogger("iotauth.local").warning("no state file for `local env`: %s", exc)
        return None
    keeper = current()
    if keeper is not None:
        keeper.remove_on_exit(path)
    return path


def run(args: argparse.Namespace) -> int:
    from iotauth.local import LocalPorts, PortInUse  # noqa: PLC0415
    from iotauth.local.stack import LocalStack, TemplateError, banner  # noqa: PLC0415

    log_path: Path | None = None
    if args.verbose:
        log: TextIO = sys.stderr
    else:
        log_path, log = _open_log(args.log_file)
    handlers = _configure_logging(args.verbose, log)

    ports = LocalPorts(**{name: getattr(args, f"{name}_port") for name, _ in _PORT_FLAGS})
    stack = LocalStack(
        ports,
        web_root=args.web_root,
        parameters=dict(args.parameters),
        handler_logs=log,
        authorizer_latency=args.authorizer_latency,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    stopping_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in stopping_signals}
    info = None
    state_file: Path | None = None
    try:
        try:
            info = stack.start()
        except PortInUse as exc:
            raise CommandError(str(exc)) from None
        except (FileNotFoundError, TemplateError) as exc:
            raise CommandError(str(exc)) from None
        state_file = _publish_state(info.state)
        print(banner(info, log_path), flush=True)
        while not stopping.wait(0.5):
            pass
        where = f" (logs: {log_path})" if log_path else ""
        print(f"\nstopping…{where}", file=sys.stderr, flush=True)
        return 0
    finally:
        if state_file is not None:
            from iotauth.local.state import remove_state  # noqa: PLC0415

            remove_state(state_file)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for log_handler in handlers:
            logging.getLogger().removeHandler(log_handler)
        threading.excepthook = threading.__excepthook__
        if log is not sys.stderr:
            log.close()
            if info is None and log_path is not None and args.log_file is None:
                # Did not start (e.g. a busy port, said on stderr): no run directory left.
                log_path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    log_path.parent.rmdir()
