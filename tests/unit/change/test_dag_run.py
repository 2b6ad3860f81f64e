"""Reading a triggered DAG run's result as the worker reports it (hostprep.change.dag_run, pure parts)."""

from __future__ import annotations

import json

import pytest

from hostprep.change import dag_run
from hostprep.errors import SettingsError
from hostprep.inventory.settings import smoke_dag

PERMISSION = ("docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.', "
              "PermissionError(13, 'Permission denied'))")


def reply(**data: object) -> str:
    return "some airflow noise\n" + dag_run.MARK + json.dumps(data) + "\n"


def test_a_successful_run_is_ok_and_lists_its_tasks() -> None:
    result = dag_run.parse(reply(state="success", paused=False, timed_out=False,
                                 tasks=[["fetch", "success"], ["filter", "success"]], logs={}))
    assert result.ok
    assert dag_run.describe(result) == "run success: fetch=success, filter=success"


def test_a_failed_run_names_the_failed_task_and_its_log_tail() -> None:
    result = dag_run.parse(reply(state="failed", tasks=[["filter", "upstream_failed"], ["fetch", "failed"]],
                                 logs={"fetch": ["starting", PERMISSION], "filter": []}))
    assert not result.ok
    line = dag_run.describe(result)
    assert line.startswith("run failed: filter=upstream_failed, fetch=failed; fetch log: ")
    assert "PermissionError(13, 'Permission denied')" in line


def test_json_task_log_lines_are_read_as_event_and_exception() -> None:
    line = json.dumps({"event": "Failed to establish connection to Docker host unix://var/run/docker.sock: " + PERMISSION,
                       "dag_id": "hostprep_smoke", "task_id": "fetch", "logger": "DockerHook", "lineno": 156})
    crash = json.dumps({"event": "Task failed with exception", "error_detail": [
        {"exc_type": "DockerException", "exc_value": PERMISSION, "frames": [{"filename": "docker.py"}]}]})
    result = dag_run.parse(reply(state="failed", tasks=[["fetch", "failed"]], logs={"fetch": [line, crash]}))
    line = dag_run.describe(result)
    assert line.count("PermissionError(13, 'Permission denied')") == 2 and "lineno" not in line and "frames" not in line


def test_a_paused_dag_is_reported_not_unpaused() -> None:
    result = dag_run.parse(reply(state="queued", paused=True, tasks=[]))
    assert not result.ok and "paused" in dag_run.describe(result)


def test_a_run_still_going_at_the_timeout_says_so() -> None:
    result = dag_run.parse(reply(state="running", timed_out=True, tasks=[["fetch", "running"]], logs={"fetch": []}))
    assert not result.ok and "(timed out waiting)" in dag_run.describe(result)


def test_a_failed_trigger_or_garbage_is_an_error_with_the_output_tail() -> None:
    failed = dag_run.parse("Dag id nope not found\n" + dag_run.MARK + '{"error": "airflow dags trigger failed"}\n')
    assert failed.error == "airflow dags trigger failed: Dag id nope not found"
    assert dag_run.parse("Traceback ...\nKeyError: x").error == "no result from the worker: Traceback ... | KeyError: x"
    assert dag_run.parse(dag_run.MARK + "{not json").error.startswith("unreadable result")
    assert not dag_run.parse(dag_run.MARK + "[1, 2]").ok


def test_smoke_dag_takes_a_dag_alone_or_a_dag_and_a_task() -> None:
    assert smoke_dag("hostprep_smoke") == "hostprep_smoke"
    assert smoke_dag("hostprep_smoke:fetch") == "hostprep_smoke:fetch"
    for bad in ("a:b:c", "dag;rm -rf /", ":fetch", "dag:"):
        with pytest.raises(SettingsError):
            smoke_dag(bad)
