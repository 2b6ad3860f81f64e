"""Facts: one remote exec gathers them (probe.sh), one pure function parses them.

``parse_probe(text)`` is tested on captured real output without a host;
``gather(transport, settings)`` is the only function here that does I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Any

from hostprep import compose, guard_checks
from hostprep.host_lock import HostLock, parse_lock
from hostprep.containers import ContainerFacts, ContainersMalformed, parse_containers
from hostprep.posture_facts import DaemonFacts, DagLine, PostureMalformed, parse_daemon, parse_dags
from hostprep.journal import RUN_ID, Run, parse_runs
from hostprep.layout import COMPOSE_FILES, OVERRIDE_FILE, STATE_DIR, bind_path
from hostprep.settings import HostSettings
from hostprep.socket_unit import DOCKERD, SYSTEMD, SocketUnit, dockerd_group, manager, parse_show
from hostprep.transport import Transport

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILE", "PROBED_FILES", "STATE_DIR", "DirFacts", "Facts", "FileFacts",
           "ProbeFailed", "SocketFacts", "SocketUnit", "WorkerFacts", "gather", "parse_probe", "probe_env", "probe_script"]

PROBED_FILES = COMPOSE_FILES + (".env", "Dockerfile", "docker-compose.override.yml", OVERRIDE_FILE)


def to_bytes(text: str | None) -> bytes:
    """A file's exact bytes from its text (non-UTF-8 bytes survive as surrogates)."""
    return (text or "").encode("utf-8", "surrogateescape")


def from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class FileFacts:
    """A file in the Compose project: exists, mode/owner, content and its sha256."""

    name: str
    exists: bool
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    content: str | None = None
    unsafe: str | None = None   # why hostprep will not touch it (a symlink, not a regular file, ...)

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(to_bytes(self.content)).hexdigest() if self.content is not None else None


@dataclass(frozen=True)
class SocketFacts:
    path: str
    exists: bool
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    owner: str | None = None
    group: str | None = None
    has_acl: bool = False

    @property
    def world_writable(self) -> bool:
        return self.mode is not None and bool(self.mode & 0o002)


@dataclass(frozen=True)
class DirFacts:
    name: str
    exists: bool
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    unsafe: str | None = None   # why hostprep will not touch it (a symlink, under one, not a directory)


@dataclass(frozen=True)
class WorkerFacts:
    """The worker container, seen from the host (inspect, /proc) and, if deep, from inside."""

    found: bool
    name: str | None = None
    state: str | None = None
    pid: int | None = None
    image: str | None = None
    image_id: str | None = None
    user: str | None = None
    group_add: tuple[str, ...] = ()
    compose_project: str | None = None
    proc_uid: int | None = None
    proc_gid: int | None = None
    proc_groups: tuple[int, ...] = ()
    id_output: str | None = None
    docker_ps_rc: int | None = None
    docker_ps_output: str | None = None
    docker_check_method: str | None = None
    has_airflow: bool | None = None
    denied: tuple[tuple[str, str], ...] = ()   # (API area, "403" or "not-refused") asked through a proxy

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def user_group(self) -> str | None:
        """The group part of the configured ``user:`` (None when not set)."""
        if not self.user or ":" not in self.user:
            return None
        return self.user.split(":", 1)[1]


