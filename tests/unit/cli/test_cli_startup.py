"""`iotauth` loads only what a command needs: `--version` no command module, a named
command only its own module, with the same parse as the full parser."""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

from iotauth.cli import _COMMAND_MODULES, _COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[3]


def test_the_command_table_matches_what_each_module_registers() -> None:
    registered: dict[str, str] = {}
    for name in _COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(name).register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == _COMMANDS


def test_one_module_parses_its_commands_as_all_of_them_do() -> None:
    for argv in (
        ["devices", "list", "--limit", "3", "--json"],
        ["devices", "import", "f", "--format", "csv", "--apply", "--workers", "4"],
        ["authorize", "--username", "u", "--password-stdin"],
        ["sign-url", "--endpoint", "e", "--region", "r"],
    ):
        alone = build_parser((_COMMANDS[argv[0]],)).parse_args(argv)
        full = build_parser().parse_args(argv)
        assert vars(alone) == vars(full), argv


def _modules_after(*argv: str) -> list[str]:
    code = (
        "import sys\nfrom iotauth.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('iotauth.cli.', 'boto'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return list(ast.literal_eval(done.stdout.splitlines()[-1]))


def test_version_imports_no_command() -> None:
    assert _modules_after("--version") == ["iotauth.cli.output"]


def test_a_command_imports_only_its_own_group() -> None:
    loaded = _modules_after("sign-url", "--help")
    assert "iotauth.cli.signing" in loaded
    assert not [m for m in loaded if m.startswith(("iotauth.cli.devices", "boto"))]
    loaded = _modules_after("devices", "list", "--help")
    assert "iotauth.cli.devices.listing" in loaded
    assert "iotauth.cli.users" not in loaded and "iotauth.cli.local" not in loaded
