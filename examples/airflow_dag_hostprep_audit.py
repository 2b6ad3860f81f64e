"""Airflow DAG: run hostprep's drift audit every 15 minutes and fail the task when a host drifted.

Where it runs: on an Airflow worker that acts as the hostprep controller, that
is, one that has a checkout of hostprep with its virtualenv, the inventory,
and the SSH key and known_hosts the inventory names. The audit is read-only
and, by default, never execs inside the audited workers.

Configure with environment variables on that worker (or edit the defaults):

    HOSTPREP_DIR         the hostprep checkout (holds tasks.py)     /opt/hostprep
    HOSTPREP_PYTHON      the virtualenv's python, with invoke       $HOSTPREP_DIR/.venv/bin/python
    HOSTPREP_INVENTORY   the Ansible inventory to audit             $HOSTPREP_DIR/inventories/prod.yml
    HOSTPREP_LIMIT       an Ansible --limit pattern                 all
    HOSTPREP_REPORT_DIR  where audit.json, audit-junit.xml and      /var/lib/hostprep/reports
                         hostprep_audit.prom are written (point node_exporter's textfile collector here)
    HOSTPREP_STATE_DIR   hostprep's controller state (the audit history lives there)

Exit codes become task states: 0 (no drift) succeeds; 2 (drift found) and
3 (a host could not be audited) fail the task, so Airflow's usual alerting
(email_on_failure, on_failure_callback) reports drift. The JSON report is
printed to the task log too; `invoke audit.history` shows when drift began.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

HOSTPREP_DIR = os.environ.get("HOSTPREP_DIR", "/opt/hostprep")
PYTHON = os.environ.get("HOSTPREP_PYTHON", f"{HOSTPREP_DIR}/.venv/bin/python")
INVENTORY = os.environ.get("HOSTPREP_INVENTORY", f"{HOSTPREP_DIR}/inventories/prod.yml")
LIMIT = os.environ.get("HOSTPREP_LIMIT", "all")
REPORT_DIR = os.environ.get("HOSTPREP_REPORT_DIR", "/var/lib/hostprep/reports")


def audit_command(*, fix: bool = False) -> str:
    """The shell line the task runs; every value quoted (the line is also a Jinja template: no braces)."""
    argv = [PYTHON, "-m", "invoke", "audit", "--json", "--inventory", INVENTORY, "--limit", LIMIT,
            "--report-dir", REPORT_DIR] + (["--fix"] if fix else [])
    return f"cd {shlex.quote(HOSTPREP_DIR)} && " + " ".join(shlex.quote(a) for a in argv)


with DAG(
    dag_id="hostprep_drift_audit",
    description="hostprep: Docker socket access for Airflow workers still as provisioned?",
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["hostprep", "audit"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=10)},
) as dag:
    BashOperator(
        task_id="audit",
        bash_command=audit_command(),
        append_env=True,  # keep PATH, HOME and HOSTPREP_STATE_DIR from the worker's environment
        do_xcom_push=False,  # the report is in REPORT_DIR; the last stdout line of JSON is useless as XCom
    )
