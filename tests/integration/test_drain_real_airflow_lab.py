"""A busy Celery worker on the real-Airflow lab host: a DockerOperator task is in flight when hostprep
must recreate the worker. With a short --drain-timeout hostprep refuses and changes nothing; with the
default it waits (the worker takes no new work meanwhile), then recreates and verifies; the task ends
`success` either way, exactly one container ran for it and none is left behind."""

from __future__ import annotations

import threading
import time

import pytest

from hostprep.change import apply
from hostprep.change import provision as prov
from hostprep.change.results import CHANGED, FAILED
from tests.integration.conftest import Pristine, connect, facts_of, settings
from tests.lab import lab, real_airflow

pytestmark = pytest.mark.skipif(
    __import__("tests.integration.conftest", fromlist=["REAL_HOSTS"]).REAL_HOSTS < 1,
    reason="HOSTPREP_LAB_REAL=0: no real-Airflow lab host requested")

HOST = "real1"
OVERRIDE = "/opt/airflow/docker-compose.hostprep.yml"
RUN_ID = f"hostprep_drain_{time.time_ns()}"   # the stack's database outlives a pristine reset: a run id is used once
TASK_CONTAINERS = f"docker ps -a -q --filter ancestor={real_airflow.TASK_IMAGE}"


def wait_for_no_task_containers(h: lab.LabHost, seconds: float = 60) -> bool:
    """None of the task image's containers is left (DockerOperator's auto_remove runs as the task ends)."""
    deadline = time.monotonic() + seconds
    while h.exec(TASK_CONTAINERS).strip():
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
    return True


def airflow(h: lab.LabHost, *argv: str) -> str:
    """The Airflow CLI in the scheduler (the lab's back door: the operator's own tool)."""
    cmd = " ".join(argv)
    # COMPOSE_FILE: the operator's own file (the test removes hostprep's override, which .env still names)
    return h.exec(f"cd /opt/airflow && COMPOSE_FILE=docker-compose.yaml {h.compose_cmd} exec -T airflow-scheduler "
                  f"airflow {cmd} 2>/dev/null", timeout=300)


def task_state(h: lab.LabHost, run_id: str = RUN_ID) -> str:
    out = airflow(h, "tasks", "state", real_airflow.LONG_DAG_ID, "work", run_id)
    return out.strip().splitlines()[-1].strip() if out.strip() else ""


def wait_for(what: str, predicate, timeout: float) -> None:   # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(2)


def worker_id(h: lab.LabHost) -> str:
    return h.exec("docker ps -q --no-trunc --filter label=com.docker.compose.service=airflow-worker").strip()


