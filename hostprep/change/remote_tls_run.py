"""One remote-tls run over two hosts: the task host's dockerd learns TLS, the Airflow host's workers use it.

provision: facts of both → plans of both (any problem stops it here) → both host locks → the task
host (files, one dockerd restart, its TCP port up) → the Airflow host (client certificates, then its
Compose change through the usual interpreter and snapshot) → checks inside the worker (TLS works; no
certificate, another CA's, plain TCP all refused; no socket). Any failure puts both hosts back. One
record on the controller names both hosts and what undoes each; ``rollback`` replays it.

The Airflow host's lock: held for its certificate files; the interpreter then takes it over for the
Compose change (same owner) and releases it at its end; the final checks take it again (between the two,
another run could take it: it then finds the change done, or the checks fail and both hosts are restored).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Mapping

from hostprep.change import apply, certs, snapshot_store, snapshots, tls_host
from hostprep.change import provision as prov
from hostprep.host.access import worker_view
from hostprep.host.facts import Facts
from hostprep.host.probe import gather, probe_env
from hostprep.hostdata import loads
from hostprep.change.local_state import host_dir, write_private
from hostprep.change.plan import make_plan
from hostprep.change.results import CHANGED, OK, HostReport
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.remote_tls import CLIENT_DIR, RemoteTls, docker_url_of, task_endpoint
from hostprep.change.tls_files import (AIRFLOW_DIRS, AIRFLOW_PATHS, RENEW_DAYS, TASK_DIRS, TASK_PATHS, FilePlan, airflow_files,
                                keep_or_issue, plan_files, put_from_dict, put_to_dict, task_files)
from hostprep.change.tls_host import Put, TlsHostError, hold, put, release, worker_checks
from hostprep.ssh.transport import Transport
from hostprep.change.verify import Check, verify

STRATEGY = RemoteTls.name
DAEMON_JSON = "/etc/docker/daemon.json"
CLASHING_KEYS = ("hosts", "tlsverify", "tlscacert", "tlscert", "tlskey")   # the drop-in's own flags


@dataclass(frozen=True)
class Side:
    """A host taking part: its transport, its settings and, for the task host, its vars."""

    t: Transport
    settings: HostSettings
    vars: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.t.endpoint.name


@dataclass(frozen=True)
class PairOptions:
    """``days``: lifetime of certificates issued now; ``rotate``: issue the Airflow host's client
    certificate again whatever it has left (no dockerd restart: the daemon trusts every certificate
    of the fleet CA, so a task in flight keeps its connection and new ones use the new certificate);
    the task host's server certificate is issued again only within ``renew_days`` of its expiry."""

    check: bool = False
    lock_wait: int = 10
    ca_path: str | None = None
    days: int = certs.DEFAULT_DAYS
    rotate: bool = False
    renew_days: float = RENEW_DAYS
    drain_timeout: float = 1800.0   # a CA switch waits this long for task containers before a dockerd restart


def with_endpoint(settings: HostSettings, endpoint: Mapping[str, Any]) -> HostSettings:
    """The Airflow host's settings, with the task host's endpoint its override points at."""
    own = {k: v for k, v in settings.options if k != "tls_endpoint"}
    own["tls_endpoint"] = tuple(sorted(endpoint.items()))
    return replace(settings, options=tuple(sorted(own.items())))


