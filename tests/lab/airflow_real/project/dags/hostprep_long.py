"""A long DockerOperator task, as a busy worker runs them: the drain test triggers it, then provisions
while it is in flight (hostprep must let it finish before it recreates the worker)."""

from __future__ import annotations

import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG

with DAG(
    dag_id="hostprep_long",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hostprep"],
):
    DockerOperator(task_id="work", image="hostprep-lab/task:latest", command="sleep 45",
                   docker_url="unix://var/run/docker.sock", network_mode="hostprep-tasks",
                   auto_remove="success", mount_tmp_dir=False)
