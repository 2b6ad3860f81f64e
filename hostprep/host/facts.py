"""Facts: what hostprep knows about a host, as plain frozen data.

The probe (``hostprep.host.probe``: one exec of probe.sh) gathers them; its section parsers
(``parse_files``, ``parse_worker``, ``containers``, ``posture_facts``, ...) fill them in.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from hostprep.host import compose
from hostprep.host.lock import HostLock
from hostprep.host.containers import ContainerFacts
from hostprep.host.posture_facts import DaemonFacts, DagLine
from hostprep.host.journal import Run
from hostprep.layout import COMPOSE_FILES, OVERRIDE_FILE, STATE_DIR
from hostprep.host.socket_unit import DOCKERD, SYSTEMD, SocketUnit, dockerd_group, manager

__all__ = ["COMPOSE_FILES", "OVERRIDE_FILE", "PROBED_FILES", "STATE_DIR", "DirFacts", "Facts", "FileFacts",
           "ProbeFailed", "SocketFacts", "SocketUnit", "WorkerFacts"]

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


