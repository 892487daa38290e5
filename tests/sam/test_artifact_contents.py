"""Each ``sam build`` artifact ships exactly the iotauth modules its handler imports.

The closure is static (:mod:`modulefinder` follows imports inside functions too), so a
module imported only on a rare path is counted. The artifact must hold every module of the
closure and nothing of iotauth beyond it (no ``cli``, no ``local``, no unused rule), and
every module the handler really loads (a cold import of the artifact, checked in a child)
must be one it ships. The token path (JWS, JWKS, claims) ships in the authorizer but is
loaded only when token auth is configured.
"""

from __future__ import annotations

import json
import modulefinder
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = ROOT / ".aws-sam" / "build"

pytestmark = [
    pytest.mark.sam,
    pytest.mark.skipif(
        not (BUILD / "template.yaml").is_file(),
        reason=".aws-sam/build is missing: run `sam build` (make build; make test builds first)",
    ),
]


def _closure(handler: Path) -> set[str]:
    finder = modulefinder.ModuleFinder(path=[str(ROOT)], excludes=["boto3", "botocore"])
    finder.run_script(str(handler))
    return {
        name
        for name, module in finder.modules.items()
        if (name == "iotauth" or name.startswith("iotauth.")) and module.__file__
    }


def _loaded(artifact: Path, **extra_env: str) -> set[str]:
    """The iotauth modules a cold ``import app`` of the artifact loads, in a clean child."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(artifact)!r})\n"
        "import app\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'iotauth')))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "iotauth-artifact-check",
        "POWERTOOLS_METRICS_NAMESPACE": "iotauth",
        **extra_env,
    }
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=artifact,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.splitlines()[-1]))


def _shipped(artifact: Path) -> set[str]:
    names = set()
    for path in (artifact / "iotauth").rglob("*.py"):
        parts = path.relative_to(artifact).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize(
    ("function", "folder"), [("AuthorizerFunction", "authorizer"), ("SignerFunction", "signer")]
)
def test_artifact_holds_the_handlers_import_closure_and_nothing_more(
    function: str, folder: str
) -> None:
    imported = _closure(ROOT / folder / "app.py")
    shipped = _shipped(BUILD / function)
    assert "iotauth.connect.authenticate" in imported or folder == "signer"
    assert "iotauth.browser.web_signing" in imported or folder == "authorizer"
    assert not any(n.startswith(("iotauth.cli", "iotauth.local")) for n in shipped)
    assert shipped == imported, {
        "missing": sorted(imported - shipped),
        "not imported": sorted(shipped - imported),
    }
    loaded = _loaded(BUILD / function)
    assert "iotauth" in loaded
    assert loaded <= shipped, sorted(loaded - shipped)


_TOKEN_MODULES = {
    "iotauth.connect.token_check",
    "iotauth.connect.jwks",
    "iotauth.wire.jws",
    "iotauth.access.claims",
    "iotauth.identities.web_user_status",
}


def test_the_authorizer_loads_the_token_path_only_when_token_auth_is_on() -> None:
    artifact = BUILD / "AuthorizerFunction"
    assert _shipped(artifact) >= _TOKEN_MODULES
    assert not _TOKEN_MODULES & _loaded(artifact), "token auth is off: nothing of it is loaded"
    # On: an issuer whose JWKS nobody serves (a refused loopback port): init still finishes.
    on = _loaded(
        artifact,
        IOTAUTH_TABLE="iotauth-artifact-check",
        IOTAUTH_TOKEN_ISSUER="http://127.0.0.1:9/issuer",
        IOTAUTH_TOKEN_JWKS_URL="http://127.0.0.1:9/jwks.json",
        IOTAUTH_TOKEN_AUDIENCE="artifact-check",
    )
    assert on >= _TOKEN_MODULES, sorted(_TOKEN_MODULES - on)
