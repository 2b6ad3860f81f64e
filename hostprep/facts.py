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

from hostprep import compose
from hostprep.layout import COMPOSE_FILES, OVERRIDE_FILE, STATE_DIR, bind_path
from hostprep.settings import HostSettings
from hostprep.transport import Transport

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILE", "PROBED_FILES", "STATE_DIR", "DirFacts", "Facts", "FileFacts",
           "ProbeFailed", "SocketFacts", "WorkerFacts", "gather", "parse_probe", "probe_env", "probe_script"]

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

    @property
    def compose_file(self) -> FileFacts | None:
        """The configured compose file, else the first of Compose's default names that exists."""
        names = (self.compose_file_name,) if self.compose_file_name else COMPOSE_FILES
        return next((self.files[n] for n in names if n in self.files and self.files[n].exists), None)

    @functools.cached_property
    def compose_data(self) -> dict[str, Any]:
        """The compose file, parsed once per facts (anchors and merge keys resolved; {} if absent)."""
        cf = self.compose_file
        return compose.load_compose(cf.content if cf else None)

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
        """JSON-ready facts; file contents replaced by their hash unless asked for."""
        data = asdict(self)
        for name, f in self.files.items():
            data["files"][name]["sha256"] = f.sha256
            if not contents:
                data["files"][name].pop("content")
        return data

    def __repr__(self) -> str:
        return f"<Facts {self.host} docker_gid={self.docker_gid} socket={oct(self.socket.mode or 0)} worker={self.worker.state}>"


def sections(text: str) -> dict[str, str]:
    """Split probe output into ``{key: body}`` at ``@@hostprep:<key>`` markers."""
    out: dict[str, str] = {}
    key: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@hostprep:"):
            if key is not None:
                out[key] = "\n".join(lines).strip("\n")
            key, lines = line[len("@@hostprep:"):].strip(), []
        elif key is not None:
            lines.append(line)
    if key is not None:
        out[key] = "\n".join(lines).strip("\n")
    return out


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and v.strip().lstrip("-").isdigit() else None


def parse_socket(path: str, body: str) -> SocketFacts:
    lines = body.splitlines()
    if not lines or not lines[0].strip():
        return SocketFacts(path=path, exists=False)
    raw_mode, uid, gid, owner, group = lines[0].split()[:5]
    perms = lines[1].strip() if len(lines) > 1 else ""
    return SocketFacts(path=path, exists=True, mode=int(raw_mode, 16) & 0o7777, uid=int(uid), gid=int(gid),
                       owner=owner, group=group, has_acl=perms.endswith("+"))


def parse_file(name: str, body: str) -> FileFacts:
    lines = body.splitlines()
    if not lines:
        return FileFacts(name=name, exists=False)
    mode, uid, gid, _size = lines[0].split()
    content = from_bytes(base64.b64decode("".join(lines[1:]).strip()))
    return FileFacts(name=name, exists=True, mode=int(mode, 8), uid=int(uid), gid=int(gid), content=content)


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


def parse_worker_files(body: str) -> WorkerFacts:
    """The worker from dockerd's stored config.v2.json/hostconfig.json (the cheap path)."""
    found: list[tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]] = []
    config: dict[str, Any] = {}
    host: dict[str, Any] = {}
    for line in body.splitlines():
        kind, _, value = line.partition(" ")
        if kind == "config":
            config = json.loads(base64.b64decode(value))
        elif kind == "hostconfig":
            host = json.loads(base64.b64decode(value)) if value else {}
        elif kind == "proc":
            found.append((config, host, _proc_ids(value)))
    if not found:
        return WorkerFacts(found=False)
    found.sort(key=lambda c: not c[0].get("State", {}).get("Running"))
    config, host, ids = found[0]
    state, cfg = config.get("State", {}), config.get("Config", {})
    running = bool(state.get("Running"))
    return WorkerFacts(
        found=True, name=str(config.get("Name", "")).lstrip("/"), state=_state_name(state),
        pid=state.get("Pid") or None, image=cfg.get("Image"), image_id=config.get("Image"),
        user=cfg.get("User") or None, group_add=tuple(str(g) for g in host.get("GroupAdd") or []),
        compose_project=(cfg.get("Labels") or {}).get("com.docker.compose.project"),
        proc_uid=_int(ids["Uid"][0]) if running and ids.get("Uid") else None,
        proc_gid=_int(ids["Gid"][0]) if running and ids.get("Gid") else None,
        proc_groups=tuple(int(g) for g in ids.get("Groups", []) if g.isdigit()) if running else (),
    )


