"""The commands behind the tasks: select hosts, fan out, render. Each returns a :class:`Reply`
(exit code and the lines to show); the edge (``hostprep.cli.program``) prints them. Nothing here prints.

``audit --fix`` is composed here: the audit judges, provision changes, neither calls the other.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from hostprep.audit import run as aud
from hostprep.audit import report as audit_report, history, schedule, shards
from hostprep.change import provision as prov
from hostprep.cli import render
from hostprep.errors import InventoryError
from hostprep.host.probe import gather
from hostprep.change.apply import Drain
from hostprep.fleet.fanout import ConnectOptions, HostJob, fan_out, rolling
from hostprep.host.status import host_status
from hostprep.inventory.hosts import HostEntry
from hostprep.inventory.sources import cloud_labels, load_any
from hostprep.redact import redact
from hostprep.change.results import OK, FleetReport, HostReport
from hostprep.fleet.rolling import Rollout
from hostprep.inventory.settings import HostSettings
from hostprep.change.local_state import controller_dir
from hostprep.change.snapshot_store import list_remote
from hostprep.ssh.transport import Transport

DEFAULT_INVENTORY = "inventories/lab.yml"
Progress = Callable[[str], None]   # where the edge shows one line per finished host (stderr)


@dataclass(frozen=True)
class Reply:
    """What a command hands the edge: its exit code and the lines to print (stdout)."""

    code: int
    lines: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()   # for stderr: the output stays clean (--json)
    own: frozenset[str] = frozenset()   # the run's host names: hostprep's words, never masked at the edge

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return f"<Reply exit={self.code} lines={len(self.lines)}>"


@dataclass(frozen=True)
class Selection:
    inventory: str | None = None
    host: str | None = None
    group: str | None = None
    limit: str | None = None
    shard: str | None = None  # "I/N": a stable 1/N of the selected hosts

    def pattern(self) -> str:
        parts = [p for p in (self.limit, self.host, self.group) if p]
        if not parts:
            return "all"
        return ":".join([parts[0]] + ["&" + p for p in parts[1:]])


def select(sel: Selection) -> list[HostEntry]:
    """Hosts matching --host/--group/--limit (then --shard); a name that matches nothing is an error.

    The inventory is any Ansible source: static YAML/INI, a plugin file such as ``*.aws_ec2.yml``,
    a script or a directory (``inventory_sources``).
    """
    path = sel.inventory or os.environ.get("HOSTPREP_INVENTORY") or DEFAULT_INVENTORY
    shard = shards.parse_shard(sel.shard) if sel.shard else None
    if not os.path.exists(path):
        raise InventoryError(f"inventory {path} not found (pass --inventory, or run `invoke lab.up` for the lab)")
    inv = load_any(path)
    if sel.host and sel.host not in inv.hosts:
        for name in sel.host.replace(",", ":").split(":"):
            if name and name not in inv.hosts:
                raise InventoryError(f"unknown host {name!r} in {path}; hosts: {', '.join(inv.hosts) or 'none'}")
    if sel.group and sel.group not in inv.groups and sel.group != "all":
        raise InventoryError(f"unknown group {sel.group!r} in {path}; groups: {', '.join(sorted(inv.groups))}")
    hosts = inv.select(sel.pattern())
    if not hosts:
        raise InventoryError(f"pattern {sel.pattern()!r} selects no host in {path}")
    return shards.pick(hosts, (h.name for h in hosts), shard) if shard else hosts


def labelled(fleet: FleetReport, entries: list[HostEntry]) -> FleetReport:
    """Each report carries its host's instance id and Name tag, when the inventory source gave them."""
    labels = {e.name: cloud_labels(e.vars) for e in entries}
    for r in fleet.reports:
        if labels.get(r.host):
            r.data["labels"] = labels[r.host]
    return fleet


def _progress(progress: Progress | None, total: int) -> Callable[[HostReport], None] | None:
    """A line per finished host, for runs of two hosts or more."""
    if progress is None or total < 2:
        return None
    done = [0]

    def tick(r: HostReport) -> None:
        done[0] += 1
        progress(render.progress_line(r, done[0], total, True))

    return tick


