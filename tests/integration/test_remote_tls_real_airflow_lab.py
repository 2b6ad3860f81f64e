"""Real Airflow with remote-tls: a DockerOperator task on real1 (the Airflow host) runs its container on
lab2's dockerd (the task host) over TLS, configured only from the Airflow connection hostprep writes;
rollback puts both back (the connection with the rest)."""

from __future__ import annotations

import json
import time

import pytest

from hostprep.change import ca_rotation, certs, smoke, tls_host
from hostprep.change import remote_tls_run as rtls
from hostprep.change.results import CHANGED
from hostprep.strategies.remote_tls import CLIENT_DIR
from tests.integration.conftest import REAL_HOSTS, Pristine, connect, entry, facts_of, settings, state_of
from tests.integration.test_remote_tls_lab import CLEAN_TASK, TASK, TASK_STATE, on_lab_network, run, task_ip
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


def provisioned(lab_hosts: dict[str, lab.LabHost], pristine: Pristine, dag_id: str,
                container: str) -> tuple[lab.LabHost, lab.LabHost, dict[str, object], str]:
    """Both hosts pristine on the lab's network (no DAG file ``dag_id``, no task ``container``), their state
    before, then provisioned: the Airflow host, the task host and the two states."""
    air, task = lab_hosts[AIR], lab_hosts[TASK]
    on_lab_network(air, task)
    task.exec(CLEAN_TASK)
    air.exec(f"rm -rf /etc/hostprep /opt/airflow/dags/{dag_id}.py")
    pristine(AIR, TASK)
    task.exec(f"docker rm -f {container} >/dev/null 2>&1 || true")
    air_before, task_before = state_of(AIR), task.exec(TASK_STATE)
    ra, rt = run(task, air=AIR)
    assert (ra.status, rt.status) == (CHANGED, CHANGED), (ra.error, rt.error)
    assert all(c.ok for c in ra.checks), [(c.name, c.detail) for c in ra.checks if not c.ok]   # python3, no CLI
    return air, task, air_before, task_before


def test_a_real_dockeroperator_task_runs_its_container_on_the_task_host_over_tls_and_rollback_puts_both_back(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    air, task, air_before, task_before = provisioned(lab_hosts, pristine, DAG_ID, "hostprep-tls-real")

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


LONG_DAG_ID = "hostprep_test_tls_long"
LONG_DAG = f'''"""A 45 s DockerOperator task on the task host, configured only from hostprep's connection."""
import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG, Connection

with DAG(dag_id="{LONG_DAG_ID}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    DockerOperator(task_id="work", image="hostprep-lab/airflow-base:latest",
                   command=["sh", "-c", "sleep 45; echo hostprep-tls: long task done"], container_name="hostprep-tls-long",
                   auto_remove="never", mount_tmp_dir=False, **Connection.get("docker_tasks").extra_dejson)
'''


def old_client_is(task: lab.LabHost, pem: str) -> str:
    """What the task host answers a worker that shows ``pem`` (a client certificate and key): its exit code."""
    f = facts_of(AIR, deep=False)
    with connect(AIR) as t:
        return tls_host.worker_checks(t, f.worker.name or "", f"tcp://{task.container}:2376", CLIENT_DIR, pem)["otherca"]


def test_a_new_ca_is_trusted_beside_the_old_while_a_real_task_runs_then_alone_and_rollback_puts_both_back(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    air, task, air_before, task_before = provisioned(lab_hosts, pristine, LONG_DAG_ID, "hostprep-tls-long")
    old_pem = air.exec(f"cat {CLIENT_DIR}/cert.pem {CLIENT_DIR}/key.pem")
    tvars = {**entry(TASK).vars, "hostprep_tls_address": task.container, "hostprep_tls_ip": task_ip(task)}

    air.exec(f"cat > /opt/airflow/dags/{LONG_DAG_ID}.py && chown 50000:0 /opt/airflow/dags/{LONG_DAG_ID}.py",
             input=LONG_DAG.encode())
    worker = facts_of(AIR, deep=False).worker.name
    try:
        in_worker(["airflow", "dags", "reserialize"])
        air.exec(f"docker exec -d {worker} sh -c 'airflow tasks test {LONG_DAG_ID} work > /tmp/long.log 2>&1; "
                 "echo rc=$? >> /tmp/long.log'")
        for _ in range(240):
            if "hostprep-tls-long" in task.exec("docker ps --format '{{.Names}}'"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the long task never started on the task host: " + in_worker(["cat", "/tmp/long.log"])[-2000:])
        dockerd = task.exec("systemctl show docker.service -p MainPID --value").strip()
        with connect(AIR) as a, connect(TASK) as t:
            na, nt = ca_rotation.rotate_ca(rtls.Side(a, settings(AIR)), rtls.Side(t, settings(TASK), tvars), ca_rotation.NEW,
                                           rtls.PairOptions(drain_timeout=300))
        assert (na.status, nt.status) == (CHANGED, CHANGED), (na.error, nt.error)
        assert all(c.ok for c in na.checks), [(c.name, c.detail) for c in na.checks if not c.ok]
        assert task.exec("systemctl show docker.service -p MainPID --value").strip() != dockerd   # restarted once, after
        for _ in range(240):
            log = in_worker(["cat", "/tmp/long.log"])
            if "rc=" in log:
                break
            time.sleep(0.5)
        assert smoke.smoke_state(log) == "success" and "long task done" in log, log[-3000:]
    finally:
        air.exec(f"rm -f /opt/airflow/dags/{LONG_DAG_ID}.py")
        task.exec("docker rm -f hostprep-tls-long >/dev/null 2>&1 || true")
    new_ca = certs.load_next_ca()
    assert certs.verify_chain(air.exec(f"cat {CLIENT_DIR}/cert.pem"), new_ca.cert_pem) is None
    assert certs.verify_chain(task.exec("cat /etc/hostprep/dockerd-tls/cert.pem"), new_ca.cert_pem) is None
    assert old_client_is(task, old_pem) == "0"   # during the switch the old CA's certificate still works

    with connect(AIR) as a, connect(TASK) as t:
        fa, ft = ca_rotation.rotate_ca(rtls.Side(a, settings(AIR)), rtls.Side(t, settings(TASK), tvars), ca_rotation.FINISH)
    assert (fa.status, ft.status) == (CHANGED, CHANGED), (fa.error, ft.error)
    assert all(c.ok for c in fa.checks), [(c.name, c.detail) for c in fa.checks if not c.ok]   # docker ps through TLS
    assert old_client_is(task, old_pem) != "0"   # the old CA's certificate is refused now
    assert not certs.switching() and certs.load_or_create_ca().cert_pem == new_ca.cert_pem

    for _ in range(3):   # the finish, the new CA, the provision
        ba, bt = run(task, "rollback", air=AIR)
        assert not ba.failed and not bt.failed, (ba.error, bt.error)
    assert state_of(AIR) == air_before
    assert task.exec(TASK_STATE) == task_before
