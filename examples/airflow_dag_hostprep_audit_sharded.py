"""Airflow DAG: hostprep's drift audit spread over N mapped tasks, then merged into one report.

For fleets too large for one task: each mapped task audits a stable 1/N of the hosts
(``invoke audit --shard I/N``; the same host always lands in the same shard) on whichever
Celery worker picks it up, and writes its reports to its own folder. The merge task then
combines them (``invoke audit.merge``) into exactly the reports one unsharded run gives, and
exits as that run would: 0 no drift, 2 drift, 3 a host could not be audited. A shard whose
task died leaves its report missing: the merge refuses (exit 1) rather than call the fleet clean.
A first task (``invoke audit.begin``) writes the DAG run's id and start time to a run file; every
shard's report carries them, so a report an earlier run left in a dead shard's folder is refused by
name and its hosts reported as not audited (exit 3), never as they were last time.

Configure as ``airflow_dag_hostprep_audit.py`` (HOSTPREP_DIR, HOSTPREP_PYTHON, HOSTPREP_INVENTORY,
HOSTPREP_LIMIT, HOSTPREP_REPORT_DIR), plus HOSTPREP_SHARDS (default 4). The inventory may be an
``*.aws_ec2.yml`` file; every worker that runs a shard needs the SSH key, known_hosts and AWS
credentials (an instance role) the inventory needs. REPORT_DIR must be shared by the workers
(EFS/NFS), or point node_exporter at the merge task's host only.
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
INVENTORY = os.environ.get("HOSTPREP_INVENTORY", f"{HOSTPREP_DIR}/inventories/prod.aws_ec2.yml")
LIMIT = os.environ.get("HOSTPREP_LIMIT", "all")
REPORT_DIR = os.environ.get("HOSTPREP_REPORT_DIR", "/var/lib/hostprep/reports")
SHARDS = int(os.environ.get("HOSTPREP_SHARDS", "4"))
RUN_FILE = f"{REPORT_DIR}/run.json"
EVERY = "15m"   # the DAG's schedule; the merged textfile says it, so a stale audit raises the alert
RUN_ID = ' --run-id "$AIRFLOW_CTX_DAG_RUN_ID"'   # BashOperator exports the DAG run's id (quoted for the shell)


def _line(*args: str) -> str:
    """A quoted shell line run from the checkout (also a Jinja template: no braces in it)."""
    return f"cd {shlex.quote(HOSTPREP_DIR)} && " + " ".join(shlex.quote(a) for a in (PYTHON, "-m", "invoke", *args))


def begin_command() -> str:
    """This DAG run's id and start time, for the shards and the merge."""
    return _line("audit.begin", "--run-file", RUN_FILE) + RUN_ID


def shard_command(index: int, count: int = SHARDS) -> str:
    """One shard's audit. Drift (2) is not a failure here: the merge decides; 3 and 1 still fail the task."""
    line = _line("audit", "--inventory", INVENTORY, "--limit", LIMIT, "--shard", f"{index}/{count}",
                 "--run-file", RUN_FILE, "--report-dir", f"{REPORT_DIR}/shard-{index}-of-{count}") + RUN_ID
    return f"{line}; rc=$?; [ $rc -eq 2 ] && exit 0; exit $rc"


def merge_command(count: int = SHARDS) -> str:
    reports = [a for i in range(1, count + 1) for a in ("--report", f"{REPORT_DIR}/shard-{i}-of-{count}")]
    return _line("audit.merge", *reports, "--run-file", RUN_FILE, "--report-dir", REPORT_DIR, "--every", EVERY,
                 "--json") + RUN_ID


with DAG(
    dag_id="hostprep_drift_audit_sharded",
    description="hostprep: Docker socket access for Airflow workers, audited in N shards and merged",
    schedule=timedelta(minutes=int(EVERY[:-1])),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["hostprep", "audit"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=10)},
) as dag:
    begin = BashOperator(task_id="begin", bash_command=begin_command(), append_env=True, do_xcom_push=False)
    shards = BashOperator.partial(task_id="audit_shard", append_env=True, do_xcom_push=False).expand(
        bash_command=[shard_command(i) for i in range(1, SHARDS + 1)])
    merged = BashOperator(task_id="merge", bash_command=merge_command(), append_env=True, do_xcom_push=False,
                          trigger_rule="all_done")  # merge even when a shard failed: a missing report is refused
    begin >> shards >> merged
