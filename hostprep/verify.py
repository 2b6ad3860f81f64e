"""Verify: judge re-gathered facts, never what apply said it did. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from hostprep.facts import Facts
from hostprep.settings import HostSettings
from hostprep.strategies import get


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __repr__(self) -> str:
        return f"<Check {'ok' if self.ok else 'FAIL'} {self.name}>"


def worker_view(facts: Facts) -> dict[str, str | int | None]:
    """What the worker itself says: `id` and `docker ps` (the before/after operators look at)."""
    w = facts.worker
    return {"id": w.id_output, "docker_ps_rc": w.docker_ps_rc, "docker_ps": w.docker_ps_output,
            "method": w.docker_check_method}


def verify(facts: Facts, settings: HostSettings, strategy: str) -> list[Check]:
    """Checks that must hold after provisioning with ``strategy``."""
    checks = [Check(n, ok, d) for n, ok, d in get(strategy).satisfied(facts, settings)]
    w = facts.worker
    checks.append(Check("worker is running", w.running, w.state or "not found"))
    if facts.deep:
        gid = facts.docker_gid
        if strategy != "chmod":
            checks.append(Check("`id` in the worker shows the docker GID",
                                f"{gid}(" in (w.id_output or "") or f",{gid}" in (w.id_output or ""),
                                w.id_output or "no output"))
        checks.append(Check(f"`docker ps` in the worker exits 0 ({w.docker_check_method})",
                            w.docker_ps_rc == 0, (w.docker_ps_output or "")[-200:] or f"rc={w.docker_ps_rc}"))
    return checks
