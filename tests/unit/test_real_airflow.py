"""The real-Airflow lab module's pure parts: project files and reading `airflow tasks test` output."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.lab import real_airflow

FIXTURES = Path(__file__).parent / "fixtures" / "airflow_tasks_test"


def test_smoke_state_reads_failed_from_the_permission_denied_run() -> None:
    output = (FIXTURES / "permission_denied.txt").read_text()
    assert "PermissionError(13, 'Permission denied')" in output
    assert real_airflow.smoke_state(output) == "failed"


def test_smoke_state_reads_success_and_the_task_container_line() -> None:
    output = (FIXTURES / "success.txt").read_text()
    assert real_airflow.smoke_state(output) == "success"
    assert real_airflow.SMOKE_LINE in output


def test_smoke_state_is_none_when_no_task_ran() -> None:
    assert real_airflow.smoke_state("Error: dag_id could not be found: nope") is None


def test_smoke_command_runs_one_task_without_the_scheduler() -> None:
    assert real_airflow.smoke_command("d", "t") == ["airflow", "tasks", "test", "d", "t"]


def test_project_dockerfile_extends_the_pinned_real_image() -> None:
    dockerfile = real_airflow.project_files()["Dockerfile"].decode()
    assert f"FROM {real_airflow.IMAGE}\n" in dockerfile
    assert "@AIRFLOW_VERSION@" not in dockerfile


def test_project_compose_has_the_official_layout() -> None:
    files = real_airflow.project_files()
    compose = yaml.safe_load(files["docker-compose.yaml"])
    common = compose["x-airflow-common"]
    assert common["user"] == "${AIRFLOW_UID:-50000}:0"
    assert common["build"] == "."
    assert "/var/run/docker.sock:/var/run/docker.sock" in common["volumes"]
    assert {"airflow-apiserver", "airflow-scheduler", real_airflow.WORKER_SERVICE} <= set(compose["services"])
    assert files[".env"] == b"AIRFLOW_UID=50000\n"


def test_dag_names_the_image_network_and_data_folder_that_setup_creates() -> None:
    dag = real_airflow.project_files()["dags/hostprep_smoke.py"].decode()
    assert f'"{real_airflow.TASK_IMAGE}"' in dag
    assert f'"{real_airflow.TASK_NETWORK}"' in dag
    assert 'source="/opt/airflow/data"' in dag and "data" in real_airflow.KEEP_DIRS
    assert f'dag_id="{real_airflow.DAG_ID}"' in dag and f'task_id="{real_airflow.SMOKE_TASK}"' in dag


def test_worker_container_name_follows_the_compose_flavour() -> None:
    assert real_airflow.worker_container("docker compose") == "airflow-airflow-worker-1"
    assert real_airflow.worker_container("docker-compose") == "airflow_airflow-worker_1"
