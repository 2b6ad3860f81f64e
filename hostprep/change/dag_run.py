"""A real DAG run as the Airflow check: triggered in the worker, scheduled by the scheduler, run by the executor.

``--smoke-dag DAG_ID`` (no ``:TASK_ID``) triggers the DAG (``airflow dags trigger``) and waits
for the run's result with a timeout, in one ``docker exec`` of the worker: a small Python
loop reads the run's and its task instances' states from Airflow's database and, for the
tasks that did not succeed, the last lines of their logs. It prints one fenced JSON line
that :func:`parse` reads; :func:`check` turns it into a :class:`Check` saying which task
failed and why. Hostprep never unpauses a DAG: a paused DAG is reported, not run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from hostprep.host.facts import Facts
from hostprep.ssh.transport import Transport
from hostprep.change.verify import Check

MARK = "@@hostprep-dag-run "
LOG_LINES = 8

# Runs inside the worker, as the worker's user: $1 DAG_ID, $2 RUN_ID, $3 timeout (s). Trigger, then poll.
SCRIPT = r'''
airflow dags trigger "$1" -r "$2" >/tmp/hostprep-trigger.log 2>&1 || {
    tail -n 5 /tmp/hostprep-trigger.log; echo "@@hostprep-dag-run {\"error\": \"airflow dags trigger failed\"}"; exit 0; }
exec python3 - "$@" <<'PY'
import json, sys, time
from pathlib import Path
from airflow.configuration import conf
from airflow.models import DagModel, DagRun, TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import nullslast

dag_id, run_id, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline, value = time.monotonic() + timeout, lambda s: None if s is None else str(getattr(s, "value", s))
while True:
    with create_session() as s:
        paused = bool(s.query(DagModel.is_paused).filter(DagModel.dag_id == dag_id).scalar())
        run = s.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        state = value(run.state) if run else None
        tis = [(ti.task_id, value(ti.state), ti.try_number) for ti in   # in the order they ran, then by name
               s.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
               .order_by(nullslast(TaskInstance.start_date.asc()), TaskInstance.task_id)]
    if state in ("success", "failed") or paused or time.monotonic() > deadline:
        break
    time.sleep(2)
logs = {}
for task, st, try_number in tis:
    if st not in ("success", "skipped", None):
        p = Path(conf.get("logging", "base_log_folder"), f"dag_id={dag_id}", f"run_id={run_id}",
                 f"task_id={task}", f"attempt={max(try_number, 1)}.log")
        lines = p.read_text(errors="replace").splitlines() if p.exists() else [f"(no log at {p})"]
        logs[task] = lines[-int(sys.argv[4]):]
print("@@hostprep-dag-run " + json.dumps({"state": state, "paused": paused, "timed_out": state not in
      ("success", "failed") and not paused, "tasks": [[t, st] for t, st, _ in tis], "logs": logs}))
PY
'''


@dataclass
class DagRunResult:
    """What the worker said about one triggered run; ``error`` when it could not even trigger it."""

    state: str | None = None
    paused: bool = False
    timed_out: bool = False
    tasks: list[tuple[str, str | None]] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "success"

    def __repr__(self) -> str:
        return f"<DagRunResult {self.state} tasks={len(self.tasks)}{' ' + self.error if self.error else ''}>"


def parse(output: str) -> DagRunResult:
    """The fenced JSON line of :data:`SCRIPT`'s output (the last one), or an error with the output's tail.

    >>> parse('x\\n@@hostprep-dag-run {"state": "success", "tasks": [["fetch", "success"]]}').ok
    True
    >>> parse("Error: no such dag").error
    'no result from the worker: Error: no such dag'
    """
    lines = [ln for ln in output.splitlines() if ln.startswith(MARK)]
    tail = " | ".join(ln for ln in output.strip().splitlines()[-3:] if not ln.startswith(MARK))
    if not lines:
        return DagRunResult(error=f"no result from the worker: {tail}")
    try:
        data = json.loads(lines[-1][len(MARK):])
    except ValueError:
        return DagRunResult(error=f"unreadable result from the worker: {lines[-1][:200]}")
    if not isinstance(data, dict) or data.get("error"):
        return DagRunResult(error=f"{data.get('error') if isinstance(data, dict) else data}: {tail}")
    tasks = [(str(t[0]), None if t[1] is None else str(t[1])) for t in data.get("tasks") or [] if len(t) == 2]
    logs = {str(k): [str(x) for x in v] for k, v in (data.get("logs") or {}).items() if isinstance(v, list)}
    return DagRunResult(data.get("state"), bool(data.get("paused")), bool(data.get("timed_out")), tasks, logs)


def describe(result: DagRunResult) -> str:
    """One line: the run's state, which tasks did not succeed, and the last lines of the first one's log."""
    if result.error:
        return result.error
    if result.paused:
        return "the DAG is paused: hostprep does not unpause it (`airflow dags unpause DAG_ID`), no task ran"
    order = ", ".join(f"{t}={s}" for t, s in result.tasks) or "no task instances"
    head = f"run {result.state}{' (timed out waiting)' if result.timed_out else ''}: {order}"
    bad = [t for t, s in result.tasks if s not in ("success", "skipped")]
    if result.ok or not bad:
        return head
    bad.sort(key=lambda t: dict(result.tasks)[t] != "failed")   # the task that failed, not those it held up
    log = [_message(ln) for ln in result.logs.get(bad[0]) or []]
    return f"{head}; {bad[0]} log: " + " | ".join(m[-300:] for m in log[-LOG_LINES:] if m)


def _message(line: str) -> str:
    """A task log line as a person reads it: Airflow 3 writes JSON lines (event, then the exception's type and value).

    >>> _message('{"event": "Task failed", "error_detail": [{"exc_type": "OSError", "exc_value": "denied"}]}')
    'Task failed: OSError: denied'
    """
    try:
        data = json.loads(line)
    except ValueError:
        return line.strip()
    if not isinstance(data, dict):
        return line.strip()
    detail = data.get("error_detail")
    exc = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    cause = f": {exc.get('exc_type')}: {exc.get('exc_value')}" if exc else ""
    return f"{data.get('event', '')}{cause}".strip()


def run(t: Transport, facts: Facts, dag_id: str, *, timeout: float = 600) -> Check:
    """Trigger ``dag_id`` in the worker and wait for the run's result; never raises on a failing run."""
    run_id = f"hostprep__{time.strftime('%Y%m%dT%H%M%S')}_{time.monotonic_ns() % 1000000:06d}"
    res = t.run(["docker", "exec", facts.worker.name or "", "sh", "-c", SCRIPT, "sh", dag_id, run_id,
                 str(int(timeout)), str(LOG_LINES)], sudo=True, timeout=timeout + 120)
    result = parse(res.stdout + res.stderr)
    return Check(f"Airflow DAG run {dag_id} (triggered, scheduled, executed)", result.ok, describe(result))