def facts(sel: Selection, conn: ConnectOptions, *, as_json: bool, deep: bool = True,
          progress: Progress | None = None) -> Reply:
    """Gather and show facts for every selected host."""
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        f = gather(t, s, deep=deep, versions=True)
        r = HostReport(t.endpoint.name, OK)
        r.data["facts"] = f.to_dict()
        r.data["table"] = render.facts_table(f)
        return r

    fleet = fan_out(entries, job, conn, on_done=_progress(progress, len(entries)))
    own = _own(fleet)
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({r.host: (r.data.get("facts") if not r.failed else
                                                                {"status": r.status, "error": r.error})
                                                       for r in fleet.reports}, own),), own=own)
    return Reply(fleet.exit_code, tuple(
        r.data["table"] if not r.failed else f"== {r.host}: {r.status}: {redact(r.error or '', own)}"
        for r in fleet.reports), own=own)


def _own(fleet: FleetReport) -> frozenset[str]:
    """The run's host names: hostprep's own words in every output, never read as a credential's name."""
    return frozenset(r.host for r in fleet.reports)


def show_fleet(fleet: FleetReport, *, as_json: bool, diff: bool = True, color: bool = False) -> Reply:
    """Each host's report and the recap (or the JSON of it all)."""
    if as_json:
        return Reply(fleet.exit_code, (render.as_json(fleet.to_dict(), _own(fleet)),), own=_own(fleet))
    lines = [render.host_report(r, diff=diff, use_color=color) for r in fleet.reports]
    return Reply(fleet.exit_code, (*lines, render.recap(fleet, use_color=color)), own=_own(fleet))


def provision(sel: Selection, conn: ConnectOptions, opts: prov.Options, *, as_json: bool,
              progress: Progress | None = None, forks: int = 32, color: bool = False,
              rollout: Rollout = Rollout()) -> Reply:
    """Provision the selected hosts: all at once, or batch by batch (``rollout``)."""
    entries = select(sel)
    fleet = rolling(entries, lambda t, s: prov.provision(t, s, opts), rollout, conn, forks=forks,
                    on_done=_progress(progress, len(entries)))
    return show_fleet(labelled(fleet, entries), as_json=as_json, color=color)


def rollback(sel: Selection, conn: ConnectOptions, snapshot: str | None, *, as_json: bool,
             color: bool = False, lock_wait: int = 10, break_lock: bool = False, drain: Drain = Drain()) -> Reply:
    entries = select(sel)
    fleet = fan_out(entries, lambda t, s: prov.rollback(t, s, snapshot, lock_wait=lock_wait, break_lock=break_lock,
                                                        drain=drain), conn)
    return show_fleet(labelled(fleet, entries), as_json=as_json, diff=False, color=color)


STATUS_COLUMNS = ["host", "mid_change", "lock", "last_run", "latest_snapshot", "record", "next"]


def status(sel: Selection, conn: ConnectOptions, *, as_json: bool) -> Reply:
    """Per host: the lock's holder and age, the last run's outcome, the latest snapshot, mid-change."""
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        r = HostReport(t.endpoint.name, OK)
        r.data["status"] = host_status(gather(t, s, deep=False), datetime.now(timezone.utc))
        return r

    fleet = fan_out(entries, job, conn)
    rows = [r.data.get("status") or {"host": r.host, "lock": f"{r.status}: {r.error}"} for r in fleet.reports]
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({row["host"]: row for row in rows}, _own(fleet)),),
                     own=_own(fleet))
    return Reply(fleet.exit_code, (render.table(rows, STATUS_COLUMNS),), own=_own(fleet))


def snapshots(sel: Selection, conn: ConnectOptions, *, as_json: bool) -> Reply:
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        r = HostReport(t.endpoint.name, OK)
        r.data["snapshots"] = list_remote(t)
        return r

    fleet = fan_out(entries, job, conn)
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({r.host: r.data.get("snapshots", {"error": r.error})
                                                       for r in fleet.reports}, _own(fleet)),), own=_own(fleet))
    lines = []
    for r in fleet.reports:
        lines.append(f"== {r.host}" + (f": {r.status}: {redact(r.error or '', (r.host,))}" if r.failed else ""))
        rows = [{"id": s["id"], "created": s["created"], "strategy": s["strategy"],
                 "steps": "; ".join(s.get("steps") or [])} for s in r.data.get("snapshots", [])]
        lines.append(render.table(rows, ["id", "created", "strategy", "steps"]) if rows else "  no snapshots")
    return Reply(fleet.exit_code, tuple(lines), own=_own(fleet))


# ------------------------------------------------------------------ audit (drift), its history and its schedule


