"""The local stand-in's costs: its policy checks, and traffic through it next to the bare engine.

Policy checks: µs per decision of :class:`iotauth.policy.PolicySet` for an ordinary grant
and for grants with many ``*`` against a long topic that does not match — the shape that
made the old backtracking-regex matcher take seconds to minutes on the gateway's event
loop. Figures only, never assertions: timings vary by machine.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

ARN = "arn:aws:iot:us-east-1:123456789012"


def _per_call_us(call: Callable[[], object], seconds: float = 0.3) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            call()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / n * 1e6


def _regex_of(pattern: str) -> re.Pattern[str]:
    """What the evaluator used to do: IAM wildcards as a backtracking regex."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def policy_checks() -> None:
    from iotauth import policy
    from iotauth.policy import PolicySet

    def policies(resource: str) -> PolicySet:
        statement = {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": resource}
        return PolicySet([json.dumps({"Version": "2012-10-17", "Statement": [statement]})])

    prefix = f"{ARN}:topicfilter/"
    topic = prefix + "a" * 239 + "b"  # IoT's topic limit is 256 bytes
    cases = [("ordinary grant 'sensor-1/*'", f"{prefix}sensor-1/*")]
    # Many '*' and a piece that is missing: every split of the 'a's is a candidate for a
    # backtracking matcher.
    for stars in (2, 3, 25, 100):
        cases.append((f"{stars + 2} '*', no match", prefix + "*a" * stars + "*c*b"))
    cases.append(("50 '*a?', no match", prefix + "*a?" * 50 + "*c*b"))
    print("policy check, µs (a 240-character topic filter; old regex: the matcher it replaced)")
    print(f"  {'grant':<28} {'decision':>10} {'matcher':>10} {'old regex':>12}")
    for label, pattern in cases:
        policy_set = policies(pattern)
        decision = _per_call_us(lambda p=policy_set: p.allows("iot:Subscribe", topic))
        glob = policy._compiled(pattern)
        matcher = _per_call_us(lambda g=glob: g.matches(topic))
        old = "(not run)"  # grows like len(topic) ** stars
        if pattern.count("*") <= 5:
            regex = _regex_of(pattern)
            old = f"{_per_call_us(lambda r=regex: r.fullmatch(topic), 0.5):.1f}"
        print(f"  {label:<28} {decision:10.1f} {matcher:10.1f} {old:>12}")


def main() -> None:
    policy_checks()


if __name__ == "__main__":
    main()
