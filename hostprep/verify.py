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
    """What the worker itself says: `id` and `docker ps` (the before/after operators look at).

    From a shallow probe the same truth is read on the host instead: the worker's ids from
    /proc and whether the socket's mode lets them connect.
    """
    w = facts.worker
    if facts.deep or not w.found:
        return {"id": w.id_output, "docker_ps_rc": w.docker_ps_rc, "docker_ps": w.docker_ps_output,
                "method": w.docker_check_method}
    from hostprep.audit import can_connect

    ok = can_connect(facts.socket, w.proc_uid, w.proc_gid, w.proc_groups)
    s = facts.socket
    groups = ",".join(map(str, w.proc_groups))
    return {"id": f"uid={w.proc_uid} gid={w.proc_gid} groups={groups} (worker's main process, /proc)",
            "docker_ps_rc": None if ok is None else (0 if ok else 1),
            "docker_ps": f"{'allowed' if ok else 'denied' if ok is False else 'unknown'}: socket "
                         f"{format(s.mode or 0, 'o')} {s.owner}:{s.group}, worker groups {groups}",
            "method": "derived"}


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
        listed = (w.docker_ps_output or "").splitlines()
        detail = (f"exit 0, {len(listed)} container(s) listed" if w.docker_ps_rc == 0
                  else f"exit {w.docker_ps_rc}: {listed[-1] if listed else ''}"[:240])
        checks.append(Check(f"`docker ps` in the worker exits 0 ({w.docker_check_method})", w.docker_ps_rc == 0, detail))
    return checks
