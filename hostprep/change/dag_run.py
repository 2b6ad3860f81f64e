"""A real DAG run as the Airflow check: triggered in the worker, scheduled by the scheduler, run by the executor.

``--smoke-dag DAG_ID`` (no ``:TASK_ID``) triggers the DAG (``airflow dags trigger``) and waits
for the run's result with a timeout, in one ``docker exec`` of the worker: a small Python
loop reads the run's and its task instances' states from Airflow's database and, for the
tasks that did not succeed, the last lines of their logs. It prints one fenced JSON line
that :func:`parse` reads; :func:`check` turns it into a :class:`Check` saying which task
failed and why. Hostprep never unpauses a DAG: a paused DAG is reported, not run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hostprep.change import in_worker, markers
from hostprep.host.facts import Facts
from hostprep.hostdata import lines, loads
from hostprep.ssh.transport import Transport
from hostprep.change.verify import Check

TAG = "@@hostprep-dag-run"   # the result line: "@@hostprep-dag-run:<nonce> <json>", the nonce read from stdin
LOG_LINES = 8

# Runs inside the worker (hostprep/change/in_worker.sh: isolated, as the worker's user). argv: DAG_ID RUN_ID
# TIMEOUT LOG_LINES; stdin: the nonce. Trigger (Airflow's own CLI, as isolated as this script), then poll.
SCRIPT = r'''
import json, re, subprocess, sys, time
nonce = sys.stdin.readline().strip()
if not re.fullmatch(r"[0-9a-f]{24}", nonce):
    sys.exit(2)
def say(**data):
    print("@@hostprep-dag-run:%s %s" % (nonce, json.dumps(data)), flush=True)
dag_id, run_id, timeout, keep = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
flags = ["-I"] + (["-P"] if getattr(sys.flags, "safe_path", False) else [])
try:
    trig = subprocess.run([sys.executable, *flags, "-m", "airflow", "dags", "trigger", dag_id, "-r", run_id],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                          timeout=min(timeout, 300))
except subprocess.TimeoutExpired:
    say(error="airflow dags trigger did not finish within %d s" % min(timeout, 300)); sys.exit(0)
if trig.returncode != 0:
    say(error="airflow dags trigger failed", output=(trig.stdout + trig.stderr).split("\n")[-6:]); sys.exit(0)
from pathlib import Path
from airflow.configuration import conf
from airflow.models import DagModel, DagRun, TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import nullslast
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
        text = p.read_text(errors="replace") if p.is_file() else f"(no log at {p})"
        logs[task] = text.rstrip("\n").split("\n")[-keep:]
say(state=state, paused=paused, timed_out=state not in ("success", "failed") and not paused,
    tasks=[[t, st] for t, st, _ in tis], logs=logs)
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
        return self.state == "success" and self.error is None

    def __repr__(self) -> str:
        return f"<DagRunResult {self.state} tasks={len(self.tasks)}{' ' + self.error if self.error else ''}>"


def printable(text: str, limit: int = 300) -> str:
    """Worker text made safe for a terminal: no control or separator characters, cut to ``limit``.

    >>> printable("ok\\x1b[2J\\u2028x")
    'ok?[2J?x'
    """
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def parse(output: str, mark: str) -> DagRunResult:
    """The one result line :data:`SCRIPT` printed under ``mark``, or an error with the output's tail.
    Never raises: whatever the worker printed, a run is judged ok only by a well-formed result.

    >>> n = "c" * 24
    >>> parse('x\\n@@hostprep-dag-run:%s {"state": "success", "tasks": [["fetch", "success"]]}' % n, n).ok
    True
    >>> parse("Error: no such dag", n).error
    'no result from the worker: Error: no such dag'
    """
    found = markers.fenced(output, TAG, mark)
    tail = " | ".join(printable(ln) for ln in [ln.strip() for ln in lines(output) if not ln.startswith(TAG)][-3:] if ln)
    if not found:
        return DagRunResult(error=f"no result from the worker: {tail}")
    if len(found) > 1:
        return DagRunResult(error=f"{len(found)} result lines under this run's nonce: refused as ambiguous")
    try:
        data = loads(found[0], "the worker's result")
    except ValueError as exc:
        return DagRunResult(error=f"unreadable result from the worker ({exc}): {printable(found[0], 200)}")
    if not isinstance(data, dict):
        return DagRunResult(error=f"unreadable result from the worker: not an object: {printable(found[0], 200)}")
    if data.get("error"):
        said = data.get("output")
        out = " | ".join(printable(str(x)) for x in said[-3:] if str(x).strip()) if isinstance(said, list) else ""
        return DagRunResult(error=printable(str(data["error"])) + (f": {out}" if out else ""))
    return _result(data)


def _result(data: dict[str, Any]) -> DagRunResult:
    """A result object checked field by field; a field of the wrong type is an error, never a crash."""
    state, raw_tasks, raw_logs = data.get("state"), data.get("tasks") or [], data.get("logs") or {}
    bad = ("state" if state is not None and not isinstance(state, str) else
           "tasks" if not isinstance(raw_tasks, list) or not all(_task(t) for t in raw_tasks) else
           "logs" if not isinstance(raw_logs, dict) or not all(isinstance(v, list) for v in raw_logs.values()) else None)
    if bad:
        return DagRunResult(error=f"unreadable result from the worker: field {bad!r} is "
                                  f"{printable(repr(data.get(bad)), 120)}")
    tasks = [(printable(t[0], 250), None if t[1] is None else printable(t[1], 40)) for t in raw_tasks]
    logs = {printable(str(k), 250): [str(x) for x in v] for k, v in raw_logs.items()}
    return DagRunResult(printable(state, 40) if state else None, data.get("paused") is True,
                        data.get("timed_out") is True, tasks, logs)


def _task(t: object) -> bool:
    return (isinstance(t, list) and len(t) == 2 and isinstance(t[0], str)
            and (t[1] is None or isinstance(t[1], str)))


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
        data = loads(line, "a task log line")
    except ValueError:
        return printable(line.strip(), 2000)
    if not isinstance(data, dict):
        return printable(line.strip(), 2000)
    detail = data.get("error_detail")
    exc = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    cause = f": {exc.get('exc_type')}: {exc.get('exc_value')}" if exc else ""
    return printable(f"{data.get('event', '')}{cause}".strip(), 2000)


def run(t: Transport, facts: Facts, dag_id: str, *, timeout: float = 600) -> Check:
    """Trigger ``dag_id`` in the worker and wait for the run's result; never raises on a failing run."""
    name = f"Airflow DAG run {dag_id} (triggered, scheduled, executed)"
    run_id = f"hostprep__{time.strftime('%Y%m%dT%H%M%S')}_{time.monotonic_ns() % 1000000:06d}"
    container, secs, mark = facts.worker.name or "", int(timeout), markers.nonce()
    res = t.run(in_worker.argv(container, secs, SCRIPT, dag_id, run_id, str(secs), str(LOG_LINES)),
                sudo=True, stdin=mark + "\n", timeout=secs + in_worker.MARGIN + 30)
    why = in_worker.why_not(container, secs, res.exit_code, res.stdout)
    if why:
        return Check(name, False, why)
    result = parse(res.stdout + "\n" + res.stderr, mark)
    return Check(name, result.ok, describe(result))
