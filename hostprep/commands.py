"""The commands behind the Invoke tasks: select hosts, fan out, render. Return (exit code, text)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

from hostprep import provision as prov
from hostprep import render
from hostprep.facts import gather
from hostprep.fleet import ConnectOptions, fan_out
from hostprep.inventory import HostEntry, InventoryError, load_inventory
from hostprep.results import OK, FleetReport, HostReport
from hostprep.settings import HostSettings
from hostprep.transport import Transport

DEFAULT_INVENTORY = "inventories/lab.yml"
Printer = Callable[[str], None]


@dataclass(frozen=True)
class Selection:
    inventory: str | None = None
    host: str | None = None
    group: str | None = None
    limit: str | None = None

    def pattern(self) -> str:
        parts = [p for p in (self.limit, self.host, self.group) if p]
        if not parts:
            return "all"
        return ":".join([parts[0]] + ["&" + p for p in parts[1:]])


def select(sel: Selection) -> list[HostEntry]:
    """Hosts matching --host/--group/--limit; a name that matches nothing is an error."""
    path = sel.inventory or os.environ.get("HOSTPREP_INVENTORY") or DEFAULT_INVENTORY
    if not os.path.exists(path):
        raise InventoryError(f"inventory {path} not found (pass --inventory, or run `invoke lab.up` for the lab)")
    inv = load_inventory(path)
    if sel.host and sel.host not in inv.hosts:
        for name in sel.host.replace(",", ":").split(":"):
            if name and name not in inv.hosts:
                raise InventoryError(f"unknown host {name!r} in {path}; hosts: {', '.join(inv.hosts) or 'none'}")
    if sel.group and sel.group not in inv.groups and sel.group != "all":
        raise InventoryError(f"unknown group {sel.group!r} in {path}; groups: {', '.join(sorted(inv.groups))}")
    hosts = inv.select(sel.pattern())
    if not hosts:
        raise InventoryError(f"pattern {sel.pattern()!r} selects no host in {path}")
    return hosts


def _progress(out: Printer, total: int) -> Callable[[HostReport], None] | None:
    if not sys.stderr.isatty() or total < 2:
        return None
    done = [0]

    def tick(r: HostReport) -> None:
        done[0] += 1
        print(render.progress_line(r, done[0], total, True), file=sys.stderr)

    return tick


def facts(sel: Selection, conn: ConnectOptions, *, as_json: bool, deep: bool = True,
          out: Printer = print) -> int:
    """Gather and show facts for every selected host."""
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        f = gather(t, s, deep=deep)
        r = HostReport(t.endpoint.name, OK)
        r.data["facts"] = f.to_dict()
        r.data["table"] = render.facts_table(f)
        return r

    fleet = fan_out(entries, job, conn, on_done=_progress(out, len(entries)))
    if as_json:
        out(render.as_json({r.host: (r.data.get("facts") if not r.failed else
                                     {"status": r.status, "error": r.error}) for r in fleet.reports}))
    else:
        for r in fleet.reports:
            out(r.data["table"] if not r.failed else render.color(f"== {r.host}: {r.status}: {r.error}", r.status, False))
    return fleet.exit_code


def show_fleet(fleet: FleetReport, *, as_json: bool, diff: bool = True, out: Printer = print) -> int:
    use_color = sys.stdout.isatty() and not as_json
    if as_json:
        out(render.as_json(fleet.to_dict()))
    else:
        for r in fleet.reports:
            out(render.host_report(r, diff=diff, use_color=use_color))
        out(render.recap(fleet, use_color=use_color))
    return fleet.exit_code


def provision(sel: Selection, conn: ConnectOptions, opts: prov.Options, *, as_json: bool,
              out: Printer = print, forks: int = 32) -> int:
    entries = select(sel)
    fleet = fan_out(entries, lambda t, s: prov.provision(t, s, opts), conn, forks=forks,
                    on_done=_progress(out, len(entries)))
    return show_fleet(fleet, as_json=as_json, out=out)


def rollback(sel: Selection, conn: ConnectOptions, snapshot: str | None, *, as_json: bool,
             out: Printer = print) -> int:
    entries = select(sel)
    fleet = fan_out(entries, lambda t, s: prov.rollback(t, s, snapshot), conn)
    return show_fleet(fleet, as_json=as_json, diff=False, out=out)


def snapshots(sel: Selection, conn: ConnectOptions, *, as_json: bool, out: Printer = print) -> int:
    entries = select(sel)

    def job(t: Transport, s: HostSettings) -> HostReport:
        r = HostReport(t.endpoint.name, OK)
        r.data["snapshots"] = prov.list_snapshots(t)
        return r

    fleet = fan_out(entries, job, conn)
    if as_json:
        out(render.as_json({r.host: r.data.get("snapshots", {"error": r.error}) for r in fleet.reports}))
        return fleet.exit_code
    for r in fleet.reports:
        out(f"== {r.host}" + (f": {r.status}: {r.error}" if r.failed else ""))
        rows = [{"id": s["id"], "created": s["created"], "strategy": s["strategy"],
                 "steps": "; ".join(s.get("steps") or [])} for s in r.data.get("snapshots", [])]
        out(render.table(rows, ["id", "created", "strategy", "steps"]) if rows else "  no snapshots")
    return fleet.exit_code
