"""Print the iotauth source files a Lambda handler imports, one path a line, for the build.

``python tools/artifact_modules.py authorizer/app.py`` → ``iotauth/__init__.py`` … The
closure is static (:mod:`modulefinder` follows imports inside functions too), so a module
imported only on a rare path still ships; nothing else of iotauth does (build/lambda.mk).
"""

from __future__ import annotations

import modulefinder
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def iotauth_closure(handler: Path) -> list[Path]:
    """The iotauth modules ``handler`` imports, as paths relative to the repository root."""
    finder = modulefinder.ModuleFinder(path=[str(ROOT)], excludes=["boto3", "botocore"])
    finder.run_script(str(handler))
    files = {
        Path(module.__file__).resolve().relative_to(ROOT)
        for name, module in finder.modules.items()
        if (name == "iotauth" or name.startswith("iotauth.")) and module.__file__
    }
    return sorted(files)


if __name__ == "__main__":
    for path in iotauth_closure(Path(sys.argv[1]).resolve()):
        print(path)