@dataclass(frozen=True)
class Facts:
    """Everything hostprep knows about one host at one moment."""

    host: str
    os: str | None
    docker_gid: int | None
    socket: SocketFacts
    dockerd_running: bool
    docker_version: str | None
    compose_flavour: str | None
    compose_version: str | None
    project_dir: str
    project_exists: bool
    files: dict[str, FileFacts]
    bind_dirs: tuple[DirFacts, ...]
    worker: WorkerFacts
    record: dict[str, Any] | None
    deep: bool = True
    compose_file_name: str | None = None
    project_unsafe: str | None = None
    lock: HostLock | None = None     # the host lock, when one is held (stale when its holder is gone)
    runs: tuple[Run, ...] = ()       # the last runs in the host's journal, oldest first
    latest_snapshot: str | None = None
    containers: tuple[ContainerFacts, ...] = ()   # the project's, and any other mounting the socket
    docker_url: str | None = None                 # the DOCKER_HOST the in-worker checks were given
    daemon: DaemonFacts = DaemonFacts()           # how dockerd listens (TCP, TLS)
    dags: tuple[DagLine, ...] = ()                # DAG lines setting Docker options
    guard_checks: str | None = None               # probe.sh's worker_guard section (socket-proxy's guard)

    def service_containers(self, service: str) -> list[ContainerFacts]:
        """The project's containers of one Compose service (running ones first)."""
        found = [c for c in self.containers if c.service == service and c.project == self.worker.compose_project]
        return sorted(found, key=lambda c: not c.running)
    socket_unit: SocketUnit | None = None   # docker.socket, where systemd has one loaded
    dockerd_argv: tuple[str, ...] = ()      # the running dockerd's command line

    @property
    def socket_manager(self) -> str | None:
        """Who makes the socket: ``"systemd"`` (docker.socket), ``"dockerd"`` (itself), None (can't tell)."""
        return manager(self.socket_unit, list(self.dockerd_argv), self.socket.path)

    @property
    def next_socket_gid(self) -> int | None:
        """The socket's GID once it is made again (reboot; docker.socket or self-made dockerd restart)."""
        by = self.socket_manager
        if by == SYSTEMD and self.socket_unit is not None:
            return self.socket_unit.group_gid if self.socket_unit.group else 0
        if by == DOCKERD:
            return self.docker_gid if dockerd_group(list(self.dockerd_argv)) == "docker" else None
        return self.docker_gid

    @property
    def access_gid(self) -> int | None:
        """The GID that opens the socket now, the one the worker must get.

        After ``groupmod`` a systemd-made socket keeps the old number until it is made again: a socket
        whose group class may read and write it, owned by a GID that names no group (or the docker group),
        is opened by that GID. A socket given to another named group (``chgrp adm``) is not: hostprep never
        hands the worker some other group; it maps /etc/group's docker GID (and verification says it fails).
        """
        s = self.socket
        orphan = s.group in (None, "UNKNOWN", "docker") or (s.group or "").isdigit()
        if s.exists and s.gid and orphan and s.mode is not None and s.mode & 0o060 == 0o060:
            return s.gid
        return self.docker_gid

    @property
    def unsafe_paths(self) -> list[str]:
        """Why paths hostprep would read or change are refused (planted links and the like)."""
        out = [self.project_unsafe] if self.project_unsafe else []
        out += [f.unsafe for f in self.files.values() if f.unsafe]
        return out + [d.unsafe for d in self.bind_dirs if d.unsafe]

    @property
    def compose_file(self) -> FileFacts | None:
        """The configured compose file, else the first of Compose's default names that exists."""
        names = (self.compose_file_name,) if self.compose_file_name else COMPOSE_FILES
        return next((self.files[n] for n in names if n in self.files and self.files[n].exists), None)

    @functools.cached_property
    def compose_data(self) -> dict[str, Any]:
        """The compose file, parsed once per facts (anchors and merge keys resolved; {} if absent)."""
        cf = self.compose_file
        return compose.load_compose(cf.content if cf else None, cf.name if cf else "compose file")

    @functools.cached_property
    def env(self) -> dict[str, str]:
        """The project's .env, parsed once per facts."""
        f = self.files.get(".env")
        return compose.parse_env(f.content if f else None)

    @property
    def compose_cmd(self) -> list[str]:
        return ["docker", "compose"] if self.compose_flavour == "v2" else ["docker-compose"]

    @property
    def worker_reaches_docker(self) -> bool | None:
        """Deep check result (None when not probed)."""
        return None if self.worker.docker_ps_rc is None else self.worker.docker_ps_rc == 0

    def to_dict(self, *, contents: bool = False) -> dict[str, Any]:
        """JSON-ready facts; file contents replaced by their hash unless asked for, and DAG lines by where
        they are (a DAG line may hold a credential; the posture findings show only what matched)."""
        data = asdict(self)
        for name, f in self.files.items():
            data["files"][name]["sha256"] = f.sha256
            if not contents:
                data["files"][name].pop("content")
        data["dags"] = [{"file": d.file, "line": d.line} for d in self.dags]
        return data

    def __repr__(self) -> str:
        return f"<Facts {self.host} docker_gid={self.docker_gid} socket={oct(self.socket.mode or 0)} worker={self.worker.state}>"


