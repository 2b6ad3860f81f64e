"""Audit: drift = facts vs the desired state (inventory + hostprep's record) and invariants. No writes.

``audit(facts, settings)`` is pure and judges from host-side truth only (socket
stat, ``docker inspect``, the worker's /proc groups, project files), so the
default audit never execs inside the worker. Facts gathered with ``deep=True``
add the in-worker ``docker ps`` verdict, which then wins over the derived one.
What a strategy leaves behind is judged by that strategy (``Strategy.drift``, its own rules);
this module holds the checks that hold whatever was applied. ``audit_host`` gathers (one exec)
and judges; it never changes a host (``audit --fix`` is composed in ``hostprep.cli.commands``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from hostprep.audit import posture
from hostprep import strategies
from hostprep.host.access import can_connect
from hostprep.host.facts import Facts
from hostprep.host.probe import gather
from hostprep.strategies.findings import CRITICAL, WARNING, Finding, Rule, provision_hint
from hostprep.layout import writable_by
from hostprep.change.results import FAILED, UNREACHABLE, FleetReport, HostReport
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_unit import REMADE_BY, SYSTEMD, remake_hint
from hostprep.ssh.transport import Transport
from hostprep.change.verify import first_line

__all__ = ["CLEAN", "CRITICAL", "DRIFT", "EXIT_CLEAN", "EXIT_DRIFT", "EXIT_INCOMPLETE", "RULE", "RULES", "WARNING",
           "Finding", "HostAudit", "Rule", "audit", "audit_host", "can_connect", "exit_code", "fixable",
           "from_fleet", "judged", "with_fix"]
CLEAN, DRIFT = "ok", "drift"  # a HostAudit's status is one of these, or results' UNREACHABLE / FAILED
EXIT_CLEAN, EXIT_DRIFT, EXIT_INCOMPLETE = 0, 2, 3


_HEAD = (
    Rule("unsafe-path", CRITICAL, "no symlink or wrong file type where hostprep reads or writes", fixable=False),
    Rule("mid-change", CRITICAL, "no hostprep run left the host half-changed", fixable=False),
    Rule("lock-stale", CRITICAL, "no host lock is left behind by a run that is gone", fixable=False),
    Rule("lock-held", WARNING, "no hostprep run is changing the host", fixable=False),
    Rule("dockerd-not-running", CRITICAL, "dockerd runs on the host", fixable=False),
    Rule("socket-missing", CRITICAL, "the Docker socket exists", fixable=False),
    Rule("worker-not-running", CRITICAL, "the worker container is running", fixable=False),
    Rule("worker-cannot-reach-docker", CRITICAL, "the worker can open the Docker socket"),
    Rule("never-applied", WARNING, "hostprep has provisioned this host"),
    Rule("record-unreadable", WARNING, "hostprep's host record is readable", fixable=False),
    Rule("strategy-differs", WARNING, "the applied strategy is the inventory's", fixable=False),
)
_TAIL = (
    Rule("socket-world-writable", CRITICAL, "the socket is not world-writable unless chmod was applied",
         fixable=False),
    Rule("socket-gid-will-change", WARNING, "the socket's GID is the one it gets when it is made again",
         fixable=False),
    Rule("worker-primary-gid", WARNING, "the worker's primary GID is 0"),
    Rule("bind-dir-not-writable", WARNING, "bind-mounted folders are writable by AIRFLOW_UID"),
    Rule("bind-dir-world-writable", WARNING, "bind-mounted folders are not world-writable", fixable=False),
)
RULES = _HEAD + strategies.rules() + posture.RULES + _TAIL   # the strategies' own rules, posture's, the common tail
RULE = {r.id: r for r in RULES}
_ORDER = {r.id: i for i, r in enumerate(RULES)}


def _finding(rule_id: str, detail: str, hint: str, subject: str | None = None) -> Finding:
    return Finding(RULE[rule_id], detail, hint, subject)


# ------------------------------------------------------------------ invariants


def unsafe_paths(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Planted links (or a folder where a file belongs) in the project: hostprep refuses to touch them."""
    return [_finding("unsafe-path", why, "remove it (someone who can write the project dir planted it?); "
                     "hostprep refuses to provision or roll back until it is gone", why.split(":", 1)[0])
            for why in facts.unsafe_paths]


