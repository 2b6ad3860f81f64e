"""Reading Ansible inventory files: INI and YAML syntax, host ranges, vars files (pure).

The parsers feed an :class:`InventorySink` (the inventory builder) and know nothing of
variable precedence; errors name the file and line but never quote a value.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import string
from pathlib import Path
from typing import Any, NoReturn, Protocol

import yaml

from hostprep.inventory import yaml_limits
from hostprep.errors import InventoryError

_HOSTPORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]{1,5})")   # fullmatch
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
_SHLEX_CHARS = frozenset("\"'\\#")


class InventorySink(Protocol):
    """What the parsers call while reading a file (the inventory builder implements it)."""

    path: Path

    def error(self, line: int | None, message: str, path: Path | None = None) -> NoReturn: ...

    def add_group(self, name: str) -> None: ...

    def add_child(self, parent: str, child: str, line: int | None) -> None: ...

    def add_host(self, name: str, group: str, port: int | None, line: int | None) -> None: ...

    def set_group_var(self, group: str, key: Any, value: Any, line: int | None) -> None: ...

    def set_host_var(self, host: str, key: Any, value: Any, line: int | None) -> None: ...


def vars_files(folder: Path, name: str) -> list[Path]:
    """The files holding ``name``'s vars in a group_vars/host_vars folder, in load order.

    As Ansible's ``find_vars_files``: the first of ``name``, ``name.yml``, ``name.yaml``,
    ``name.json`` that exists wins; a directory gives every vars file beneath it, sorted.
    """
    if name.startswith(os.sep):  # ansible skips chroot-style names
        return []
    for candidate in (folder / (name + ext) for ext in ("", *YAML_SUFFIXES)):
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
        elif path.is_file() and ext in ("", *YAML_SUFFIXES):
            found.append(path)
    return found


def read_vars_file(path: Path) -> LineDict:
    """One vars file as a mapping; like Ansible, an empty (or falsy) document means no vars."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(path, None, f"cannot read vars file: {getattr(exc, 'strerror', None) or exc}")
    if text.startswith("$ANSIBLE_VAULT;"):
        fail(path, 1, "vault-encrypted vars files are not supported; use an env lookup for secrets")
    data = load_yaml(text, path)
    if not data:
        return LineDict()
    if not isinstance(data, LineDict):
        fail(path, 1, f"a vars file must be a mapping of variable names, not a {type(data).__name__}")
    return data


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """``web[01:03]:2222`` -> (["web01", "web02", "web03"], 2222), as Ansible expands them."""
    port: int | None = None
    m = _HOSTPORT.fullmatch(pattern) if ":" in pattern else None
    if m:
        pattern, port = m.group(1), int(m.group(2))
    if not pattern.strip():
        raise ValueError("empty host name")
    if pattern.strip().endswith(":"):
        raise ValueError(f"host {pattern!r} ends in ':' (reserved for a port)")
    return _expand_ranges(pattern), port


MAX_RANGE_HOSTS = 100_000   # hosts one pattern may expand to (h[1:1000000000] is refused at once)
_BOUND = re.compile(r"[0-9]{1,10}|[A-Za-z]")


def _expand_ranges(name: str) -> list[str]:
    """Every name ``name``'s ``[a:b(:step)]`` ranges give, refused before building past MAX_RANGE_HOSTS."""
    if "[" not in name:
        return [name]
    parts: list[list[str]] = []   # literal text and ranges, alternating
    rest, total = name, 1
    while "[" in rest:
        head, _, rest = rest.partition("[")
        body, close, rest = rest.partition("]")
        if not close:
            raise ValueError(f"host range in {name!r} has no closing ']'")
        seq = _range_items(body)
        total *= len(seq)
        if total > MAX_RANGE_HOSTS:
            raise ValueError(f"host pattern {name[:80]!r} expands to more than {MAX_RANGE_HOSTS} hosts")
        parts += [[head], seq]
    parts.append([rest])
    out = [""]
    for choices in parts:
        out = [done + c for done in out for c in choices]
    return out


