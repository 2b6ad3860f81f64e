"""Host output is split at "\\n" only (``hostprep.hostdata.lines``), never by ``str.splitlines()``.

``splitlines`` also breaks at ``\\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029 \\v \\f \\r``: a byte a DAG author, a
compose value or a task log holds then opens a line of its own and can pose as a fact (issue 23,
item 1). This test fails when any hostprep module uses ``.splitlines(`` unless it is listed below
with the reason it reads only text that is not a host's.
"""

from __future__ import annotations

import re
from pathlib import Path

import hostprep

PACKAGE = Path(hostprep.__file__).parent
CALL = re.compile(r"\.splitlines\(")

# Modules whose splitlines reads no host data, each with why.
ALLOWED = {
    "hostdata.py": "names str.splitlines() in its docstring only (it is the helper that replaces it)",
    "inventory/hosts.py": "the operator's own inventory file, read on the controller (never from a host)",
    "inventory/formats.py": "the operator's own INI inventory, read on the controller (never from a host)",
    "inventory/sources.py": "stderr of ansible-inventory, run on the controller (the operator's tool)",
}

# Modules that still read host data with splitlines: none (issue 23 converted the last ones).
PENDING: set[str] = set()


def users() -> set[str]:
    """Modules (relative to the package) with a ``.splitlines(`` call."""
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if CALL.search(p.read_text())}


def test_no_module_reading_host_data_splits_it_with_splitlines() -> None:
    unexpected = users() - set(ALLOWED) - PENDING
    assert not unexpected, (f"{sorted(unexpected)} split text with str.splitlines(); use hostprep.hostdata.lines "
                            "(\"\\n\" only), or list the module in ALLOWED with why it never reads a host's text")


def test_every_allowed_or_pending_module_still_needs_its_entry() -> None:
    stale = (set(ALLOWED) | PENDING) - users()
    assert not stale, f"{sorted(stale)} no longer use splitlines: remove them from ALLOWED/PENDING"


def test_the_guard_sees_a_splitlines_call() -> None:
    assert CALL.search("for ln in out.splitlines():") and not CALL.search("for ln in lines(out):")
    assert "host/facts.py" not in users() and "host/containers.py" not in users()
