"""Imported verifiers are bounded and spelled one way (issue 16, item 8): a scrypt verifier
holds iotauth's own parameters or is refused — at import with an error naming the line and
the parameter, at connect by failing closed at a wrong password's cost, never raising."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator

import pytest

from iotauth.identities import credentials
from iotauth.identities.credentials import verify_password
from iotauth.identities.migration import ImportProblem, parse_export

PASSWORD = b"an imported passphrase"
SALT = b"sixteen byte slt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _scrypt_verifier(params: str, n: int, r: int, p: int, password: bytes = PASSWORD) -> str:
    maxmem = 256 * 1024 * 1024
    digest = hashlib.scrypt(password, salt=SALT, n=n, r=r, p=p, maxmem=maxmem, dklen=32)
    return f"scrypt${params}${_b64(SALT)}${_b64(digest)}"


def _any_scrypt_verifier(params: str) -> str:
    """A verifier with these parameters: real when hashlib can compute it, else any digest."""
    n, r, p = (int(kv.split("=")[1]) for kv in params.split(","))
    try:
        return _scrypt_verifier(params, n, r, p)
    except ValueError:
        return f"scrypt${params}${_b64(SALT)}${_b64(bytes(32))}"


def _csv(hashed: str) -> str:
    return f'name,hash,secret\nuser-1,"{hashed}",\n'


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """The scrypt runs of each check, by parameters."""
    spent: Counter[str] = Counter()
    real = credentials._scrypt

    def counting(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        spent[f"scrypt-{n}-{r}-{p}"] += 1
        return real(password, salt, n, r, p)

    monkeypatch.setattr(credentials, "_scrypt", counting)
    yield spent


# Cheap (3 ms: a timing oracle), dear (134 ms), or impossible to compute (hashlib refuses
# r=1 with N >= 2^16: that user could never sign in).
OUT_OF_BOUNDS = [
    ("n=2,r=1,p=1", "n"),
    ("n=1024,r=8,p=1", "n"),
    ("n=16384,r=1,p=1", "r"),
    ("n=16384,r=8,p=4", "p"),
    ("n=32768,r=8,p=1", "n"),
    ("n=65536,r=1,p=1", "n"),
]


@pytest.mark.parametrize(("params", "parameter"), OUT_OF_BOUNDS)
def test_import_refuses_scrypt_parameters_outside_the_accepted_set(
    params: str, parameter: str
) -> None:
    verifier = _any_scrypt_verifier(params)
    with pytest.raises(ImportProblem) as exc:
        parse_export(_csv(verifier), "csv", now=0)
    message = str(exc.value)
    assert message.startswith("row 2: ") and f"scrypt parameter {parameter}" in message
    assert verifier.split("$")[3] not in message and verifier.split("$")[2] not in message


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("n=16384,r=8", "n, r and p are all required"),
        ("n=16384,r=8,p=1,x=1", "n, r and p only"),
        ("n=16384,n=16384,r=8,p=1", "given twice"),
        ("n=+16384,r=8,p=1", "not a plain decimal"),
        ("n=16_384,r=8,p=1", "not a plain decimal"),
    ],
)
def test_import_refuses_malformed_scrypt_parameters(params: str, problem: str) -> None:
    verifier = f"scrypt${params}${_b64(SALT)}${_b64(bytes(32))}"
    with pytest.raises(ImportProblem) as exc:
        parse_export(_csv(verifier), "csv", now=0)
    assert problem in str(exc.value)


def test_import_refuses_salt_and_key_lengths_outside_bounds() -> None:
    for salt, key in ((b"short", bytes(32)), (bytes(65), bytes(32)), (SALT, bytes(64))):
        verifier = f"scrypt$n=16384,r=8,p=1${_b64(salt)}${_b64(key)}"
        with pytest.raises(ImportProblem) as exc:
            parse_export(_csv(verifier), "csv", now=0)
        assert "salt" in str(exc.value) or "hash" in str(exc.value)


def test_equivalent_spellings_are_normalised_at_import() -> None:
    canonical = _scrypt_verifier("n=16384,r=8,p=1", 2**14, 8, 1)
    _, _, salt, digest = canonical.split("$")
    for spelled in (
        f"scrypt$p=1,r=8,n=16384${salt}${digest}",
        f"scrypt$n=16384,p=1,r=8${salt}${digest}",
    ):
        (item,) = parse_export(_csv(spelled), "csv", now=0)
        assert item.record.verifier == canonical
        assert verify_password(PASSWORD, item.record.verifier)
    pbkdf2 = hashlib.pbkdf2_hmac("sha512", PASSWORD, SALT, 101, 64)
    spelled = f"pbkdf2-sha512$i=0101${_b64(SALT)}${_b64(pbkdf2)}"
    with pytest.raises(ImportProblem) as exc:  # a leading zero is not a plain decimal
        parse_export(_csv(spelled), "csv", now=0)
    assert "pbkdf2 iterations" in str(exc.value)
    (item,) = parse_export(_csv(spelled.replace("i=0101", "i=101")), "csv", now=0)
    assert item.record.verifier == spelled.replace("i=0101", "i=101")


def test_padded_or_stray_base64_is_refused_not_reinterpreted() -> None:
    good = _scrypt_verifier("n=16384,r=8,p=1", 2**14, 8, 1)
    scheme, params, salt, digest = good.split("$")
    for bad in (f"{salt}==", f"{salt[:-2]}!!{salt[-2:]}", salt.replace(salt[0], "+", 1)):
        with pytest.raises(ImportProblem) as exc:
            parse_export(_csv(f"{scheme}${params}${bad}${digest}"), "csv", now=0)
        assert "salt: not unpadded base64url" in str(exc.value)


@pytest.mark.parametrize(("params", "parameter"), OUT_OF_BOUNDS)
def test_connect_fails_closed_on_out_of_bounds_parameters_at_the_usual_cost(
    params: str, parameter: str, work: Counter[str]
) -> None:
    """A record written before the bounds (or by hand): refused, never raising, and at the
    cost of a wrong password — one scrypt at iotauth's parameters, never the record's."""
    verifier = _any_scrypt_verifier(params)
    work.clear()
    assert verify_password(PASSWORD, verifier) is False
    assert dict(work) == {"scrypt-16384-8-1": 1}
    work.clear()
    assert verify_password(b"iotsk_" + b"A" * 43, verifier) is False
    assert dict(work) == {"scrypt-16384-8-1": 1}


def test_the_accepted_parameters_still_verify(work: Counter[str]) -> None:
    verifier = _scrypt_verifier("n=16384,r=8,p=1", 2**14, 8, 1)
    assert verify_password(PASSWORD, verifier)
    assert not verify_password(PASSWORD + b"!", verifier)
    assert dict(work) == {"scrypt-16384-8-1": 2}


def test_pbkdf2_iterations_stay_within_the_fixed_budget() -> None:
    """The other imported schemes already cost the same (padded to PBKDF2_BUDGET): more
    work than the budget is refused at import, naming the parameter."""
    std = base64.b64encode
    hashed = f"$7$5000${std(SALT).decode()}${std(bytes(64)).decode()}"
    with pytest.raises(ImportProblem) as exc:
        parse_export(f"user-1:{hashed}\n", "mosquitto", now=0)
    assert "line 1: " in str(exc.value) and "pbkdf2 iterations" in str(exc.value)
