"""Pure helpers for Compose projects: .env, interpolation, services, hostprep's override file."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import yaml

from hostprep.inventory import yaml_limits
from hostprep.hostdata import lines, lines_kept

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~9x faster, same safe subset
MANAGED_MARK = "Managed by hostprep"


def parse_env(text: str | None) -> dict[str, str]:
    """Parse a Compose ``.env`` file (KEY=VALUE, comments, optional quotes), split at ``"\\n"`` only as
    Compose does: a value holding ``\\x85`` or ``\\u2028`` is one value, not a second line."""
    out: dict[str, str] = {}
    for line in lines(text):
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip().removeprefix("export ").strip()] = value
    return out


_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-style ``${VAR:-default}`` / ``${VAR-default}`` / ``$VAR`` interpolation."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        current = env.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        return current or ""

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


class ComposeError(ValueError):
    """A compose file hostprep cannot use; the message names the file."""


def same_document(before: str | None, after: str | None, name: str = "compose file") -> bool:
    r"""True when two compose texts differ only in what Compose never reads (comments, layout, key order):
    their parsed YAML is equal. A text that does not parse is never "the same".

    >>> same_document("# old words\nservices: {w: {group_add: ['999']}}\n", "# new\nservices:\n  w:\n    group_add: ['999']\n")
    True
    >>> same_document("services: {w: {group_add: ['999']}}", "services: {w: {group_add: ['121']}}")
    False
    """
    if before is None or after is None:
        return before is after
    try:
        return load_compose(before, name) == load_compose(after, name)
    except ComposeError:
        return False


def load_compose(text: str | None, name: str = "compose file") -> dict[str, Any]:
    """Parse a compose file (anchors and merge keys resolved); {} when absent or empty.

    Invalid YAML, bytes that are not UTF-8, an alias bomb, a top level that is not a mapping
    or ``services`` that is not one: :class:`ComposeError` naming ``name``.
    """
    if not text:
        return {}
    try:
        data = yaml_limits.load(text, _SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ComposeError(f"{name}: invalid YAML{f' at line {mark.line + 1}' if mark else ''}: "
                           f"{exc.problem or exc.context}") from None
    except (yaml.YAMLError, yaml_limits.YamlLimit) as exc:
        raise ComposeError(f"{name}: {exc or type(exc).__name__}") from None
    except UnicodeError:
        raise ComposeError(f"{name}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ComposeError(f"{name}: the top level must be a mapping, not a {type(data).__name__}")
    if data.get("services") is not None and not isinstance(data["services"], dict):
        raise ComposeError(f"{name}: services must be a mapping of service names")
    return data


def service(compose: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    svc = (compose.get("services") or {}).get(name)
    return svc if isinstance(svc, dict) else None


def service_user(compose: Mapping[str, Any], name: str, env: Mapping[str, str]) -> str | None:
    """The interpolated ``user:`` of a service, e.g. ``"50000:0"``."""
    svc = service(compose, name)
    if not svc or svc.get("user") is None:
        return None
    return interpolate(str(svc["user"]), env)


def split_user(raw: str) -> tuple[str, str | None]:
    """Split a raw ``user:`` value at the ``:`` outside ``${...}``.

    >>> split_user("${AIRFLOW_UID:-50000}:0")
    ('${AIRFLOW_UID:-50000}', '0')
    """
    depth = 0
    for i, ch in enumerate(raw):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return raw[:i], raw[i + 1:]
    return raw, None


def primary_group_is_root(user: str | None) -> bool:
    """True unless ``user:`` names a primary group other than 0/root."""
    if not user or ":" not in user:
        return True
    return user.split(":", 1)[1] in ("0", "root")


def build_context(compose: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """(context, dockerfile) of a service that builds, else None."""
    svc = service(compose, name)
    if not svc or "build" not in svc:
        return None
    build = svc["build"]
    if isinstance(build, str):
        return build, "Dockerfile"
    if isinstance(build, dict):
        return str(build.get("context", ".")), str(build.get("dockerfile", "Dockerfile"))
    return None


def compose_file_value(env_text: str | None, base: str, extra: list[str], override: str) -> str:
    """The COMPOSE_FILE value that keeps the operator's chain and appends hostprep's override."""
    current = parse_env(env_text).get("COMPOSE_FILE")
    chain = current.split(":") if current else [base, *extra]
    if override not in chain:
        chain.append(override)
    return ":".join(chain)


ENV_COMMENT = "# Added by hostprep: loads hostprep's override on every `compose` run.\n"


def set_env_var(text: str | None, key: str, value: str) -> str:
    """Set KEY=value in a .env text, preserving every other line and comment (lines end at ``"\\n"`` only)."""
    lines = lines_kept(text)
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(key)}\s*=")
    for i, line in enumerate(lines):
        if pattern.match(line):
            lines[i] = f"{key}={value}\n"
            return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if not lines or lines[-1] != ENV_COMMENT:   # the owner removed the line but kept our comment: no second one
        lines.append(ENV_COMMENT)
    lines.append(f"{key}={value}\n")
    return "".join(lines)


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with multi-line strings as literal blocks (a config handed over in a variable stays readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    block = "\n" in value and not any(line != line.rstrip() or "\x85" in line or "\u2028" in line or "\u2029" in line
                                       for line in lines(value))   # YAML reads those as line breaks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if block else None)


_Dumper.add_representer(str, _str)


def render_override(services: dict[str, dict[str, Any]], strategy: str, gid: int | None = None,
                    notes: Sequence[str] = (), top: Mapping[str, Any] | None = None) -> str:
    """hostprep's own Compose override file, deterministic for a given input.

    ``gid``: the docker GID the override maps (explained in the header); ``notes``: more header lines;
    ``top``: top-level keys beside ``services`` (e.g. ``networks``).
    """
    head = [
        f"# {MANAGED_MARK} (strategy {strategy}). Do not edit: `hostprep rollback` removes this file.",
    ]
    if gid is not None:
        head.append(f"# Adds the host's docker group (GID {gid}) as a supplementary group; the primary")
        head.append("# group stays 0, as the Airflow image requires.")
    head += [f"# {line}" for line in notes]
    body = yaml.dump({**(top or {}), "services": services}, Dumper=_Dumper, sort_keys=True, default_flow_style=False)
    return "\n".join(head) + "\n" + body
