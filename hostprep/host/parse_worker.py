"""The worker container from the probe: dockerd's stored config (or inspect), /proc, and the in-worker checks. Pure."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from hostprep.hostdata import lines, loads
from hostprep.host.fields import as_dict, as_str, b64_field, int_field, json_object
from hostprep.host.facts import ProbeFailed, WorkerFacts, from_bytes


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


def _groups(ids: dict[str, list[str]]) -> tuple[int, ...]:
    return tuple(n for n in (int_field(g) for g in ids.get("Groups", [])) if n is not None)


def parse_worker_files(body: str) -> WorkerFacts:
    """The worker from dockerd's stored config.v2.json/hostconfig.json (the cheap path).

    A container whose config came back empty (removed while the probe read it) is skipped.
    """
    found: list[tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]] = []
    config: dict[str, Any] = {}
    host: dict[str, Any] = {}
    for line in lines(body):
        kind, _, value = line.partition(" ")
        if kind == "config":
            config = json_object(value, "container config")
        elif kind == "hostconfig":
            host = json_object(value, "container hostconfig")
        elif kind == "proc":
            if config:
                found.append((config, host, _proc_ids(value)))
        elif line.strip():
            raise ProbeFailed(f"malformed worker line in probe output: {line[:60]!r}")
    if not found:
        return WorkerFacts(found=False)
    found.sort(key=lambda c: not as_dict(c[0].get("State")).get("Running"))
    config, host, ids = found[0]
    state, cfg = as_dict(config.get("State")), as_dict(config.get("Config"))
    running = bool(state.get("Running"))
    pid = state.get("Pid")
    group_add = host.get("GroupAdd")
    return WorkerFacts(
        found=True, name=_container_name(config.get("Name")), state=_state_name(state),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        image=as_str(cfg.get("Image")), image_id=as_str(config.get("Image")), user=as_str(cfg.get("User")),
        group_add=tuple(str(g) for g in group_add) if isinstance(group_add, list) else (),
        compose_project=as_str(as_dict(cfg.get("Labels")).get("com.docker.compose.project")),
        proc_uid=int_field(ids["Uid"][0]) if running and ids.get("Uid") else None,
        proc_gid=int_field(ids["Gid"][0]) if running and ids.get("Gid") else None,
        proc_groups=_groups(ids) if running else (),
    )


def worker_sections(body: str) -> dict[str, str]:
    """The in-worker checks' fields from the probe's ``worker_exec`` section (pure).

    The section is ``<nonce> <docker exec rc>`` then the worker's whole output, base64-encoded.
    Inside, only markers carrying this run's random nonce count: nothing the worker prints can
    pose as a section of the probe, nor as one of its own fields. Without the markers (the exec
    itself failed) both fields get the whole output and the exec's exit code.
    """
    rows = lines(body)
    head = rows[0].split() if rows else []
    if len(head) != 2 or not re.fullmatch(r"[0-9a-f]{8,64}", head[0]) or int_field(head[1]) is None:
        raise ProbeFailed("malformed worker_exec section in probe output")
    nonce, rc = head
    text = from_bytes(b64_field(rows[1] if len(rows) > 1 else "", "worker output"))
    mark = f"@@hostprep-{nonce}:"
    out: dict[str, str] = {}
    key: str | None = None
    kept: list[str] = []
    for line in lines(text):
        if line.startswith(mark):
            if key is not None:
                out.setdefault(key, "\n".join(kept).strip("\n"))
            key, kept = line[len(mark):].strip(), []
        elif key is not None:
            kept.append(line)
    if key is not None:
        out.setdefault(key, "\n".join(kept).strip("\n"))
    if "worker_id" not in out or "worker_docker_ps" not in out:
        said = "\n".join(lines(text.strip())[-3:])
        return {"worker_id": f"{said}\nrc={rc}", "worker_docker_ps": f"{said}\nrc={rc}"}
    return {k: out[k] for k in ("worker_id", "worker_docker_ps", "worker_denied") if k in out}


def parse_denied(body: str | None) -> tuple[tuple[str, str], ...]:
    """``<area> 403|not-refused`` lines of the in-worker negative checks.

    >>> parse_denied("volumes 403\\nexec not-refused")
    (('volumes', '403'), ('exec', 'not-refused'))
    """
    out = []
    for line in lines(body):
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
    has_airflow = None if id_out is None else "airflow=yes" in lines(id_out)
    if id_out is not None:
        id_out = "\n".join(ln for ln in lines(id_out) if not ln.startswith("airflow=")).strip()
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
    name, state, pid, image, image_id, user, group_add, project = (lines(body)[0].split("|") + [""] * 8)[:8]
    proc = dict(ln.split(":", 1) for ln in lines(sec.get("worker_proc")) if ":" in ln)
    ids = {k: v.split() for k, v in proc.items()}
    try:
        groups = loads(group_add, "GroupAdd") if group_add.strip() not in ("", "null") else []
    except ValueError:
        raise ProbeFailed("malformed GroupAdd in probe output") from None
    return WorkerFacts(
        found=True, name=_container_name(name), state=state, pid=int_field(pid) or None, image=image or None,
        image_id=image_id or None, user=user or None,
        group_add=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        compose_project=project or None,
        proc_uid=int_field(ids["Uid"][0]) if ids.get("Uid") else None,
        proc_gid=int_field(ids["Gid"][0]) if ids.get("Gid") else None,
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
