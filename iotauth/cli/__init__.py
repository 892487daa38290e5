"""The ``iotauth`` command.

Each group of subcommands lives in its own module and registers itself through a
``register(subparsers)`` function listed in ``_COMMAND_MODULES``. Errors a user can fix are
raised as :class:`CommandError` and printed as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["CommandError", "main", "refuse_secret_flag"]

# Imported lazily per command so `iotauth sign-url` does not pay for boto3 or the gateway.
_COMMAND_MODULES = (
    "iotauth.cli.devices",  # devices …, authorize
    "iotauth.cli.signing",  # sign-url, aliyun-credentials
    "iotauth.cli.local",  # local
    "iotauth.cli.endpoint",  # endpoint
)


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotauth",
        description="Certificate-free, identity-scoped MQTT access to AWS IoT Core.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that group is not written yet / not installed
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except CommandError as exc:
        print(f"iotauth: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
