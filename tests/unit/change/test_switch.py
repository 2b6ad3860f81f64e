"""Switching strategy (issue 19), pure: the recorded fix undone to the base, the new one applied, under one
snapshot whose rollback returns to the old fix. The host is simulated by landing the plan's file and socket
actions on the facts; the lab test (test_interrupted_lab.py) does it for real."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hostprep.change import snapshots, switch
from hostprep.host.facts import OVERRIDE_FILE, Facts
from hostprep.layout import STATE_FILE
from hostprep.change.plan import Action, Plan, make_plan
from tests.unit.change.test_plan import LAB, facts_of, with_file

ENV_BEFORE = facts_of("lab1_pristine").files[".env"].content


def landed(facts: Facts, actions: tuple[Action, ...] | list[Action]) -> Facts:
    """The facts once ``actions``' writes, deletes and socket changes have landed."""
    for a in actions:
        path = a.args[0] if a.args else ""
        if path == STATE_FILE:
            facts = dataclasses.replace(facts, record=json.loads(a.content or "") if a.op == "write" else None)
        elif a.op == "write":
            uid, gid, mode = a.args[1:]
            facts = with_file(facts, path.rsplit("/", 1)[1], a.content, int(mode, 8), int(uid), int(gid))
        elif a.op == "delete":
            facts = with_file(facts, path.rsplit("/", 1)[1], None)
        elif path == facts.socket.path and a.op in ("chmod", "chown"):
            sock = dataclasses.replace(facts.socket, mode=int(a.args[1], 8)) if a.op == "chmod" else \
                dataclasses.replace(facts.socket, uid=int(a.args[1]), gid=int(a.args[2]))
            facts = dataclasses.replace(facts, socket=sock)
    return facts


def provisioned(facts: Facts, plan: Plan, base: dict | None = None) -> tuple[Facts, dict]:
    """(the host after the plan and its record, the snapshot taken before it)."""
    snap_id = snapshots.new_id()
    snap = {**snapshots.take(facts, plan, snap_id), **({"base": base} if base else {})}
    rec = snapshots.record(plan, snap_id, facts.access_gid, "2026-12-07T00:00:00+00:00")
    return landed(facts, [*plan.actions, snapshots.state_action(rec)]), snap


def project(facts: Facts) -> tuple:
    """What a switch or a rollback must get exactly right: the project files, the socket, the record."""
    files = {n: (f.exists, f.content, f.mode, f.uid, f.gid) for n, f in sorted(facts.files.items())}
    record = {k: v for k, v in (facts.record or {}).items() if k not in ("snapshot_id", "applied_at")}
    return files, (facts.socket.mode, facts.socket.uid, facts.socket.gid), record or None


@pytest.fixture
def group_added() -> tuple[Facts, dict]:
    pristine = facts_of("lab1_pristine")
    return provisioned(pristine, make_plan(pristine, LAB, "group-add"))


def test_switching_from_group_add_to_chmod_undoes_the_override_then_opens_the_socket(group_added) -> None:
    facts, snap = group_added
    plan, _ = switch.plan(facts, LAB, "chmod", snap)
    assert not plan.blocked and plan.switched_from == "group-add"
    assert [s.name for s in plan.steps] == ["undo group-add: restore .env", f"undo group-add: delete {OVERRIDE_FILE}",
                                           "chmod 666 /var/run/docker.sock", "recreate airflow-worker"]
    assert "switching strategy group-add -> chmod" in plan.warnings[0]
    after = landed(facts, plan.actions)
    assert not after.files[OVERRIDE_FILE].exists and after.files[".env"].content == ENV_BEFORE
    assert after.socket.mode == 0o666


def test_the_switch_is_one_snapshot_whose_rollback_returns_to_the_old_strategy_exactly(group_added) -> None:
    facts, snap = group_added
    plan, base = switch.plan(facts, LAB, "chmod", snap)
    switched, snap2 = provisioned(facts, plan, base)
    assert switched.record and switched.record["strategy"] == "chmod" and switched.record["switched_from"] == "group-add"
    snapshots.check(json.loads(json.dumps(snap2)), "lab1", LAB)   # what a host sends back passes the same checks
    assert project(landed(switched, snapshots.restore_plan(snap2))) == project(facts)


def test_switching_back_reaches_the_same_host_as_the_first_provision(group_added) -> None:
    """chmod's snapshot carries the base, so the second switch undoes the socket to its first mode too."""
    facts, snap = group_added
    plan, base = switch.plan(facts, LAB, "chmod", snap)
    switched, snap2 = provisioned(facts, plan, base)
    back_base = switch.step_back(snap2)
    assert isinstance(back_base, dict) and back_base["id"] == snap["id"]
    plan3, base3 = switch.plan(switched, LAB, "group-add", back_base)
    sock = facts.socket
    assert plan3.steps[0].name == f"undo chmod: docker.sock back to {sock.mode:o} {sock.uid}:{sock.gid}"
    assert project(provisioned(switched, plan3, base3)[0]) == project(dataclasses.replace(facts, record={
        **(facts.record or {}), "switched_from": "chmod"}))


def test_a_switch_with_nothing_to_undo_to_is_refused_naming_the_way_out() -> None:
    facts = dataclasses.replace(facts_of("lab1_pristine"), record={"strategy": "dockerfile", "snapshot_id": "x"})
    (problem,) = make_plan(facts, LAB, "group-add").problems
    assert problem.startswith("strategy dockerfile is applied on this host") and "`hostprep rollback` it" in problem


def test_step_back_follows_a_reprovision_and_stops_where_there_is_no_way_back(group_added) -> None:
    facts, snap = group_added
    assert switch.step_back(snap) is snap   # the first fix's snapshot is the base
    again = {**snap, "id": snapshots.new_id(), "record": facts.record}
    assert switch.step_back(again) == (facts.record or {})["snapshot_id"]
    assert switch.step_back({**again, "record": {**(facts.record or {}), "strategy": "chmod"}}) is None


def test_a_forged_base_in_a_hosts_snapshot_is_refused(group_added) -> None:
    facts, snap = group_added
    forged = {**snap, "id": snapshots.new_id(), "base": {**snap, "files": {"/etc/passwd": {"existed": False}}}}
    with pytest.raises(snapshots.SnapshotRefused, match="its base: path '/etc/passwd'"):
        snapshots.check(forged, "lab1", LAB)
    with pytest.raises(snapshots.SnapshotRefused, match="its base must be one snapshot"):
        snapshots.check({**snap, "base": {**snap, "base": snap}}, "lab1", LAB)