class ProbeFailed(Exception):
    """The probe script failed (e.g. sudo refused), or its output is missing or malformed."""


# Sections every complete probe prints (files, bind dirs and the worker's come on top).
REQUIRED_SECTIONS = ("os", "docker_group", "socket", "dockerd", "compose", "docker_version", "project",
                     "bind_dirs", "record")
_DIGITS = re.compile(r"[0-9]{1,10}")
_MARK = "@@hostprep:"
DAG_PREFIX = "dag: "   # the DAG folder's lines, inside the bind_dirs section (a folder label has no ':')


def sections(text: str) -> dict[str, str]:
    """Split probe output into ``{key: body}`` at ``@@hostprep:<key>`` markers.

    A key seen twice is malformed output (the probe prints each once; the worker's
    output is encoded and cannot open one): :class:`ProbeFailed`.
    """
    out: dict[str, str] = {}
    key: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(_MARK):
            if key is not None:
                out[key] = "\n".join(lines).strip("\n")
            key, lines = line[len(_MARK):].strip(), []
            if key in out:
                raise ProbeFailed(f"probe output has section {key[:60]!r} twice")
        elif key is not None:
            lines.append(line)
    if key is not None:
        out[key] = "\n".join(lines).strip("\n")
    return out


def _int(v: str | None) -> int | None:
    """A non-negative decimal of ASCII digits (at most 10), else None.

    >>> [_int(x) for x in ("998", " 7 ", "\u00b2", "-1", "1" * 11, None)]
    [998, 7, None, None, None, None]
    """
    v = (v or "").strip()
    return int(v) if _DIGITS.fullmatch(v) else None


_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")   # what dockerd allows in a name


def _container_name(v: object) -> str:
    """The worker container's name, as dockerd allows it: it goes on a ``docker exec`` command line, where a
    name such as ``--privileged`` would be an option. Anything else is :class:`ProbeFailed`.

    >>> _container_name("/airflow-airflow-worker-1")
    'airflow-airflow-worker-1'
    """
    name = str(v or "").removeprefix("/")
    if not _CONTAINER_NAME.fullmatch(name):
        raise ProbeFailed(f"malformed worker container name in probe output: {name[:40]!r}")
    return name


def _need(v: str | None, what: str) -> int:
    """Like :func:`_int`, for a field the probe always prints: malformed is :class:`ProbeFailed`."""
    n = _int(v)
    if n is None:
        raise ProbeFailed(f"malformed {what} in probe output: {str(v)[:40]!r}")
    return n


def _octal(v: str, what: str) -> int:
    if not re.fullmatch(r"[0-7]{1,6}", v):
        raise ProbeFailed(f"malformed {what} in probe output: {v[:40]!r}")
    return int(v, 8)


def parse_socket(path: str, body: str) -> SocketFacts:
    lines = body.splitlines()
    if not lines or not lines[0].strip():
        return SocketFacts(path=path, exists=False)
    fields = lines[0].split()
    if len(fields) < 5 or not re.fullmatch(r"[0-9a-f]{1,8}", fields[0]):
        raise ProbeFailed(f"malformed socket line in probe output: {lines[0][:80]!r}")
    perms = lines[1].strip() if len(lines) > 1 else ""
    return SocketFacts(path=path, exists=True, mode=int(fields[0], 16) & 0o7777, uid=_need(fields[1], "socket uid"),
                       gid=_need(fields[2], "socket gid"), owner=fields[3], group=fields[4],
                       has_acl=perms.endswith("+"))


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ProbeFailed(f"malformed base64 in probe output ({what})") from None


