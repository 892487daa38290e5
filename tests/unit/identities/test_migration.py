"""Exports of other brokers → identity records: all entries valid, or a list of problems
that never quotes a hash or a secret."""

from __future__ import annotations

import hashlib
import json

import pytest

from iotauth.identities.credentials import generate_secret, hash_generated_secret, verify_password
from iotauth.identities.migration import EmqxHash, ImportProblem, parse_export
from tests.unit.identities.test_imported_hashes import MOSQUITTO_FILE

SHA256_PREFIX = EmqxHash("sha256", salt_position="prefix")


def test_mosquitto_file_with_comments_and_grants() -> None:
    text = "# exported\n\n" + MOSQUITTO_FILE
    imported = parse_export(text, "mosquitto", now=7, subscribe=("broadcast/news",))
    assert [i.record.username for i in imported] == ["dev6", "dev7"]
    assert [i.where for i in imported] == ["line 3", "line 4"]
    assert all(i.record.kind == "password" and i.record.created_at == 7 for i in imported)
    assert imported[0].record.subscribe == ("broadcast/news",)
    assert imported[1].scheme == "mosquitto $7$ (101 iterations)"


def test_generic_csv_with_hash_secret_and_grants() -> None:
    secret_verifier = hash_generated_secret(generate_secret())
    dev6_hash = MOSQUITTO_FILE.splitlines()[0].split(":", 1)[1]
    text = (
        "name,hash,secret,publish,subscribe,client_ids\n"
        f"dev6,{dev6_hash},,,news/#,dev6 dev6-b\n"
        f"moved,{secret_verifier},,,,\n"
        "kiosk,,a long chosen passphrase,kiosk-out,,\n"
    )
    imported = {i.record.username: i for i in parse_export("\ufeff" + text, "csv", now=0)}
    assert imported["dev6"].record.client_ids == ("dev6", "dev6-b")
    assert imported["dev6"].record.subscribe == ("news/#",)
    assert imported["moved"].record.kind == "secret"
    kiosk = imported["kiosk"].record
    assert kiosk.kind == "password" and kiosk.publish == ("kiosk-out",)
    assert verify_password(b"a long chosen passphrase", kiosk.verifier)


def test_emqx_json_and_csv() -> None:
    digest = hashlib.sha256(b"salt-1" + b"emqx password").hexdigest()
    rows = [{"user_id": "emqx-1", "password_hash": digest, "salt": "salt-1", "is_superuser": True}]
    (imported,) = parse_export(json.dumps(rows), "emqx-json", now=0, emqx=SHA256_PREFIX)
    assert verify_password(b"emqx password", imported.record.verifier)
    assert imported.notes == ("EMQX superuser: imported as an ordinary identity",)
    text = f"user_id,password_hash,salt,is_superuser\nemqx-1,{digest.upper()},salt-1,false\n"
    (imported,) = parse_export(text, "emqx-csv", now=0, emqx=SHA256_PREFIX)
    assert verify_password(b"emqx password", imported.record.verifier) and not imported.notes


def test_emqx_pbkdf2() -> None:
    derived = hashlib.pbkdf2_hmac("sha256", b"emqx password", b"s4lt", 4096).hex()
    text = f"user_id,password_hash,salt\nemqx-2,{derived},s4lt\n"
    emqx = EmqxHash("pbkdf2", mac_fun="sha256", iterations=4096)
    (imported,) = parse_export(text, "emqx-csv", now=0, emqx=emqx)
    assert verify_password(b"emqx password", imported.record.verifier)


@pytest.mark.parametrize(
    "emqx", [None, EmqxHash("bcrypt"), EmqxHash("md5"), EmqxHash("sha256"), EmqxHash("pbkdf2")]
)
def test_emqx_needs_a_verifiable_algorithm(emqx: EmqxHash | None) -> None:
    with pytest.raises(ImportProblem):
        parse_export("user_id,password_hash\nx,00\n", "emqx-csv", now=0, emqx=emqx)


def test_every_problem_is_listed_and_none_quotes_a_secret() -> None:
    secret = "plaintext-password-in-a-mosquitto-file"
    text = (
        MOSQUITTO_FILE
        + f"plain:{secret}\n"  # not hashed (mosquitto_passwd -U was not run)
        + f"{secret}\n"  # no name
        + "bad/name:" + MOSQUITTO_FILE.splitlines()[0].split(":", 1)[1] + "\n"
        + "dev6:" + MOSQUITTO_FILE.splitlines()[0].split(":", 1)[1] + "\n"  # again
        + "trunc:$7$101$AAAA$AAAA\n"
        + "slow:$7$100000$" + MOSQUITTO_FILE.splitlines()[1].split("$", 3)[3] + "\n"
    )  # fmt: skip
    with pytest.raises(ImportProblem) as exc:
        parse_export(text, "mosquitto", now=0)
    errors = exc.value.errors
    assert [e.split(":")[0].split(" (")[0] for e in errors] == [
        "line 3", "line 4", "line 5", "line 6", "line 7", "line 8",
    ]  # fmt: skip
    assert "mosquitto_passwd -U" in errors[0] and "no name" in errors[1]
    assert "appears again" in errors[3] and "iterations" in errors[5]
    joined = str(exc.value)
    assert secret not in joined and "6lNsrZGgff2Aaahk" not in joined and "AAAA" not in joined


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("", "mosquitto"),
        ("[1, 2", "json"),
        ('{"name": "x"}', "json"),
        ("name,hash,secret\nx,,\n", "csv"),
        ("name,hash,secret\nx,scrypt$bad,a long passphrase\n", "csv"),
        ('[{"name": "x", "secret": "short"}]', "json"),
        ('[{"name": "iotsk_x", "secret": "a long passphrase"}]', "json"),
        ('[{"name": "x", "secret": "iotsk_aaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]', "json"),
    ],
)
def test_unusable_exports(text: str, fmt: str) -> None:
    with pytest.raises(ImportProblem):
        parse_export(text, fmt, now=0)