def _range_items(body: str) -> list[str]:
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{body[:40]}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    if not end or not _BOUND.fullmatch(beg) or not _BOUND.fullmatch(end) or \
            (len(bounds) == 3 and not re.fullmatch(r"[1-9][0-9]{0,8}", bounds[2])):
        raise ValueError(f"host range [{body[:40]}] needs begin and end (up to 10 digits, or one letter) "
                         "and a positive step")
    step = int(bounds[2]) if len(bounds) == 3 else 1
    if beg.isalpha() != end.isalpha():
        raise ValueError(f"host range [{body[:40]}] must be numeric (01:10) or letters (a:f)")
    if beg.isalpha():
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            raise ValueError(f"host range [{body}] must have begin <= end")
        return list(string.ascii_letters[i : j + 1 : step])
    width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
    if width and width != len(end):
        raise ValueError(f"host range [{body}] must use equal-length begin and end")
    numbers = range(int(beg), int(end) + 1, step)
    if len(numbers) > MAX_RANGE_HOSTS:
        raise ValueError(f"host range [{body}] expands to more than {MAX_RANGE_HOSTS} hosts")
    return [str(n).zfill(width) for n in numbers]


def fail(path: Path, line: int | None, message: str) -> NoReturn:
    raise InventoryError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def plain(value: Any) -> Any:
    """Strip loader types: mappings become dicts, sequences lists (as Ansible's JSON shows them)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


# ---------------------------------------------------------------- INI


def parse_ini(text: str, b: InventorySink) -> None:
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


def _ini_hosts(line: str, lineno: int, group: str, b: InventorySink) -> None:
    try:   # no quote, escape or comment: shlex would split at whitespace too (and is ~40x slower)
        tokens = line.split() if not _SHLEX_CHARS.intersection(line) else shlex.split(line, comments=True)
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
    return plain(value)


# ---------------------------------------------------------------- YAML


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key (for error messages)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml parser, same safe constructors
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
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


def load_yaml(text: str, path: Path) -> Any:
    """Parse YAML (or JSON); errors name the file and line but never quote it: it may hold a secret.

    Alias bombs and deep nesting are refused (:mod:`hostprep.inventory.yaml_limits`).
    """
    try:
        return yaml_limits.load(text, _LineLoader)
    except yaml_limits.YamlLimit as exc:
        fail(path, None, str(exc))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        fail(path, mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        fail(path, None, f"invalid YAML: {type(exc).__name__}")


def parse_yaml(text: str, b: InventorySink) -> None:
    """Ansible's YAML format: groups with ``vars``, ``children`` and ``hosts`` mappings."""
    data = load_yaml(text, b.path)
    if not data:
        b.error(None, "inventory is empty")
    if not isinstance(data, LineDict):
        b.error(1, "a YAML inventory must be a mapping of group names (e.g. 'all:')")
    if "plugin" in data:
        b.error(data.lines["plugin"], "inventory plugin configs are not supported, only static inventories")
    for name, body in data.items():
        _yaml_group(name, body, data.lines[name], b)


def _yaml_group(name: Any, body: Any, line: int, b: InventorySink) -> str:
    if not isinstance(name, str) or not name:
        b.error(line, f"group name {name!r} must be a string")
    b.add_group(name)
    if body is None:
        return name
    if not isinstance(body, LineDict):
        b.error(line, f"group {name!r} must be a mapping with vars, children or hosts")
    for key, section in body.items():
        kline = body.lines[key]
        if key not in ("vars", "children", "hosts"):
            b.error(kline, f"group {name!r}: unexpected key {key!r} (only vars, children and hosts)")
        if isinstance(section, str):  # ansible accepts `hosts: web1` as {web1: None}
            section = _one_key(section, kline)
        if section is None:
            continue
        if not isinstance(section, LineDict):
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


def _yaml_hosts(group: str, pattern: Any, host_vars: Any, line: int, b: InventorySink) -> None:
    if not isinstance(pattern, str):
        b.error(line, f"host {pattern!r} must be a string (quote numbers)")
    try:
        names, port = expand_host_pattern(pattern)
    except ValueError as exc:
        b.error(line, str(exc))
    if host_vars is None:
        host_vars = LineDict()
    if not isinstance(host_vars, LineDict):
        b.error(line, f"host {pattern!r}: vars must be a mapping or empty")
    for host in names:
        b.add_host(host, group, port, line)
        for key, value in host_vars.items():
            b.set_host_var(host, key, value, host_vars.lines.get(key, line))


def _one_key(key: str, line: int) -> LineDict:
    out = LineDict()
    out[key] = None
    out.lines[key] = line
    return out