def interrupted(facts: Facts, settings: HostSettings) -> list[Finding]:
    """A run cut off halfway (the host's journal), a lock its holder left behind, or a run in progress."""
    host, lock, out = facts.host, facts.lock, []
    last = facts.runs[-1] if facts.runs else None
    if last is not None and last.mid_change:
        snap = f" --snapshot {last.snapshot}" if last.snapshot else ""
        out.append(_finding("mid-change", last.describe(), f"`invoke rollback --host {host}{snap}` puts it back; "
                            f"`{provision_hint(host)}` restores it, then converges"))
    if lock is not None and lock.stale:
        out.append(_finding("lock-stale", f"held by {lock.describe()}, but {lock.stale}",
                            f"`invoke rollback --host {host}` or `{provision_hint(host)}` takes it over"))
    elif lock is not None:
        out.append(_finding("lock-held", f"a run is in progress: {lock.describe()}",
                            f"wait for it (`hostprep status --host {host}`); if no run is alive, `--break-lock`"))
    return out


def host_health(facts: Facts, settings: HostSettings) -> list[Finding]:
    out = []
    if not facts.dockerd_running:
        out.append(_finding("dockerd-not-running", "no dockerd process on the host",
                            "start Docker (`sudo systemctl start docker`)"))
    if not facts.socket.exists:
        out.append(_finding("socket-missing", f"{facts.socket.path} does not exist",
                            "start Docker, or set hostprep_socket_path to the socket dockerd listens on"))
    w = facts.worker
    if not w.running:
        seen = f"container {w.name} is {w.state}" if w.found else f"no container for {settings.worker_service}"
        out.append(_finding("worker-not-running", f"{seen} in {facts.project_dir}",
                            f"start the project (`cd {facts.project_dir} && docker compose up -d`)"))
    return out


