"""Audit: drift = facts vs the desired state (inventory + hostprep's record) and invariants. No writes.

``audit(facts, settings)`` is pure and judges from host-side truth only (socket
stat, ``docker inspect``, the worker's /proc groups, project files), so the
default audit never execs inside the worker. Facts gathered with ``deep=True``
add the in-worker ``docker ps`` verdict, which then wins over the derived one.
``audit_host`` is the fleet job: gather (one exec), judge, optionally fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from hostprep import compose
from hostprep.facts import OVERRIDE_FILE, Facts, SocketFacts, gather
from hostprep.results import FAILED, OK, UNREACHABLE, FleetReport, HostReport
from hostprep.settings import HostSettings
from hostprep.transport import Transport

CRITICAL, WARNING = "critical", "warning"
CLEAN, DRIFT = "ok", "drift"  # a HostAudit's status is one of these, or results' UNREACHABLE / FAILED
EXIT_CLEAN, EXIT_DRIFT, EXIT_INCOMPLETE = 0, 2, 3


@dataclass(frozen=True)
class Rule:
    """One audit check: what it guards, and whether `audit --fix` (a re-provision) can repair it."""

    id: str
    severity: str
    title: str
    fixable: bool = True


RULES = (
    Rule("dockerd-not-running", CRITICAL, "dockerd runs on the host", fixable=False),
    Rule("socket-missing", CRITICAL, "the Docker socket exists", fixable=False),
    Rule("worker-not-running", CRITICAL, "the worker container is running", fixable=False),
    Rule("worker-cannot-reach-docker", CRITICAL, "the worker can open the Docker socket"),
    Rule("never-applied", WARNING, "hostprep has provisioned this host"),
    Rule("record-unreadable", WARNING, "hostprep's host record is readable", fixable=False),
    Rule("strategy-differs", WARNING, "the applied strategy is the inventory's", fixable=False),
    Rule("gid-mapping-stale", CRITICAL, "the mapped GID is the host's current docker GID"),
    Rule("override-missing", WARNING, "hostprep's Compose override is in place and loaded"),
    Rule("dockerfile-block-missing", WARNING, "hostprep's Dockerfile block is in place"),
    Rule("socket-world-writable", CRITICAL, "the socket is not world-writable unless chmod was applied",
         fixable=False),
    Rule("chmod-lost", CRITICAL, "a recorded chmod 666 still holds"),
    Rule("worker-primary-gid", WARNING, "the worker's primary GID is 0"),
    Rule("bind-dir-not-writable", WARNING, "bind-mounted folders are writable by AIRFLOW_UID"),
    Rule("bind-dir-world-writable", WARNING, "bind-mounted folders are not world-writable", fixable=False),
)
RULE = {r.id: r for r in RULES}
_ORDER = {r.id: i for i, r in enumerate(RULES)}


@dataclass(frozen=True)
class Finding:
    """One drift: which rule, about what (a folder name, or None), what was seen, and the fix."""

    id: str
    detail: str
    hint: str
    subject: str | None = None

    @property
    def severity(self) -> str:
        return RULE[self.id].severity

    @property
    def key(self) -> str:
        """Identity across runs, e.g. ``bind-dir-not-writable:logs``."""
        return f"{self.id}:{self.subject}" if self.subject else self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "subject": self.subject,
                "detail": self.detail, "hint": self.hint}

    def __repr__(self) -> str:
        return f"<Finding {self.severity} {self.key}>"


def _provision(host: str, strategy: str | None = None) -> str:
    return f"invoke provision --host {host}" + (f" --strategy {strategy}" if strategy else "")


# ------------------------------------------------------------------ invariants


def can_connect(sock: SocketFacts, uid: int | None, gid: int | None, groups: Iterable[int]) -> bool | None:
    """Would a process with these ids be allowed to connect(2) to the socket? None: can't tell.

    Linux picks exactly one class (owner, else any matching group, else other)
    and connecting needs its write bit. An ACL may grant more than the mode
    shows, so a "no" with an ACL present is "can't tell".

    >>> can_connect(SocketFacts("/s", True, 0o660, 0, 998), 50000, 0, [0, 998])
    True
    """
    if not sock.exists or sock.mode is None or uid is None:
        return None
    if uid == 0:
        return True
    if uid == sock.uid:
        bits = sock.mode >> 6
    elif sock.gid is not None and (sock.gid == gid or sock.gid in set(groups)):
        bits = sock.mode >> 3
    else:
        bits = sock.mode
    if bits & 0o2:
        return True
    return None if sock.has_acl else False


def host_health(facts: Facts, settings: HostSettings) -> list[Finding]:
    out = []
    if not facts.dockerd_running:
        out.append(Finding("dockerd-not-running", "no dockerd process on the host",
                           "start Docker (`sudo systemctl start docker`)"))
    if not facts.socket.exists:
        out.append(Finding("socket-missing", f"{facts.socket.path} does not exist",
                           "start Docker, or set hostprep_socket_path to the socket dockerd listens on"))
    w = facts.worker
    if not w.running:
        seen = f"container {w.name} is {w.state}" if w.found else f"no container for {settings.worker_service}"
        out.append(Finding("worker-not-running", f"{seen} in {facts.project_dir}",
                           f"start the project (`cd {facts.project_dir} && docker compose up -d`)"))
    return out


def worker_access(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Deep facts: what `docker ps` in the worker said. Otherwise: derived from /proc ids and the socket mode."""
    w = facts.worker
    if not w.running or not facts.socket.exists:
        return []
    hint = f"`{_provision(facts.host, (facts.record or {}).get('strategy'))}` (or `invoke audit --fix`)"
    if facts.worker_reaches_docker is False:
        said = (w.docker_ps_output or "").strip().splitlines()
        return [Finding("worker-cannot-reach-docker",
                        f"`docker ps` in {w.name} fails (rc={w.docker_ps_rc}): {said[0][:120] if said else ''}",
                        hint)]
    if facts.worker_reaches_docker is None and can_connect(facts.socket, w.proc_uid, w.proc_gid, w.proc_groups) is False:
        s = facts.socket
        return [Finding("worker-cannot-reach-docker",
                        f"worker runs as uid {w.proc_uid} gid {w.proc_gid} groups {list(w.proc_groups)}; socket is "
                        f"{format(s.mode or 0, 'o')} {s.uid}:{s.gid}", hint)]
    return []


