"""The commands behind ``remote-tls.provision``, ``remote-tls.rollback``, ``remote-tls.audit`` and
``certs.rotate``: for each selected Airflow host (one with ``hostprep_task_host``), its task host from the
same inventory, both connected, one pair run, two reports. Returns a :class:`commands.Reply`; never prints.
"""

from __future__ import annotations

from typing import Callable

from hostprep.cli import render
from hostprep.audit import remote_tls as remote_tls_audit
from hostprep.change import ca_rotation, remote_tls_run
from hostprep.cli.selection import Reply, Selection, select
from hostprep.ssh.endpoint import endpoint_for
from hostprep.errors import InventoryError, SettingsError
from hostprep.fleet.fanout import ConnectOptions
from hostprep.inventory.hosts import HostEntry
from hostprep.change.results import FAILED, FleetReport, HostReport
from hostprep.ssh.transport import Transport
from hostprep.fleet.validate import validate_host

PairJob = Callable[[remote_tls_run.Side, remote_tls_run.Side], tuple[HostReport, ...]]


def _task_entry(air: HostEntry, sel: Selection) -> HostEntry:
    name = air.vars.get("hostprep_task_host")
    if not isinstance(name, str) or not name:
        raise SettingsError(f"{air.name}: hostprep_task_host is not set; remote-tls needs the task host's name")
    found = [e for e in select(Selection(inventory=sel.inventory, host=name)) if e.name == name]
    if not found:
        raise InventoryError(f"{air.name}: hostprep_task_host={name!r} is not a host of the inventory")
    if name == air.name:
        raise SettingsError(f"{air.name}: hostprep_task_host names the Airflow host itself")
    return found[0]


def _transport(e: HostEntry, conn: ConnectOptions) -> Transport:
    known = conn.known_hosts or e.vars.get("hostprep_known_hosts_file")
    return Transport(endpoint_for(e, known_hosts=known, accept_new=conn.accept_new, connect_timeout=conn.connect_timeout))


def run_pairs(sel: Selection, conn: ConnectOptions, job: PairJob) -> FleetReport:
    """Each selected Airflow host with its task host, one pair after the other (a task host may serve several)."""
    reports: list[HostReport] = []
    for air in select(sel):
        try:
            task = _task_entry(air, sel)
            with _transport(air, conn) as a, _transport(task, conn) as t:
                pair = (remote_tls_run.Side(a, validate_host(air)),
                        remote_tls_run.Side(t, validate_host(task), dict(task.vars)))
                reports += job(*pair)
        except Exception as exc:   # one pair's failure must not stop the others
            reports.append(HostReport(air.name).fail(f"{type(exc).__name__}: {exc}", FAILED))
    return FleetReport(reports)


def show(fleet: FleetReport, *, as_json: bool) -> Reply:
    own = frozenset(r.host for r in fleet.reports)
    if as_json:
        return Reply(fleet.exit_code, (render.as_json({r.host: r.to_dict() for r in fleet.reports}, own),), own=own)
    return Reply(fleet.exit_code, (*(render.host_report(r) for r in fleet.reports), render.recap(fleet)), own=own)


def provision(sel: Selection, conn: ConnectOptions, opts: remote_tls_run.PairOptions, *, as_json: bool) -> Reply:
    return show(run_pairs(sel, conn, lambda a, t: remote_tls_run.provision(a, t, opts)), as_json=as_json)


def rotate(sel: Selection, conn: ConnectOptions, opts: remote_tls_run.PairOptions, *, as_json: bool,
           ca_phase: str | None = None) -> Reply:
    """New client certificates (the server's when due); ``ca_phase`` ``new``/``finish``: a step of a CA switch."""
    if ca_phase is None:
        return show(run_pairs(sel, conn, lambda a, t: remote_tls_run.rotate(a, t, opts)), as_json=as_json)
    return show(run_pairs(sel, conn, lambda a, t: ca_rotation.rotate_ca(a, t, ca_phase, opts)), as_json=as_json)


def rollback(sel: Selection, conn: ConnectOptions, snapshot: str | None, *, as_json: bool) -> Reply:
    return show(run_pairs(sel, conn, lambda a, t: remote_tls_run.rollback(a, t, snapshot)), as_json=as_json)


def audit(sel: Selection, conn: ConnectOptions, *, as_json: bool) -> Reply:
    """Findings per pair, reported on the Airflow host; exit 2 when any is found (as ``audit`` does)."""
    def job(a: remote_tls_run.Side, t: remote_tls_run.Side) -> tuple[HostReport, ...]:
        found = remote_tls_audit.audit(a.t, a.settings, t.t, t.settings, t.vars or {})
        r = HostReport(a.name)
        r.data["findings"] = [f.to_dict() for f in found]
        r.warnings += [f"{f.severity} {f.key}: {f.detail} (fix: {f.hint})" for f in found]
        return (r,)
    fleet = run_pairs(sel, conn, job)
    reply = show(fleet, as_json=as_json)
    found = any(r.data.get("findings") for r in fleet.reports)
    return Reply(2 if found and reply.code == 0 else reply.code, reply.lines, own=reply.own)