def task_problems(tf: tls_host.TlsFacts, task: Facts, endpoint: Mapping[str, Any], ours_present: bool) -> list[str]:
    """Why the task host cannot take the change (pure): no systemd, dockerd already on TCP without TLS,
    the port taken, another drop-in owning ExecStart, daemon.json settings that clash with flags."""
    out = []
    port = endpoint["port"]
    if not tf.systemd or not tf.exec_start:
        out.append("the task host has no systemd docker.service to add a drop-in to")
    if task.daemon.tcp_without_tls:
        out.append("refused: dockerd on the task host already listens on TCP without TLS "
                   f"({', '.join(task.daemon.tcp_hosts or task.daemon.listening)}; the posture audit's dockerd-tcp-no-tls)")
    if tf.port_busy and not ours_present:
        out.append(f"refused: TCP port {port} is already in use on the task host")
    others = [d for d in tf.execstart_dropins if not d.endswith("/hostprep-tls.conf")]
    if others:
        out.append(f"refused: {', '.join(others)} replaces docker.service's ExecStart; hostprep's drop-in would fight it")
    if task.daemon.config_error:
        out.append(f"refused: {task.daemon.config_error}")
    else:
        daemon_json = tf.files.get(DAEMON_JSON)
        clash = daemon_json_clash(daemon_json.content if daemon_json is not None else None)
        if clash:
            out.append(f"refused: {DAEMON_JSON} sets {', '.join(clash)}, which hostprep's drop-in gives dockerd as "
                       "flags; dockerd refuses to start with a setting given both ways (remove them there first)")
    return out


def daemon_json_clash(content: bytes | None) -> list[str]:
    """The keys of daemon.json that the drop-in's flags would repeat (dockerd then refuses to start).

    >>> daemon_json_clash(b'{"hosts": ["fd://"], "tlscacert": "/x", "log-driver": "local"}')
    ['hosts', 'tlscacert']
    """
    if not content:
        return []
    try:
        data = loads(content.decode(errors="replace"), DAEMON_JSON)
    except ValueError:
        return []   # the probe's daemon section already calls it invalid
    return [k for k in CLASHING_KEYS if isinstance(data, dict) and k in data]


def _other_ca_pem(name: str) -> str:
    """A client certificate and key from a CA nobody trusts (the negative check), as one PEM."""
    other = certs.issue_client(certs.new_ca("untrusted"), name)
    return other.cert_pem + other.key_pem


def judge(found: Mapping[str, str]) -> list[Check]:
    """The in-worker checks (pure): TLS answers, everything else is refused, and no socket."""
    said = {k: found.get(k, "no answer") for k in tls_host.CHECKS}
    return [
        Check("`docker ps` in the worker through TLS exits 0", said["tls"] == "0", f"exit {said['tls']}"),
        Check("the task host refuses the worker without a client certificate", said["nocert"] not in ("0", "no answer"),
              f"exit {said['nocert']}"),
        Check("the task host refuses a client certificate from another CA", said["otherca"] not in ("0", "no answer"),
              f"exit {said['otherca']}"),
        Check("the task host does not answer plain TCP", said["plain"] not in ("0", "no answer"), f"exit {said['plain']}"),
        Check("the worker has no Docker socket", said["sock"] == "none", said["sock"]),
    ]


