"""A new fleet CA with the old and the new trusted during the switch (``certs.rotate --new-ca``, then
``certs.rotate --finish-ca``), one pair (Airflow host, task host) at a time.

``--new-ca``: a new CA is made on the controller beside the current one (``ca/next``), then, each step
checked from inside the worker and undone alone if it fails:

1. the Airflow host's ``ca.pem`` becomes the bundle old+new (files replaced by rename; no recreate);
2. the task host's ``ca.pem`` becomes the bundle and its server certificate is issued from the new CA:
   one dockerd restart, after the task host runs no container outside a Compose project (what
   DockerOperator starts) or the wait times out (then nothing of this step is changed);
3. the Airflow host's client certificate is issued from the new CA.

``--finish-ca`` (once every pair of the fleet went through ``--new-ca``): refused unless both
certificates of the pair are from the new CA; the task host trusts only the new CA (one dockerd restart,
after the same wait), then the Airflow host; the controller's current CA is then retired and the new one
takes its place. Each phase leaves one record (``remote_tls_run.rollback`` undoes it: files only).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any, Callable

from hostprep.change import apply, certs, snapshot_store, tls_host
from hostprep.change.plan import make_plan
from hostprep.change.remote_tls_run import PairOptions, Side, checked, new_record, save_record, with_endpoint
from hostprep.change.results import CHANGED, OK, HostReport
from hostprep.change.tls_files import (AIRFLOW_DIRS, AIRFLOW_PATHS, TASK_DIRS, TASK_PATHS, FilePlan, file_text,
                                       plan_files, put_to_dict)
from hostprep.change.tls_host import Put, TlsFacts, TlsHostError, hold, put, release
from hostprep.host.probe import gather
from hostprep.hostdata import lines
from hostprep.strategies.remote_tls import CA, CERT, CLIENT_DIR, KEY, SERVER_DIR, docker_url_of, task_endpoint
from hostprep.ssh.transport import Transport

NEW, FINISH = "new", "finish"
POLL_SECONDS = 5.0
_CONTAINER = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\t([A-Za-z0-9_.-]{0,128})")
TASK_CONTAINERS = ["docker", "ps", "--format", '{{.Names}}\t{{.Label "com.docker.compose.project"}}']


def task_containers(text: str) -> list[str]:
    """Running containers no Compose project owns (DockerOperator's), from ``TASK_CONTAINERS``' output.

    >>> task_containers("airflow_worker_1\\tairflow\\nfetch-x1\\t\\n")
    ['fetch-x1']
    """
    out = []
    for line in lines(text):
        m = _CONTAINER.fullmatch(line)
        if line and m is None:
            raise ValueError(f"a line of docker ps that is not a name and a project: {line[:80]!r}")
        if m and not m.group(2):
            out.append(m.group(1))
    return out


def wait_idle(t: Transport, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Until the task host runs no task container (``TlsHostError`` naming them after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        res = t.run(TASK_CONTAINERS, sudo=True, timeout=60)
        if res.exit_code != 0:
            raise TlsHostError(f"{t.endpoint.name}: docker ps failed ({res.stderr.strip()[-200:]})")
        busy = task_containers(res.stdout)
        if not busy:
            return
        if time.monotonic() >= deadline:
            raise TlsHostError(f"{t.endpoint.name}: task containers still run after {timeout:.0f} s "
                               f"({', '.join(busy[:10])}); dockerd was not restarted")
        sleep(POLL_SECONDS)


def _pem(tf: TlsFacts, path: str) -> str | None:
    return file_text(tf.files.get(path))


def _files(folder: str, ca_pem: str, issued: certs.Issued | None, tf: TlsFacts, mode: int) -> dict[str, tuple[bytes, int]]:
    """A folder's ca.pem (the trust: one CA or the bundle), and its certificate and key (new, or as they are)."""
    cert, key = (issued.cert_pem, issued.key_pem) if issued else (_pem(tf, f"{folder}/{CERT}"), _pem(tf, f"{folder}/{KEY}"))
    return {f"{folder}/{CA}": (ca_pem.encode(), mode), f"{folder}/{CERT}": ((cert or "").encode(), mode),
            f"{folder}/{KEY}": ((key or "").encode(), mode)}


def _from(tf: TlsFacts, folder: str, ca: certs.CA) -> bool:
    cert = _pem(tf, f"{folder}/{CERT}")
    return cert is not None and certs.verify_chain(cert, ca.cert_pem) is None


def steps(phase: str, old: certs.CA, new: certs.CA, af: TlsFacts, tf: TlsFacts, endpoint: dict[str, Any], air: str,
          days: int) -> list[tuple[str, FilePlan]]:
    """The phase's steps in order, each ``(which host, its file plan)`` from the facts (pure but for new keys)."""
    if phase == NEW:
        bundle = old.cert_pem + new.cert_pem
        sans = (endpoint["ip"],) if endpoint.get("ip") else ()
        server = None if _from(tf, SERVER_DIR, new) else certs.issue_server(new, endpoint["address"], addresses=sans, days=days)
        client = None if _from(af, CLIENT_DIR, new) else certs.issue_client(new, air, days=days)
        a1 = _files(CLIENT_DIR, bundle, None, af, 0o640)
        t1 = _files(SERVER_DIR, bundle, server, tf, 0o600)
        a2 = _files(CLIENT_DIR, bundle, client, af, 0o640)
        return [("air", plan_files(af, AIRFLOW_DIRS, a1)),
                ("task", plan_files(tf, TASK_DIRS, t1, restart_if=TASK_PATHS)),
                ("air", plan_files(_after(af, a1), AIRFLOW_DIRS, a2))]
    t1 = _files(SERVER_DIR, new.cert_pem, None, tf, 0o600)
    a1 = _files(CLIENT_DIR, new.cert_pem, None, af, 0o640)
    return [("task", plan_files(tf, TASK_DIRS, t1, restart_if=TASK_PATHS)), ("air", plan_files(af, AIRFLOW_DIRS, a1))]


def _after(tf: TlsFacts, files: dict[str, tuple[bytes, int]]) -> TlsFacts:
    """The facts as they will be once ``files`` are written (the next step plans from there)."""
    now = dict(tf.files)
    for path, (content, mode) in files.items():
        now[path] = tls_host.FileState(path, "file", mode, 0, 0, content)
    return replace(tf, files=now)


def rotate_ca(air: Side, task: Side, phase: str, opts: PairOptions = PairOptions()) -> tuple[HostReport, HostReport]:
    """One phase of a CA switch on one pair; every step checked from inside the worker."""
    ra, rt = HostReport(air.name), HostReport(task.name)
    try:
        endpoint = task_endpoint(task.vars or {}, task.name)
        old = certs.load_or_create_ca(opts.ca_path)
        switching = phase == NEW or certs.switching(opts.ca_path)
        if opts.check and not certs.switching(opts.ca_path):
            new = certs.new_ca()   # --check makes no CA on the controller: this one only shows the steps
        else:
            new = certs.load_next_ca(opts.ca_path, create=phase == NEW) if switching else old   # finished: the current
    except ValueError as exc:
        return ra.fail(f"{exc}; nothing was changed"), rt.fail(f"{exc}; nothing was changed")
    settings = with_endpoint(air.settings, endpoint)
    url = docker_url_of(endpoint)
    tf = tls_host.gather(task.t, TASK_PATHS, endpoint["port"])
    af = tls_host.gather(air.t, AIRFLOW_PATHS)
    problems = _problems(phase, make_plan(gather(air.t, settings, deep=False, docker_url=url), settings, "remote-tls"),
                         af, tf, new)
    todo = [(w, replace(fp, change=replace(fp.change, wait_port=endpoint["port"])) if w == "task" else fp)
            for w, fp in steps(phase, old, new, af, tf, endpoint, air.name, opts.days)]
    problems += [p for _, fp in todo for p in fp.problems]
    for _, fp in todo:
        (ra if fp.host == air.name else rt).data.setdefault("plan", []).extend(fp.steps)
    if problems:
        return ra.fail("; ".join(problems)), rt.fail("; ".join(problems))
    if opts.check:
        ra.status = CHANGED if any(fp.changed for w, fp in todo if w == "air") else OK
        rt.status = CHANGED if any(fp.changed for w, fp in todo if w == "task") else OK
        return ra, rt
    return _run_steps(air, task, settings, url, todo, phase, opts, ra, rt)


def _problems(phase: str, plan: Any, af: TlsFacts, tf: TlsFacts, new: certs.CA) -> list[str]:
    out = []
    if plan.changed or not all(f.kind == "file" for p, f in {**af.files, **tf.files}.items() if p.endswith(".pem")):
        out.append("the pair is not provisioned with remote-tls as wanted (run remote-tls.provision first); nothing was changed")
    elif phase == FINISH and not (_from(af, CLIENT_DIR, new) and _from(tf, SERVER_DIR, new)):
        out.append("refused: this pair's certificates are not from the new CA yet (run certs.rotate --new-ca on it "
                   "first); nothing was changed")
    return out


def _run_steps(air: Side, task: Side, settings: Any, url: str, todo: list[tuple[str, FilePlan]], phase: str,
               opts: PairOptions, ra: HostReport, rt: HostReport) -> tuple[HostReport, HostReport]:
    owner = apply.lock_owner()
    rec = new_record(air.name, task.name, None, Put(()), Put(()))
    rec["ca_phase"] = phase
    undo: dict[str, list[Put]] = {"air": [], "task": []}
    for which, fp in todo:
        if not fp.changed:
            continue
        side, report = (air, ra) if which == "air" else (task, rt)
        try:
            if fp.change.restart:   # before the locks: the wait may outlast a hold (tasks do not take the lock)
                wait_idle(task.t, opts.drain_timeout)
            hold(air.t, owner, rec["id"], opts.lock_wait)
            hold(task.t, owner, rec["id"], opts.lock_wait)
            put(side.t, owner, fp.change)
            report.changed += len(fp.steps)
        except TlsHostError as exc:
            _release(owner, air.t, task.t)
            return _stopped(ra, rt, report, f"{exc}", rec, undo)
        probe = HostReport(air.name)
        checked(air, settings, url, probe)
        ra.checks = probe.checks
        if probe.failed:
            why = probe.error or "the checks failed"
            try:
                put(side.t, owner, fp.undo)
            except TlsHostError as exc:
                report.warnings.append(f"putting this step back failed: {exc}")
            _release(owner, air.t, task.t)
            return _stopped(ra, rt, report, f"after `{'; '.join(fp.steps)}`: {why}; this step was put back", rec, undo)
        _release(owner, air.t, task.t)
        undo[which].insert(0, fp.undo)
        _save(rec, undo)
    if phase == FINISH:
        retired = certs.promote_next_ca(opts.ca_path) if certs.switching(opts.ca_path) else None
        if retired:
            ra.data["retired_ca"] = str(retired)
    for r in (ra, rt):
        r.status, r.snapshot_id = (CHANGED if r.changed else OK), rec["id"]
    return ra, rt


def _merge(puts: list[Put]) -> Put:
    """Undos of several steps as one, the last step's first."""
    return Put(tuple(a for p in puts for a in p.actions), tuple(c for p in puts for c in p.contents),
               any(p.restart for p in puts), next((p.wait_port for p in puts if p.wait_port), None))


def _save(rec: dict[str, Any], undo: dict[str, list[Put]]) -> None:
    rec["airflow"]["undo"] = put_to_dict(_merge(undo["air"]))
    rec["task"]["undo"] = put_to_dict(_merge(undo["task"]))
    save_record(rec)
    for host in (rec["airflow"]["host"], rec["task"]["host"]):
        snapshot_store.append_history(host, {"event": f"ca-{rec['ca_phase']}", "strategy": "remote-tls",
                                             "snapshot_id": rec["id"]})


def _stopped(ra: HostReport, rt: HostReport, report: HostReport, why: str, rec: dict[str, Any],
             undo: dict[str, list[Put]]) -> tuple[HostReport, HostReport]:
    """A step failed: earlier steps stay (each leaves a pair that works), and the record undoes them."""
    done = bool(undo["air"] or undo["task"])
    note = f" (the steps before it stay; `remote-tls.rollback` undoes them: record {rec['id']})" if done else ""
    for r in (ra, rt):
        r.fail(why + note if r is report else f"the CA switch stopped on the other host: {why}{note}")
    return ra, rt


def _release(owner: str, *ts: Transport) -> None:
    for t in ts:
        try:
            release(t, owner)
        except Exception:   # a host we cannot reach keeps a lock that goes stale after HOLD_SECONDS
            pass
