"""hostprep_smoke's pipeline written for a Docker proxy (no ``docker_url``: DockerOperator takes DOCKER_HOST,
hostprep's guard): fetch >> filter >> notify >> cleanup with the bind-mounted data folder, ``auto_remove``,
``mount_tmp_dir=False`` and a user network. ``hostprep_proxy_privileged`` is one such step asking for
``privileged=True``: the guard refuses it, and the task log says why.
"""

from __future__ import annotations

import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG
from docker.types import Mount

STEP = {
    "image": "hostprep-lab/task:latest",
    "network_mode": "hostprep-tasks",
    "auto_remove": "success",
    "mount_tmp_dir": False,
    "mounts": [Mount(source="/opt/airflow/data", target="/data", type="bind")],
}

with DAG(dag_id="hostprep_proxy_pipeline", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, tags=["hostprep"]):
    steps = [DockerOperator(task_id=name, command=name, **STEP) for name in ("fetch", "filter", "notify", "cleanup")]
    steps[0] >> steps[1] >> steps[2] >> steps[3]

with DAG(dag_id="hostprep_proxy_privileged", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, tags=["hostprep"]):
    DockerOperator(task_id="fetch", command="fetch", privileged=True, **STEP)