def primary_gid(facts: Facts, settings: HostSettings) -> list[Finding]:
    w = facts.worker
    if not w.running or w.proc_gid in (None, 0):
        return []
    return [Finding("worker-primary-gid", f"worker's primary GID is {w.proc_gid} (user {w.user!r})",
                    f'set `user: "{settings.airflow_uid}:0"` for the worker; `{_provision(facts.host)}` '
                    "writes it in its override")]


def bind_dirs(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Same rule as the plan: owned by AIRFLOW_UID, or group 0 with rwx (the worker's primary group)."""
    out, uid = [], settings.airflow_uid
    for d in facts.bind_dirs:
        mode = d.mode or 0
        if not d.exists:
            out.append(Finding("bind-dir-not-writable", f"{d.name} is missing: Docker would create it owned by root",
                               f"`{_provision(facts.host)}` creates it as {uid}:0 755", d.name))
            continue
        if mode & 0o002:
            out.append(Finding("bind-dir-world-writable", f"{d.name} is {format(mode, 'o')} (world-writable)",
                               f"chown {uid}:0 and chmod o-w {d.name}", d.name))
        elif not (d.uid == uid or (d.gid == 0 and mode & 0o070 == 0o070)):
            out.append(Finding("bind-dir-not-writable",
                               f"{d.name} is {d.uid}:{d.gid} {format(mode, 'o')}, not writable by AIRFLOW_UID {uid}",
                               f"`{_provision(facts.host)}` chowns it to {uid}", d.name))
    return out


# ------------------------------------------------------------------ desired state (hostprep's record)


def record_state(facts: Facts, settings: HostSettings) -> list[Finding]:
    rec, host = facts.record, facts.host
    if rec is None:
        return [Finding("never-applied", "no hostprep record (/var/lib/hostprep/state.json) on the host",
                        f"`{_provision(host)}` (check first with --check)")]
    if rec.get("corrupt") or not rec.get("strategy"):
        return [Finding("record-unreadable", "/var/lib/hostprep/state.json is not a hostprep record",
                        f"inspect it; `invoke snapshots --host {host}` lists what can be rolled back")]
    if rec["strategy"] != settings.strategy:
        return [Finding("strategy-differs", f"{rec['strategy']} is applied, the inventory wants {settings.strategy}",
                        f"`invoke rollback --host {host}` then `{_provision(host)}`, or set hostprep_strategy")]
    return []


def socket_mode(facts: Facts, settings: HostSettings) -> list[Finding]:
    s, strategy = facts.socket, (facts.record or {}).get("strategy")
    if not s.exists:
        return []
    if s.world_writable and strategy != "chmod":
        return [Finding("socket-world-writable",
                        f"{s.path} is {format(s.mode or 0, 'o')} but hostprep recorded {strategy or 'nothing'} "
                        "(changed by hand): every local user is root-equivalent",
                        f"`sudo chmod 660 {s.path}` (group-add needs no more)")]
    if strategy == "chmod" and not s.world_writable:
        return [Finding("chmod-lost", f"{s.path} is {format(s.mode or 0, 'o')} again (dockerd restarted?)",
                        f"`{_provision(facts.host, 'chmod')}` re-applies it; group-add survives restarts")]
    return []


def _override_services(facts: Facts) -> dict[str, Any] | None:
    f = facts.files.get(OVERRIDE_FILE)
    if f is None or not f.exists or compose.MANAGED_MARK not in (f.content or ""):
        return None
    services = compose.load_compose(f.content).get("services")
    return services if isinstance(services, dict) else {}


def _needs_override(facts: Facts, strategy: str, services: list[str]) -> bool:
    """group-add always; dockerfile only when a service's ``user:`` names a group (see strategies.dockerfile)."""
    if strategy == "group-add":
        return True
    data = compose.load_compose(facts.compose_file.content if facts.compose_file else None)
    users = [(compose.service(data, s) or {}).get("user") for s in services]
    return any(u is not None and compose.split_user(str(u))[1] is not None for u in users)


def _override_gone(facts: Facts, strategy: str, services: list[str]) -> str | None:
    """Why hostprep's override no longer takes effect on the next `compose up`, or None."""
    over = _override_services(facts)
    if over is None:
        return f"{OVERRIDE_FILE} is gone or no longer hostprep's"
    if strategy == "group-add":
        missing = [s for s in services if not (isinstance(over.get(s), dict) and over[s].get("group_add"))]
        if missing:
            return f"{OVERRIDE_FILE} no longer adds the docker group to {', '.join(missing)}"
    env_file = facts.files.get(".env")
    chain = (compose.parse_env(env_file.content if env_file else None).get("COMPOSE_FILE") or "").split(":")
    return None if OVERRIDE_FILE in chain else f"COMPOSE_FILE in .env no longer loads {OVERRIDE_FILE}"


def applied_change(facts: Facts, settings: HostSettings) -> list[Finding]:
    """The override (and the COMPOSE_FILE line that loads it) and the Dockerfile block hostprep wrote."""
    rec = facts.record or {}
    strategy, host = rec.get("strategy"), facts.host
    if strategy not in ("group-add", "dockerfile"):
        return []
    out = []
    services = list(rec.get("services") or settings.services)
    gone = _override_gone(facts, strategy, services) if _needs_override(facts, strategy, services) else None
    if gone:
        out.append(Finding("override-missing", gone + "; the next `compose up` drops the fix",
                           f"`{_provision(host, strategy)}` writes it again"))
    if strategy == "dockerfile":
        ctx = compose.build_context(compose.load_compose(facts.compose_file.content if facts.compose_file else None),
                                    settings.worker_service)
        name = ctx[1] if ctx else "Dockerfile"
        df = facts.files.get(name)
        if compose.block_gid(df.content if df else None) is None:
            out.append(Finding("dockerfile-block-missing", f"hostprep's docker-group block is gone from {name}; "
                               "the next build drops the fix", f"`{_provision(host, strategy)}` adds and rebuilds it"))
    return out


def gid_mapping(facts: Facts, settings: HostSettings) -> list[Finding]:
    """Every place hostprep put the docker GID must name the host's current one."""
    rec, gid = facts.record or {}, facts.docker_gid
    strategy = rec.get("strategy")
    if strategy not in ("group-add", "dockerfile") or gid is None:
        return []
    stale = []
    if rec.get("docker_gid") not in (None, gid):
        stale.append(f"recorded {rec['docker_gid']}")
    if strategy == "group-add":
        over = _override_services(facts) or {}
        mapped = sorted({str(g) for svc in over.values() if isinstance(svc, dict) for g in svc.get("group_add") or []})
        if mapped and str(gid) not in mapped:
            stale.append(f"{OVERRIDE_FILE} maps {', '.join(mapped)}")
        if facts.worker.group_add and str(gid) not in facts.worker.group_add:
            stale.append(f"worker container has group_add {', '.join(facts.worker.group_add)}")
    else:
        df = next((f for f in facts.files.values() if f.exists and compose.BLOCK_BEGIN in (f.content or "")), None)
        block = compose.block_gid(df.content if df else None)
        if block not in (None, gid):
            stale.append(f"{df.name if df else 'Dockerfile'} block adds {block}")
    if not stale:
        return []
    return [Finding("gid-mapping-stale", f"host's docker GID is now {gid}; " + "; ".join(stale),
                    f"`{_provision(facts.host, strategy)}` maps GID {gid} and recreates the worker")]


CHECKS: tuple[Callable[[Facts, HostSettings], list[Finding]], ...] = (
    host_health, worker_access, record_state, gid_mapping, applied_change, socket_mode, primary_gid, bind_dirs,
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
    return any(RULE[f.id].fixable for f in findings)


def audit_host(t: Transport, settings: HostSettings, *, deep: bool = False, fix: bool = False) -> HostReport:
    """Fleet job: one probe exec, judged; with ``fix``, a provision (snapshot, verify) and a re-audit."""
    from hostprep import provision as prov

    started = time.monotonic()
    facts = gather(t, settings, deep=deep)
    result = judged(facts, settings)
    if fix and fixable(result.findings):
        rep = prov.provision(t, settings, prov.Options(strategy=(facts.record or {}).get("strategy")))
        before = result.findings
        result = judged(gather(t, settings, deep=deep), settings)
        result.found_before_fix = before
        result.fix = {"status": rep.status, "error": rep.error, "snapshot_id": rep.snapshot_id,
                      "changed": rep.changed, "rolled_back": rep.rolled_back}
    result.seconds = time.monotonic() - started
    report = HostReport(t.endpoint.name, OK)
    report.data["audit"] = result
    return report


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
