"""The audit's commands: ``audit`` (and ``--fix``), its sharded runs (``audit.begin``, ``audit.merge``),
its history and its schedule. Each returns a :class:`Reply`; nothing here prints.

``audit --fix`` is composed here: the audit judges, provision changes, neither calls the other. Provision's
library is imported only when a fix runs, so a scheduled audit starts without it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hostprep.audit import run as aud
from hostprep.audit import report as audit_report, history, schedule, shards
from hostprep.cli import render
from hostprep.cli.deferred import Deferred
from hostprep.cli.selection import DEFAULT_INVENTORY, Progress, Reply, Selection, labelled, progress_ticker, select
from hostprep.fleet.fanout import ConnectOptions, HostJob, fan_out
from hostprep.change.results import OK, HostReport
from hostprep.inventory.settings import HostSettings
from hostprep.change.local_state import controller_dir
from hostprep.ssh.transport import Transport

if TYPE_CHECKING:
    from hostprep.change import provision as prov
else:
    prov = Deferred("hostprep.change.provision")


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
                    on_done=progress_ticker(progress, len(entries)))
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
    outputs.interval()
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
