"""hostprep's own host/group vars, validated before anything reaches a host.

Every setting may be set per host or per group in the inventory:

==============================  ==========================  ==========================================
var                             default                     rule
==============================  ==========================  ==========================================
hostprep_project_dir            /opt/airflow                absolute path, chars ``A-Za-z0-9_./@+-``
hostprep_worker_service         airflow-worker              compose service name
hostprep_services               [worker service]            list or "a,b"; the worker is always added
hostprep_strategy               group-add                   a registered strategy (hostprep.strategies)
hostprep_airflow_uid            50000                       integer 1..2147483647
hostprep_socket_path            /var/run/docker.sock        absolute path
hostprep_bind_dirs              [dags, logs, plugins,       names under the project dir, or
                                config]                     absolute paths
hostprep_compose_file           (autodetect)                file name under the project dir, or path
hostprep_become_password_env    (none: sudo -n)             env var NAME holding the sudo password
hostprep_smoke_dag              (none)                      DAG_ID:TASK_ID (`airflow tasks test`) or DAG_ID (a real run)
hostprep_known_hosts_file       ~/.ssh/known_hosts          known_hosts used to verify host keys
==============================  ==========================  ==========================================

Validating a host's vars as a whole needs the strategy registry: ``hostprep.fleet.validate`` does it
(this module sits below the strategies, which use its types and rules).

Connection vars (``ansible_host``, ``ansible_port``, ``ansible_user`` and their
``ansible_ssh_*`` aliases) are checked too. Errors name the var and the bad
value: these are not secrets, except the become password env var, never shown.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Collection, Mapping, NoReturn

from hostprep.errors import SettingsError
from hostprep.layout import bind_path

DEFAULT_BIND_DIRS = ("dags", "logs", "plugins", "config")
KNOWN_SETTINGS = (
    "hostprep_project_dir", "hostprep_worker_service", "hostprep_services", "hostprep_strategy",
    "hostprep_airflow_uid", "hostprep_socket_path", "hostprep_bind_dirs", "hostprep_compose_file",
    "hostprep_become_password_env", "hostprep_known_hosts_file", "hostprep_smoke_dag",
)
_SMOKE = re.compile(r"[A-Za-z0-9_.-]{1,250}(:[A-Za-z0-9_.-]{1,250})?")
# Ansible resolves these lists left to right; the last one set wins.
_ALIASES = {
    "ansible_host": ("ansible_host", "ansible_ssh_host"),
    "ansible_port": ("ansible_port", "ansible_ssh_port"),
    "ansible_user": ("ansible_user", "ansible_ssh_user"),
    "ansible_private_key_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
}
# Every rule is applied with fullmatch: the whole value, no trailing newline (``$`` would allow one).
_SERVICE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
_PATH = re.compile(r"[A-Za-z0-9_./@+-]{1,4096}")
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}")
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:-]{0,252}")   # an inventory host name
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_DIGITS = re.compile(r"[0-9]{1,10}")
# What OpenSSH 9.6 refuses in a host name / remote user before expanding %h / %r (ssh.c,
# valid_hostname / valid_ruser; CVE-2023-51385), control characters in both (as 10.1 does).
_SHELL_HOST = set("'`\"$\\;&<>|(){}")
_SHELL_USER = set("'`\";&<>|(){}")


@dataclass(frozen=True)
class ConnectionSettings:
    """Validated connection vars; ``address`` None means "use the inventory name", ``port`` None
    means "~/.ssh/config's Port, else 22" (as Ansible's ssh connection does)."""

    address: str | None = None
    port: int | None = None
    user: str | None = None
    key_file: str | None = None

    def __repr__(self) -> str:
        return f"<ConnectionSettings {self.user or '-'}@{self.address or '-'}:{self.port or '-'}>"


@dataclass(frozen=True)
class HostSettings:
    """hostprep's settings for one host, all validated and normalized."""

    project_dir: str = "/opt/airflow"
    worker_service: str = "airflow-worker"
    services: tuple[str, ...] = ("airflow-worker",)
    strategy: str = "group-add"
    airflow_uid: int = 50000
    socket_path: str = "/var/run/docker.sock"
    bind_dirs: tuple[str, ...] = DEFAULT_BIND_DIRS
    compose_file: str | None = None
    become_password_env: str | None = None
    smoke_dag: str | None = None
    options: tuple[tuple[str, Any], ...] = ()   # the strategy's own settings, validated by it

    @classmethod
    def from_vars(cls, vars: Mapping[str, Any], strategies: Collection[str],
                  strategy_settings: Collection[str] = ()) -> "HostSettings":
        """Validate a host's merged vars (connection vars too); unset settings take defaults.

        ``strategies`` are the names registered, ``strategy_settings`` their own vars (see ``hostprep.fleet.validate``).
        """
        _refuse_unknown(vars, (*KNOWN_SETTINGS, *strategy_settings))
        connection_settings(vars)
        worker = _service("hostprep_worker_service", vars.get("hostprep_worker_service", cls.worker_service))
        listed = _names("hostprep_services", vars.get("hostprep_services", [worker]))
        services = tuple(_service("hostprep_services", s) for s in listed)
        strategy = vars.get("hostprep_strategy", cls.strategy)
        if strategy not in strategies:
            _fail("hostprep_strategy", strategy, f"must be one of {', '.join(strategies)}")
        bind = _names("hostprep_bind_dirs", vars.get("hostprep_bind_dirs", list(DEFAULT_BIND_DIRS)))
        compose = vars.get("hostprep_compose_file")
        return cls(
            project_dir=_path("hostprep_project_dir", vars.get("hostprep_project_dir", cls.project_dir), absolute=True),
            worker_service=worker,
            services=_unique(services if worker in services else services + (worker,)),
            strategy=strategy,
            airflow_uid=_int("hostprep_airflow_uid", vars.get("hostprep_airflow_uid", cls.airflow_uid), 1, 2147483647),
            socket_path=_path("hostprep_socket_path", vars.get("hostprep_socket_path", cls.socket_path), absolute=True),
            bind_dirs=_unique(tuple(_path("hostprep_bind_dirs", d, absolute=False) for d in bind)),
            compose_file=None if compose is None else _path("hostprep_compose_file", compose, absolute=False),
            become_password_env=_env_name(vars.get("hostprep_become_password_env")),
            smoke_dag=smoke_dag(vars.get("hostprep_smoke_dag")),
        )

    @property
    def bind_paths(self) -> tuple[str, ...]:
        """Bind dirs as absolute paths (relative ones sit under the project dir)."""
        return tuple(bind_path(self.project_dir, d) for d in self.bind_dirs)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (tuples as lists)."""
        return {
            "project_dir": self.project_dir, "worker_service": self.worker_service,
            "services": list(self.services), "strategy": self.strategy, "airflow_uid": self.airflow_uid,
            "socket_path": self.socket_path, "bind_dirs": list(self.bind_dirs),
            "compose_file": self.compose_file, "become_password_env": self.become_password_env,
            "smoke_dag": self.smoke_dag, **({"options": dict(self.options)} if self.options else {}),
        }

    def __repr__(self) -> str:
        return f"<HostSettings {self.strategy} {self.project_dir} worker={self.worker_service} uid={self.airflow_uid}>"


def smoke_dag(value: Any) -> str | None:
    """``DAG_ID:TASK_ID`` (one task, ``airflow tasks test``) or ``DAG_ID`` (a real triggered run); None: not set."""
    if value is None or value == "":
        return None
    return _checked("hostprep_smoke_dag", value, _SMOKE, "must be DAG_ID or DAG_ID:TASK_ID (letters, digits, _ . -)")


def host_name(name: Any) -> str:
    """An inventory host name hostprep will use: in SSH addresses, ``%h``, controller paths.

    Letters, digits and ``_ . : -`` (IPv6 too), not starting with ``-`` or ``.``, no ``..``:
    no shell metacharacter, control character, space or ``/``.

    >>> host_name("web-01.example.com")
    'web-01.example.com'
    >>> host_name("$(touch /tmp/x)")
    Traceback (most recent call last):
    ...
    hostprep.errors.SettingsError: host name '$(touch /tmp/x)': only letters, digits and _ . : - (no shell characters, spaces, '/' or '..')
    """
    if not valid_host_name(name):
        raise SettingsError(f"host name {_show(name)}: only letters, digits and _ . : - "
                            "(no shell characters, spaces, '/' or '..')")
    return name


def valid_host_name(name: Any) -> bool:
    """The one host-name rule (static and dynamic inventories alike), full-match."""
    return isinstance(name, str) and bool(_HOST_NAME.fullmatch(name)) and ".." not in name


def proxy_safe(host: str | None, user: str | None) -> str | None:
    """Why ``host``/``user`` must not be expanded into a ProxyCommand (OpenSSH 9.6's rule), or None.

    >>> proxy_safe("db;touch x", None)
    "host name 'db;touch x' has a shell metacharacter, space or control character"
    >>> proxy_safe("db.internal", "ubuntu") is None
    True
    """
    if host is not None and (host.startswith("-") or any(c in _SHELL_HOST or c.isspace() or not c.isprintable()
                                                         for c in host)):
        return f"host name {_show(host)} has a shell metacharacter, space or control character"
    if user is not None and (user.startswith("-") or user.endswith("\\") or re.search(r"\s-", user)
                             or any(c in _SHELL_USER or not c.isprintable() for c in user)):
        return f"user {_show(user)} has a shell metacharacter or control character"
    return None


def connection_settings(vars: Mapping[str, Any], host: str | None = None) -> ConnectionSettings:
    """Validate the connection vars that are present; ``host`` prefixes error messages."""
    try:
        address, port, user, key = (_last_set(vars, names) for names in _ALIASES.values())
        return ConnectionSettings(
            address=None if address is None else _checked(*address, _HOST, "must be a host name or IP address"),
            port=None if port is None else _int(*port, 1, 65535),
            user=None if user is None else _checked(*user, _USER, "must be a Linux user name like 'ubuntu'"),
            key_file=None if key is None else _key_file(*key),
        )
    except SettingsError as exc:
        if host is None:
            raise
        raise SettingsError(f"{host}: {exc}") from None


def _key_file(var: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(var, value, "must be a path to a private key file")
    return value


def _last_set(vars: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    found = [(n, vars[n]) for n in names if vars.get(n) is not None]
    return found[-1] if found else None


def _checked(var: str, value: Any, rule: re.Pattern[str], why: str) -> str:
    if not isinstance(value, str) or not rule.fullmatch(value) or value.startswith("-"):
        _fail(var, value, why)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(var: str, value: Any, why: str) -> NoReturn:
    raise SettingsError(f"{var}={_show(value)}: {why}")


def _refuse_unknown(vars: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in vars:
        if isinstance(key, str) and key.startswith("hostprep_") and key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(known)}"
            raise SettingsError(f"{key}: unknown hostprep setting{hint}")


def _service(var: str, value: Any) -> str:
    return _checked(var, value, _SERVICE, "must be a compose service name (letters, digits, _ . -)")


def _names(var: str, value: Any) -> list[Any]:
    """A list, or a comma-separated string, of non-empty items."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        _fail(var, value, "must be a list or a comma-separated string")
    if not items:
        _fail(var, value, "must not be empty")
    return items


def _path(var: str, value: Any, *, absolute: bool) -> str:
    """Normalized path: safe characters only, no '..', no component starting with '-'."""
    if not isinstance(value, str) or not value:
        _fail(var, value, "must be a non-empty path")
    if not _PATH.fullmatch(value):
        _fail(var, value, "may only contain letters, digits and _ . / @ + -")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        _fail(var, value, "must not contain '..'")
    if any(p.startswith("-") for p in parts):
        _fail(var, value, "path parts must not start with '-'")
    if absolute and not value.startswith("/"):
        _fail(var, value, "must be an absolute path")
    if not parts:
        _fail(var, value, "must name something below /" if value.startswith("/") else "must name a folder or file")
    return ("/" if value.startswith("/") else "") + "/".join(parts)


def _int(var: str, value: Any, low: int, high: int) -> int:
    """An int, or a string of ASCII digits (no sign, space, newline or '²'), within low..high."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        _fail(var, value, f"must be an integer {low}..{high}")
    if not low <= number <= high:
        _fail(var, value, f"must be between {low} and {high}")
    return number


def _env_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not _ENV_NAME.fullmatch(value)):
        raise SettingsError("hostprep_become_password_env must be an environment variable name (value not shown)")
    return value


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