def provision(air: Side, task: Side, opts: PairOptions = PairOptions()) -> tuple[HostReport, HostReport]:
    """Both hosts to remote-tls, or both as they were."""
    ra, rt = HostReport(air.name), HostReport(task.name)
    try:
        endpoint = task_endpoint(task.vars or {}, task.name)
    except ValueError as exc:
        return ra.fail(str(exc)), rt.fail(str(exc))
    settings = with_endpoint(air.settings, endpoint)
    url = docker_url_of(endpoint)
    if certs.switching(opts.ca_path):
        why = "a CA switch is under way (certs.rotate --new-ca): finish it first (certs.rotate --finish-ca)"
        return ra.fail(why + "; nothing was changed"), rt.fail(why + "; nothing was changed")
    ca = certs.load_or_create_ca(opts.ca_path)
    before = gather(air.t, settings, deep=False, docker_url=url)
    task_facts = gather(task.t, task.settings, deep=False)
    tf = tls_host.gather(task.t, (*TASK_PATHS, DAEMON_JSON), endpoint["port"])
    af = tls_host.gather(air.t, AIRFLOW_PATHS)
    ours = tf.files.get("/etc/systemd/system/docker.service.d/hostprep-tls.conf")
    problems = task_problems(tf, task_facts, endpoint, ours is not None and ours.kind == "file")
    sans = [endpoint["address"], *([endpoint["ip"]] if endpoint.get("ip") else [])]
    server = keep_or_issue(tf, "/etc/hostprep/dockerd-tls", ca, lambda: certs.issue_server(
        ca, endpoint["address"], addresses=tuple(sans[1:]), days=opts.days), sans, renew_days=opts.renew_days)
    client = keep_or_issue(af, CLIENT_DIR, ca, lambda: certs.issue_client(ca, air.name, days=opts.days),
                           renew_days=float("inf") if opts.rotate else opts.renew_days)
    tplan = plan_files(tf, TASK_DIRS, task_files(server, tf.exec_start or "/usr/sbin/dockerd", endpoint["port"])
                       if tf.exec_start else {}, restart_if=TASK_PATHS)
    tplan = replace(tplan, change=replace(tplan.change, wait_port=endpoint["port"]),
                    problems=(*tplan.problems, *problems))
    aplan = plan_files(af, AIRFLOW_DIRS, airflow_files(client))
    plan = make_plan(before, settings, STRATEGY)
    ra.plan, ra.before = plan, worker_view(before)
    ra.warnings += plan.warnings
    rt.data["plan"] = list(tplan.steps)
    ra.data["files"] = list(aplan.steps)
    blocked = [*tplan.problems, *aplan.problems, *plan.problems]
    if blocked:
        why = "; ".join(blocked)
        return ra.fail(why), rt.fail(why)
    if opts.check or not (tplan.changed or aplan.changed or plan.changed):
        ra.status = CHANGED if plan.changed or aplan.changed else OK
        rt.status = CHANGED if tplan.changed else OK
        if not opts.check:   # nothing to do: prove it
            checked(air, settings, url, ra)
        return ra, rt
    return _apply(air, task, settings, url, before, plan, tplan, aplan, opts, ra, rt)


def rotate(air: Side, task: Side, opts: PairOptions = PairOptions()) -> tuple[HostReport, HostReport]:
    """``certs.rotate``: a new client certificate for the Airflow host now, the server's when it is due."""
    return provision(air, task, replace(opts, rotate=True))


def _apply(air: Side, task: Side, settings: HostSettings, url: str, before: Facts, plan: Any, tplan: FilePlan,
           aplan: FilePlan, opts: PairOptions, ra: HostReport, rt: HostReport) -> tuple[HostReport, HostReport]:
    owner = apply.lock_owner()
    snap_id = snapshots.new_id()
    snap = snapshots.take(before, plan, snap_id)
    snapshot_store.save_local(snap)
    rec = new_record(air.name, task.name, snap_id, aplan.undo, tplan.undo)
    save_record(rec)
    held: list[Side] = []
    try:
        for side in (task, air):
            hold(side.t, owner, snap_id, opts.lock_wait)
            held.append(side)
        start = time.monotonic()
        put(task.t, owner, tplan.change)
        rt.timings["apply"] = time.monotonic() - start
    except TlsHostError as exc:
        if len(held) == 2 and tplan.changed:
            _undo(task, owner, tplan.undo, rt)
        _release(held, owner)
        if len(held) < 2 or rt.rolled_back:   # nothing is left changed: no state to roll back to
            _forget(rec)
            snapshot_store.discard_local(air.name, snap_id)
        said = str(exc) + ("" if len(held) < 2 else _restored(rt))
        return ra.fail(f"nothing was changed here: the task host failed ({said})"), rt.fail(said)
    done = _apply_airflow(air, settings, url, before, plan, aplan, snap, owner, ra)
    if done:
        try:   # the interpreter released the Airflow host's lock at its end: the checks hold it again
            hold(air.t, owner, snap_id, opts.lock_wait)
            checked(air, settings, url, ra)
        except TlsHostError as exc:
            ra.fail(f"the checks could not take the host lock again ({exc})")
    if not done or ra.failed:
        why = ra.error or "the Airflow host failed"
        _restore_airflow(air, settings, before, snap, aplan, owner, ra)
        _undo(task, owner, tplan.undo, rt)
        _release(held, owner)
        return ra.fail(why + _restored(ra)), rt.fail(f"the Airflow host failed ({why})" + _restored(rt))
    _release(held, owner)
    ra.snapshot_id = rt.snapshot_id = snap_id
    ra.changed, ra.status = len(plan.steps) + len(aplan.steps), CHANGED
    rt.changed, rt.status = len(tplan.steps), CHANGED if tplan.changed else OK
    for host in (air.name, task.name):
        snapshot_store.append_history(host, {"event": "provision", "strategy": STRATEGY, "snapshot_id": snap_id,
                                        "pair": {"airflow": air.name, "task": task.name}})
    return ra, rt


