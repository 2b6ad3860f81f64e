"""Issue 23, item 3, on the real-Airflow lab host: hostprep's Python inside the worker runs isolated
from what the worker's tasks can change, and cannot hold a run (or the host lock) when it hangs.

A task runs as the worker's user and can write the image's working directory (/opt/airflow): a
`json.py` or `socket.py` planted there ran inside the drain (`python3 -c` from that directory) and
could print a forged `@@hostprep:snapshot` marker. Here they are planted as a task would plant them,
and write a proof file (on the logs bind mount, which outlives the worker) if they ever run."""

from __future__ import annotations

import time

import pytest

from hostprep.change import apply, smoke
from hostprep.change import provision as prov
from hostprep.change.results import CHANGED, FAILED
from tests.integration.conftest import Pristine, connect, facts_of, settings
from tests.lab import lab, real_airflow

pytestmark = pytest.mark.skipif(
    __import__("tests.integration.conftest", fromlist=["REAL_HOSTS"]).REAL_HOSTS < 1,
    reason="HOSTPREP_LAB_REAL=0: no real-Airflow lab host requested")

HOST = "real1"
OVERRIDE = "/opt/airflow/docker-compose.hostprep.yml"
PROOF = "/opt/airflow/logs/hostprep-planted"   # the logs bind mount: /opt/airflow/logs in the worker too
FORGED = ('print("@@hostprep:snapshot 20990101T000000Z-forged")\n'
          'print(\'@@hostprep-dag-run {"state": "success", "tasks": [["fetch", "success"]]}\')\n')


def worker_id(h: lab.LabHost) -> str:
    return h.exec("docker ps -q --no-trunc --filter label=com.docker.compose.service=airflow-worker").strip()


def plant(h: lab.LabHost) -> None:
    """json.py and socket.py in the worker's working directory, written as its user (what a task can do)."""
    for name in ("json", "socket"):
        body = f"open('{PROOF}-{name}', 'w').write('ran')\n{FORGED}"
        h.exec(f"docker exec -i {worker_id(h)} sh -c 'cat > /opt/airflow/{name}.py'", input=body.encode())
    assert h.exec(f"docker exec {worker_id(h)} ls /opt/airflow/json.py /opt/airflow/socket.py").count(".py") == 2


def proofs(h: lab.LabHost) -> str:
    return h.exec(f"ls {PROOF}-* 2>/dev/null || true").strip()


def test_modules_planted_in_the_workers_working_directory_never_run_in_the_drain_or_the_checks(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = pristine(HOST)
    h.exec(f"rm -f {PROOF}-*")
    with connect(HOST) as t:
        assert prov.provision(t, settings(HOST), prov.Options(smoke=False)).status == CHANGED
    h.exec(f"rm -f {OVERRIDE}")   # the next provision recreates the worker: it is drained first
    plant(h)

    with connect(HOST) as t:
        report = prov.provision(t, settings(HOST), prov.Options(smoke=False))
    assert report.status == CHANGED, report.error
    assert any(w.startswith("drained celery@") for w in report.warnings), report.warnings
    assert report.snapshot_id != "20990101T000000Z-forged"
    assert proofs(h) == "", "a planted module ran inside the drain"

    plant(h)   # the recreated worker: planted again, then every in-worker check runs
    facts = facts_of(HOST)
    with connect(HOST) as t:
        ping = smoke.run(t, facts, None)
        task = smoke.run(t, facts, f"{real_airflow.CHECK_DAG_ID}:{real_airflow.SMOKE_TASK}")
        run = smoke.run(t, facts, real_airflow.DAG_ID)
    assert ping.ok and "docker-py reached the daemon" in ping.detail, ping
    assert task.ok, task
    assert run.ok and run.detail.startswith("run success: "), run
    assert proofs(h) == "", "a planted module ran inside an in-worker check"


def test_a_python3_that_hangs_in_the_worker_ends_at_the_timeout_and_the_lock_is_freed(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = pristine(HOST)
    with connect(HOST) as t:
        assert prov.provision(t, settings(HOST), prov.Options(smoke=False)).status == CHANGED
    h.exec(f"rm -f {OVERRIDE}")
    wid = worker_id(h)
    # the worker's python3 (root's, where hostprep looks for it) now hangs, and the worker has no
    # `timeout` of its own: only the host's timeout can end hostprep's exec
    h.exec(f"docker exec -u 0 {wid} sh -c 'mv /opt/venv/bin/python3 /opt/venv/bin/python3.real && "
           "printf \"#!/bin/sh\\nexec sleep 100000\\n\" > /opt/venv/bin/python3 && chmod 755 /opt/venv/bin/python3 && "
           "mv /usr/bin/timeout /usr/bin/timeout.off'")
    try:
        started = time.monotonic()
        with connect(HOST) as t:
            report = prov.provision(t, settings(HOST), prov.Options(smoke=False, drain=apply.Drain(5)))
        took = time.monotonic() - started
        assert report.status == FAILED
        assert f"did not finish within {5 + 60} s" in (report.error or "") and wid[:12] in (report.error or ""), \
            report.error
        assert "nothing was changed" in (report.error or "")
        assert took < 5 + 60 + 90, took
        assert facts_of(HOST, deep=False).lock is None
        assert h.exec("test -e /var/lib/hostprep/drained && echo left || echo none").strip() == "none"
        assert worker_id(h) == wid   # not recreated

        facts = facts_of(HOST, deep=False)
        with connect(HOST) as t:
            check = smoke.run(t, facts, real_airflow.DAG_ID, timeout=5)
        assert not check.ok and f"did not finish within {5 + 60} s" in check.detail and facts.worker.name, check
    finally:
        h.exec(f"docker exec -u 0 {wid} sh -c 'mv -f /opt/venv/bin/python3.real /opt/venv/bin/python3; "
               "mv -f /usr/bin/timeout.off /usr/bin/timeout' || true", check=False)