@dataclass(frozen=True)
class AuditOutputs:
    """Where an audit writes its reports; ``report_dir`` fills in the three files not named explicitly."""

    as_json: bool = False
    junit: str | None = None
    prom: str | None = None
    json_file: str | None = None
    report_dir: str | None = None
    every: str | None = None   # the schedule's period (``audit --every``): the textfile's interval sample

    def interval(self) -> int | None:
        """``every`` in seconds; a bad one raises ScheduleError before anything is audited."""
        return schedule.seconds(self.every) if self.every else None

    def files(self) -> dict[str, str]:
        named = {"json": self.json_file, "junit": self.junit, "prom": self.prom}
        if self.report_dir:
            named = {k: v or os.path.join(self.report_dir, audit_report.REPORT_FILES[k]) for k, v in named.items()}
        return {k: v for k, v in named.items() if v}


def audit_job(*, deep: bool, fix: bool) -> HostJob:
    """The fleet job of `audit`: judge; with ``fix``, re-provision a host a provision can repair (with
    its recorded strategy), then judge it again."""
    def job(t: Transport, s: HostSettings) -> HostReport:
        started = time.monotonic()
        result = aud.audit_host(t, s, deep=deep)
        if fix and aud.fixable(result.findings):
            fixed = prov.provision(t, s, prov.Options(strategy=result.strategy))
            result = aud.with_fix(aud.audit_host(t, s, deep=deep), result, fixed)
        result.seconds = time.monotonic() - started
        report = HostReport(t.endpoint.name, OK)
        report.data["audit"] = result
        return report

    return job


def audit(sel: Selection, conn: ConnectOptions, outputs: AuditOutputs = AuditOutputs(), *, deep: bool = False,
          fix: bool = False, progress: Progress | None = None, forks: int = 32, run_file: str | None = None,
          run_id: str | None = None) -> Reply:
    """Audit every selected host (read-only unless ``fix``); 0 no drift, 2 drift, 3 a host not audited.

    A shard needs its run (``run_file``, from ``audit.begin``): its report carries the run's id and start."""
    outputs.interval()
    entries = select(sel)
    run = _run_of(run_file, run_id)
    if sel.shard and run is None:
        raise shards.ShardError(f"--shard {sel.shard} needs --run-file (the file `audit.begin` wrote for this run): "
                                "audit.merge refuses shard reports that do not name their run")
    at = aud.now()
    fleet = fan_out(entries, audit_job(deep=deep, fix=fix), conn, forks=forks,
                    on_done=_progress(progress, len(entries)))
    audits = aud.from_fleet(labelled(fleet, entries))
    for a, r in zip(audits, fleet.reports):
        a.labels = r.data.get("labels", {})
    shard = shards.parse_shard(sel.shard) if sel.shard else None
    reply = _audit_outputs(audits, at, outputs, shard, run)   # reports first: a history problem must not cost them
    try:
        history.append(line for a in audits for line in history.entries_for(a, at, aud.now()))
    except (OSError, ValueError) as exc:
        return replace(reply, warnings=(f"audit history not written: {exc}",))
    return reply


def _audit_outputs(audits: list[aud.HostAudit], at: datetime, outputs: AuditOutputs,
                   shard: tuple[int, int] | None = None, run: shards.Run | None = None) -> Reply:
    """Write the report files; the table or JSON to show, and the audits' exit code."""
    stamp = run.to_dict() if run else None
    writers: dict[str, Callable[[list[aud.HostAudit], datetime], str]] = {
        "json": lambda a, t: audit_report.as_json(a, t, shard, stamp), "junit": audit_report.junit,
        "prom": lambda a, t: audit_report.prometheus(a, t, outputs.interval())}
    for kind, path in outputs.files().items():
        audit_report.write_atomic(path, writers[kind](audits, at))
    shown = audit_report.as_json(audits, at, shard, stamp) if outputs.as_json else audit_report.table(audits)
    return Reply(aud.exit_code(audits), (shown,), own=frozenset(a.host for a in audits))