def _apply_airflow(air: Side, settings: HostSettings, url: str, before: Facts, plan: Any, aplan: FilePlan,
                   snap: dict[str, Any], owner: str, ra: HostReport) -> bool:
    """The client certificates, then the Compose change (the lock handed to the interpreter, same owner)."""
    try:
        put(air.t, owner, aplan.change)
    except TlsHostError as exc:
        ra.fail(str(exc))
        return False
    record = snapshots.record(plan, snap["id"], before.access_gid, _now())
    outcome = apply.run(air.t, before, "apply", owner=owner, actions=[*plan.actions, snapshots.state_action(record)],
                        snapshot=(snap["id"], snapshot_store.encode(snap)), expect=apply.expectations(before),
                        probe=probe_env(settings, deep=False, docker_url=url), restore=snapshots.restore_plan(snap))
    ra.timings["compose"] = outcome.compose_seconds
    ra.data["compose_ran"] = "@@hostprep:snapshot " in outcome.log
    if not outcome.ok:
        ra.fail(outcome.error())
        ra.data["self_restored"] = outcome.restored
        return False
    return True


def checked(air: Side, settings: HostSettings, url: str, ra: HostReport) -> None:
    """Facts again, the desired state, and the checks inside the worker; the report fails if any does not hold."""
    after = gather(air.t, settings, deep=False, docker_url=url)
    ra.after = worker_view(after)
    ra.checks = verify(after, settings, STRATEGY)
    cid = after.worker.name if after.worker.running else None
    found = worker_checks(air.t, cid, url, CLIENT_DIR, _other_ca_pem(air.name)) if cid else {}
    ra.checks += judge(found)
    failed = [c for c in ra.checks if not c.ok]
    if failed:
        ra.fail("verification failed (" + "; ".join(f"{c.name}: {c.detail}" for c in failed) + ")")


def _restore_airflow(air: Side, settings: HostSettings, before: Facts, snap: dict[str, Any], aplan: FilePlan,
                     owner: str, ra: HostReport) -> None:
    if ra.data.pop("compose_ran", False) and not ra.data.pop("self_restored", False):
        prov.restore(air.t, before, snap, owner, ra)
    else:
        ra.rolled_back = True
    try:
        hold(air.t, owner, snap["id"])
        put(air.t, owner, aplan.undo)
    except TlsHostError as exc:
        ra.warnings.append(f"putting back the client certificates failed: {exc}")
        ra.rolled_back = False
    finally:
        release(air.t, owner)


def _undo(side: Side, owner: str, undo: Put, report: HostReport) -> None:
    try:
        put(side.t, owner, undo)
        report.rolled_back = True
    except TlsHostError as exc:
        report.warnings.append(f"putting the task host back failed: {exc}")


def _release(held: list[Side], owner: str) -> None:
    for side in held:
        try:
            release(side.t, owner)
        except Exception:   # a host we cannot reach keeps a lock that goes stale after HOLD_SECONDS
            pass


def _restored(report: HostReport) -> str:
    return "; restored" if report.rolled_back else "; the automatic restore FAILED, see the warnings"


# ------------------------------------------------------------------ the record and rollback


