"""Compose's leftovers from an interrupted recreate (issue 23, item 2): recognised from the facts, removed by the
next provision or rollback with a line saying so, never recorded in a snapshot, never what a rollback judges."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hostprep.host.containers import ContainerFacts, Mount
from hostprep.host.facts import Facts
from hostprep.change.leftovers import is_leftover, removal_steps, without_leftovers
from hostprep.change.plan import make_plan
from hostprep.change.snapshots import differences, fingerprint, take
from tests.unit.change.test_plan import in_current_words
from tests.unit.change.test_snapshots import LAB, facts_of

OLD = "3f9a1c2b4d5e" + "0" * 52          # the worker Compose renamed, then never removed
NEW = "9" * 64                           # the worker Compose runs now
MOUNTS = (Mount("/var/run/docker.sock", "/var/run/docker.sock"),)


def worker(cid: str, name: str, running: bool, project: str = "airflow") -> ContainerFacts:
    return ContainerFacts(id=cid, name=name, service="airflow-worker", project=project, running=running, mounts=MOUNTS)


def with_containers(*containers: ContainerFacts) -> Facts:
    f = facts_of("lab1_pristine")
    return dataclasses.replace(f, containers=containers, worker=dataclasses.replace(f.worker, compose_project="airflow"))


LEFT = worker(OLD, "3f9a1c2b4d5e_airflow-airflow-worker-1", False)
RUNNING = worker(NEW, "airflow-airflow-worker-1", True)


@pytest.mark.parametrize("container, left", [
    (LEFT, True),
    (dataclasses.replace(LEFT, name="/3f9a1c2b4d5e_airflow-airflow-worker-1"), True),   # dockerd's own spelling
    (dataclasses.replace(LEFT, running=True), False),                    # running: not Compose's temporary copy
    (dataclasses.replace(LEFT, name="aaaaaaaaaaaa_airflow-airflow-worker-1"), True),    # Compose 2.2x: the old one's id
    (dataclasses.replace(LEFT, name="aaaaaaaaaaa_airflow-airflow-worker-1"), False),     # 11 digits
    (dataclasses.replace(LEFT, name="AAAAAAAAAAAA_airflow-airflow-worker-1"), False),    # not Compose's hex
    (dataclasses.replace(LEFT, service=None), False),                    # no Compose service
    (dataclasses.replace(LEFT, id=OLD[:12]), False),                     # not a full id
    (dataclasses.replace(LEFT, name="3f9a1c2b4d5e_a b"), False),         # not a name dockerd allows
    (RUNNING, False),
    (dataclasses.replace(RUNNING, running=False), False),                # a stopped worker is the worker
])
def test_a_leftover_is_a_stopped_service_container_under_composes_temporary_name(container: ContainerFacts, left: bool) -> None:
    assert is_leftover(container.id, container.name, container.service, container.running) is left


def test_the_next_provision_removes_a_leftover_first_by_id_with_a_line_saying_so() -> None:
    plan = make_plan(with_containers(LEFT, RUNNING), LAB, "group-add")
    first = plan.steps[0]
    assert first.name == "remove leftover container 3f9a1c2b4d5e_airflow-airflow-worker-1 " \
                         "(left by an interrupted recreate)"
    assert [(a.op, a.args) for a in first.actions] == [("container-rm", (OLD,))]
    assert [s.name for s in plan.steps[1:]] == [s.name for s in make_plan(with_containers(RUNNING), LAB, "group-add").steps]


def test_a_host_already_fixed_plans_only_the_leftovers_removal() -> None:
    fixed = in_current_words(facts_of("lab1_audit_groupadd"))
    assert not make_plan(fixed, LAB, "group-add").changed
    facts = dataclasses.replace(fixed, containers=(LEFT, RUNNING),
                                worker=dataclasses.replace(fixed.worker, compose_project="airflow"))
    assert [s.name.split(" (")[0] for s in make_plan(facts, LAB, "group-add").steps] == \
        ["remove leftover container 3f9a1c2b4d5e_airflow-airflow-worker-1"]


def test_a_leftover_of_another_project_is_never_removed() -> None:
    other = worker(OLD, "3f9a1c2b4d5e_other-airflow-worker-1", False, project="other")
    no_project = with_containers(LEFT)
    assert removal_steps(with_containers(other, RUNNING)) == []
    assert removal_steps(dataclasses.replace(no_project, worker=dataclasses.replace(no_project.worker,
                                                                                     compose_project=None))) == []


def test_a_snapshot_never_records_a_leftover_as_part_of_the_service() -> None:
    facts = with_containers(LEFT, RUNNING)
    snap = json.loads(json.dumps(take(facts, make_plan(facts, LAB, "group-add"), "20261125T173000Z-3f9a")))
    assert [c["id"] for c in snap["facts"]["containers"]] == [NEW]


def test_a_rollback_judges_the_service_by_what_compose_runs_not_by_a_leftover() -> None:
    """The issue's failure: services.airflow-worker: [{running False}, {running True}] -> [{running True}]."""
    with_left = json.loads(json.dumps(with_containers(LEFT, RUNNING).to_dict()))
    after = json.loads(json.dumps(with_containers(RUNNING).to_dict()))
    assert differences(fingerprint(with_left), fingerprint(after)) == []
    assert differences(fingerprint(after), fingerprint(with_left)) == []


def test_a_rollback_still_sees_a_service_that_stopped_or_changed_its_mounts() -> None:
    after = json.loads(json.dumps(with_containers(dataclasses.replace(RUNNING, running=False)).to_dict()))
    moved = json.loads(json.dumps(with_containers(dataclasses.replace(RUNNING, mounts=())).to_dict()))
    before = fingerprint(json.loads(json.dumps(with_containers(RUNNING).to_dict())))
    assert differences(before, fingerprint(after)) and differences(before, fingerprint(moved))


def test_without_leftovers_keeps_anything_it_cannot_read() -> None:
    assert without_leftovers(None) is None and without_leftovers([5, {"id": 1}]) == [5, {"id": 1}]
