"""Other brokers' hashes, verified as they are, at the same cost as every other check."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotauth.identities import credentials
from iotauth.identities.credentials import (
    InvalidPassword,
    generate_secret,
    hash_chosen_password,
    hash_generated_secret,
    imported_verifier,
    verifier_kind,
    verify_password,
)
from iotauth.identities.migration import parse_export

# Made with mosquitto_passwd 2.0.11 (`-H sha512` and the default sha512-pbkdf2).
MOSQUITTO_FILE = (
    "dev6:$6$wJmj9m7esMWIolEh$TbrezkVQWiWITrXnnu03lpQhz5mKpR+qe7JPtq75h6JGf4UORnFDRO5DOebiY"
    "qaiJe8bbFdA5CfW23nNPBuqhg==\n"
    "dev7:$7$101$6lNsrZGgff2Aaahk$0VRpHZsZM8cB3ikUbWvGBpv+l/gX46S5GhkBO95DX4rd/aPTO65KqIVngN"
    "dAkDLXM5bRxWWb4IyVSmux024/+A==\n"
)
PASSWORDS = {"dev6": b"six password 6", "dev7": b"seven password 7"}


def _verifiers(text: str) -> dict[str, str]:
    return {
        i.record.username: i.record.verifier or "" for i in parse_export(text, "mosquitto", now=0)
    }


def test_mosquitto_vectors() -> None:
    for name, verifier in _verifiers(MOSQUITTO_FILE).items():
        assert verifier_kind(verifier) == "password"
        assert verify_password(PASSWORDS[name], verifier)
        assert not verify_password(PASSWORDS[name] + b"!", verifier)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto not installed")
@pytest.mark.parametrize(
    "options", [["-H", "sha512"], ["-H", "sha512-pbkdf2"], ["-H", "sha512-pbkdf2", "-I", "4096"]]
)
def test_fresh_mosquitto_passwd_hashes(tmp_path: Path, options: list[str]) -> None:
    path = tmp_path / "passwd"
    path.write_text("")
    password = "a password with spaces & ü"
    subprocess.run(
        ["mosquitto_passwd", *options, "-b", str(path), "user-1", password],
        check=True,
        timeout=30,
        capture_output=True,
    )
    verifier = _verifiers(path.read_text())["user-1"]
    assert verify_password(password.encode(), verifier)
    assert not verify_password(b"another password", verifier)


def test_emqx_salted_sha256_from_its_docs() -> None:
    """EMQX's example: password `public`, salt `slat_foo123`, sha256, suffix."""
    digest = bytes.fromhex("44edc2d57cde8d79c98145003e105b90a14f1460b79186ea9cfe83942fc5abb5")
    verifier = imported_verifier("salted-sha256", "suffix", b"slat_foo123", digest)
    # Imported passwords are whatever the broker accepted (no 12-byte minimum for them).
    assert verify_password(b"public", verifier)
    assert not verify_password(b"Public", verifier)


def test_pbkdf2_sha256_known_answer() -> None:
    """The published PBKDF2-HMAC-SHA256 vector (password, salt, 4096, 32 bytes)."""
    digest = bytes.fromhex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
    verifier = imported_verifier("pbkdf2-sha256", "i=4096", b"salt", digest)
    assert verify_password(b"password", verifier)
    assert not verify_password(b"passwore", verifier)


@pytest.mark.parametrize(("position", "data"), [("prefix", b"SALTpw12"), ("none", b"pw12")])
def test_salt_positions(position: str, data: bytes) -> None:
    verifier = imported_verifier("salted-sha512", position, b"SALT", hashlib.sha512(data).digest())
    assert verify_password(b"pw12", verifier)


@pytest.mark.parametrize(
    ("scheme", "params", "digest_size"),
    [("pbkdf2-sha512", "i=4097", 64), ("pbkdf2-sha256", "i=2049", 64), ("salted-sha256", "x", 32)],
)
def test_hashes_the_authorizer_cannot_check_at_the_common_cost_are_refused(
    scheme: str, params: str, digest_size: int
) -> None:
    with pytest.raises(InvalidPassword):
        imported_verifier(scheme, params, b"salt", b"\0" * digest_size)


