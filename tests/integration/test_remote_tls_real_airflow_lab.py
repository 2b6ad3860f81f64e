"""Real Airflow with remote-tls: a DockerOperator task on real1 (the Airflow host) runs its container on
lab2's dockerd (the task host) over TLS, configured only from the Airflow connection hostprep writes;
rollback puts both back (the connection with the rest)."""

from __future__ import annotations

import json

import pytest

from hostprep.change import smoke
from hostprep.change.results import CHANGED
from tests.integration.conftest import REAL_HOSTS, Pristine, connect, facts_of, state_of
from tests.integration.test_remote_tls_lab import CLEAN_TASK, TASK, TASK_STATE, on_lab_network, run
from tests.lab import lab

pytestmark = pytest.mark.skipif(REAL_HOSTS < 1, reason="HOSTPREP_LAB_REAL=0: no real-Airflow lab host requested")

AIR = "real1"
DAG_ID = "hostprep_test_tls"
DAG = f'''"""A DAG written for remote-tls: DockerOperator configured only from the connection hostprep writes."""
import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG, Connection

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    DockerOperator(task_id="fetch", image="hostprep-lab/airflow-base:latest",
                   command=["sh", "-c", "echo hostprep-tls: ran on $(hostname)"], container_name="hostprep-tls-real",
                   auto_remove="never", mount_tmp_dir=False, **Connection.get("docker_tasks").extra_dejson)
'''


def in_worker(argv: list[str]) -> str:
    f = facts_of(AIR, deep=False)
    with connect(AIR) as t:
        res = t.run(["docker", "exec", f.worker.name or "", *argv], sudo=True, timeout=600)
    return res.stdout + res.stderr


def test_a_real_dockeroperator_task_runs_its_container_on_the_task_host_over_tls_and_rollback_puts_both_back(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    air, task = lab_hosts[AIR], lab_hosts[TASK]
    on_lab_network(air, task)
    task.exec(CLEAN_TASK)
    air.exec(f"rm -rf /etc/hostprep /opt/airflow/dags/{DAG_ID}.py")
    pristine(AIR, TASK)
    task.exec("docker rm -f hostprep-tls-real >/dev/null 2>&1 || true")
    air_before, task_before = state_of(AIR), task.exec(TASK_STATE)

    ra, rt = run(task, air=AIR)
    assert (ra.status, rt.status) == (CHANGED, CHANGED), (ra.error, rt.error)
    assert all(c.ok for c in ra.checks), [(c.name, c.detail) for c in ra.checks if not c.ok]   # python3, no CLI

    conn = json.loads(in_worker(["printenv", "AIRFLOW_CONN_DOCKER_TASKS"]))   # what the DAG gets: paths only
    assert conn["extra"]["docker_url"] == f"tcp://{task.container}:2376" and conn["extra"]["tls_verify"] is True
    air.exec(f"cat > /opt/airflow/dags/{DAG_ID}.py && chown 50000:0 /opt/airflow/dags/{DAG_ID}.py", input=DAG.encode())
    try:
        in_worker(["airflow", "dags", "reserialize"])
        out = in_worker(["airflow", "tasks", "test", DAG_ID, "fetch"])
        assert smoke.smoke_state(out) == "success", out[-3000:]
        assert "hostprep-tls: ran on" in out
        assert "hostprep-tls-real" in task.exec("docker ps -a --format '{{.Names}}'")
        assert "hostprep-tls-real" not in air.exec("docker ps -a --format '{{.Names}}'")
    finally:
        air.exec(f"rm -f /opt/airflow/dags/{DAG_ID}.py")
        task.exec("docker rm -f hostprep-tls-real >/dev/null 2>&1 || true")

    ba, bt = run(task, "rollback", air=AIR)
    assert not ba.failed and not bt.failed, (ba.error, bt.error)
    assert ba.data.get("differences") == []
    assert state_of(AIR) == air_before
    assert task.exec(TASK_STATE) == task_before
    assert "AIRFLOW_CONN_DOCKER_TASKS" not in in_worker(["printenv"])