def parse_file(name: str, body: str) -> FileFacts:
    lines = body.splitlines()
    if not lines:
        return FileFacts(name=name, exists=False)
    if lines[0].startswith("unsafe "):
        return FileFacts(name=name, exists=True, unsafe=lines[0][len("unsafe "):].strip())
    fields = lines[0].split()
    if len(fields) != 4 or len(lines) > 2:
        raise ProbeFailed(f"truncated file section {name!r} in probe output")
    content = _b64(lines[1] if len(lines) == 2 else "", name)
    if _int(fields[3]) != len(content):
        raise ProbeFailed(f"file {name!r}: probe read {len(content)} bytes, stat said {fields[3][:20]}")
    return FileFacts(name=name, exists=True, mode=_octal(fields[0], f"{name} mode"), uid=_need(fields[1], f"{name} uid"),
                     gid=_need(fields[2], f"{name} gid"), content=from_bytes(content))


def parse_bind_dirs(body: str) -> tuple[DirFacts, ...]:
    """The bind folders' lines (the DAG folder's ``dag: `` lines are :func:`parse_dags`')."""
    out = []
    for line in body.splitlines():
        if line.startswith(DAG_PREFIX):
            continue
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "unsafe":
            out.append(DirFacts(name=parts[0], exists=True, unsafe=line.split(None, 2)[2].strip()))
        elif len(parts) == 2 and parts[1] == "missing":
            out.append(DirFacts(name=parts[0], exists=False))
        elif len(parts) == 4:
            out.append(DirFacts(name=parts[0], exists=True, uid=_need(parts[1], "bind dir uid"),
                                gid=_need(parts[2], "bind dir gid"), mode=_octal(parts[3], "bind dir mode")))
        elif line.strip():
            raise ProbeFailed(f"malformed bind dir line in probe output: {line[:80]!r}")
    return tuple(out)


def _state_name(state: dict[str, Any]) -> str:
    """docker inspect's State.Status, from dockerd's stored State."""
    for flag, name in (("Running", "running"), ("Paused", "paused"), ("Restarting", "restarting"), ("Dead", "dead")):
        if state.get(flag):
            return "restarting" if flag == "Running" and state.get("Restarting") else name
    return "created" if str(state.get("StartedAt", "")).startswith("0001-") else "exited"


def _proc_ids(text: str) -> dict[str, list[str]]:
    """``Uid: 1 1 1 1 Gid: 0 ... Groups: 0 998`` → {"Uid": [...], ...}."""
    out: dict[str, list[str]] = {}
    key = None
    for tok in text.split():
        if tok.endswith(":"):
            key = tok[:-1]
            out[key] = []
        elif key:
            out[key].append(tok)
    return out


def _json_obj(line: str, what: str) -> dict[str, Any]:
    """A JSON object from a base64 field; {} when empty (the container went away meanwhile)."""
    if not line.strip():
        return {}
    try:
        data = json.loads(_b64(line, what))
    except ValueError:
        raise ProbeFailed(f"malformed {what} JSON in probe output") from None
    if not isinstance(data, dict):
        raise ProbeFailed(f"{what} in probe output is not a JSON object")
    return data


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _groups(ids: dict[str, list[str]]) -> tuple[int, ...]:
    return tuple(n for n in (_int(g) for g in ids.get("Groups", [])) if n is not None)


def parse_worker_files(body: str) -> WorkerFacts:
    """The worker from dockerd's stored config.v2.json/hostconfig.json (the cheap path).

    A container whose config came back empty (removed while the probe read it) is skipped.
    """
    found: list[tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]] = []
    config: dict[str, Any] = {}
    host: dict[str, Any] = {}
    for line in body.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "config":
            config = _json_obj(value, "container config")
        elif kind == "hostconfig":
            host = _json_obj(value, "container hostconfig")
        elif kind == "proc":
            if config:
                found.append((config, host, _proc_ids(value)))
        elif line.strip():
            raise ProbeFailed(f"malformed worker line in probe output: {line[:60]!r}")
    if not found:
        return WorkerFacts(found=False)
    found.sort(key=lambda c: not _dict(c[0].get("State")).get("Running"))
    config, host, ids = found[0]
    state, cfg = _dict(config.get("State")), _dict(config.get("Config"))
    running = bool(state.get("Running"))
    pid = state.get("Pid")
    group_add = host.get("GroupAdd")
    return WorkerFacts(
        found=True, name=_container_name(config.get("Name")), state=_state_name(state),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        image=_str(cfg.get("Image")), image_id=_str(config.get("Image")), user=_str(cfg.get("User")),
        group_add=tuple(str(g) for g in group_add) if isinstance(group_add, list) else (),
        compose_project=_str(_dict(cfg.get("Labels")).get("com.docker.compose.project")),
        proc_uid=_int(ids["Uid"][0]) if running and ids.get("Uid") else None,
        proc_gid=_int(ids["Gid"][0]) if running and ids.get("Gid") else None,
        proc_groups=_groups(ids) if running else (),
    )


