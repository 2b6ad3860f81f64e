"""A DAG in the shape operators write: DockerOperator steps on the host's engine.

Each step runs in its own container, started by the worker through the mounted
Docker socket; this is the call that fails with PermissionError(13) when the
worker's user is not in the socket's group.
"""

from __future__ import annotations

import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG
from docker.types import Mount

DOCKER = {
    "image": "hostprep-lab/task:latest",
    "docker_url": "unix://var/run/docker.sock",
    "network_mode": "hostprep-tasks",
    "auto_remove": "success",
    "mount_tmp_dir": False,
    "mounts": [Mount(source="/opt/airflow/data", target="/data", type="bind")],
}

def pipeline(dag_id: str) -> DAG:
    """fetch >> filter >> notify >> cleanup, each a DockerOperator step."""
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
             tags=["hostprep"]) as dag:
        fetch = DockerOperator(task_id="fetch", command="fetch", **DOCKER)
        filter_errors = DockerOperator(task_id="filter", command="filter", **DOCKER)
        notify = DockerOperator(task_id="notify", command="notify", **DOCKER)
        cleanup = DockerOperator(task_id="cleanup", command="cleanup", **DOCKER)
        fetch >> filter_errors >> notify >> cleanup
    return dag


# unpaused by the lab: real runs (triggered, scheduled, run by the Celery worker)
smoke = pipeline(dag_id="hostprep_smoke")
# left paused: `airflow tasks test` of one task; on an unpaused DAG the scheduler races it for the
# temporary run's task instance (Airflow 3: "Cannot start Task Instance in invalid state")
check = pipeline(dag_id="hostprep_check")
