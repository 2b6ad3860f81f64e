"""hostprep_smoke's first step as a DAG written for a Docker proxy: no ``docker_url``, so DockerOperator
takes DOCKER_HOST from the worker's environment (hostprep's socket-proxy strategy sets it to the proxy).

hostprep_smoke.py hard-codes ``docker_url="unix://var/run/docker.sock"``: behind the proxy the worker has
no socket, that DAG fails, and the audit says why (dag-bypasses-proxy).
"""

from __future__ import annotations

import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG
from docker.types import Mount

with DAG(
    dag_id="hostprep_proxy_smoke",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["hostprep"],
):
    DockerOperator(task_id="fetch", command="fetch", image="hostprep-lab/task:latest", network_mode="hostprep-tasks",
                   auto_remove="success", mount_tmp_dir=False,
                   mounts=[Mount(source="/opt/airflow/data", target="/data", type="bind")])
