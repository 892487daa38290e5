"""The ``iotauth`` command.

Each group of subcommands lives in its own module and registers itself through a
``register(subparsers)`` function listed in ``_COMMAND_MODULES``. Every error is one line on
stderr, never a traceback, and its exit status says whose it is (``EXIT_*``, listed in
``iotauth --help``): scripts can tell "denied" from "you typed it wrong" from "AWS failed".
A closed stdout (``iotauth devices list | head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from iotauth import __version__
from iotauth.cli.output import silence_stdout

__all__ = [
    "EXIT_AWS",
    "EXIT_DENIED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "AwsFailure",
    "CommandError",
    "main",
    "refuse_secret_flag",
]

EXIT_OK = 0
EXIT_DENIED = 1  # the answer is no: `authorize` was denied (nothing failed)
EXIT_USAGE = 2  # usage or input errors: argparse's, and CommandError
EXIT_AWS = 3  # AWS or the table failed: an API error, throttling, an unreachable endpoint
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

_EPILOG = f"""\
exit status:
  {EXIT_OK}    success
  {EXIT_DENIED}    the answer is no (authorize: not authenticated)
  {EXIT_USAGE}    usage or input error (bad flag, invalid name, no such identity); nothing changed
  {EXIT_AWS}    AWS or the table failed (API error, throttling, endpoint unreachable)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)

Commands that print take --json for scripts; status lines go to stderr."""

# Imported lazily per command so `iotauth sign-url` does not pay for boto3 or the gateway.
_COMMAND_MODULES = (
    "iotauth.cli.devices",  # devices …, authorize
    "iotauth.cli.signing",  # sign-url, aliyun-credentials
    "iotauth.cli.local",  # local
    "iotauth.cli.endpoint",  # endpoint
    "iotauth.cli.users",  # users disable|enable|show|list (browser users)
)
# The commands each of them registers: a command line naming one first imports only its
# module (tests/unit/cli/test_cli_startup.py checks this against what they register).
_COMMANDS = {
    "devices": "iotauth.cli.devices",
    "authorize": "iotauth.cli.devices",
    "sign-url": "iotauth.cli.signing",
    "aliyun-credentials": "iotauth.cli.signing",
    "local": "iotauth.cli.local",
    "endpoint": "iotauth.cli.endpoint",
    "users": "iotauth.cli.users",
}


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status :data:`EXIT_USAGE`."""

    exit_code = EXIT_USAGE


class AwsFailure(CommandError):
    """AWS or the table failed (not the user's input): one line, exit status :data:`EXIT_AWS`.

    The message must be safe to print: an API name and error code, never a credential."""

    exit_code = EXIT_AWS


class _RefusedSecretFlag(argparse.Action):
    """A flag that would put a secret in shell history and ``ps``: always refused."""

    def __init__(self, option_strings: list[str], dest: str, instead: str, **kw: object) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)  # type: ignore[arg-type]
        self.instead = instead

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        # The value is never echoed; by now it is in the shell history already.
        parser.error(
            f"{'/'.join(self.option_strings)} is not accepted: a secret on the command line "
            f"lands in shell history and ps (and is readable by other users); {self.instead}"
        )


def refuse_secret_flag(parser: argparse.ArgumentParser, flag: str, instead: str) -> None:
    """Register ``flag`` (hidden) so that using it fails with a pointer to ``instead``."""
    parser.add_argument(flag, action=_RefusedSecretFlag, instead=instead)


def build_parser(modules: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    """The ``iotauth`` parser with the commands of ``modules`` (default: all of them)."""
    parser = argparse.ArgumentParser(
        prog="iotauth",
        description="Certificate-free, identity-scoped MQTT access to AWS IoT Core.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"iotauth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that group is not written yet / not installed
                continue
            raise
        module.register(sub)
    return parser


def _aws_error_message(exc: BaseException) -> str | None:
    """One safe line for an AWS/store error that reached ``main`` unwrapped, else None.

    Only the modules already loaded are looked at, so ``sign-url`` does not import botocore."""
    store = sys.modules.get("iotauth.identities.store")
    revocation = sys.modules.get("iotauth.identities.revocation")
    aws_json = sys.modules.get("iotauth.wire.aws_json")
    botocore = sys.modules.get("botocore.exceptions")
    ours = tuple(
        getattr(module, name)
        for module, name in (
            (store, "StoreError"),
            (revocation, "RevocationError"),
            (aws_json, "AwsError"),
            (aws_json, "ConfigError"),
        )
        if module is not None and hasattr(module, name)
    )
    if ours and isinstance(exc, ours):
        return str(exc)
    if botocore is not None and isinstance(exc, (botocore.BotoCoreError, botocore.ClientError)):
        if isinstance(exc, botocore.ClientError):
            error = exc.response.get("Error", {})
            operation = getattr(exc, "operation_name", "AWS call")
            message = str(error.get("Message", "")).splitlines()[0][:200] if error else ""
            code = error.get("Code", "error")
            return f"{operation} failed: {code}" + (f": {message}" if message else "")
        return f"AWS: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (see ``EXIT_*``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:  # before importing any command (~0.2 s)
        print(f"iotauth {__version__}")
        raise SystemExit(EXIT_OK)  # as argparse's version action ends
    # A command named first parses the same with only its own module loaded: the others'
    # commands cannot change how its words parse (only a top-level --help lists them all).
    first = _COMMANDS.get(words[0]) if words else None
    parser = build_parser((first,) if first is not None else _COMMAND_MODULES)
    try:
        args = parser.parse_args(argv)
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not at interpreter exit
    except BrokenPipeError:
        silence_stdout()  # whoever read stdout has all it wanted (`| head`): not an error
        return EXIT_OK
    except CommandError as exc:
        print(f"iotauth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = _aws_error_message(exc)
        if message is None:
            raise
        print(f"iotauth: error: {message}", file=sys.stderr)
        return EXIT_AWS
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
