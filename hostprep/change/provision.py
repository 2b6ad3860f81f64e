"""Provision and roll back one host: facts → plan → (check) → snapshot → apply+record → verify.

Each function takes a connected :class:`Transport` and returns a
:class:`HostReport`; the fleet fan-out and the rendering live elsewhere.
A failed apply or verification rolls the host back to its snapshot at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hostprep import strategies
from hostprep.change import apply, draining, smoke, snapshot_store, snapshots, switch
from hostprep.change.leftovers import removal_steps
from hostprep.change.plan import Action, Plan, make_plan
from hostprep.change.results import CHANGED, OK, HostReport
from hostprep.change.verify import verify
from hostprep.errors import TransportError
from hostprep.host.access import worker_view
from hostprep.host.facts import Facts, ProbeFailed
from hostprep.host.probe import gather, parse_probe, probe_env
from hostprep.inventory.settings import HostSettings
from hostprep.ssh.transport import Transport

__all__ = ["HostReport", "Options", "provision", "restore", "rollback"]


@dataclass(frozen=True)
class Options:
    strategy: str | None = None
    check: bool = False
    lock_wait: int = 10
    smoke_dag: str | None = None   # overrides the host's hostprep_smoke_dag
    smoke: bool = True             # run the Airflow check when the worker has `airflow`
    deep_before: bool = False      # also exec id/docker ps in the worker before changing anything
    break_lock: bool = False       # remove the host lock whoever holds it (recorded in the host's journal)
    drain: apply.Drain = apply.Drain()   # a Celery worker's running tasks finish before it is recreated


def _timed(report: HostReport, key: str, start: float) -> float:
    now = time.monotonic()
    report.timings[key] = report.timings.get(key, 0.0) + now - start
    return now


def provision(t: Transport, settings: HostSettings, opts: Options) -> HostReport:
    """Bring one host to the desired state, or leave it as it was."""
    report = HostReport(t.endpoint.name)
    start = time.monotonic()
    # Planning needs only host-side facts (cheap); the in-worker proof comes after the change.
    url = strategies.get(opts.strategy or settings.strategy).docker_url(settings)   # where the worker's Docker is
    before = gather(t, settings, deep=opts.deep_before, docker_url=url)
    if before.lock is not None and before.lock.stale and not opts.check:
        if not recover(t, settings, before, report):
            return report
        before = gather(t, settings, deep=opts.deep_before, docker_url=url)
    start = _timed(report, "facts", start)
    plan, base = _planned(t, settings, before, opts.strategy or settings.strategy)
    report.plan, report.before = plan, worker_view(before)
    report.warnings += plan.warnings
    if plan.blocked:
        return report.fail("; ".join(plan.problems))
    if opts.check or not plan.changed:
        if not opts.check and before.lock is not None and not before.lock.stale and not opts.break_lock:
            return report.fail(f"another hostprep run holds the host lock ({before.lock.describe()}): "
                               "the host may be mid-change; nothing was changed, try again later")
        return _unchanged(t, report, before, settings, plan, opts, start)
    return _apply(t, report, before, settings, plan, opts, start, base)


def _planned(t: Transport, settings: HostSettings, facts: Facts, strategy: str) -> tuple[Plan, dict[str, Any] | None]:
    """The plan; switching from the recorded strategy, it undoes that first, and the base it undoes to
    goes with it (for the snapshot). Without the base the plan refuses the switch."""
    recorded = (facts.record or {}).get("strategy")
    base = _switch_base(t, settings, facts) if recorded and recorded != strategy else None
    if base is None:
        return make_plan(facts, settings, strategy), None
    return switch.plan(facts, settings, strategy, base)


def _switch_base(t: Transport, settings: HostSettings, facts: Facts) -> dict[str, Any] | None:
    """The host before hostprep's first fix, found from the snapshot its record names (None: not found)."""
    sid = (facts.record or {}).get("snapshot_id")
    for _ in range(switch.MAX_CHAIN):
        if not isinstance(sid, str) or not snapshots.SNAPSHOT_ID.fullmatch(sid):
            return None
        try:
            snap = snapshot_store.find(t, sid, settings)
        except snapshots.SnapshotRefused:
            return None
        if snap is None:
            return None
        back = switch.step_back(snap)
        if not isinstance(back, str):
            return back
        sid = back
    return None


