"""How hard the property tests (hypothesis) try: a few examples by default, many on demand.

``HOSTPREP_FUZZ_EXAMPLES=20000 python -m pytest tests/unit -k ... --hypothesis-show-statistics``
is a long fuzzing run (the figures: examples run per test, and any failure with its minimal case);
unset, every property test runs ``DEFAULT`` examples so the unit suite stays fast.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEFAULT = 100


def examples() -> int:
    """The examples per property test: $HOSTPREP_FUZZ_EXAMPLES (a positive integer) or DEFAULT."""
    raw = os.environ.get("HOSTPREP_FUZZ_EXAMPLES", "")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else DEFAULT


# No deadline (two cores shared by a whole team: timing is noise) and no health checks that fail a
# slow or filter-heavy generator; the point is the examples, not hypothesis' opinion of them.
FUZZ = settings(max_examples=examples(), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
