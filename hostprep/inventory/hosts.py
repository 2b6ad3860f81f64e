"""Ansible inventories (YAML or INI) read unchanged into hosts, groups and merged vars.

Pure: reads the inventory file and the ``group_vars/`` and ``host_vars/`` beside it,
never connects anywhere. Variables merge as ``ansible-inventory --list`` does, each
group layer ordered by depth, then ``ansible_group_priority``, then name:
group vars in the inventory file < ``group_vars/`` files (``all.yml`` first)
< host vars in the inventory file < ``host_vars/`` files.
A become password may only be a reference to an environment variable; only that
variable's *name* is kept, under ``hostprep_become_password_env``.

>>> inv = load_inventory(os.path.join(os.path.dirname(__file__), "..", "..", "inventories", "example.yml"))
>>> [h.name for h in inv.select("airflow_prod:!canary")]
['ip-10-0-1-12.ec2.internal', 'ip-10-0-1-13.ec2.internal']
"""

from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn

from hostprep.errors import InventoryError
from hostprep.inventory.formats import (
    YAML_SUFFIXES, expand_host_pattern, fail, parse_ini, parse_yaml, plain, read_vars_file, vars_files,
)
from hostprep.inventory.patterns import select_hosts

__all__ = [
    "BECOME_ENV_VAR", "Group", "HostEntry", "Inventory", "InventoryError", "become_env_name",
    "expand_host_pattern", "load_inventory", "looks_like_yaml", "vars_files",
]

