"""Audit history: every run appends one JSON line per host; drift intervals are computed from it (pure).

The file is ``<controller state dir>/hosts/<host>/audit.jsonl``, next to the
provision/rollback history. A run where the host could not be audited says
nothing about its findings: an interval stays open across it, and the
unreachable stretch is an interval of its own (``host-unreachable``).

A host's file past ``COMPACT_AT`` bytes is compacted on the next append: a run
of lines with the same state keeps its first and last line, the last counting
the runs in between (``repeat``), so every interval (began, ended, last seen,
runs) comes out exactly as before.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from hostprep import hostdata
from hostprep.audit.run import HostAudit
from hostprep.audit.report_json import STATUSES
from hostprep.change.local_state import append_private, controller_dir, host_dir, write_private
from hostprep.redact import redact

UNREACHABLE_KEY = "host-unreachable"
COMPACT_AT = 512 * 1024   # bytes per host file


def entry(a: HostAudit, at: datetime, *, phase: str = "audit") -> dict[str, Any]:
    """The history line for one host's audit (``phase`` "fix" for the re-audit after --fix)."""
    return {"at": at.isoformat(timespec="seconds"), "host": a.host, "status": a.status, "deep": a.deep,
            "phase": phase, "error": a.error and redact(a.error),
            "findings": [{"key": f.key, "id": f.id, "severity": f.severity, "detail": redact(f.detail)}
                         for f in a.findings]}


def entries_for(a: HostAudit, at: datetime, fixed_at: datetime) -> list[dict[str, Any]]:
    """What a run adds: the drift as found, then (after --fix) the state the fix left."""
    if a.fix is None:
        return [entry(a, at)]
    before = HostAudit(a.host, "drift", a.found_before_fix, deep=a.deep)
    return [entry(before, at), entry(a, fixed_at, phase="fix")]


def path_for(host: str) -> Path:
    return host_dir(host) / "audit.jsonl"


def append(lines: Iterable[dict[str, Any]]) -> None:
    """Append history lines, each to its host's file (one write per line: appends stay whole; 0600)."""
    touched = set()
    for line in lines:
        path = path_for(line["host"])
        append_private(path, json.dumps(line, sort_keys=True) + "\n")
        touched.add(path)
    for path in touched:
        if path.stat().st_size > COMPACT_AT:
            good, _skipped = read_lines(path)
            write_private(path, "".join(json.dumps(ln, sort_keys=True) + "\n" for ln in compact(good)))


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The history lines of one file, and why each other line was skipped (``FILE:LINE: field: why``):
    torn by a crash, or not a history line of this host. Lines end at "\\n" only."""
    good: list[dict[str, Any]] = []
    skipped = []
    for number, ln in enumerate(hostdata.lines(path.read_text(errors="replace")), 1):
        if not ln.strip():
            continue
        try:
            line = hostdata.loads(ln, "history line")
        except ValueError as exc:
            skipped.append(f"{path}:{number}: not JSON ({exc})")
            continue
        why = invalid(line, path.parent.name)
        if why:
            skipped.append(f"{path}:{number}: {why}")
        else:
            good.append(line)
    return good, skipped


def _time(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _finding_problem(f: Any, field: str) -> str | None:
    if not isinstance(f, dict):
        return f"{field}: not an object"
    for key, required in (("key", True), ("id", False), ("severity", False), ("detail", False)):
        if (required or key in f) and not isinstance(f.get(key), str):
            return f"{field}.{key}: expected a string, got {json.dumps(f.get(key))[:40]}"
    return None


def invalid(line: Any, host: str | None = None) -> str | None:
    """Why ``line`` is not a history line (of ``host``), naming the field; None when it is one."""
    if not isinstance(line, dict):
        return "not a JSON object"
    checks = (("at", _time(line.get("at")), "an ISO time with its UTC offset"),
              ("host", isinstance(line.get("host"), str) and host in (None, line.get("host")),
               f"the file's host {host}" if host else "a host name"),
              ("status", line.get("status") in STATUSES, "one of " + ", ".join(STATUSES)),
              ("error", line.get("error") is None or isinstance(line.get("error"), str), "a string or null"),
              ("findings", isinstance(line.get("findings", []), list), "a list"),
              ("repeat", type(line.get("repeat", 1)) is int and line.get("repeat", 1) >= 1, "a count of runs"))
    for field, ok, expected in checks:
        if not ok:
            return f"{field}: expected {expected}, got {json.dumps(line.get(field))[:40]}"
    for i, f in enumerate(line.get("findings", [])):
        why = _finding_problem(f, f"findings[{i}]")
        if why:
            return why
    return None


def _state(line: dict[str, Any]) -> tuple[Any, ...]:
    """All that intervals read from a line besides its time."""
    findings = tuple((f["key"], f.get("severity"), f.get("detail", "")) for f in line.get("findings", []))
    return line["host"], line["status"], line.get("error"), tuple(sorted(findings))


def compact(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of same-state lines become their first and last line (``repeat`` on the last). Pure.

    >>> h = [{"at": t, "host": "a", "status": "ok", "findings": []} for t in ("t1", "t2", "t3")]
    >>> [(e["at"], e.get("repeat", 1)) for e in compact(h)]
    [('t1', 1), ('t3', 2)]
    """
    out: list[dict[str, Any]] = []
    for _, same in itertools.groupby(sorted(lines, key=lambda e: (e["host"], e["at"])), key=_state):
        run = list(same)
        out.append(run[0])
        if len(run) > 1:
            total = sum(e.get("repeat", 1) for e in run)
            out.append(dict(run[-1], repeat=total - run[0].get("repeat", 1)))
    return out