def _read_text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise shards.ShardError(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from None


def _run_of(run_file: str | None, run_id: str | None) -> shards.Run | None:
    """The run from the file ``audit.begin`` wrote; with ``run_id``, the file must be that run's."""
    if run_file is None:
        if run_id is not None:
            raise shards.ShardError("--run-id needs --run-file (the file `audit.begin` wrote for this run)")
        return None
    run = shards.read_run_file(_read_text(run_file, "the run file"), run_file)
    if run_id is not None and run.id != run_id:
        raise shards.ShardError(f"{run_file}: holds run {run.id}, not {run_id}: `audit.begin` did not write it "
                                "for this run (it failed or did not run)")
    return run


def audit_begin(run_file: str | None, run_id: str | None = None) -> Reply:
    """Begin a sharded run: write its id and start time to ``run_file`` (atomically); show the id."""
    if not run_file:
        raise shards.ShardError("audit.begin needs --run-file FILE: where the shards and the merge read the run")
    run = shards.new_run(aud.now(), run_id)
    audit_report.write_atomic(run_file, shards.run_file_text(run))
    return Reply(0, (run.id,))


def audit_merge(reports: list[str], outputs: AuditOutputs = AuditOutputs(), *, run_file: str | None = None,
                run_id: str | None = None) -> Reply:
    """Merge the audit.json of every shard of one run into the reports one unsharded run gives.

    A report that is not this run's is refused by name; its hosts are reported as not audited (exit 3)."""
    run = _run_of(run_file, run_id)
    if run is None:
        raise shards.ShardError("audit.merge needs --run-file (the file `audit.begin` wrote for this run): "
                                "without it a report left by an earlier run cannot be told from this run's")
    paths = [Path(n) / audit_report.REPORT_FILES["json"] if Path(n).is_dir() else Path(n) for n in reports]
    merged = shards.merge([shards.read_report(_read_text(p, "a shard report"), str(p)) for p in paths], run)
    reply = _audit_outputs(merged.audits, merged.at, outputs, run=run)
    if not merged.refused:
        return reply
    return replace(reply, code=max(reply.code, aud.EXIT_INCOMPLETE), warnings=(
        *merged.refused, "the hosts of a refused shard are reported as not audited (status failed)"))


def audit_history(hosts: str | None, *, as_json: bool) -> Reply:
    """When each drift began and ended, from the controller's audit history."""
    names = [h for h in (hosts or "").replace(",", ":").split(":") if h] or None
    lines, skipped = history.load_counted(names)
    spans = history.intervals(lines)
    shown = render.as_json([s.to_dict() for s in spans]) if as_json else audit_report.history_table(spans)
    why = (f"skipped {len(skipped)} torn or unreadable history line(s)", *skipped[:10]) if skipped else ()
    return Reply(0, (shown,), why)


def schedule_job(sel: Selection, repo: str, report_dir: str, *, deep: bool = False,
                 every: str | None = None) -> schedule.AuditJob:
    """The scheduled command for a selection, with absolute paths; the selection is checked now, not at 3 am."""
    select(sel)
    inventory = sel.inventory or os.environ.get("HOSTPREP_INVENTORY") or DEFAULT_INVENTORY
    state = os.environ.get("HOSTPREP_STATE_DIR")
    return schedule.AuditJob(repo=os.path.abspath(repo), python=sys.executable, report_dir=os.path.abspath(report_dir),
                    inventory=os.path.abspath(inventory), host=sel.host, group=sel.group, limit=sel.limit, deep=deep,
                    state_dir=os.path.abspath(state) if state else None, flock=shutil.which("flock"), every=every)


def audit_schedule(sel: Selection, every: str, repo: str, report_dir: str | None = None, *, deep: bool = False,
                   systemd: bool = False, unit_dir: str | None = None) -> Reply:
    """Install the audit in the user's crontab (or as systemd user units), replacing an earlier one.

    Reports go to ``report_dir`` (default: ``reports/`` in the controller state dir).
    """
    job = schedule_job(sel, repo, report_dir or str(controller_dir() / "reports"), deep=deep, every=every)
    if systemd:
        paths, enabled = schedule.install_units(every, job, _unit_dir(unit_dir))
        return Reply(0, ("wrote " + ", ".join(map(str, paths)) + ("; timer enabled" if enabled else
                         "; systemd is not PID 1 here: enable later with `systemctl --user enable --now "
                         "hostprep-audit.timer`"),))
    return Reply(0, ("installed in crontab:\n" + schedule.install(every, job).rstrip(),))


def audit_unschedule(*, systemd: bool = False, unit_dir: str | None = None) -> Reply:
    if systemd:
        removed = schedule.remove_units(_unit_dir(unit_dir))
        return Reply(0, ("removed " + ", ".join(map(str, removed)) if removed else "no hostprep audit units",))
    gone = schedule.remove()
    return Reply(0, ("removed from crontab:\n" + gone.rstrip() if gone else "no hostprep audit schedule in crontab",))


def audit_schedule_show() -> Reply:
    found = schedule.find_block(schedule.read_crontab())
    return Reply(0, (found.rstrip() if found else "no hostprep audit schedule in crontab",))


def _unit_dir(unit_dir: str | None) -> Path:
    return Path(unit_dir) if unit_dir else schedule.default_unit_dir()
