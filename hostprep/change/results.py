"""Results: one small typed report per host, and the fleet's recap. Plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hostprep.strategies.steps import Plan
from hostprep.change.verify import Check

OK, CHANGED, FAILED, UNREACHABLE = "ok", "changed", "failed", "unreachable"
NOT_STARTED = "not-started"   # a rolling change stopped before this host's batch


@dataclass
class HostReport:
    """What happened on one host."""

    host: str
    status: str = OK
    changed: int = 0
    plan: Plan | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    snapshot_id: str | None = None
    rolled_back: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, UNREACHABLE)

    def fail(self, error: str, status: str = FAILED) -> "HostReport":
        self.status, self.error = status, error
        return self

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "host": self.host, "status": self.status, "changed": self.changed, "error": self.error,
            "warnings": self.warnings, "snapshot_id": self.snapshot_id, "rolled_back": self.rolled_back,
            "plan": None if plan is None else {
                "strategy": plan.strategy, "changed": plan.changed, "problems": list(plan.problems),
                "notes": list(plan.notes), "docker_gid": plan.docker_gid,
                "steps": [{"name": s.name, "why": s.why, "diff": s.diff()} for s in plan.steps]},
            "checks": [asdict(c) for c in self.checks], "before": self.before, "after": self.after,
            "timings": {k: round(v, 3) for k, v in self.timings.items()}, **self.data,
        }

    def __repr__(self) -> str:
        return f"<HostReport {self.host} {self.status} changed={self.changed}>"


@dataclass
class FleetReport:
    """Every host's report; a multi-host run never stops early."""

    reports: list[HostReport]
    seconds: float = 0.0
    stopped: str | None = None   # why a rolling change stopped before its last batch

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.reports)

    @property
    def ok(self) -> bool:
        return not self.stopped and not any(r.failed for r in self.reports)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def to_dict(self) -> dict[str, Any]:
        return {"hosts": {r.host: r.to_dict() for r in self.reports},
                "recap": {r.host: recap_counts(r) for r in self.reports},
                "seconds": round(self.seconds, 3), "ok": self.ok, "stopped": self.stopped}

    def __repr__(self) -> str:
        return f"<FleetReport hosts={len(self.reports)} failed={sum(r.failed for r in self.reports)}>"


STEP_COUNTS = ("ok", "changed", "unreachable", "failed", "skipped")


def recap_counts(r: HostReport) -> dict[str, int]:
    """Ansible's PLAY RECAP counters for one host, every one counting steps.

    A step is a change hostprep made (a plan step: a file written, a folder chowned, a service
    recreated) or a check it ran (a verification row). As in Ansible, ``ok`` counts every step
    that succeeded, changes included; ``changed`` the changes; ``failed`` the checks that failed
    (or 1 when the run failed before any check); ``skipped`` the checks not run; ``unreachable``
    is 1 when no connection was made.

    >>> from hostprep.change.verify import Check
    >>> r = HostReport("h", status=CHANGED, changed=2, checks=[Check("a", True, ""), Check("b", True, "", skipped=True)])
    >>> recap_counts(r)
    {'ok': 3, 'changed': 2, 'unreachable': 0, 'failed': 0, 'skipped': 1}
    """
    if r.status == UNREACHABLE:
        return dict.fromkeys(STEP_COUNTS, 0) | {"unreachable": 1}
    if r.status == NOT_STARTED:
        return dict.fromkeys(STEP_COUNTS, 0)
    ran = [c for c in r.checks if not c.skipped]
    changed = r.changed if r.status == CHANGED else 0   # a failed run was rolled back: nothing stays changed
    failed = sum(not c.ok for c in ran) or int(r.status == FAILED)
    return {"ok": changed + sum(c.ok for c in ran), "changed": changed, "unreachable": 0, "failed": failed,
            "skipped": len(r.checks) - len(ran)}
