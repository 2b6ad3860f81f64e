"""Ansible inventories (YAML or INI) read unchanged into hosts, groups and merged vars.

Pure: reads the inventory file and the ``group_vars/`` and ``host_vars/`` beside it,
never connects anywhere. Variables merge as ``ansible-inventory --list`` does, each
group layer ordered by depth, then ``ansible_group_priority``, then name:
group vars in the inventory file < ``group_vars/`` files (``all.yml`` first)
< host vars in the inventory file < ``host_vars/`` files.
A become password may only be a reference to an environment variable; only that
variable's *name* is kept, under ``hostprep_become_password_env``.

>>> inv = load_inventory(os.path.join(os.path.dirname(__file__), "..", "inventories", "example.yml"))
>>> [h.name for h in inv.select("airflow_prod:!canary")]
['ip-10-0-1-12.ec2.internal', 'ip-10-0-1-13.ec2.internal']
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn

import yaml

from hostprep.settings import connection_settings
from hostprep.transport import Endpoint

BECOME_ENV_VAR = "hostprep_become_password_env"
_BECOME_KEYS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
_ENV_LOOKUP = re.compile(
    r"""^\{\{\s*lookup\(\s*(['"])(?:ansible\.builtin\.)?env\1\s*,\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\2\s*\)\s*\}\}$"""
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")


class InventoryError(Exception):
    """The inventory cannot be read or used; the message names the file (and line)."""


@dataclass(frozen=True)
class HostEntry:
    """One host: its merged vars and every group it belongs to (Ansible's ``group_names``)."""

    name: str
    vars: Mapping[str, Any] = field(hash=False)
    groups: tuple[str, ...]

    def endpoint(
        self, *, known_hosts: str | None = None, accept_new: bool = False, connect_timeout: float = 10.0
    ) -> Endpoint:
        """How to reach this host; raises ``SettingsError`` naming the host on a bad connection var."""
        conn = connection_settings(self.vars, host=self.name)
        return Endpoint(
            name=self.name,
            address=conn.address or self.name,
            port=conn.port,
            user=conn.user,
            key_file=conn.key_file,
            known_hosts=known_hosts,
            connect_timeout=connect_timeout,
            accept_new=accept_new,
            become_password_env=self.vars.get(BECOME_ENV_VAR),
        )

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
        from hostprep.patterns import select_hosts  # patterns imports InventoryError from here

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
    if looks_like_yaml(p, text):
        _parse_yaml(text, builder)
    else:
        _parse_ini(text, builder)
    builder.read_vars_dirs(p.absolute().parent)  # beside the path given, symlinks not followed
    return builder.finish()


def looks_like_yaml(path: Path, text: str) -> bool:
    """True for .yml/.yaml/.json; false for .ini/.cfg; otherwise judge the first real line."""
    suffix = path.suffix.lower()
    if suffix in _YAML_SUFFIXES or suffix in (".ini", ".cfg"):
        return suffix in _YAML_SUFFIXES
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            return line.startswith(("---", "{")) or bool(re.match(r"^[^\s\[=]+:(\s|$)", line))
    return False


def vars_files(folder: Path, name: str) -> list[Path]:
    """The files holding ``name``'s vars in a group_vars/host_vars folder, in load order.

    As Ansible's ``find_vars_files``: the first of ``name``, ``name.yml``, ``name.yaml``,
    ``name.json`` that exists wins; a directory gives every vars file beneath it, sorted.
    """
    if name.startswith(os.sep):  # ansible skips chroot-style names
        return []
    for candidate in (folder / (name + ext) for ext in ("", *_YAML_SUFFIXES)):
        if candidate.is_dir():
            return _dir_vars_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _dir_vars_files(folder: Path) -> list[Path]:
    """Files named ``*.yml``/``*.yaml``/``*.json`` or without extension, recursing into plain dirs."""
    found: list[Path] = []
    for name in sorted(os.listdir(folder)):
        path, ext = folder / name, os.path.splitext(name)[1]
        if name.startswith(".") or name.endswith("~"):  # hidden files and editor backups
            continue
        if path.is_dir() and not ext:
            found.extend(_dir_vars_files(path))
        elif path.is_file() and ext in ("", *_YAML_SUFFIXES):
            found.append(path)
    return found


def _read_vars_file(path: Path) -> _LineDict:
    """One vars file as a mapping; like Ansible, an empty (or falsy) document means no vars."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(path, None, f"cannot read vars file: {getattr(exc, 'strerror', None) or exc}")
    if text.startswith("$ANSIBLE_VAULT;"):
        _fail(path, 1, "vault-encrypted vars files are not supported; use an env lookup for secrets")
    data = _load_yaml(text, path)
    if not data:
        return _LineDict()
    if not isinstance(data, _LineDict):
        _fail(path, 1, f"a vars file must be a mapping of variable names, not a {type(data).__name__}")
    return data


def become_env_name(value: Any) -> str | None:
    """The env var named by ``{{ lookup('env', 'NAME') }}``, else None.

    >>> become_env_name("{{ lookup('env', 'HOSTPREP_BECOME_PASSWORD') }}")
    'HOSTPREP_BECOME_PASSWORD'
    """
    m = _ENV_LOOKUP.match(value.strip()) if isinstance(value, str) else None
    return m.group(3) if m else None


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """``web[01:03]:2222`` -> (["web01", "web02", "web03"], 2222), as Ansible expands them."""
    port: int | None = None
    m = _HOSTPORT.match(pattern)
    if m:
        pattern, port = m.group(1), int(m.group(2))
    if not pattern.strip():
        raise ValueError("empty host name")
    if pattern.strip().endswith(":"):
        raise ValueError(f"host {pattern!r} ends in ':' (reserved for a port)")
    return _expand_ranges(pattern), port


def _expand_ranges(name: str) -> list[str]:
    if "[" not in name:
        return [name]
    head, sep, rest = name.partition("[")
    body, close, tail = rest.partition("]")
    if not close:
        raise ValueError(f"host range in {name!r} has no closing ']'")
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{body}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step = int(bounds[2]) if len(bounds) == 3 and bounds[2].isdigit() else 1
    if not end or step < 1:
        raise ValueError(f"host range [{body}] needs an end value and a positive step")
    seq: list[str]
    if len(beg) == 1 and len(end) == 1 and beg in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise ValueError(f"host range [{body}] must have begin <= end")
        seq = list(string.ascii_letters[i : j + 1 : step])
    elif beg.isdigit() and end.isdigit():
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and width != len(end):
            raise ValueError(f"host range [{body}] must use equal-length begin and end")
        seq = [str(n).zfill(width) for n in range(int(beg), int(end) + 1, step)]
    else:
        raise ValueError(f"host range [{body}] must be numeric (01:10) or letters (a:f)")
    return [out for item in seq for out in _expand_ranges(head + item + tail)]


def _fail(path: Path, line: int | None, message: str) -> NoReturn:
    raise InventoryError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


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
        self.priority: dict[str, int] = {}
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped", None)

    def error(self, line: int | None, message: str, path: Path | None = None) -> NoReturn:
        _fail(path or self.path, line, message)

    def add_group(self, name: str) -> None:
        self.group_vars.setdefault(name, {})
        self.children.setdefault(name, [])
        self.direct.setdefault(name, [])

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
        if name not in self.direct[group]:
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
                    data = _read_vars_file(path)  # ansible_group_priority in a file is a plain var
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
        target[key] = _plain(value)

    def finish(self) -> Inventory:
        parents: dict[str, list[str]] = {g: [] for g in self.children}
        for parent, kids in self.children.items():
            for kid in kids:
                parents[kid].append(parent)
        for group, ups in parents.items():
            if group != "all" and not ups:
                self.children["all"].append(group)
                ups.append("all")
        depth: dict[str, int] = {}
        for group in self.children:
            _depth(group, parents, depth, (), self.error)
        ancestors = {g: _ancestors(g, parents) for g in self.children}
        member_of: dict[str, set[str]] = {h: set() for h in self.host_vars}
        for group, listed in self.direct.items():
            for h in listed:
                member_of[h] |= {group} | ancestors[group]
        for h, mine in member_of.items():  # ansible's reconcile_inventory
            if "ungrouped" in mine and mine - {"all", "ungrouped"}:
                self.direct["ungrouped"].remove(h)
                mine.discard("ungrouped")
            elif mine <= {"all"}:
                self.direct["ungrouped"].append(h)
                mine |= {"all", "ungrouped"}
        order = sorted(self.children, key=lambda g: (depth[g], self.priority.get(g, 1), g))
        hosts: dict[str, HostEntry] = {}
        for h, own in self.host_vars.items():
            ordered = [g for g in order if g in member_of[h] or g == "all"]
            layers = [self.group_vars[g] for g in ordered] + [self.group_file_vars.get(g, {}) for g in ordered]
            merged = _merged(*layers, own, self.host_file_vars.get(h, {}))
            hosts[h] = HostEntry(h, merged, tuple(sorted(member_of[h] - {"all"})))
        groups = {
            g: Group(g, _merged(self.group_vars[g], self.group_file_vars.get(g, {})),
                     tuple(self.direct[g]), tuple(self.children[g]))
            for g in self.children
        }
        return Inventory(self.path, hosts, groups)


def _depth(
    group: str, parents: dict[str, list[str]], memo: dict[str, int], stack: tuple[str, ...],
    error: Callable[[int | None, str], NoReturn],
) -> int:
    """Longest path from ``all`` (ansible's Group.depth); a cycle is an error."""
    if group in stack:
        error(None, f"groups form a loop: {' -> '.join(stack[stack.index(group):] + (group,))}")
    if group not in memo:
        ups = parents[group]
        memo[group] = 1 + max(_depth(p, parents, memo, stack + (group,), error) for p in ups) if ups else 0
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


def _plain(value: Any) -> Any:
    """Strip loader types: mappings become dicts, sequences lists (as Ansible's JSON shows them)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- INI


def _parse_ini(text: str, b: _Builder) -> None:
    """Ansible's INI format: [group], [group:vars], [group:children], hosts before any section."""
    group, state = "ungrouped", "hosts"
    declared = {"all", "ungrouped"}
    pending: dict[str, tuple[int, str]] = {}  # group -> (line, why) until declared
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _INI_SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "vars", "children"):
                b.error(lineno, f"section [{group}:{state}] has unknown type {state!r} (hosts, vars or children)")
            b.add_group(group)
            if state == "vars" and group not in declared:
                pending.setdefault(group, (lineno, f"section [{group}:vars] is for undefined group {group!r}"))
            elif state != "vars":
                declared.add(group)
        elif line.startswith("[") and line.endswith("]"):
            b.error(lineno, "invalid section header: use [group], [group:vars] or [group:children], no spaces")
        elif state == "hosts":
            _ini_hosts(line, lineno, group, b)
        elif state == "vars":
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                b.error(lineno, f"[{group}:vars] expects key=value lines")
            b.set_group_var(group, key.strip(), _ini_value(value.strip()), lineno)
        else:
            cm = _INI_GROUPNAME.match(line)
            if not cm:
                b.error(lineno, f"[{group}:children] expects one group name per line")
            child = cm.group(1)
            b.add_group(child)
            b.add_child(group, child, lineno)
            if child not in declared:
                pending.setdefault(child, (lineno, f"section [{group}:children] includes undefined group {child!r}"))
    for name, (lineno, why) in pending.items():
        if name not in declared:
            b.error(lineno, why)


def _ini_hosts(line: str, lineno: int, group: str, b: _Builder) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        b.error(lineno, "host line has unbalanced quotes")
    if not tokens:
        return
    try:
        names, port = expand_host_pattern(tokens[0])
    except ValueError as exc:
        b.error(lineno, str(exc))
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq:
            b.error(lineno, f"host {tokens[0]!r}: expected key=value variables after the host name")
        variables[key] = _ini_value(value)
    for name in names:
        b.add_host(name, group, port, lineno)
        for key, value in variables.items():
            b.set_host_var(name, key, value, lineno)


def _ini_value(text: str) -> Any:
    """Python literals become values (``2222`` -> int, ``['a']`` -> list), anything else a string."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if value is Ellipsis or isinstance(value, complex):
        return text
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return _plain(value)


# ---------------------------------------------------------------- YAML


class _LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key (for error messages)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml parser, same safe constructors
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            out[key] = loader.construct_object(value_node, deep=True)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain values", key_node.start_mark
            ) from None
        out.lines[key] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, path: Path) -> Any:
    """Parse YAML (or JSON); errors name the file and line but never quote it: it may hold a secret."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        _fail(path, mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        _fail(path, None, f"invalid YAML: {type(exc).__name__}")


def _parse_yaml(text: str, b: _Builder) -> None:
    """Ansible's YAML format: groups with ``vars``, ``children`` and ``hosts`` mappings."""
    data = _load_yaml(text, b.path)
    if not data:
        b.error(None, "inventory is empty")
    if not isinstance(data, _LineDict):
        b.error(1, "a YAML inventory must be a mapping of group names (e.g. 'all:')")
    if "plugin" in data:
        b.error(data.lines["plugin"], "inventory plugin configs are not supported, only static inventories")
    for name, body in data.items():
        _yaml_group(name, body, data.lines[name], b)


def _yaml_group(name: Any, body: Any, line: int, b: _Builder) -> str:
    if not isinstance(name, str) or not name:
        b.error(line, f"group name {name!r} must be a string")
    b.add_group(name)
    if body is None:
        return name
    if not isinstance(body, _LineDict):
        b.error(line, f"group {name!r} must be a mapping with vars, children or hosts")
    for key, section in body.items():
        kline = body.lines[key]
        if key not in ("vars", "children", "hosts"):
            b.error(kline, f"group {name!r}: unexpected key {key!r} (only vars, children and hosts)")
        if isinstance(section, str):  # ansible accepts `hosts: web1` as {web1: None}
            section = _one_key(section, kline)
        if section is None:
            continue
        if not isinstance(section, _LineDict):
            b.error(kline, f"group {name!r}: {key} must be a mapping, not a {type(section).__name__}")
        for item, value in section.items():
            iline = section.lines[item]
            if key == "vars":
                b.set_group_var(name, item, value, iline)
            elif key == "children":
                b.add_child(name, _yaml_group(item, value, iline, b), iline)
            else:
                _yaml_hosts(name, item, value, iline, b)
    return name


def _yaml_hosts(group: str, pattern: Any, host_vars: Any, line: int, b: _Builder) -> None:
    if not isinstance(pattern, str):
        b.error(line, f"host {pattern!r} must be a string (quote numbers)")
    try:
        names, port = expand_host_pattern(pattern)
    except ValueError as exc:
        b.error(line, str(exc))
    if host_vars is None:
        host_vars = _LineDict()
    if not isinstance(host_vars, _LineDict):
        b.error(line, f"host {pattern!r}: vars must be a mapping or empty")
    for host in names:
        b.add_host(host, group, port, line)
        for key, value in host_vars.items():
            b.set_host_var(host, key, value, host_vars.lines.get(key, line))


def _one_key(key: str, line: int) -> _LineDict:
    out = _LineDict()
    out[key] = None
    out.lines[key] = line
    return out