def worker_sections(body: str) -> dict[str, str]:
    """The in-worker checks' fields from the probe's ``worker_exec`` section (pure).

    The section is ``<nonce> <docker exec rc>`` then the worker's whole output, base64-encoded.
    Inside, only markers carrying this run's random nonce count: nothing the worker prints can
    pose as a section of the probe, nor as one of its own fields. Without the markers (the exec
    itself failed) both fields get the whole output and the exec's exit code.
    """
    lines = body.splitlines()
    head = lines[0].split() if lines else []
    if len(head) != 2 or not re.fullmatch(r"[0-9a-f]{8,64}", head[0]) or _int(head[1]) is None:
        raise ProbeFailed("malformed worker_exec section in probe output")
    nonce, rc = head
    text = from_bytes(_b64(lines[1] if len(lines) > 1 else "", "worker output"))
    mark = f"@@hostprep-{nonce}:"
    out: dict[str, str] = {}
    key: str | None = None
    kept: list[str] = []
    for line in text.splitlines():
        if line.startswith(mark):
            if key is not None:
                out.setdefault(key, "\n".join(kept).strip("\n"))
            key, kept = line[len(mark):].strip(), []
        elif key is not None:
            kept.append(line)
    if key is not None:
        out.setdefault(key, "\n".join(kept).strip("\n"))
    if "worker_id" not in out or "worker_docker_ps" not in out:
        said = "\n".join(text.strip().splitlines()[-3:])
        return {"worker_id": f"{said}\nrc={rc}", "worker_docker_ps": f"{said}\nrc={rc}"}
    return {k: out[k] for k in ("worker_id", "worker_docker_ps", "worker_denied") if k in out}


