"""Real Airflow on a lab host (the official Celery stack): DockerOperator tasks and real DAG runs
go from red to green and back."""

from __future__ import annotations

import pytest

from hostprep.change import provision as prov
from hostprep.change import smoke
from hostprep.change.results import CHANGED
from tests.integration.conftest import Pristine, connect, facts_of, settings
from tests.integration.test_provision_lab import provision, rollback
from tests.lab import lab, real_airflow

pytestmark = pytest.mark.skipif(
    __import__("tests.integration.conftest", fromlist=["REAL_HOSTS"]).REAL_HOSTS < 1,
    reason="HOSTPREP_LAB_REAL=0: no real-Airflow lab host requested")

HOST = "real1"
DAG_TASK = f"{real_airflow.CHECK_DAG_ID}:{real_airflow.SMOKE_TASK}"


def run_task() -> str:
    """`airflow tasks test` of the DockerOperator task, inside the worker, over SSH."""
    f = facts_of(HOST, deep=False)
    with connect(HOST) as t:
        res = t.run(["docker", "exec", f.worker.name or "", *real_airflow.smoke_command()], sudo=True, timeout=600)
    return res.stdout + res.stderr


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile"])
def test_dockeroperator_task_fails_before_provision_succeeds_after_and_fails_after_rollback(
        strategy: str, lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    pristine(HOST)
    before = run_task()
    assert smoke.smoke_state(before) == "failed"
    assert "PermissionError(13, 'Permission denied')" in before

    report = provision(HOST, strategy)
    assert report.status == CHANGED, report.error
    airflow_check = [c for c in report.checks if c.name.startswith("Airflow task")]
    assert airflow_check and airflow_check[0].ok, report.checks

    after = run_task()
    assert smoke.smoke_state(after) == "success"
    assert real_airflow.SMOKE_LINE in after

    assert rollback(HOST).status == CHANGED
    again = run_task()
    assert smoke.smoke_state(again) == "failed" and "PermissionError(13" in again


def test_smoke_task_failure_fails_the_host_and_rolls_back(lab_hosts: dict[str, lab.LabHost],
                                                          pristine: Pristine) -> None:
    """A task that cannot succeed whatever the socket (a DAG that does not exist) must not be 'fixed'."""
    pristine(HOST)
    with connect(HOST) as t:
        report = prov.provision(t, settings(HOST), prov.Options(smoke_dag="no_such_dag:fetch"))
    assert report.status == "failed" and report.rolled_back
    assert facts_of(HOST).worker.docker_ps_rc != 0   # rolled back: the worker is as it was


def test_root_owned_logs_break_airflow_until_provision_chowns_them(lab_hosts: dict[str, lab.LabHost],
                                                                   pristine: Pristine) -> None:
    h = lab_hosts[HOST]
    pristine(HOST)
    # as Docker does for a missing bind folder: it creates it owned by root (--no-deps: airflow-init
    # would chown it back, as the official one does on every `up`)
    h.exec(f"cd /opt/airflow && rm -rf logs && {h.compose_cmd} up -d --no-deps --force-recreate airflow-worker"
           " >/dev/null 2>&1")
    assert h.exec("stat -c '%u:%g %a' /opt/airflow/logs").strip() == "0:0 755"

    def dag_processor() -> str:
        """One real Airflow dag-processor run in the worker: it writes its logs under logs/."""
        worker = facts_of(HOST, deep=False).worker.name
        return h.exec(f"docker exec {worker} airflow dag-processor -n 1 >/tmp/dp.log 2>&1; echo rc=$?; cat /tmp/dp.log",
                      timeout=300)

    broken = dag_processor()
    assert "rc=0" not in broken and "[Errno 13] Permission denied: '/opt/airflow/logs/dag_processor'" in broken

    report = provision(HOST)
    assert report.status == CHANGED, report.error
    assert report.plan is not None and any(s.name == "chown logs" for s in report.plan.steps)
    assert h.exec("stat -c '%u:%g %a' /opt/airflow/logs").strip() == "50000:0 755"
    fixed = dag_processor()
    assert fixed.startswith("rc=0"), fixed[-2000:]

    assert rollback(HOST).status == CHANGED
    assert h.exec("stat -c '%u:%g %a' /opt/airflow/logs").strip() == "0:0 755"


def test_real_dag_run_fails_before_provision_succeeds_after_and_fails_after_rollback(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    """`--smoke-dag hostprep_smoke`: triggered, scheduled by the scheduler, executed by the Celery worker."""
    pristine(HOST)
    with connect(HOST) as t:
        before = smoke.run(t, facts_of(HOST, deep=False), real_airflow.DAG_ID)
    assert not before.ok and "fetch=failed" in before.detail, before.detail
    assert "PermissionError(13, 'Permission denied')" in before.detail

    with connect(HOST) as t:
        report = prov.provision(t, settings(HOST), prov.Options(smoke_dag=real_airflow.DAG_ID))
    assert report.status == CHANGED, report.error
    dag_check = [c for c in report.checks if c.name.startswith("Airflow DAG run")]
    assert dag_check and dag_check[0].ok, report.checks
    assert dag_check[0].detail == "run success: " + ", ".join(
        f"{task}=success" for task in ("fetch", "filter", "notify", "cleanup")), dag_check[0].detail

    assert rollback(HOST).status == CHANGED
    with connect(HOST) as t:
        again = smoke.run(t, facts_of(HOST, deep=False), real_airflow.DAG_ID)
    assert not again.ok and "PermissionError(13" in again.detail, again.detail
