"""What the host's drain (``drain.sh``) said, read as data: the worker's own words travel base64-encoded
JSON, and every field is checked and cut to a plain form before anything shows it. Pure.

The log read here is the interpreter's own (:func:`hostprep.markers.own`): only lines said under the
run's nonce begin with ``@@hostprep:``, and each marker is matched whole."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from hostprep.hostdata import loads

_LINE = re.compile(r"^@@hostprep:drain (celery@[A-Za-z0-9.-]{1,253}|celery@unknown) "
                   r"(cancelled|drained|timeout|running|silent|error|resumed) ([A-Za-z0-9+/=]{0,65536})$", re.M)
_STALE = re.compile(r"^@@hostprep:drain-stale (resumed|unknown) (celery@[A-Za-z0-9.-]{1,253})$", re.M)
_PLAIN = re.compile(r"[^A-Za-z0-9_.:+@/ -]")


@dataclass(frozen=True)
class Event:
    node: str
    kind: str
    data: dict[str, Any]

    @property
    def tasks(self) -> list[str]:
        """The tasks this event names, as ``dag.task (run RUN)``."""
        raw = self.data.get("tasks")
        return [task_name(t) for t in raw if isinstance(t, dict)] if isinstance(raw, list) else []


def plain(value: object, limit: int = 120) -> str:
    """A worker-supplied value made safe to show: plain characters only, cut to ``limit``.

    >>> plain("dag\\x1b[2J;rm -rf /")
    'dag??2J?rm -rf /'
    """
    return _PLAIN.sub("?", str(value))[:limit]


def task_name(t: dict[str, Any]) -> str:
    """A task as an operator names it.

    >>> task_name({"dag_id": "d", "task_id": "t", "run_id": "manual__1"})
    'd.t (run manual__1)'
    >>> task_name({"name": "execute_workload", "id": "ab"})
    'execute_workload ab'
    """
    if t.get("dag_id") and t.get("task_id"):
        return f"{plain(t['dag_id'])}.{plain(t['task_id'])} (run {plain(t.get('run_id', '?'))})"
    return f"{plain(t.get('name', 'task'))} {plain(t.get('id', ''), 40)}".strip()


def events(log: str) -> list[Event]:
    """Every drain line in an interpreter log; a line that does not decode is skipped.

    >>> e = events("@@hostprep:drain celery@w1 timeout " + base64.b64encode(b'{"tasks": [{"dag_id": "d", "task_id": "t"}], "timeout": 5}').decode())
    >>> e[0].kind, e[0].tasks
    ('timeout', ['d.t (run ?)'])
    """
    out = []
    for m in _LINE.finditer(log):
        try:
            data = loads(base64.b64decode(m.group(3), validate=True) or b"{}", "a drain line")
        except (binascii.Error, ValueError):
            continue
        out.append(Event(m.group(1), m.group(2), data if isinstance(data, dict) else {}))
    return out


def waited(log: str) -> float | None:
    """Seconds the drain waited for running tasks (None: no drain ran).

    >>> waited("@@hostprep:drain celery@w drained " + base64.b64encode(b'{"seconds": 41.5}').decode())
    41.5
    """
    for e in events(log):
        if e.kind == "drained":
            s = e.data.get("seconds")
            return float(s) if isinstance(s, (int, float)) and 0 <= s < 1e7 else 0.0
    return None


def notes(log: str) -> list[str]:
    """What the drain did, for the report's warnings."""
    out = []
    for e in events(log):
        if e.kind == "drained":
            out.append(f"drained {e.node}: it took no new tasks and its running ones finished "
                       f"({plain(e.data.get('seconds', '?'), 12)} s) before it was recreated")
        elif e.kind == "running" and e.tasks:
            out.append(f"--force: recreating {e.node} kills its running tasks: {', '.join(e.tasks)}")
        elif e.kind == "running":
            out.append(f"--force: {e.node} ran no task")
    for kind, node in _STALE.findall(log):
        out.append(f"a run that died while draining {node} had left it taking no new tasks: its consumers were "
                   "added back" if kind == "resumed" else
                   f"a run that died while draining {node} may have left it taking no new tasks, and its queues "
                   "were not recorded: check `celery inspect active_queues`, or recreate the worker")
    siblings = re.search(r"^@@hostprep:siblings (.*)$", log, re.M)
    if siblings:
        out.append(f"containers running outside the project (started by tasks?): {plain(siblings.group(1), 400)}")
    return out


def preview(log: str) -> list[str]:
    """--check: what the drain would wait for."""
    out = [f"would drain {e.node} before recreating it: " + (f"it runs {', '.join(e.tasks)}" if e.tasks else "it runs no task")
           for e in events(log) if e.kind == "running"]
    return out + [failure(log).replace("; nothing was changed", "") for e in events(log)[:1] if e.kind in ("silent", "error")]


def failure(log: str) -> str:
    """Why the drain stopped the run (nothing was changed)."""
    for e in events(log):
        if e.kind == "timeout":
            return (f"{len(e.tasks)} task(s) still running on {e.node} after {plain(e.data.get('timeout'), 12)} s: "
                    f"{', '.join(e.tasks)}; the worker takes work again; nothing was changed "
                    "(wait longer with --drain-timeout SECONDS, or --force to recreate it anyway)")
        if e.kind == "silent":
            return (f"{e.node} did not answer Celery's inspect within {plain(e.data.get('timeout'), 12)} s: "
                    "cannot tell what it runs; nothing was changed (--force to recreate it anyway)")
        if e.kind == "error":
            return f"cannot drain {e.node}: {plain(e.data.get('why'))}; nothing was changed (--force to recreate anyway)"
    return "the drain of the worker failed; nothing was changed"