def new_record(air: str, task: str, snap_id: str | None, air_undo: Put, task_undo: Put) -> dict[str, Any]:
    """A run's record: both hosts, the Airflow host's snapshot (None: files only) and each host's undo."""
    rid = snap_id or snapshots.new_id()
    return {"id": rid, "at": _now(), "strategy": STRATEGY,
            "airflow": {"host": air, "snapshot_id": snap_id, "undo": put_to_dict(air_undo)},
            "task": {"host": task, "undo": put_to_dict(task_undo)}}


def save_record(rec: dict[str, Any]) -> None:
    text = json.dumps(rec, sort_keys=True)
    for host in (rec["airflow"]["host"], rec["task"]["host"]):
        write_private(host_dir(host) / "remote-tls" / f"{rec['id']}.json", text)


def _forget(rec: dict[str, Any], suffix: str = "") -> None:
    """Drop a record whose change is undone (``suffix``: keep it under another name, for the history)."""
    for host in (rec["airflow"]["host"], rec["task"]["host"]):
        path = host_dir(host) / "remote-tls" / f"{rec['id']}.json"
        if suffix and path.exists():
            path.rename(path.with_name(path.name + suffix))
        else:
            path.unlink(missing_ok=True)


def latest_record(host: str) -> dict[str, Any] | None:
    """The newest remote-tls record naming ``host`` (as the Airflow host or the task host)."""
    folder = host_dir(host) / "remote-tls"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for p in reversed(files):
        try:
            rec = json.loads(p.read_text())
        except ValueError:
            continue
        if isinstance(rec, dict) and snapshots.SNAPSHOT_ID.fullmatch(str(rec.get("id"))):
            return rec
    return None


def rollback(air: Side, task: Side, snap_id: str | None = None) -> tuple[HostReport, HostReport]:
    """Undo the last remote-tls run (or ``snap_id``'s) on both hosts: the Airflow host's snapshot and
    certificates, then the task host's drop-in and keys (dockerd restarted once)."""
    rec = latest_record(air.name)
    if snap_id is not None and (rec is None or rec["id"] != snap_id):
        path = host_dir(air.name) / "remote-tls" / f"{snap_id}.json"
        rec = json.loads(path.read_text()) if snapshots.SNAPSHOT_ID.fullmatch(snap_id) and path.exists() else None
    ra, rt = HostReport(air.name), HostReport(task.name)
    if rec is None or rec.get("airflow", {}).get("host") != air.name or rec.get("task", {}).get("host") != task.name:
        why = f"no remote-tls record naming {air.name} and {task.name}; nothing was changed"
        return ra.fail(why), rt.fail(why)
    try:
        aundo = put_from_dict(rec["airflow"]["undo"], AIRFLOW_PATHS)
        tundo = put_from_dict(rec["task"]["undo"], TASK_PATHS)
    except (ValueError, KeyError, TypeError) as exc:
        why = f"remote-tls record {rec.get('id')} refused: {exc}; nothing was changed"
        return ra.fail(why), rt.fail(why)
    snap = rec["airflow"].get("snapshot_id")   # None: a CA switch's record, files only
    back = prov.rollback(air.t, air.settings, snap) if snap else HostReport(air.name)
    ra.warnings += back.warnings
    ra.checks, ra.data = back.checks, back.data
    owner = apply.lock_owner()
    for side, undo, report in ((air, aundo, ra), (task, tundo, rt)):
        try:
            hold(side.t, owner, rec["id"])
            put(side.t, owner, undo)
            report.rolled_back, report.status, report.changed = True, CHANGED, len(undo.actions)
        except TlsHostError as exc:
            report.fail(f"putting back remote-tls's files failed: {exc}")
        finally:
            release(side.t, owner)
    if back.failed:
        ra.fail(back.error or "rollback failed")
    elif not rt.failed:
        _forget(rec, ".rolled-back")
    ra.snapshot_id = rt.snapshot_id = rec["id"]
    for host in (air.name, task.name):
        snapshot_store.append_history(host, {"event": "rollback", "strategy": STRATEGY, "snapshot_id": rec["id"], "at": _now()})
    return ra, rt


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
