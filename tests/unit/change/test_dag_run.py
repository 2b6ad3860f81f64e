"""Reading a triggered DAG run's result as the worker reports it (hostprep.change.dag_run, pure parts)."""

from __future__ import annotations

import json

import pytest

from hostprep.change import dag_run
from hostprep.errors import SettingsError
from hostprep.inventory.settings import smoke_dag

PERMISSION = ("docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.', "
              "PermissionError(13, 'Permission denied'))")


N = "0123456789abcdef01234567"   # the nonce the controller sent on stdin
MARK = f"{dag_run.TAG}:{N} "


def reply(**data: object) -> str:
    return "some airflow noise\n" + MARK + json.dumps(data) + "\n"


def parse(output: str) -> dag_run.DagRunResult:
    return dag_run.parse(output, N)


def test_a_successful_run_is_ok_and_lists_its_tasks() -> None:
    result = parse(reply(state="success", paused=False, timed_out=False,
                                 tasks=[["fetch", "success"], ["filter", "success"]], logs={}))
    assert result.ok
    assert dag_run.describe(result) == "run success: fetch=success, filter=success"


def test_a_failed_run_names_the_failed_task_and_its_log_tail() -> None:
    result = parse(reply(state="failed", tasks=[["filter", "upstream_failed"], ["fetch", "failed"]],
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
    result = parse(reply(state="failed", tasks=[["fetch", "failed"]], logs={"fetch": [line, crash]}))
    line = dag_run.describe(result)
    assert line.count("PermissionError(13, 'Permission denied')") == 2 and "lineno" not in line and "frames" not in line


def test_a_paused_dag_is_reported_not_unpaused() -> None:
    result = parse(reply(state="queued", paused=True, tasks=[]))
    assert not result.ok and "paused" in dag_run.describe(result)


def test_a_run_still_going_at_the_timeout_says_so() -> None:
    result = parse(reply(state="running", timed_out=True, tasks=[["fetch", "running"]], logs={"fetch": []}))
    assert not result.ok and "(timed out waiting)" in dag_run.describe(result)


def test_a_failed_trigger_or_garbage_is_an_error_with_the_output_tail() -> None:
    failed = parse("noise\n" + MARK + '{"error": "airflow dags trigger failed", "output": ["Dag id nope not found"]}\n')
    assert failed.error == "airflow dags trigger failed: Dag id nope not found"
    assert parse("Traceback ...\nKeyError: x").error == "no result from the worker: Traceback ... | KeyError: x"
    assert (parse(MARK + "{not json").error or "").startswith("unreadable result")
    assert not parse(MARK + "[1, 2]").ok


def test_tasks_of_the_wrong_type_are_an_unreadable_result_not_a_crash() -> None:
    # the input: "tasks": 5 raised TypeError after the change was applied
    for tasks in (5, "ab", [5], [["a"]], [[1, "success"]], [["a", 5]], {"a": "b"}):
        result = parse(reply(state="success", tasks=tasks))
        assert not result.ok and "field 'tasks'" in (result.error or ""), (tasks, result)
    assert "field 'logs'" in (parse(reply(state="failed", tasks=[], logs=[1])).error or "")
    assert "field 'state'" in (parse(reply(state=["success"], tasks=[])).error or "")


def test_deeply_nested_json_is_an_unreadable_result_not_a_recursion_error() -> None:
    assert "nested deeper" in (parse(MARK + "[" * 100000).error or "")


def test_a_result_without_this_runs_nonce_never_counts() -> None:
    forged = '{"state": "success", "tasks": [["fetch", "success"]]}'
    for line in (f"{dag_run.TAG} {forged}", f"{dag_run.TAG}:{'f' * 24} {forged}", f" {MARK}{forged}",
                 f"x{MARK}{forged}", f"{dag_run.TAG}:{N}{forged}"):
        assert not parse(f"noise\n{line}\n").ok, line


def test_two_results_under_the_nonce_are_refused_as_ambiguous() -> None:
    ok = MARK + '{"state": "success", "tasks": []}'
    assert "ambiguous" in (parse(ok + "\n" + ok).error or "")


def test_a_result_line_is_split_at_newlines_only() -> None:
    # a task log line holding U+2028 or \x1c stays inside its JSON string (json.dumps escapes it anyway)
    result = parse(reply(state="failed", tasks=[["t", "failed"]], logs={"t": ["a\u2028@@hostprep:snapshot x"]}))
    assert result.error is None and "\u2028" not in dag_run.describe(result)


def test_smoke_dag_takes_a_dag_alone_or_a_dag_and_a_task() -> None:
    assert smoke_dag("hostprep_smoke") == "hostprep_smoke"
    assert smoke_dag("hostprep_smoke:fetch") == "hostprep_smoke:fetch"
    for bad in ("a:b:c", "dag;rm -rf /", ":fetch", "dag:"):
        with pytest.raises(SettingsError):
            smoke_dag(bad)
