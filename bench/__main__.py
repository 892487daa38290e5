"""Run every benchmark in one process run: `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import sys

SUITES = (
    "bench.authorizer",
    "bench.signer",
    "bench.fairness",
    "bench.standin",
    "bench.cost",
    "bench.coldstart",
    "bench.import_rate",
    "bench.fleet",
    "bench.revocation",
    "bench.web_revocation",
    "bench.token_verify",
    "bench.hostile",
)


def main(argv: list[str]) -> int:
    wanted = [f"bench.{a}" for a in argv] or list(SUITES)
    for name in wanted:
        print(f"== {name}", flush=True)
        importlib.import_module(name).main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
