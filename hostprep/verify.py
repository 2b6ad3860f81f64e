"""Verify: judge re-gathered facts, never what apply said it did. Pure.

What must hold comes from the strategy (its desired state, and what the in-worker proof must
show); that the worker runs and `docker ps` in it works holds for every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostprep import strategies
from hostprep.access import worker_view
from hostprep.facts import Facts
from hostprep.settings import HostSettings

__all__ = ["Check", "verify", "worker_view"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __repr__(self) -> str:
        return f"<Check {'ok' if self.ok else 'FAIL'} {self.name}>"


def verify(facts: Facts, settings: HostSettings, strategy: str) -> list[Check]:
    """Checks that must hold after provisioning with ``strategy``."""
    strat = strategies.get(strategy)
    checks = [Check(n, ok, d) for n, ok, d in strat.satisfied(facts, settings)]
    w = facts.worker
    checks.append(Check("worker is running", w.running, w.state or "not found"))
    if facts.deep:
        checks += [Check(n, ok, d) for n, ok, d in strat.proof(facts)]
        listed = (w.docker_ps_output or "").splitlines()
        detail = (f"exit 0, {len(listed)} container(s) listed" if w.docker_ps_rc == 0
                  else f"exit {w.docker_ps_rc}: {listed[-1] if listed else ''}"[:240])
        checks.append(Check(f"`docker ps` in the worker exits 0 ({w.docker_check_method})", w.docker_ps_rc == 0, detail))
    return checks