def test_a_generated_shaped_password_of_an_imported_user_verifies() -> None:
    """The record's scheme picks the check, not the presented shape (issue 16, item 9):
    a user whose real password happens to look like a generated secret can sign in."""
    secret = generate_secret().encode()
    verifier = imported_verifier("salted-sha256", "none", b"", hashlib.sha256(secret).digest())
    assert verify_password(secret, verifier)
    assert not verify_password(generate_secret().encode(), verifier)


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts scrypt runs and PBKDF2 block-iterations (and single hashes) per function."""
    spent: Counter[str] = Counter()
    real_scrypt, real_pbkdf2, real_new = credentials._scrypt, hashlib.pbkdf2_hmac, hashlib.new

    def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        spent[f"scrypt-{n}-{r}-{p}"] += 1
        return real_scrypt(password, salt, n, r, p)

    def pbkdf2(name: str, password: bytes, salt: bytes, n: int, dklen: int | None = None) -> bytes:
        size = real_new(name).digest_size
        spent[name] += n * -(-(dklen or size) // size)
        return real_pbkdf2(name, password, salt, n, dklen)

    def new(name: str, data: bytes = b"") -> object:
        spent[name] += 1
        return real_new(name, data)

    monkeypatch.setattr(credentials, "_scrypt", scrypt)
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", pbkdf2)
    monkeypatch.setattr(hashlib, "new", new)
    yield spent


def test_work_is_the_same_whatever_the_record_holds(work: Counter[str]) -> None:
    """A chosen-shaped check costs one scrypt and the fixed PBKDF2 budget, whatever the
    record: none, a secret, scrypt, Mosquitto $6$/$7$, EMQX pbkdf2 at its limits."""
    records = [
        None,
        "garbage",
        hash_generated_secret(generate_secret()),
        hash_chosen_password(b"a chosen password"),
        *_verifiers(MOSQUITTO_FILE).values(),
        imported_verifier("pbkdf2-sha256", "i=4096", b"salt", b"\0" * 32),
        imported_verifier("pbkdf2-sha512", "i=4096", b"salt", b"\0" * 64),
        imported_verifier("pbkdf2-sha256", "i=1000", b"salt", b"\0" * 64),  # two blocks
        imported_verifier("salted-sha256", "prefix", b"salt", b"\0" * 32),
    ]
    seen = []
    for verifier in records:
        work.clear()
        verify_password(b"a wrong chosen password", verifier)
        seen.append(dict(work))
    assert all(s == seen[0] for s in seen), seen
    assert seen[0]["scrypt-16384-8-1"] == 1
    assert seen[0]["sha256"] == seen[0]["sha512"] == 4096


def test_one_verifier_of_the_presented_class_is_parsed_whatever_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dummy check parses a dummy verifier: a missing record costs what a real one does."""
    parsed: list[str] = []
    real_parse = credentials._parse

    def counting(verifier: str) -> object:
        result = real_parse(verifier)
        parsed.append(result.scheme)
        return result

    monkeypatch.setattr(credentials, "_parse", counting)
    records = [
        None,
        hash_generated_secret(generate_secret()),
        hash_chosen_password(b"a chosen password"),
        *_verifiers(MOSQUITTO_FILE).values(),
    ]
    # The record's own verifier (or, for none, the chosen dummy), whatever the shape: only
    # an issued secret's verifier takes the fast path (tests/unit/identities/
    # test_scrypt_bounds.py and test_lockout_by_shape.py cover that one).
    own = [v.split("$", 1)[0] if v else "scrypt" for v in records]
    for presented in (generate_secret().encode(), b"a wrong chosen password"):
        seen = []
        for verifier in records:
            parsed.clear()
            verify_password(presented, verifier)
            seen.append(tuple(parsed))
        assert all(len(s) == 1 for s in seen), seen
        assert [s[0] for s in seen] == own