def parse_worker(sec: dict[str, str]) -> WorkerFacts:
    """The worker as the host sees it (stored config or inspect, /proc), plus the in-worker checks if deep."""
    base = parse_worker_files(sec["worker_files"]) if "worker_files" in sec else parse_worker_inspect(sec)
    if not base.found:
        return base
    id_rc, id_out = _body_rc(sec.get("worker_id"))
    has_airflow = None if id_out is None else "\nairflow=yes" in "\n" + id_out
    if id_out is not None:
        id_out = "\n".join(ln for ln in id_out.splitlines() if ln != "airflow=yes").strip()
    ps_rc, ps_out = _body_rc(sec.get("worker_docker_ps"))
    method = None
    if ps_out is not None:
        m = re.search(r"^method=(\S+)$", ps_out, re.M)
        method = m.group(1) if m else None
        ps_out = re.sub(r"^method=\S+\n?", "", ps_out, flags=re.M).strip()
    return replace(base, id_output=id_out or None, docker_ps_rc=ps_rc, docker_ps_output=ps_out,
                   docker_check_method=method, has_airflow=has_airflow)


def parse_worker_inspect(sec: dict[str, str]) -> WorkerFacts:
    """The worker from `docker inspect` (hosts whose data root is not /var/lib/docker)."""
    body = sec.get("worker", "").strip()
    if not body:
        return WorkerFacts(found=False)
    name, state, pid, image, image_id, user, group_add, project = (body.splitlines()[0].split("|") + [""] * 8)[:8]
    proc = dict(ln.split(":", 1) for ln in sec.get("worker_proc", "").splitlines() if ":" in ln)
    ids = {k: v.split() for k, v in proc.items()}
    groups = json.loads(group_add) if group_add.strip() not in ("", "null") else []
    return WorkerFacts(
        found=True, name=name.lstrip("/"), state=state, pid=_int(pid) or None, image=image or None,
        image_id=image_id or None, user=user or None, group_add=tuple(str(g) for g in groups or []),
        compose_project=project or None,
        proc_uid=_int(ids["Uid"][0]) if ids.get("Uid") else None,
        proc_gid=_int(ids["Gid"][0]) if ids.get("Gid") else None,
        proc_groups=tuple(int(g) for g in ids.get("Groups", []) if g.isdigit()),
    )


def _body_rc(body: str | None) -> tuple[int | None, str | None]:
    """Split a section ending in ``rc=N`` into (N, the text before)."""
    if body is None:
        return None, None
    m = re.search(r"(?:^|\n)rc=(\d+)\s*$", body)
    if not m:
        return None, body.strip()
    return int(m.group(1)), body[: m.start()].strip()


def parse_probe(host: str, text: str, settings: HostSettings, *, deep: bool = True) -> Facts:
    """Turn the probe's raw output into :class:`Facts`. Pure."""
    sec = sections(text)
    group = sec.get("docker_group", "").split(":")
    compose = sec.get("compose", "").split()
    bind = []
    for line in sec.get("bind_dirs", "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "missing":
            bind.append(DirFacts(name=parts[0], exists=False))
        elif len(parts) == 4:
            bind.append(DirFacts(name=parts[0], exists=True, uid=int(parts[1]), gid=int(parts[2]), mode=int(parts[3], 8)))
    record_text = sec.get("record", "").strip()
    try:
        record = json.loads(record_text) if record_text else None
    except json.JSONDecodeError:
        record = {"corrupt": True}
    if record is not None and not isinstance(record, dict):
        record = {"corrupt": True}
    return Facts(
        host=host,
        os=sec.get("os") or None,
        docker_gid=_int(group[2]) if len(group) > 2 else None,
        socket=parse_socket(settings.socket_path, sec.get("socket", "")),
        dockerd_running=sec.get("dockerd", "").strip() == "running",
        docker_version=sec.get("docker_version") or None,
        compose_flavour=compose[0] if compose else None,
        compose_version=compose[1] if len(compose) > 1 else None,
        project_dir=settings.project_dir,
        project_exists=sec.get("project", "").strip() == "exists",
        files={k[5:]: parse_file(k[5:], v) for k, v in sec.items() if k.startswith("file:")},
        bind_dirs=tuple(bind),
        worker=parse_worker(sec),
        record=record,
        deep=deep,
        compose_file_name=settings.compose_file,
    )


def probe_script() -> str:
    return resources.files("hostprep").joinpath("probe.sh").read_text()


def probe_env(settings: HostSettings, *, deep: bool = True, versions: bool = False) -> dict[str, str]:
    """The probe's inputs; the transport quotes them."""
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
    }


class ProbeFailed(Exception):
    """The probe script itself failed (e.g. sudo refused)."""


def gather(transport: Transport, settings: HostSettings, *, deep: bool = True, versions: bool = False) -> Facts:
    """Gather facts in exactly one remote exec."""
    res = transport.run_script(probe_script(), probe_env(settings, deep=deep, versions=versions), sudo=True,
                               timeout=120)
    if "@@hostprep:end" not in res.stdout:
        raise ProbeFailed(f"{transport.endpoint.name}: fact probe failed (exit {res.exit_code}): {res.stderr.strip()[-300:]}")
    return parse_probe(transport.endpoint.name, res.stdout, settings, deep=deep)