BECOME_ENV_VAR = "hostprep_become_password_env"
_BECOME_KEYS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
_ENV_LOOKUP = re.compile(
    r"""^\{\{\s*lookup\(\s*(['"])(?:ansible\.builtin\.)?env\1\s*,\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\2\s*\)\s*\}\}$"""
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class HostEntry:
    """One host: its merged vars and every group it belongs to (Ansible's ``group_names``)."""

    name: str
    vars: Mapping[str, Any] = field(hash=False)
    groups: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<HostEntry {self.name} groups={','.join(self.groups) or '-'}>"


@dataclass(frozen=True)
class Group:
    """One group as written: its own vars, direct hosts and direct child groups."""

    name: str
    vars: Mapping[str, Any] = field(hash=False)
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<Group {self.name}: {len(self.hosts)} hosts, {len(self.children)} children>"


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory. ``hosts`` keeps inventory order (first appearance in the file)."""

    path: Path
    hosts: dict[str, HostEntry] = field(hash=False)
    groups: dict[str, Group] = field(hash=False)

    def members(self) -> dict[str, list[str]]:
        """Group name -> every host in it, directly or through child groups, in inventory order."""
        out: dict[str, list[str]] = {name: [] for name in self.groups}
        for host in self.hosts.values():
            out["all"].append(host.name)
            for group in host.groups:
                out[group].append(host.name)
        return out

    def select(self, pattern: str = "all") -> list[HostEntry]:
        """Hosts matching an Ansible ``--limit`` pattern, in inventory order."""
        return [self.hosts[n] for n in select_hosts(pattern, list(self.hosts), self.members())]

    def __repr__(self) -> str:
        return f"<Inventory {self.path.name}: {len(self.hosts)} hosts, {len(self.groups)} groups>"


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read a YAML or INI inventory; the format comes from the extension, else the content."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{p}: cannot read inventory: {getattr(exc, 'strerror', None) or exc}") from None
    builder = _Builder(p)
    collecting = gc.isenabled()
    gc.disable()   # building creates only acyclic data; the collector's passes over it cost more than the build
    try:
        if looks_like_yaml(p, text):
            parse_yaml(text, builder)
        else:
            parse_ini(text, builder)
        builder.read_vars_dirs(p.absolute().parent)  # beside the path given, symlinks not followed
        return builder.finish()
    finally:
        if collecting:
            gc.enable()


def looks_like_yaml(path: Path, text: str) -> bool:
    """True for .yml/.yaml/.json; false for .ini/.cfg; otherwise judge the first real line."""
    suffix = path.suffix.lower()
    if suffix in YAML_SUFFIXES or suffix in (".ini", ".cfg"):
        return suffix in YAML_SUFFIXES
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            return line.startswith(("---", "{")) or bool(re.match(r"^[^\s\[=]+:(\s|$)", line))
    return False


def become_env_name(value: Any) -> str | None:
    """The env var named by ``{{ lookup('env', 'NAME') }}``, else None.

    >>> become_env_name("{{ lookup('env', 'HOSTPREP_BECOME_PASSWORD') }}")
    'HOSTPREP_BECOME_PASSWORD'
    """
    m = _ENV_LOOKUP.match(value.strip()) if isinstance(value, str) else None
    return m.group(3) if m else None


MAX_GROUP_DEPTH = 200   # child groups below child groups (deeper is refused, never a RecursionError)


class _Builder:
    """Inventory under construction, mirroring ansible's InventoryData; ``finish`` freezes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}
        self.host_file_vars: dict[str, dict[str, Any]] = {}  # from host_vars/
        self.group_file_vars: dict[str, dict[str, Any]] = {}  # from group_vars/
        self.children: dict[str, list[str]] = {}
        self.direct: dict[str, list[str]] = {}  # group -> hosts listed in it
        self._listed: dict[str, set[str]] = {}  # the same as sets: adding a host stays O(1)
        self.priority: dict[str, int] = {}
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped", None)

    def error(self, line: int | None, message: str, path: Path | None = None) -> NoReturn:
        fail(path or self.path, line, message)

    def add_group(self, name: str) -> None:
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, [])
        self.direct.setdefault(name, [])
        self._listed.setdefault(name, set())

    def add_child(self, parent: str, child: str, line: int | None) -> None:
        if parent == child:
            self.error(line, f"group {child!r} cannot be a child of itself")
        if child not in self.children[parent]:
            self.children[parent].append(child)

    def add_host(self, name: str, group: str, port: int | None, line: int | None) -> None:
        if name not in self.host_vars:
            self.host_vars[name] = {}
            if port is not None:  # like ansible: a :port applies where the host first appears
                self.host_vars[name]["ansible_port"] = port
        if name not in self._listed[group]:
            self._listed[group].add(name)
            self.direct[group].append(name)

    def set_group_var(self, group: str, key: Any, value: Any, line: int | None) -> None:
        if key == "ansible_group_priority":
            try:
                self.priority[group] = int(value)
            except (TypeError, ValueError):
                self.error(line, f"group {group!r}: ansible_group_priority must be an integer")
            return
        self._set_var(self.group_vars[group], key, value, f"group {group!r}", line)

    def set_host_var(self, host: str, key: Any, value: Any, line: int | None) -> None:
        self._set_var(self.host_vars[host], key, value, f"host {host!r}", line)

    def read_vars_dirs(self, folder: Path) -> None:
        """Load ``group_vars/`` and ``host_vars/`` in ``folder`` for the groups and hosts defined."""
        for kind, names, into in (
            ("group", self.group_vars, self.group_file_vars),
            ("host", self.host_vars, self.host_file_vars),
        ):
            base = folder / f"{kind}_vars"
            for name in names if base.is_dir() else ():  # as in ansible, files for unknown names are never read
                target = into[name] = {}
                for path in vars_files(base, name):
                    data = read_vars_file(path)  # ansible_group_priority in a file is a plain var
                    for key, value in data.items():
                        self._set_var(target, key, value, f"{kind} {name!r}", data.lines[key], path)

    def _set_var(
        self, target: dict[str, Any], key: Any, value: Any, owner: str, line: int | None, path: Path | None = None
    ) -> None:
        if not isinstance(key, str) or not key:
            self.error(line, f"{owner}: variable names must be non-empty strings", path)
        if key in _BECOME_KEYS:
            if value is not None and become_env_name(value) is None:
                self.error(line, f"{owner}: {key} must be an env lookup such as "
                           "\"{{ lookup('env', 'HOSTPREP_BECOME_PASSWORD') }}\" "
                           f"(or set {BECOME_ENV_VAR}: NAME); literal passwords are refused and not shown", path)
            key, value = BECOME_ENV_VAR, become_env_name(value)
        elif key == BECOME_ENV_VAR and value is not None:
            if not isinstance(value, str) or not _ENV_NAME.match(value):
                self.error(line, f"{owner}: {BECOME_ENV_VAR} must be an environment variable name (value not shown)",
                           path)
        target[key] = plain(value)

    def finish(self) -> Inventory:
        """Resolve group parents, host membership and the merged vars of every host."""
        parents = self._parents()
        depth: dict[str, int] = {}
        for group in self.children:
            _depth(group, parents, depth, (), self.error)
        member_of = self._membership(parents)
        order = sorted(self.children, key=lambda g: (depth[g], self.priority.get(g, 1), g))
        hosts: dict[str, HostEntry] = {}
        by_groups: dict[frozenset[str], tuple[dict[str, Any], tuple[str, ...]]] = {}  # hosts share group layers
        for h, own in self.host_vars.items():
            key = frozenset(member_of[h])
            if key not in by_groups:
                ordered = [g for g in order if g in key or g == "all"]
                layers = [self.group_vars[g] for g in ordered] + [self.group_file_vars.get(g, {}) for g in ordered]
                by_groups[key] = (_merged(*layers), tuple(sorted(key - {"all"})))
            base, groups_of = by_groups[key]
            hosts[h] = HostEntry(h, _merged(base, own, self.host_file_vars.get(h, {})), groups_of)
        groups = {
            g: Group(g, _merged(self.group_vars[g], self.group_file_vars.get(g, {})),
                     tuple(self.direct[g]), tuple(self.children[g]))
            for g in self.children
        }
        return Inventory(self.path, hosts, groups)

    def _parents(self) -> dict[str, list[str]]:
        """Group -> its parents; a group nobody lists becomes a child of ``all``."""
        parents: dict[str, list[str]] = {g: [] for g in self.children}
        for parent, kids in self.children.items():
            for kid in kids:
                parents[kid].append(parent)
        for group, ups in parents.items():
            if group != "all" and not ups:
                self.children["all"].append(group)
                ups.append("all")
        return parents

    def _membership(self, parents: dict[str, list[str]]) -> dict[str, set[str]]:
        """Host -> every group it is in (ancestors included), ``ungrouped`` as ansible reconciles it."""
        ancestors = {g: _ancestors(g, parents) for g in self.children}
        member_of: dict[str, set[str]] = {h: set() for h in self.host_vars}
        for group, listed in self.direct.items():
            for h in listed:
                member_of[h] |= {group} | ancestors[group]
        below_ungrouped = {g for g in self.children if "ungrouped" in ancestors[g]}
        dropped: set[str] = set()
        for h, mine in member_of.items():  # ansible's reconcile_inventory
            if "ungrouped" in mine and mine - {"all", "ungrouped"}:
                if h in self._listed["ungrouped"]:   # listed there and elsewhere: ansible drops the listing
                    dropped.add(h)
                if not mine & below_ungrouped:       # (a child group of ungrouped keeps it an ancestor)
                    mine.discard("ungrouped")
            elif mine <= {"all"}:
                self.direct["ungrouped"].append(h)
                self._listed["ungrouped"].add(h)
                mine |= {"all", "ungrouped"}
        if dropped:
            self.direct["ungrouped"] = [h for h in self.direct["ungrouped"] if h not in dropped]
            self._listed["ungrouped"] -= dropped
        return member_of


def _depth(
    group: str, parents: dict[str, list[str]], memo: dict[str, int], stack: tuple[str, ...],
    error: Callable[[int | None, str], NoReturn],
) -> int:
    """Longest path from ``all`` (ansible's Group.depth); a cycle, or nesting past MAX_GROUP_DEPTH, is an error."""
    if len(stack) > MAX_GROUP_DEPTH:
        error(None, f"groups nest deeper than {MAX_GROUP_DEPTH} levels (below {stack[0]!r})")
    if group in stack:
        error(None, f"groups form a loop: {' -> '.join(stack[stack.index(group):] + (group,))}")
    if group not in memo:
        ups = parents[group]
        memo[group] = 1 + max(_depth(p, parents, memo, stack + (group,), error) for p in ups) if ups else 0
        if memo[group] > MAX_GROUP_DEPTH:
            error(None, f"groups nest deeper than {MAX_GROUP_DEPTH} levels (at {group!r})")
    return memo[group]


def _merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key (Ansible's default ``hash_behaviour = replace``)."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer)
    return out


def _ancestors(group: str, parents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(parents[group])
    while todo:
        g = todo.pop()
        if g not in seen:
            seen.add(g)
            todo.extend(parents[g])
    return seen