def recover(t: Transport, settings: HostSettings, facts: Facts, report: HostReport) -> bool:
    """A stale lock: its holder died mid-run. Put back the snapshot it stored before changing
    anything (taking the lock over, noted in the host's journal); without one, nothing was changed
    and the next apply takes the lock over. False (the report failed) when that restore failed."""
    assert facts.lock is not None
    lock = facts.lock
    report.warnings.append(f"stale host lock ({lock.stale}): held by {lock.describe()}")
    snap = snapshot_store.fetch_remote(t, lock.snapshot, settings) if lock.snapshot else None
    if snap is None:
        return True
    ok = restore(t, facts, snap, apply.lock_owner(), report, lock=apply.LockPolicy(takeover=True, snapshot=snap["id"]))
    if ok:
        report.warnings.append(f"the interrupted run was undone: restored from snapshot {snap['id']}")
    else:
        report.fail(f"an interrupted run left the host mid-change and restoring its snapshot failed: "
                    f"{report.warnings.pop()}")
    return ok


def _unchanged(t: Transport, report: HostReport, before: Facts, settings: HostSettings, plan: Plan, opts: Options,
               start: float) -> HostReport:
    """--check: report the plan. Nothing to do: prove it with the same checks a change is proven by
    (the in-worker ``id`` and ``docker ps`` included, and the Airflow check), without changing anything."""
    report.changed = len(plan.steps)
    report.status = CHANGED if plan.changed else OK
    if plan.changed:
        report.warnings += apply.drain_preview(t, before, plan.actions)
        _timed(report, "drain", start)
        return report
    now = before if before.deep else gather(t, settings, deep=True, docker_url=before.docker_url)
    report.after = worker_view(now)
    report.checks = verify(now, settings, plan.strategy)
    report.checks.append(smoke.check(t, now, opts.smoke_dag or settings.smoke_dag, enabled=opts.smoke,
                                     earlier=report.checks))
    _timed(report, "verify", start)
    if not all(c.ok for c in report.checks):
        return report.fail("the host matches the plan but verification fails: "
                           + "; ".join(c.name for c in report.checks if not c.ok))
    return report


def _apply(t: Transport, report: HostReport, before: Facts, settings: HostSettings, plan: Plan, opts: Options,
           start: float, base: dict[str, Any] | None = None) -> HostReport:
    """Snapshot, then one exec: the change, hostprep's record of it, releasing the lock, then the proof
    (facts, in-worker id and docker ps). A failed verification replays the snapshot, which puts the
    previous record back too."""
    snap_id = snapshots.new_id()
    snap = {**snapshots.take(before, plan, snap_id), **({"base": base} if base else {})}   # a switch's: see switch.py
    snapshot_store.save_local(snap)
    owner = apply.lock_owner()
    record = snapshots.record(plan, snap_id, before.access_gid, _now())
    outcome = apply.run(t, before, "apply", owner=owner, actions=[*plan.actions, snapshots.state_action(record)],
                        snapshot=(snap_id, snapshot_store.encode(snap)), expect=apply.expectations(before),
                        lock_wait=opts.lock_wait, probe=probe_env(settings, deep=True, docker_url=before.docker_url),
                        lock=apply.LockPolicy(takeover=before.lock is not None and bool(before.lock.stale),
                                              break_lock=opts.break_lock),
                        restore=snapshots.restore_plan(snap), drain=opts.drain)
    report.warnings += outcome.lock_notes + _reconnected(outcome) + draining.notes(outcome.log)
    report.timings["compose"] = outcome.compose_seconds
    report.timings["proof"] = outcome.probe_seconds   # the after-facts and in-worker checks, on the host
    drained = draining.waited(outcome.log)
    if drained is not None:   # how long the host waited for a busy worker's tasks, within the apply
        report.timings["drain"] = drained
    start = _timed(report, "apply", start)
    if not outcome.ok:
        if not outcome.snapshot_stored:   # stopped before its snapshot (said under the run's nonce): nothing changed
            snapshot_store.discard_local(report.host, snap_id)   # nor is it a state to roll back to
            said = outcome.exit_code in (apply.DRIFTED, apply.DRAIN_TIMEOUT, apply.DRAIN_FAILED)   # their messages say it
            return report.fail(outcome.error() + ("" if said else "; nothing was changed"))
        report.snapshot_id = snap_id
        if outcome.restored or outcome.restore_failed:   # the host undid it itself (or tried)
            report.rolled_back = outcome.restored
            return report.fail(outcome.error() + (f"; restored from snapshot {snap_id}" if outcome.restored
                                                  else _restore_failed(report.host, snap_id, "the host's own restore failed")))
        return report.fail(outcome.error() + _restored(t, before, snap, owner, report, opts.drain))
    report.snapshot_id = snap_id
    try:
        _verify(t, report, settings, outcome, before, plan, opts, start)
    except (ProbeFailed, TransportError, ValueError) as exc:   # the host is changed: say so, and keep its record
        snapshot_store.append_history(report.host, {"event": "provision", **record, "steps": snap["steps"], "verified": False})
        return _unverified(report, len(plan.steps), snap_id, str(exc))
    if not all(c.ok for c in report.checks):
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)
        return report.fail(f"verification failed ({failed})" + _restored(t, before, snap, owner, report, opts.drain))

    snapshot_store.append_history(report.host, {"event": "provision", **record, "steps": snap["steps"]})
    report.changed, report.status = len(plan.steps), CHANGED
    return report