def parse_denied(body: str | None) -> tuple[tuple[str, str], ...]:
    """``<area> 403|not-refused`` lines of the in-worker negative checks.

    >>> parse_denied("volumes 403\\nexec not-refused")
    (('volumes', '403'), ('exec', 'not-refused'))
    """
    out = []
    for line in (body or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[a-z]{1,20}", parts[0]) and parts[1] in ("403", "not-refused"):
            out.append((parts[0], parts[1]))
    return tuple(out)


def parse_worker(sec: dict[str, str]) -> WorkerFacts:
    """The worker as the host sees it (stored config or inspect, /proc), plus the in-worker checks if deep."""
    base = parse_worker_files(sec["worker_files"]) if "worker_files" in sec else parse_worker_inspect(sec)
    if not base.found:
        return base
    inner = worker_sections(sec["worker_exec"]) if "worker_exec" in sec else {}
    id_rc, id_out = _body_rc(inner.get("worker_id"))
    has_airflow = None if id_out is None else "airflow=yes" in id_out.splitlines()
    if id_out is not None:
        id_out = "\n".join(ln for ln in id_out.splitlines() if not ln.startswith("airflow=")).strip()
    ps_rc, ps_out = _body_rc(inner.get("worker_docker_ps"))
    method = None
    if ps_out is not None:
        m = re.search(r"^method=(\S+)$", ps_out, re.M)
        method = m.group(1) if m else None
        ps_out = re.sub(r"^method=\S+\n?", "", ps_out, flags=re.M).strip()
    return replace(base, id_output=id_out or None, docker_ps_rc=ps_rc, docker_ps_output=ps_out,
                   docker_check_method=method, has_airflow=has_airflow, denied=parse_denied(inner.get("worker_denied")))


def parse_worker_inspect(sec: dict[str, str]) -> WorkerFacts:
    """The worker from `docker inspect` (hosts whose data root is not /var/lib/docker)."""
    body = sec.get("worker", "").strip()
    if not body:
        return WorkerFacts(found=False)
    name, state, pid, image, image_id, user, group_add, project = (body.splitlines()[0].split("|") + [""] * 8)[:8]
    proc = dict(ln.split(":", 1) for ln in sec.get("worker_proc", "").splitlines() if ":" in ln)
    ids = {k: v.split() for k, v in proc.items()}
    try:
        groups = json.loads(group_add) if group_add.strip() not in ("", "null") else []
    except ValueError:
        raise ProbeFailed("malformed GroupAdd in probe output") from None
    return WorkerFacts(
        found=True, name=_container_name(name), state=state, pid=_int(pid) or None, image=image or None,
        image_id=image_id or None, user=user or None,
        group_add=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        compose_project=project or None,
        proc_uid=_int(ids["Uid"][0]) if ids.get("Uid") else None,
        proc_gid=_int(ids["Gid"][0]) if ids.get("Gid") else None,
        proc_groups=_groups(ids),
    )


def _body_rc(body: str | None) -> tuple[int | None, str | None]:
    """Split a section ending in ``rc=N`` into (N, the text before)."""
    if body is None:
        return None, None
    m = re.search(r"(?:^|\n)rc=([0-9]{1,3})[ \t]*$", body)
    if not m:
        return None, body.strip()
    return int(m.group(1)), body[: m.start()].strip()


def parse_record(text: str) -> dict[str, Any] | None:
    """hostprep's record (state.json) as read on the host; ``{"corrupt": True}`` when it is not one.

    >>> parse_record('{"strategy": 5}')
    {'corrupt': True}
    """
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {"corrupt": True}
    if not isinstance(record, dict) or not _record_types_ok(record):
        return {"corrupt": True}
    return record


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "strategy": (str,), "snapshot_id": (str,), "docker_gid": (int, type(None)), "services": (list,),
    "applied_at": (str,), "hostprep_version": (str,),
}


def _record_types_ok(record: dict[str, Any]) -> bool:
    for key, types in _RECORD_TYPES.items():
        v = record.get(key)
        if key in record and (not isinstance(v, types) or isinstance(v, bool)):
            return False
    return all(isinstance(s, str) for s in record.get("services") or [])


def parse_probe(host: str, text: str, settings: HostSettings, *, deep: bool = True,
                docker_url: str | None = None) -> Facts:
    """Turn the probe's raw output into :class:`Facts`. Pure.

    Missing, truncated or malformed sections raise :class:`ProbeFailed` (that host fails, the
    others go on); nothing else escapes.
    """
    try:
        return _parse_probe(host, text, settings, deep=deep, docker_url=docker_url)
    except ProbeFailed as exc:
        raise ProbeFailed(f"{host}: {exc}") from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProbeFailed(f"{host}: malformed probe output ({type(exc).__name__})") from None


def _parse_probe(host: str, text: str, settings: HostSettings, *, deep: bool, docker_url: str | None) -> Facts:
    sec = sections(text)
    missing = [k for k in REQUIRED_SECTIONS if k not in sec]
    if missing:
        raise ProbeFailed(f"probe output is missing section(s) {', '.join(missing)}")
    group = sec["docker_group"].split(":")
    compose = sec["compose"].split()
    project = sec["project"].strip()
    return Facts(
        host=host,
        os=sec.get("os") or None,
        docker_gid=_int(group[2]) if len(group) > 2 else None,
        socket=parse_socket(settings.socket_path, sec["socket"]),
        dockerd_running=sec["dockerd"].strip() == "running",
        docker_version=sec.get("docker_version") or None,
        compose_flavour=compose[0] if compose and compose[0] in ("v1", "v2") else None,
        compose_version=compose[1] if len(compose) > 1 else None,
        project_dir=settings.project_dir,
        project_exists=project == "exists",
        files={k[5:]: parse_file(k[5:], v) for k, v in sec.items() if k.startswith("file:")},
        bind_dirs=parse_bind_dirs(sec["bind_dirs"]),
        worker=parse_worker(sec),
        record=parse_record(sec["record"]),
        deep=deep,
        compose_file_name=settings.compose_file,
        project_unsafe=project[len("unsafe "):] if project.startswith("unsafe ") else None,
        lock=parse_lock(sec.get("lock")),
        containers=_containers(sec.get("containers", "")),
        docker_url=docker_url,
        guard_checks=sec.get("worker_guard"),
        daemon=_daemon(sec.get("daemon", "")),
        dags=parse_dags("\n".join(ln[len(DAG_PREFIX):] for ln in sec["bind_dirs"].splitlines()
                                   if ln.startswith(DAG_PREFIX))),
        socket_unit=parse_show(from_bytes(_b64(sec.get("socket_unit", ""), "socket unit"))),
        dockerd_argv=tuple(a for a in from_bytes(_b64(sec.get("dockerd_cmdline", ""), "dockerd command line"))
                           .split("\0") if a),
        runs=tuple(parse_runs(sec.get("runs"))),
        latest_snapshot=_latest_snapshot(sec.get("snapshots", "")),
    )


