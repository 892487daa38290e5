"""``iotauth devices …`` (manage the credential table) and ``iotauth authorize``.

Standard AWS configuration applies (``AWS_PROFILE``/``--profile``, ``AWS_REGION``/
``--region``, ``AWS_ENDPOINT_URL`` for moto or DynamoDB Local); ``--table`` or
``IOTAUTH_TABLE`` names the table. Every write is validated first and is conditional, so a
refused command changes nothing. Secrets are read from stdin, never from the command line,
and a generated secret is printed once, alone on stdout.

One module per command group: :mod:`.provision` (create-table, add, add-aliyun),
:mod:`.importing` (import), :mod:`.listing` (list), :mod:`.inspect` (show),
:mod:`.update` (update), :mod:`.lifecycle` (disable, enable,
remove, disconnect, rotate: they close live connections), :mod:`.authorize`; what they share,
option builders included, is in :mod:`.common`. :func:`register` wires them in.
"""

from __future__ import annotations

from typing import Any

from iotauth.cli.devices import (
    authorize,
    common,
    importing,
    inspect,
    lifecycle,
    listing,
    provision,
    reindex,
    update,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``devices`` (its actions in the order ``devices --help`` lists them) and
    ``authorize`` to the ``iotauth`` command."""
    aws = common.aws_options()
    devices = subparsers.add_parser(
        "devices", help="manage device identities in the credential table"
    )
    sub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    provision.register_create_table(sub, aws)
    provision.register_add(sub, aws)
    importing.register(sub, aws)
    provision.register_add_aliyun(sub, aws)
    listing.register(sub, aws)
    inspect.register(sub, aws)
    update.register(sub, aws)
    lifecycle.register(sub, aws)
    reindex.register(sub, aws)
    authorize.register(subparsers, aws)