def test_a_busy_worker_is_drained_before_it_is_recreated_and_a_short_drain_timeout_changes_nothing(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = pristine(HOST)
    # a task container another test or a cut-off run left would pass for this run's (the reset keeps the host's
    # containers): none of the task image's at the start
    h.exec(f"ids=$({TASK_CONTAINERS}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null")
    assert h.exec(TASK_CONTAINERS).strip() == ""
    # the worker reaches Docker (group-add), then its override is lost: a re-provision must recreate it
    with connect(HOST) as t:
        first = prov.provision(t, settings(HOST), prov.Options(smoke=False))
    assert first.status == CHANGED, first.error
    h.exec(f"rm -f {OVERRIDE}")
    since = h.exec("date +%s").strip()
    airflow(h, "dags", "trigger", real_airflow.LONG_DAG_ID, "--run-id", RUN_ID)
    wait_for("the long task's container", lambda: h.exec(TASK_CONTAINERS).strip() != "", 240)

    before_id, env_before = worker_id(h), h.exec("sha256sum /opt/airflow/.env")
    with connect(HOST) as t:
        refused = prov.provision(t, settings(HOST), prov.Options(smoke=False, drain=apply.Drain(5)))
    assert refused.status == FAILED
    assert "still running on celery@" in (refused.error or "") and "hostprep_long.work" in (refused.error or ""), \
        refused.error
    assert "nothing was changed" in (refused.error or "")
    # unchanged: the same worker container, no override written, .env as it was, the lock free
    assert worker_id(h) == before_id
    assert h.exec(f"test -e {OVERRIDE} && echo yes || echo no").strip() == "no"
    assert h.exec("sha256sum /opt/airflow/.env") == env_before
    assert facts_of(HOST, deep=False).lock is None
    assert task_state(h) == "running"
    assert consumed_queues(h) == "['default']"   # its own queue back, and nothing else

    started = time.monotonic()
    with connect(HOST) as t:
        report = prov.provision(t, settings(HOST), prov.Options(smoke=False))
    waited = time.monotonic() - started
    assert report.status == CHANGED, report.error
    assert any(w.startswith("drained celery@") for w in report.warnings), report.warnings
    assert all(c.ok for c in report.checks), report.checks
    assert worker_id(h) != before_id
    # the task finished before the worker went: success, one container ever created for it, none left
    assert task_state(h) == "success", waited
    created = h.exec(f"docker events --since {since} --until $(date +%s) --filter type=container "
                     f"--filter event=create --filter image={real_airflow.TASK_IMAGE} --format '{{{{.ID}}}}'")
    assert len(created.split()) == 1, created
    assert wait_for_no_task_containers(h), h.exec(TASK_CONTAINERS)


QUEUES = ("python3 -c \"from airflow.providers.celery.executors.celery_executor import app; "
          "r = app.control.inspect(destination=['{node}'], timeout=5).active_queues() or {{}}; "
          "print(sorted(q['name'] for q in r['{node}']) if '{node}' in r else 'no answer')\"")


def consumed_queues(h: lab.LabHost) -> str:
    """The queues the worker consumes, as Celery's own inspect answers (``[]``: it takes no new work;
    ``no answer``: not up yet)."""
    wid = worker_id(h)
    node = "celery@" + h.exec(f"docker inspect -f '{{{{.Config.Hostname}}}}' {wid}").strip()
    return h.exec(f"docker exec {wid} {QUEUES.format(node=node)} 2>/dev/null").strip().splitlines()[-1]


def test_a_run_killed_mid_drain_leaves_a_note_and_the_next_run_gives_the_worker_its_queues_back(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    """SIGKILL (its traps never run) while the worker is drained: the worker would take no new work for
    good. The note the drain wrote first lets the next run under the lock add its consumers back."""
    h = pristine(HOST)
    with connect(HOST) as t:
        assert prov.provision(t, settings(HOST), prov.Options(smoke=False)).status == CHANGED
    h.exec(f"rm -f {OVERRIDE}")
    wait_for("the recreated worker to consume", lambda: consumed_queues(h) == "['default']", 180)
    airflow(h, "dags", "trigger", real_airflow.LONG_DAG_ID, "--run-id", RUN_ID + "_killed")
    wait_for("the long task's container", lambda: h.exec(TASK_CONTAINERS).strip() != "", 240)

    box: list[prov.HostReport] = []

    def run() -> None:
        with connect(HOST) as t:
            box.append(prov.provision(t, settings(HOST), prov.Options(smoke=False)))
    th = threading.Thread(target=run)
    th.start()
    wait_for("the drain's note, with the worker's queues",
             lambda: len(h.exec("cat /var/lib/hostprep/drained 2>/dev/null || true").split()) > 2, 120)
    pid = h.exec("sed -n 's/^pid=\\([0-9]*\\) .*/\\1/p' /var/lib/hostprep/lock/holder").strip()
    h.exec(f"kill -9 {pid}")
    th.join(300)
    assert box and box[0].status == FAILED, box
    assert consumed_queues(h) == "[]", "the killed run had not drained the worker: nothing to recover"

    with connect(HOST) as t:
        after = prov.provision(t, settings(HOST), prov.Options(smoke=False))
    assert after.status == CHANGED, after.error
    assert any("consumers were added back" in w for w in after.warnings), after.warnings
    assert "a dead run left celery@" in h.exec("cat /var/lib/hostprep/journal.log")
    wait_for("the recreated worker to consume", lambda: consumed_queues(h) == "['default']", 180)
    assert h.exec("test -e /var/lib/hostprep/drained || echo gone").strip() == "gone"
    assert task_state(h, RUN_ID + "_killed") == "success"   # the second run waited for it too
