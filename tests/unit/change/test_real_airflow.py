"""The real-Airflow lab module's pure parts: project files and reading `airflow tasks test` output."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.lab import lab, real_airflow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "airflow_tasks_test"


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
    assert "@IMAGE@" not in dockerfile


def test_project_compose_has_the_official_celery_stack() -> None:
    files = real_airflow.project_files()
    compose = yaml.safe_load(files["docker-compose.yaml"])
    common, services = compose["x-airflow-common"], compose["services"]
    assert common["user"] == "${AIRFLOW_UID:-50000}:0"
    assert common["build"] == "."
    assert common["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert set(services) == {"postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler",
                             "airflow-dag-processor", "airflow-triggerer", real_airflow.WORKER_SERVICE}
    assert {services[s]["image"] for s in ("postgres", "redis")} == set(real_airflow.STACK_IMAGES)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services[real_airflow.WORKER_SERVICE]["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    assert all("healthcheck" in svc for name, svc in services.items() if name != "airflow-init")
    assert files[".env"].startswith(b"AIRFLOW_UID=50000\n")


def test_only_the_worker_mounts_the_docker_socket() -> None:
    services = yaml.safe_load(real_airflow.project_files()["docker-compose.yaml"])["services"]
    mounting = {name for name, svc in services.items()
                if any("docker.sock" in str(v) for v in svc.get("volumes") or [])}
    assert mounting == {real_airflow.WORKER_SERVICE}


def test_worker_gets_a_warm_shutdown_signal() -> None:
    worker = yaml.safe_load(real_airflow.project_files()["docker-compose.yaml"])["services"][real_airflow.WORKER_SERVICE]
    assert worker["command"] == "celery worker" and worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_dag_names_the_image_network_and_data_folder_that_setup_creates() -> None:
    dag = real_airflow.project_files()["dags/hostprep_smoke.py"].decode()
    assert f'"{real_airflow.TASK_IMAGE}"' in dag
    assert f'"{real_airflow.TASK_NETWORK}"' in dag
    assert 'source="/opt/airflow/data"' in dag and "data" in real_airflow.KEEP_DIRS
    assert f'dag_id="{real_airflow.DAG_ID}"' in dag and f'task_id="{real_airflow.SMOKE_TASK}"' in dag


def test_worker_container_name_follows_the_compose_flavour() -> None:
    assert real_airflow.worker_container("docker compose") == "airflow-airflow-worker-1"
    assert real_airflow.worker_container("docker-compose") == "airflow_airflow-worker_1"


def test_the_lab_inventory_checks_a_task_of_the_paused_copy_of_the_smoke_dag() -> None:
    dag = real_airflow.project_files()["dags/hostprep_smoke.py"].decode()
    assert f'dag_id="{real_airflow.CHECK_DAG_ID}"' in dag
    assert f'"hostprep_smoke_dag": "{real_airflow.CHECK_DAG_ID}:{real_airflow.SMOKE_TASK}"' in \
        (Path(lab.__file__)).read_text()
    assert real_airflow.CHECK_DAG_ID not in real_airflow.UNPAUSED_DAGS   # never unpaused by the lab