def _containers(body: str) -> tuple[ContainerFacts, ...]:
    try:
        return parse_containers(body)
    except ContainersMalformed as exc:
        raise ProbeFailed(str(exc)) from None


def _daemon(body: str) -> DaemonFacts:
    try:
        return parse_daemon(body)
    except PostureMalformed as exc:
        raise ProbeFailed(str(exc)) from None


def _latest_snapshot(text: str) -> str | None:
    name = text.strip().removesuffix(".json")
    return name if RUN_ID.fullmatch(name) else None


def host_script(*names: str) -> str:
    """Host-side scripts with safe.sh (the no-follow path walk) and lock.sh (the host lock) in front."""
    files = resources.files("hostprep")
    return "".join(files.joinpath(f).read_text() for f in ("safe.sh", "lock.sh", *names))


def probe_script() -> str:
    return host_script("probe.sh")


DOCKER_URL = re.compile(r"tcp://[a-z0-9][a-z0-9_.-]{0,62}:[0-9]{1,5}")


def probe_env(settings: HostSettings, *, deep: bool = True, versions: bool = False,
              docker_url: str | None = None) -> dict[str, str]:
    """The probe's inputs; the transport quotes them. ``docker_url``: the DOCKER_HOST the in-worker
    checks get (a strategy's proxy, ``tcp://NAME:PORT``); None: the socket, as before."""
    if docker_url is not None and not DOCKER_URL.fullmatch(docker_url):
        raise ValueError(f"unsafe docker URL {docker_url[:80]!r}")
    files = list(PROBED_FILES)
    if settings.compose_file and settings.compose_file not in files:
        files.insert(0, settings.compose_file)
    return {
        "SOCK": settings.socket_path,
        "PROJ": settings.project_dir,
        "WORKER_SVC": settings.worker_service,
        "BIND_DIRS": "".join(f"{d} {bind_path(settings.project_dir, d)}\n" for d in settings.bind_dirs),
        "DEEP": "1" if deep else "0",
        "VERSIONS": "1" if versions else "0",
        "STATE_DIR": STATE_DIR,
        "FILES": " ".join(files),
        "DOCKER_URL": docker_url or "",
        "GUARD_CHECKS": guard_checks.checks_input(settings) if docker_url and guard_checks.guarded(settings) else "",
        "DAGS": bind_path(settings.project_dir, "dags") if "dags" in settings.bind_dirs else "",
    }


def gather(transport: Transport, settings: HostSettings, *, deep: bool = True, versions: bool = False,
           docker_url: str | None = None) -> Facts:
    """Gather facts in exactly one remote exec (``docker_url``: see :func:`probe_env`)."""
    res = transport.run_script(probe_script(), probe_env(settings, deep=deep, versions=versions, docker_url=docker_url),
                               sudo=True, timeout=120)
    if "@@hostprep:end" not in res.stdout:
        raise ProbeFailed(f"{transport.endpoint.name}: fact probe failed (exit {res.exit_code}): {res.stderr.strip()[-300:]}")
    return parse_probe(transport.endpoint.name, res.stdout, settings, deep=deep, docker_url=docker_url)