def worker_access(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Deep facts: what `docker ps` in the worker said. Otherwise: derived from /proc ids and the socket mode."""
    w = facts.worker
    if not w.running or not facts.socket.exists:
        return []
    hint = f"`{provision_hint(facts.host, (facts.record or {}).get('strategy'))}` (or `invoke audit --fix`)"
    if facts.worker_reaches_docker is False:
        return [_finding("worker-cannot-reach-docker",
                         f"`docker ps` in {w.name} fails (rc={w.docker_ps_rc}): {first_line(w.docker_ps_output)}",
                         hint)]
    by_url = any(c.docker_host for c in facts.service_containers(settings.worker_service) if c.running)
    if facts.worker_reaches_docker is None and not by_url and \
            can_connect(facts.socket, w.proc_uid, w.proc_gid, w.proc_groups) is False:
        s = facts.socket
        return [_finding("worker-cannot-reach-docker",
                         f"worker runs as uid {w.proc_uid} gid {w.proc_gid} groups {list(w.proc_groups)}; socket is "
                         f"{format(s.mode or 0, 'o')} {s.uid}:{s.gid}", hint)]
    return []


def primary_gid(facts: Facts, settings: HostSettings) -> list[Finding]:
    w = facts.worker
    if not w.running or w.proc_gid in (None, 0):
        return []
    return [_finding("worker-primary-gid", f"worker's primary GID is {w.proc_gid} (user {w.user!r})",
                     f'set `user: "{settings.airflow_uid}:0"` for the worker; `{provision_hint(facts.host)}` '
                     "writes it in its override")]


def bind_dirs(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Same rule as the plan: owned by AIRFLOW_UID, or group 0 with rwx (the worker's primary group)."""
    out, uid = [], settings.airflow_uid
    for d in facts.bind_dirs:
        mode = d.mode or 0
        if not d.exists:
            out.append(_finding("bind-dir-not-writable", f"{d.name} is missing: Docker would create it owned by root",
                                f"`{provision_hint(facts.host)}` creates it as {uid}:0 755", d.name))
            continue
        if mode & 0o002:
            out.append(_finding("bind-dir-world-writable", f"{d.name} is {format(mode, 'o')} (world-writable)",
                                f"chown {uid}:0 and chmod o-w {d.name}", d.name))
        elif not writable_by(uid, d.uid, d.gid, mode):
            out.append(_finding("bind-dir-not-writable",
                                f"{d.name} is {d.uid}:{d.gid} {format(mode, 'o')}, not writable by AIRFLOW_UID {uid}",
                                f"`{provision_hint(facts.host)}` chowns it to {uid}", d.name))
    return out


# ------------------------------------------------------------------ desired state (hostprep's record)


def record_state(facts: Facts, settings: HostSettings) -> list[Finding]:
    rec, host = facts.record, facts.host
    if rec is None:
        return [_finding("never-applied", "no hostprep record (/var/lib/hostprep/state.json) on the host",
                         f"`{provision_hint(host)}` (check first with --check)")]
    if rec.get("corrupt") or not rec.get("strategy"):
        return [_finding("record-unreadable", "/var/lib/hostprep/state.json is not a hostprep record",
                         f"inspect it; `invoke snapshots --host {host}` lists what can be rolled back")]
    if rec["strategy"] != settings.strategy:
        return [_finding("strategy-differs", f"{rec['strategy']} is applied, the inventory wants {settings.strategy}",
                         f"`invoke rollback --host {host}` then `{provision_hint(host)}`, or set hostprep_strategy")]
    return []


def socket_mode(facts: Facts, settings: HostSettings) -> list[Finding]:
    """A world-writable socket that no applied strategy opened was changed by hand."""
    s, recorded = facts.socket, (facts.record or {}).get("strategy")
    strat = strategies.find(recorded)
    if not s.exists or not s.world_writable or (strat is not None and strat.opens_socket):
        return []
    return [_finding("socket-world-writable",
                     f"{s.path} is {format(s.mode or 0, 'o')} but hostprep recorded {recorded or 'nothing'} "
                     "(changed by hand): every local user is root-equivalent",
                     f"`sudo chmod 660 {s.path}` (group-add needs no more)")]


def socket_gid(facts: Facts, settings: HostSettings) -> list[Finding]:
    """The socket's GID and the one its maker gives it next time disagree (``groupmod`` on a systemd host:
    docker.socket keeps the old number until it makes the socket again); the next reboot breaks the mapping."""
    s, nxt, by = facts.socket, facts.next_socket_gid, facts.socket_manager
    if by is None or not s.exists or s.gid is None or nxt is None or s.gid == nxt:
        return []
    unit = facts.socket_unit
    group = (unit.group if by == SYSTEMD and unit is not None else None) or "docker"
    mapped = (facts.record or {}).get("docker_gid")
    who = f"the worker is mapped to {mapped}" if isinstance(mapped, int) else "no GID is mapped by hostprep"
    return [_finding("socket-gid-will-change",
                     f"{s.path} has GID {s.gid} but group {group} is {nxt} in /etc/group: {REMADE_BY[by]} "
                     f"will change the socket's GID to {nxt}; {who}",
                     f"at a moment of your choosing {remake_hint(by)}, then `{provision_hint(facts.host)}` maps "
                     f"{nxt}; or `sudo groupmod -g {s.gid} {group}` keeps {s.gid}")]


def applied_strategy(facts: Facts, settings: HostSettings) -> list[Finding]:
    """What the recorded strategy left behind, judged by that strategy."""
    strat = strategies.find((facts.record or {}).get("strategy"))
    return strat.drift(facts, settings) if strat is not None else []


CHECKS: tuple[Callable[[Facts, HostSettings], list[Finding]], ...] = (
    unsafe_paths, interrupted, host_health, worker_access, record_state, applied_strategy, posture.findings, socket_mode,
    socket_gid, primary_gid, bind_dirs,
)


def audit(facts: Facts, settings: HostSettings) -> list[Finding]:
    """All drift on one host, most severe first. Pure: the same facts give the same findings."""
    found = [f for check in CHECKS for f in check(facts, settings)]
    return sorted(found, key=lambda f: (f.severity != CRITICAL, _ORDER[f.id], f.subject or ""))


# ------------------------------------------------------------------ one host's result, and the fleet job


@dataclass
class HostAudit:
    """The audit of one host: ok | drift | unreachable | failed, its findings, and any --fix attempt."""

    host: str
    status: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    deep: bool = False
    strategy: str | None = None
    docker_gid: int | None = None
    socket: str | None = None
    fix: dict[str, Any] | None = None
    found_before_fix: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)  # instance id and Name tag, from a cloud inventory

    @property
    def audited(self) -> bool:
        return self.status in (CLEAN, DRIFT)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "reachable": self.status != UNREACHABLE,
                "error": self.error, "deep": self.deep, "strategy": self.strategy, "docker_gid": self.docker_gid,
                "socket": self.socket, "findings": [f.to_dict() for f in self.findings],
                "fix": self.fix, "found_before_fix": [f.to_dict() for f in self.found_before_fix],
                "seconds": round(self.seconds, 3), **({"labels": self.labels} if self.labels else {})}

    def __repr__(self) -> str:
        return f"<HostAudit {self.host} {self.status} findings={len(self.findings)}>"


