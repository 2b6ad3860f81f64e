"""The Airflow check: prove the fix through Airflow itself, inside the worker.

With ``DAG_ID:TASK_ID`` it runs one real task (``airflow tasks test``, e.g. a
DockerOperator task); with ``DAG_ID`` alone it triggers a real DAG run and waits for it
(:mod:`hostprep.change.dag_run`); without either, it asks the Docker provider's client
(docker-py, what DockerOperator uses) to reach the daemon. ``airflow tasks
test`` exits 0 even when the task failed, so the verdict comes from the
task's ``new_state``, parsed by a pure function. Each runs isolated in the worker
(:mod:`hostprep.in_worker`: the image's root-owned ``python3 -I`` from ``/``, ``env -i``, a timeout).
"""

from __future__ import annotations

import re

from hostprep.change import dag_run, in_worker
from hostprep.host.facts import Facts
from hostprep.hostdata import lines
from hostprep.ssh.transport import Transport
from hostprep.change.verify import Check

_NEW_STATE = re.compile(r"\bnew_state=([a-z_]+)")
RACED = "Cannot start Task Instance in invalid state"   # Airflow 3's execution API, when the scheduler got there first
_WHY = re.compile(r"(PermissionError\(.*?\)|Failed to establish connection.*?$|Permission denied.*?$)", re.M)

# `airflow tasks test DAG TASK`, as Airflow's own CLI, in this (isolated) interpreter
TASK_TEST = "import runpy, sys\nsys.argv = ['airflow', 'tasks', 'test', *sys.argv[1:]]\nrunpy.run_module('airflow', run_name='__main__')\n"
PING = (
    "import sys\n"
    "try:\n    import docker\nexcept ImportError:\n    print('skipped: no docker provider (docker-py) in the worker'); sys.exit(0)\n"
    "print('docker-py reached the daemon, engine', docker.APIClient(base_url=sys.argv[1]).version()['Version'])\n"
)


def smoke_state(output: str) -> str | None:
    """The task's final state in ``airflow tasks test`` output.

    >>> smoke_state("... new_state=running ... new_state=success rows_affected=1")
    'success'
    """
    states = _NEW_STATE.findall(output)
    return states[-1] if states else None


def failure_reason(output: str) -> str:
    """The line that says why a task could not reach Docker (or the output's tail).

    >>> failure_reason("x [warning ] Cannot start Task Instance in invalid state [...] previous_state=failed")
    'the scheduler ran this task instance itself (previous_state=failed): `airflow tasks test` races the scheduler on an unpaused DAG; use --smoke-dag DAG_ID (a real run) or a paused DAG'
    """
    if RACED in output:
        prev = re.search(r"previous_state=([a-z_]+)", output)
        return (f"the scheduler ran this task instance itself (previous_state={prev.group(1) if prev else '?'}): "
                "`airflow tasks test` races the scheduler on an unpaused DAG; use --smoke-dag DAG_ID (a real run) "
                "or a paused DAG")
    m = _WHY.search(output)
    return m.group(1).strip() if m else " | ".join(lines(output.strip())[-3:])


NAME = "Airflow check in the worker"


def skipped(facts: Facts, enabled: bool) -> Check:
    """The Airflow check, not run: why (a report always says whether it ran)."""
    why = ("an earlier check failed" if enabled and facts.worker.has_airflow
           else "no `airflow` command in the worker" if enabled else "turned off (--no-smoke)")
    return Check(NAME, True, f"not run: {why}", skipped=True)


def check(t: Transport, facts: Facts, dag_task: str | None, *, enabled: bool, earlier: list[Check]) -> Check:
    """The Airflow check when it can tell something (enabled, airflow in the worker, earlier checks ok)."""
    if enabled and facts.worker.has_airflow and all(c.ok for c in earlier):
        return run(t, facts, dag_task)
    return skipped(facts, enabled)


def run(t: Transport, facts: Facts, dag_task: str | None, *, timeout: float = 600) -> Check:
    """Run the Airflow check in the worker container; never raises on a failing task."""
    container = facts.worker.name or ""
    if dag_task and ":" not in dag_task:
        return dag_run.run(t, facts, dag_task, timeout=timeout)
    if dag_task:
        dag, task = dag_task.split(":", 1)
        name = f"Airflow task {dag}.{task} (airflow tasks test)"
        res = t.run(in_worker.argv(container, int(timeout), TASK_TEST, dag, task), sudo=True,
                    timeout=timeout + in_worker.MARGIN + 30)
        output = res.stdout + res.stderr
        why = in_worker.why_not(container, int(timeout), res.exit_code, output)
        if why:
            return Check(name, False, why)
        state = smoke_state(output)
        detail = f"new_state={state}" if state == "success" else f"new_state={state}: {failure_reason(output)}"
        return Check(name, state == "success", detail)
    url = facts.docker_url or f"unix://{facts.socket.path}"   # a strategy's proxy, else the socket
    name = "Airflow's Docker client reaches the daemon"
    res = t.run(in_worker.argv(container, 60, PING, url), sudo=True, timeout=60 + in_worker.MARGIN + 30)
    out = (res.stdout + res.stderr).strip()
    why = in_worker.why_not(container, 60, res.exit_code, out)
    if why:
        return Check(name, False, why)
    return Check(name, res.ok, dag_run.printable(lines(out)[-1]) if out else f"rc={res.exit_code}")
