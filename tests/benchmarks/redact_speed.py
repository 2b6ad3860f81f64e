"""How long redaction takes on 1 MB of adversarial text (issue 23: linear, 1 MB in < 0.5 s).

Prints one line per input: its name, its size, the seconds ``redact`` and ``for_terminal`` took,
and the ratio of 1 MB's time to 256 KB's (about 4 when linear, 16 when quadratic). A figure to read,
not a timed test: ``PYTHONPATH=. python3 tests/benchmarks/redact_speed.py``.
"""

from __future__ import annotations

import time
from typing import Callable

from hostprep.redact import for_terminal, redact

MB = 1 << 20
INPUTS: dict[str, str] = {   # each repeated up to the size asked
    "a=": "a=",
    "a: ": "a: ",
    "badkey: ": "badkey: ",
    "PASSWORD=": "PASSWORD=",
    "key: ": "key: ",
    "x://": "x://",
    "http://a:@": "@",
    "a-run then ://": "a",
    "spaces": " ",
    "\\x1b[": "\x1b[",
    "\\r": "\r",
    "\\x85 PASSWORD=x": "\x85PASSWORD=x",
    "lines A=1": "A=1\n",
    "-----BEGIN ": "-----BEGIN A ",
    'k="': 'TOKEN="x\n',
    "Bearer ": "Bearer ",
    '"password": "': '"password": "',
}


def sized(unit: str, size: int) -> str:
    body = (unit * (size // len(unit) + 1))[:size]
    return {"http://a:@": "http://a:" + body, "a-run then ://": body + " x://u:p@h"}.get(unit, body)


def seconds(fn: Callable[[str], str], text: str) -> float:
    started = time.perf_counter()
    fn(text)
    return time.perf_counter() - started


def main() -> None:
    print(f"{'input':<20} {'size':>8} {'redact':>8} {'terminal':>9} {'1MB/256KB':>10}")
    worst = 0.0
    for name, unit in INPUTS.items():
        text = sized(unit, MB) if name not in ("http://a:@", "a-run then ://") else sized(name, MB)
        quarter = sized(unit, MB // 4) if name not in ("http://a:@", "a-run then ://") else sized(name, MB // 4)
        full, small = seconds(redact, text), seconds(redact, quarter)
        term = seconds(for_terminal, text)
        worst = max(worst, full, term)
        print(f"{name:<20} {len(text):>8} {full:>7.3f}s {term:>8.3f}s {full / max(small, 1e-6):>10.1f}")
    print(f"worst: {worst:.3f}s for 1 MB ({'within' if worst < 0.5 else 'OVER'} the 0.5 s promise)")


if __name__ == "__main__":
    main()