def judged(facts: Facts, settings: HostSettings) -> HostAudit:
    findings = audit(facts, settings)
    s = facts.socket
    return HostAudit(facts.host, DRIFT if findings else CLEAN, findings, deep=facts.deep,
                     strategy=(facts.record or {}).get("strategy"), docker_gid=facts.docker_gid,
                     socket=f"{format(s.mode, 'o')} {s.owner}:{s.group}" if s.exists and s.mode is not None else None)


def fixable(findings: Iterable[Finding]) -> bool:
    return any(f.rule.fixable for f in findings)


def audit_host(t: Transport, settings: HostSettings, *, deep: bool = False) -> HostAudit:
    """One host's audit: one probe exec, judged. Changes nothing."""
    started = time.monotonic()
    url = strategies.get(settings.strategy).docker_url(settings)   # the in-worker check asks where tasks ask
    result = judged(gather(t, settings, deep=deep, docker_url=url), settings)
    result.seconds = time.monotonic() - started
    return result


def with_fix(after: HostAudit, before: HostAudit, fix: HostReport) -> HostAudit:
    """The audit after ``audit --fix`` re-provisioned the host: what was found before, and how the fix went."""
    after.found_before_fix = before.findings
    after.fix = {"status": fix.status, "error": fix.error, "snapshot_id": fix.snapshot_id,
                 "changed": fix.changed, "rolled_back": fix.rolled_back}
    return after


def from_fleet(fleet: FleetReport) -> list[HostAudit]:
    """One HostAudit per host, in inventory order; unreachable and failed hosts keep their error."""
    out = []
    for r in fleet.reports:
        a = r.data.get("audit")
        if isinstance(a, HostAudit) and not r.failed:
            out.append(a)
        else:
            out.append(HostAudit(r.host, UNREACHABLE if r.status == UNREACHABLE else FAILED, error=r.error,
                                 seconds=r.timings.get("total", 0.0)))
    return out


def exit_code(audits: Iterable[HostAudit]) -> int:
    """0 no drift; 2 drift; 3 some host could not be audited (wins: "no drift" cannot be claimed)."""
    audits = list(audits)
    if any(not a.audited for a in audits):
        return EXIT_INCOMPLETE
    return EXIT_DRIFT if any(a.status == DRIFT for a in audits) else EXIT_CLEAN


def now() -> datetime:
    return datetime.now(timezone.utc)
