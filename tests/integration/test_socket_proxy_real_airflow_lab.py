"""Real Airflow behind the socket proxy: a DockerOperator task runs through it; a DAG that hard-codes the
socket fails and the audit names it; rollback puts the socket back."""

from __future__ import annotations

import pytest

from hostprep.change import provision as prov
from hostprep.change import smoke
from hostprep.audit.run import audit_host
from hostprep.change.results import CHANGED
from hostprep.strategies.socket_proxy import NETWORK
from hostprep.fleet.validate import host_settings
from tests.integration.conftest import REAL_HOSTS, Pristine, connect, entry, facts_of
from tests.lab import docker_proxy, lab, real_airflow

pytestmark = pytest.mark.skipif(REAL_HOSTS < 1, reason="HOSTPREP_LAB_REAL=0: no real-Airflow lab host requested")

HOST = "real1"
PROXY_DAG = "hostprep_proxy_smoke"   # tests/lab/airflow_real/project/dags/hostprep_proxy_smoke.py: no docker_url


def run_task(dag_id: str, task_id: str = real_airflow.SMOKE_TASK) -> str:
    f = facts_of(HOST, deep=False)
    with connect(HOST) as t:
        res = t.run(["docker", "exec", f.worker.name or "", *real_airflow.smoke_command(dag_id, task_id)], sudo=True,
                    timeout=600)
    return res.stdout + res.stderr


def test_a_real_dockeroperator_task_runs_through_the_proxy_and_a_dag_that_bypasses_it_is_named(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine, lab_log: lab.Log) -> None:
    h = pristine(HOST)
    h.exec(f"ids=$(docker network ls -q --filter label=com.docker.compose.network={NETWORK}); "
           '[ -z "$ids" ] || docker network rm $ids >/dev/null')
    docker_proxy.build(lab_log)
    docker_proxy.load_into(h, lab_log)
    settings = host_settings({**entry(HOST).vars, "hostprep_strategy": "socket-proxy",
                              "hostprep_smoke_dag": f"{PROXY_DAG}:{real_airflow.SMOKE_TASK}"})
    with connect(HOST) as t:
        report = prov.provision(t, settings, prov.Options())
    assert report.status == CHANGED, report.error
    airflow = [c for c in report.checks if c.name.startswith("Airflow task")]
    assert airflow and airflow[0].ok, report.checks   # the provision's own proof: the real task, through the proxy
    assert any(c.name.startswith("the proxy refuses") and c.ok for c in report.checks)

    through = run_task(PROXY_DAG)
    assert smoke.smoke_state(through) == "success" and real_airflow.SMOKE_LINE in through
    # the whole pipeline through the guard (data folder bind, auto_remove, mount_tmp_dir=False, a user network)
    for task in ("fetch", "filter", "notify", "cleanup"):
        out = run_task("hostprep_proxy_pipeline", task)
        assert smoke.smoke_state(out) == "success", out[-3000:]
    refused = run_task("hostprep_proxy_privileged", "fetch")   # privileged=True: the guard's reason in the task log
    assert smoke.smoke_state(refused) == "failed" and "Privileged is not allowed" in refused, refused[-3000:]
    bypass = run_task(real_airflow.CHECK_DAG_ID)   # docker_url="unix://var/run/docker.sock": no socket behind the proxy
    assert smoke.smoke_state(bypass) == "failed"
    with connect(HOST) as t:
        found = {f.key for f in audit_host(t, settings).findings}
    assert any(k.startswith("dag-bypasses-proxy:hostprep_smoke.py:") for k in found), found

    with connect(HOST) as t:
        undone = prov.rollback(t, settings)
    assert undone.status == CHANGED and undone.data["differences"] == [], undone.error
