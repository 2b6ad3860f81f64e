"""The host's journal of runs (pure): ``/var/lib/hostprep/runs/<id>/`` as the probe reports it.

Each apply or restore runs detached from its SSH session (``runner.sh``) in a folder of its own:
its log, its pid and, when it ended, its exit code. A run with no exit code whose process is gone
died mid-change (killed, or the host rebooted); one whose process lives is still running. One that ended
by a signal (exit 128+N: a SIGTERM at shutdown, a SIGINT) died too: mid-change it left the lock for the next
run to recover, as a ``kill -9`` does.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from hostprep.hostdata import lines
from hostprep.layout import STATE_DIR

RUNS_DIR = f"{STATE_DIR}/runs"
RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4,32}")
RUNNING, DIED = "running", "died"
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 9: "SIGKILL", 15: "SIGTERM"}
_EXIT = re.compile(r"[0-9]{1,3}")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique run id, e.g. ``20261202T021500Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Run:
    """One run from the host's journal: its id, mode, snapshot, exit code, and how far it got."""

    id: str
    mode: str = "?"
    exit_code: int | None = None
    alive: bool = False
    snapshot: str | None = None
    last_action: str | None = None
    failed: str | None = None
    restored: bool = False

    @property
    def state(self) -> str:
        """ok | failed (exit N) | restored | running | died | died (SIGTERM)."""
        if self.exit_code is None:
            return RUNNING if self.alive else DIED
        if self.exit_code == 0:
            return "ok"
        if self.exit_code > 128 and not self.restored:
            return f"{DIED} ({SIGNALS.get(self.exit_code - 128, f'signal {self.exit_code - 128}')})"
        return "restored" if self.restored else f"failed (exit {self.exit_code})"

    @property
    def mid_change(self) -> bool:
        """It may have left the host half-changed: an apply or restore that began acting, then died,
        or failed and was not restored."""
        if self.mode not in ("apply", "restore") or self.last_action is None:
            return False
        if self.exit_code is None:   # one with an exit code has ended, whatever its pid says (a zombie)
            return not self.alive
        return self.exit_code != 0 and not self.restored

    def describe(self) -> str:
        where = f", last action: {self.last_action}" if self.last_action else ""
        failed = f", failed at {self.failed}" if self.failed else ""
        snap = f", snapshot {self.snapshot}" if self.snapshot else ""
        return f"run {self.id} ({self.mode}{snap}): {self.state}{failed}{where}"

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.state}>"


def parse_runs(text: str | None) -> list[Run]:
    """The probe's ``runs`` section: one block per recent run, oldest first; what is not one is skipped.

    >>> runs = parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit= alive=0\\n"
    ...                   "> snapshot 20261202T021459Z-ab12\\n> action 4 compose-up airflow-worker\\n")
    >>> runs[0].state, runs[0].snapshot, runs[0].last_action, runs[0].mid_change
    ('died', '20261202T021459Z-ab12', '4 compose-up airflow-worker', True)
    """
    runs: list[Run] = []
    fields: dict[str, str] = {}
    for line in lines(text):
        words = line.split()
        if len(words) >= 2 and words[0] == "run" and RUN_ID.fullmatch(words[1]):
            if fields:
                runs.append(_run(fields))
            fields = {"id": words[1], **dict(w.partition("=")[::2] for w in words[2:] if "=" in w)}
        elif fields and line.startswith("> "):   # one of the run's own markers
            key, _, value = line[2:].partition(" ")
            if key in ("snapshot", "action", "failed", "restored") and re.fullmatch(r"[A-Za-z0-9 ._:/+-]{0,300}", value):
                fields[key] = value
    if fields:
        runs.append(_run(fields))
    return runs


def _run(f: dict[str, str]) -> Run:
    code = f.get("exit", "")
    mode = f.get("mode", "?")
    return Run(id=f["id"], mode=mode if mode in ("apply", "restore") else "?",
               exit_code=int(code) if _EXIT.fullmatch(code) else None, alive=f.get("alive") == "1",
               snapshot=f.get("snapshot") if RUN_ID.fullmatch(f.get("snapshot", "")) else None,
               last_action=f.get("action") or None, failed=f.get("failed") or None, restored="restored" in f)
