"""The host lock as the probe saw it (pure): who holds it, and whether that holder is gone.

The lock itself lives in ``lock.sh`` on the host; this module only reads what the probe printed.
What a host prints is data: only known keys with plain values are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hostprep.hostdata import lines

HOLDER_KEYS = ("pid", "start", "boot", "since", "owner", "mode", "snapshot")
_VALUE = re.compile(r"[A-Za-z0-9._:+-]{1,100}")


@dataclass(frozen=True)
class HostLock:
    """A held host lock: its holder record and, when the holder is gone, why (a stale lock)."""

    holder: dict[str, str] = field(default_factory=dict)
    stale: str | None = None

    @property
    def snapshot(self) -> str | None:
        """The snapshot the holder stored before changing anything (None: it changed nothing yet)."""
        return self.holder.get("snapshot") or None

    def describe(self) -> str:
        """One line: ``pid 42 (apply, snapshot S) from ctl:7:abcd since 2026-12-02T01:00:00Z``."""
        h = self.holder
        if not h:
            return "no holder recorded"
        what = ", ".join(x for x in (h.get("mode"), f"snapshot {h['snapshot']}" if h.get("snapshot") else "") if x)
        return (f"pid {h.get('pid', '?')}" + (f" ({what})" if what else "")
                + f" from {h.get('owner', '?')} since {h.get('since', '?')}")

    def __repr__(self) -> str:
        return f"<HostLock pid={self.holder.get('pid')} stale={bool(self.stale)}>"


def parse_holder(line: str) -> dict[str, str]:
    """The holder record's known keys with plain values.

    >>> parse_holder("pid=42 mode=apply owner=a:1:b junk=1 since=$(x)")
    {'pid': '42', 'mode': 'apply', 'owner': 'a:1:b'}
    """
    out = {}
    for word in line.split():
        key, _, value = word.partition("=")
        if key in HOLDER_KEYS and _VALUE.fullmatch(value):
            out[key] = value
    return out


def parse_lock(text: str | None) -> HostLock | None:
    """The probe's ``lock`` section: None when no lock is held.

    >>> parse_lock("held pid=42 mode=restore\\nstale its holder (pid 42) is gone\\n")
    <HostLock pid=42 stale=True>
    >>> parse_lock("") is None
    True
    """
    holder: dict[str, str] | None = None
    stale = None
    for line in lines(text):
        if line.startswith("held"):
            holder = parse_holder(line[4:])
        elif line.startswith("stale ") and holder is not None:
            stale = line[6:].strip()[:200] or "its holder is gone"
    return None if holder is None else HostLock(holder, stale)
