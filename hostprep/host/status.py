"""`hostprep status` (pure): per host, who holds the lock and for how long, how the last run in the
host's journal ended, the latest snapshot, and whether the host is mid-change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hostprep.host.facts import Facts


def lock_age(since: str | None, now: datetime) -> str:
    """``95s`` from an ISO time with its zone (``?`` when it cannot be read: the holder record is the
    host's data, and a time without a zone, or out of range, is no age).

    >>> from datetime import timezone
    >>> now = datetime(2026, 12, 2, 1, 1, 35, tzinfo=timezone.utc)
    >>> lock_age("2026-12-02T01:00:00Z", now), lock_age("2026-12-02T01:00:00", now)
    ('95s', '?')
    """
    try:
        started = datetime.fromisoformat((since or "").replace("Z", "+00:00"))
        if started.tzinfo is None or now.tzinfo is None:
            return "?"
        return f"{max(0, int((now - started).total_seconds()))}s"
    except (ValueError, OverflowError):
        return "?"


def host_status(facts: Facts, now: datetime) -> dict[str, Any]:
    """One host's status row: lock, last run, latest snapshot, mid-change (yes/no), and what to do."""
    lock, last = facts.lock, (facts.runs[-1] if facts.runs else None)
    if lock is None:
        lock_text = "free"
    else:
        age = lock_age(lock.holder.get("since"), now)
        lock_text = (f"STALE ({lock.stale}): " if lock.stale else "held: ") + f"{lock.describe()} ({age})"
    mid = bool((last is not None and last.mid_change) or (lock is not None and lock.stale))
    todo = ""
    if mid:
        todo = f"`hostprep rollback --host {facts.host}` or `hostprep provision --host {facts.host}`"
    elif lock is not None:
        todo = "a run is in progress: wait, or `--lock-wait`"
    return {"host": facts.host, "lock": lock_text, "last_run": last.describe() if last else "none",
            "latest_snapshot": facts.latest_snapshot or "none", "mid_change": "yes" if mid else "no",
            "record": (facts.record or {}).get("strategy") or "none", "next": todo}
