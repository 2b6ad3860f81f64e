"""Verify: judge re-gathered facts, never what apply said it did. Pure.

What must hold comes from the strategy (its desired state, and what the in-worker proof must
show); that the worker runs and `docker ps` in it works holds for every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostprep import strategies
from hostprep.host.access import worker_view
from hostprep.host.facts import Facts
from hostprep.hostdata import lines
from hostprep.inventory.settings import HostSettings

__all__ = ["Check", "first_line", "verify", "worker_view"]


@dataclass(frozen=True)
class Check:
    """One verification step: what was checked, whether it held, and what was seen."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False   # not run (``detail`` says why); counts as neither ok nor failed

    @property
    def label(self) -> str:
        return "skip" if self.skipped else "ok" if self.ok else "FAIL"

    def __repr__(self) -> str:
        return f"<Check {self.label} {self.name}>"


def first_line(text: str | None, limit: int = 2000) -> str:
    """The first non-empty line of a message, whole (a daemon's sentence is never cut mid-word).

    >>> first_line('\\nGot permission denied while trying to connect to the Docker daemon socket at '
    ...            'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.47/containers/json"'
    ...            ': dial unix /var/run/docker.sock: connect: permission denied\\nmore')[-58:]
    'dial unix /var/run/docker.sock: connect: permission denied'
    """
    line = next((ln.strip() for ln in lines(text) if ln.strip()), "")
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def verify(facts: Facts, settings: HostSettings, strategy: str) -> list[Check]:
    """Checks that must hold after provisioning with ``strategy``."""
    strat = strategies.get(strategy)
    checks = [Check(n, ok, d) for n, ok, d in strat.satisfied(facts, settings)]
    w = facts.worker
    checks.append(Check("worker is running", w.running, w.state or "not found"))
    if facts.deep:
        checks += [Check(n, ok, d) for n, ok, d in strat.proof(facts)]
        listed = lines(w.docker_ps_output)
        detail = (f"exit 0, {len(listed)} container(s) listed" if w.docker_ps_rc == 0
                  else f"exit {w.docker_ps_rc}: {first_line(w.docker_ps_output)}")
        checks.append(Check(f"`docker ps` in the worker exits 0 ({w.docker_check_method})", w.docker_ps_rc == 0, detail))
    return checks
