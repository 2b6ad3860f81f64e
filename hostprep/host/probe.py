"""The fact probe: its script and inputs, the one exec that runs it (``gather``), and the parse of its whole output.

``parse_probe(text)`` is tested on captured real output without a host; ``gather(transport, settings)`` is the
only function here that does I/O.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from hostprep.host import guard_checks
from hostprep.host.lock import parse_lock
from hostprep.hostdata import lines, loads
from hostprep.host.containers import ContainerFacts, ContainersMalformed, parse_containers
from hostprep.host.posture_facts import DaemonFacts, PostureMalformed, parse_daemon
from hostprep.host.journal import RUN_ID, parse_runs
from hostprep.layout import STATE_DIR, bind_path
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_unit import parse_show
from hostprep.ssh.transport import Transport
from hostprep.host.fields import b64_field, int_field
from hostprep.host.parse_files import parse_bind_dirs, parse_dag_scan, parse_file, parse_socket
from hostprep.host.parse_worker import parse_worker
from hostprep.host.facts import Facts, PROBED_FILES, ProbeFailed, from_bytes


# Sections every complete probe prints (files, bind dirs and the worker's come on top).
REQUIRED_SECTIONS = ("os", "docker_group", "socket", "dockerd", "compose", "docker_version", "project",
                     "bind_dirs", "record")


_MARK = "@@hostprep:"




def sections(text: str) -> dict[str, str]:
    """Split probe output into ``{key: body}`` at ``@@hostprep:<key>`` markers.

    A key seen twice is malformed output (the probe prints each once; the worker's
    output is encoded and cannot open one): :class:`ProbeFailed`.
    """
    out: dict[str, str] = {}
    key: str | None = None
    kept: list[str] = []
    for line in lines(text):
        if line.startswith(_MARK):
            if key is not None:
                out[key] = "\n".join(kept).strip("\n")
            key, kept = line[len(_MARK):].strip(), []
            if key in out:
                raise ProbeFailed(f"probe output has section {key[:60]!r} twice")
        elif key is not None:
            kept.append(line)
    if key is not None:
        out[key] = "\n".join(kept).strip("\n")
    return out


def parse_record(text: str) -> dict[str, Any] | None:
    """hostprep's record (state.json) as read on the host; ``{"corrupt": True}`` when it is not one.

    >>> parse_record('{"strategy": 5}')
    {'corrupt': True}
    """
    if not text.strip():
        return None
    try:
        record = loads(text, "state.json")
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
        docker_gid=int_field(group[2]) if len(group) > 2 else None,
        socket=parse_socket(settings.socket_path, sec["socket"]),
        dockerd_running=sec["dockerd"].strip() == "running",
        docker_version=sec.get("docker_version") or None,
        compose_flavour=compose[0] if compose and compose[0] in ("v1", "v2") else None,
        compose_version=compose[1] if len(compose) > 1 else None,
        project_dir=settings.project_dir,
        project_exists=project == "exists",
        files={k[5:]: parse_file(k[5:], v) for k, v in sec.items() if k.startswith("file:")},
        bind_dirs=parse_bind_dirs(sec["bind_dirs"], settings.bind_dirs),
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
        dags=parse_dag_scan(sec["bind_dirs"]),
        socket_unit=parse_show(from_bytes(b64_field(sec.get("socket_unit", ""), "socket unit"))),
        dockerd_argv=tuple(a for a in from_bytes(b64_field(sec.get("dockerd_cmdline", ""), "dockerd command line"))
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


def host_script(*names: str, package: str = "hostprep.host") -> str:
    """Host-side scripts with safe.sh (the no-follow path walk) and lock.sh (the host lock) in front.

    ``names`` are read from ``package``: each script lives beside the Python that sends it.
    """
    base, own = resources.files("hostprep.host"), resources.files(package)
    return "".join([*(base.joinpath(f).read_text() for f in ("safe.sh", "lock.sh")),
                    *(own.joinpath(f).read_text() for f in names)])


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
