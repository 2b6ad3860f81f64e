"""What every command shares: the hosts a command line selects, and the :class:`Reply` it hands the edge.

Light on purpose: the audit's commands (``hostprep.cli.audit_cmd``) and provision's
(``hostprep.cli.commands``) both build on it without importing each other's library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from hostprep.audit import shards
from hostprep.cli import render
from hostprep.errors import InventoryError
from hostprep.inventory.hosts import HostEntry
from hostprep.inventory.sources import cloud_labels, load_any
from hostprep.change.results import FleetReport, HostReport

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


def progress_ticker(progress: Progress | None, total: int) -> Callable[[HostReport], None] | None:
    """A line per finished host, for runs of two hosts or more."""
    if progress is None or total < 2:
        return None
    done = [0]

    def tick(r: HostReport) -> None:
        done[0] += 1
        progress(render.progress_line(r, done[0], total, True))

    return tick


def own_names(fleet: FleetReport) -> frozenset[str]:
    """The run's host names: hostprep's own words in every output, never read as a credential's name."""
    return frozenset(r.host for r in fleet.reports)


