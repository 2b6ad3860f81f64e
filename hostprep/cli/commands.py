"""The commands behind the tasks that change hosts or show them: select hosts, fan out, render. Each returns
a :class:`Reply` (exit code and the lines to show); the edge (``hostprep.cli.program``) prints them. Nothing
here prints. The audit's commands are in ``hostprep.cli.audit_cmd``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from hostprep.change import provision as prov
from hostprep.cli import render
from hostprep.cli.selection import Progress, Reply, Selection, labelled, own_names, progress_ticker, select
from hostprep.host.probe import gather
from hostprep.change.apply import Drain
from hostprep.fleet.fanout import ConnectOptions, fan_out, rolling
from hostprep.host.status import host_status
from hostprep.redact import redact
from hostprep.change.results import OK, FleetReport, HostReport
from hostprep.fleet.rolling import Rollout
from hostprep.inventory.settings import HostSettings
from hostprep.change.snapshot_store import list_remote
from hostprep.ssh.transport import Transport

__all__ = ["Reply", "Selection", "facts", "provision", "rollback", "show_fleet", "snapshots", "status"]


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

    fleet = fan_out(entries, job, conn, on_done=progress_ticker(progress, len(entries)))
    own = own_names(fleet)
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({r.host: (r.data.get("facts") if not r.failed else
                                                                {"status": r.status, "error": r.error})
                                                       for r in fleet.reports}, own),), own=own)
    return Reply(fleet.exit_code, tuple(
        r.data["table"] if not r.failed else f"== {r.host}: {r.status}: {redact(r.error or '', own)}"
        for r in fleet.reports), own=own)


def show_fleet(fleet: FleetReport, *, as_json: bool, diff: bool = True, color: bool = False) -> Reply:
    """Each host's report and the recap (or the JSON of it all)."""
    if as_json:
        return Reply(fleet.exit_code, (render.as_json(fleet.to_dict(), own_names(fleet)),), own=own_names(fleet))
    lines = [render.host_report(r, diff=diff, use_color=color) for r in fleet.reports]
    return Reply(fleet.exit_code, (*lines, render.recap(fleet, use_color=color)), own=own_names(fleet))


def provision(sel: Selection, conn: ConnectOptions, opts: prov.Options, *, as_json: bool,
              progress: Progress | None = None, forks: int = 32, color: bool = False,
              rollout: Rollout = Rollout()) -> Reply:
    """Provision the selected hosts: all at once, or batch by batch (``rollout``)."""
    entries = select(sel)
    fleet = rolling(entries, lambda t, s: prov.provision(t, s, opts), rollout, conn, forks=forks,
                    on_done=progress_ticker(progress, len(entries)))
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
        return Reply(fleet.exit_code, (render.as_json({row["host"]: row for row in rows}, own_names(fleet)),),
                     own=own_names(fleet))
    return Reply(fleet.exit_code, (render.table(rows, STATUS_COLUMNS),), own=own_names(fleet))


def snapshots(sel: Selection, conn: ConnectOptions, *, as_json: bool) -> Reply:
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        r = HostReport(t.endpoint.name, OK)
        r.data["snapshots"] = list_remote(t)
        return r

    fleet = fan_out(entries, job, conn)
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({r.host: r.data.get("snapshots", {"error": r.error})
                                                       for r in fleet.reports}, own_names(fleet)),), own=own_names(fleet))
    lines = []
    for r in fleet.reports:
        lines.append(f"== {r.host}" + (f": {r.status}: {redact(r.error or '', (r.host,))}" if r.failed else ""))
        rows = [{"id": s["id"], "created": s["created"], "strategy": s["strategy"],
                 "steps": "; ".join(s.get("steps") or [])} for s in r.data.get("snapshots", [])]
        lines.append(render.table(rows, ["id", "created", "strategy", "steps"]) if rows else "  no snapshots")
    return Reply(fleet.exit_code, tuple(lines), own=own_names(fleet))