def _unverified(report: HostReport, changed: int, snap_id: str, why: str) -> HostReport:
    """The change was applied but its proof failed to run: the host is changed, not verified (nor rolled back)."""
    report.changed = changed
    return report.fail(f"the change was applied (snapshot {snap_id}) but could not be verified: {why}; the host is "
                       f"changed, not verified: re-run `hostprep provision --host {report.host}` to verify it, or "
                       f"`hostprep rollback --host {report.host} --snapshot {snap_id}` to undo it")


def _verify(t: Transport, report: HostReport, settings: HostSettings, outcome: apply.Outcome, before: Facts,
            plan: Plan, opts: Options, start: float) -> None:
    """The proof after a change: facts re-gathered (or read from the apply's own probe), the strategy's
    checks and the Airflow check, into ``report``."""
    after = _facts_after(t, settings, outcome, deep=True, docker_url=before.docker_url)
    start = _timed(report, "verify", start)
    report.after = worker_view(after)
    report.checks = verify(after, settings, plan.strategy)
    report.checks.append(smoke.check(t, after, opts.smoke_dag or settings.smoke_dag, enabled=opts.smoke,
                                     earlier=report.checks))
    _timed(report, "smoke", start)


def _restored(t: Transport, facts: Facts, snap: dict[str, Any], owner: str, report: HostReport,
              drain: apply.Drain) -> str:
    """Restore after a failed apply; what to add to the error: restored, or FAILED and how to finish it."""
    if restore(t, facts, snap, owner, report, drain=drain):
        return f"; restored from snapshot {snap['id']}"
    return _restore_failed(report.host, snap["id"], report.warnings.pop())


def _restore_failed(host: str, snap_id: str, why: str) -> str:
    return (f"; automatic rollback FAILED ({why}): the host may be half-changed; finish it with "
            f"`hostprep rollback --host {host} --snapshot {snap_id}`")


def _reconnected(outcome: apply.Outcome) -> list[str]:
    n = outcome.reconnects
    return [f"the connection dropped during the run; reconnected ({n} tr{'y' if n == 1 else 'ies'}) and "
            "followed it on the host to its end"] if n else []


def restore(t: Transport, facts: Facts, snap: dict[str, Any], owner: str, report: HostReport,
            lock: apply.LockPolicy | None = None, drain: apply.Drain | None = None) -> bool:
    """Replay a snapshot on the host under the lock (Compose's leftovers removed first); on failure the reason
    is the report's last warning."""
    actions = [*_leftovers(facts, report), *snapshots.restore_plan(snap)]
    outcome = apply.run(t, facts, "restore", owner=owner, actions=actions,
                        lock=lock or apply.LockPolicy(snapshot=snap["id"]), drain=drain)
    report.warnings += outcome.lock_notes + draining.notes(outcome.log)
    report.rolled_back = outcome.ok
    if not outcome.ok:
        report.warnings.append(outcome.error())
    return outcome.ok