def load(hosts: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """History lines of the given hosts (default: every host with a history), oldest first."""
    return load_counted(hosts)[0]


def load_counted(hosts: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(history lines oldest first, why each torn or foreign line was skipped)."""
    root = controller_dir() / "hosts"
    names = list(hosts) if hosts is not None else sorted(p.parent.name for p in root.glob("*/audit.jsonl"))
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in names:
        path = path_for(name)
        if path.is_file():
            good, why = read_lines(path)
            out += good
            skipped += why
    return sorted(out, key=lambda e: (e["at"], e["host"])), skipped


@dataclass(frozen=True)
class Interval:
    """One finding on one host from the run that first saw it to the run that no longer did."""

    host: str
    key: str
    severity: str
    began: str
    ended: str | None
    last_seen: str
    runs: int
    detail: str

    @property
    def ongoing(self) -> bool:
        return self.ended is None

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "key": self.key, "severity": self.severity, "began": self.began,
                "ended": self.ended, "last_seen": self.last_seen, "runs": self.runs, "detail": self.detail}

    def __repr__(self) -> str:
        return f"<Interval {self.host} {self.key} {self.began}..{self.ended or 'now'}>"


def intervals(lines: Iterable[dict[str, Any]]) -> list[Interval]:
    """Drift intervals from history lines. Pure.

    >>> h = [{"at": "t1", "host": "a", "status": "drift", "findings": [{"key": "k", "severity": "warning"}]},
    ...      {"at": "t2", "host": "a", "status": "ok", "findings": []}]
    >>> [(i.key, i.began, i.ended) for i in intervals(h)]
    [('k', 't1', 't2')]
    """
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    done: list[Interval] = []
    for line in sorted(lines, key=lambda e: e["at"]):
        host, at = line["host"], line["at"]
        if line["status"] in ("ok", "drift"):
            seen, unknown = {f["key"]: f for f in line.get("findings", [])}, set()
        else:  # findings unknown this run: keep them open, untouched
            seen = {UNREACHABLE_KEY: {"severity": "critical", "detail": line.get("error") or line["status"]}}
            unknown = {k for (h, k) in open_ if h == host}
        for key in [k for (h, k) in open_ if h == host and k not in seen and k not in unknown]:
            done.append(_close(host, key, open_.pop((host, key)), at))
        for key, f in seen.items():
            o = open_.setdefault((host, key), {"began": at, "runs": 0, "severity": f.get("severity", "warning")})
            o.update(last_seen=at, runs=o["runs"] + line.get("repeat", 1), detail=f.get("detail", ""))
    done += [_close(h, k, o, None) for (h, k), o in open_.items()]
    return sorted(done, key=lambda i: (i.host, i.began, i.key))


def _close(host: str, key: str, o: dict[str, Any], ended: str | None) -> Interval:
    return Interval(host, key, o["severity"], o["began"], ended, o["last_seen"], o["runs"], o["detail"])