def rollback(t: Transport, settings: HostSettings, snap_id: str | None = None, *, lock_wait: int = 10,
             break_lock: bool = False, drain: apply.Drain = apply.Drain()) -> HostReport:
    """Restore the latest (or given) snapshot, then prove the host matches it. A stale lock (its
    holder is gone) is taken over, and noted in the host's journal: a rollback only puts back what
    the snapshot says."""
    report = HostReport(t.endpoint.name)
    start = time.monotonic()
    before = gather(t, settings, deep=False)
    report.before = worker_view(before)
    snap = _snapshot_to_restore(t, settings, before, snap_id)
    if isinstance(snap, str):
        return report.fail(f"{snap}; nothing was changed")
    report.snapshot_id = snap["id"]
    if before.unsafe_paths:   # re-checked on the host too, by every action
        return report.fail("refused: " + "; ".join(before.unsafe_paths) + "; nothing was changed")
    owner = apply.lock_owner()
    actions = [*_leftovers(before, report), *snapshots.restore_plan(snap)]
    deep = bool(snap["facts"].get("deep", True))   # compare like with like (and ask Docker where it was asked)
    url = snap["facts"].get("docker_url")
    outcome = apply.run(t, before, "restore", owner=owner, actions=actions, lock_wait=lock_wait,
                        probe=probe_env(settings, deep=deep, docker_url=url),
                        lock=apply.LockPolicy(takeover=True, break_lock=break_lock, snapshot=snap["id"]),
                        drain=drain)
    report.warnings += outcome.lock_notes + draining.notes(outcome.log)
    report.timings["compose"] = outcome.compose_seconds
    start = _timed(report, "restore", start)
    if not outcome.ok:
        return report.fail(outcome.error())
    try:
        after = _facts_after(t, settings, outcome, deep=deep, docker_url=url)
    except (ProbeFailed, TransportError, ValueError) as exc:   # restored, not checked: say so, and keep its record
        snapshot_store.append_history(report.host, {"event": "rollback", "snapshot_id": snap["id"], "at": _now(),
                                               "verified": False})
        report.changed, report.rolled_back = len(actions), True
        return report.fail(f"snapshot {snap['id']} was restored but the host could not be compared with it: {exc}; "
                           f"re-run `hostprep rollback --host {report.host} --snapshot {snap['id']}` to check it")
    _timed(report, "verify", start)
    report.after = worker_view(after)
    diffs = snapshots.differences(snapshots.reachable(snap, after.to_dict()), snapshots.fingerprint(after.to_dict()))
    report.warnings += [f"kept {d}/: the provision created it and the services mount it (removed, Docker would "
                        "only make it again at the recreate, owned by root)" for d in snapshots.kept_dirs(snap)]
    report.data["differences"] = diffs
    report.changed, report.status, report.rolled_back = len(actions), CHANGED, True
    snapshot_store.append_history(report.host, {"event": "rollback", "snapshot_id": snap["id"], "at": _now(),
                                           "differences": diffs})
    if diffs:
        return report.fail("host does not match the snapshot after rollback: " + "; ".join(diffs))
    return report


def _leftovers(facts: Facts, report: HostReport) -> list[Action]:
    """The actions that remove Compose's leftovers of an interrupted recreate, each said in the report."""
    steps = removal_steps(facts)
    report.warnings += [s.name.replace("remove ", "removing ", 1) for s in steps]
    return [a for s in steps for a in s.actions]


def _snapshot_to_restore(t: Transport, settings: HostSettings, facts: Facts,
                         snap_id: str | None) -> dict[str, Any] | str:
    """The given snapshot, else the one taken by the change the host's record says is applied (not merely
    the newest here, which another controller or a refused run may have made), else the newest; or why none."""
    host = t.endpoint.name
    sid = (facts.record or {}).get("snapshot_id")
    recorded = sid if not snap_id and isinstance(sid, str) and snapshots.SNAPSHOT_ID.fullmatch(sid) else None
    snap_id = snap_id or recorded
    try:
        snap = snapshot_store.find(t, snap_id, settings)
        if snap is None and recorded:
            return (f"the host's record says snapshot {recorded} holds the state before its change, but neither "
                    "this controller nor the host has it; pick one with --snapshot ID (`invoke snapshots` lists them)")
        if snap is None:
            return f"no snapshot{' ' + snap_id if snap_id else ''} for {host}"
        return snapshots.check(snap, host, settings)
    except snapshots.SnapshotRefused as exc:
        return str(exc)


def _facts_after(t: Transport, settings: HostSettings, outcome: apply.Outcome, *, deep: bool,
                 docker_url: str | None) -> Facts:
    """The facts the apply exec gathered after its change; asked again only if that probe was cut short."""
    if outcome.probe_output and "@@hostprep:end" in outcome.probe_output:
        return parse_probe(t.endpoint.name, outcome.probe_output, settings, deep=deep, docker_url=docker_url)
    return gather(t, settings, deep=deep, docker_url=docker_url)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
