"""Audit shards: a stable 1/N of the selected hosts per run, and the merge of N shard reports into one.

A fleet audit can then run as N mapped tasks (Airflow dynamic task mapping) on the workers
operators already have. A host's shard depends on its name only, so the same host always
lands in the same shard whatever else the inventory holds. Pure.

A sharded run has an id and a start time (:class:`Run`; ``audit.begin`` writes them to a run
file), every shard's report carries them, and the merge judges each report against the run: a
report left in a shard's folder by an earlier run (its task died this time) is refused by name,
and its hosts are reported as not audited, never as they were last time.

>>> parse_shard("2/3")
(2, 3)
>>> shard_of("i-0a1", 2) in (1, 2)
True
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence, TypeVar

from hostprep import hostdata
from hostprep.audit.run import HostAudit
from hostprep.audit.report_json import ReportError, host_audits, report_object, want, when
from hostprep.change.results import FAILED

_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")   # also an Airflow run id: scheduled__2026-...+00:00
T = TypeVar("T")


class ShardError(ValueError):
    """A bad ``--shard`` value, or shard reports that do not make one whole run."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` with 1 <= I <= N <= 1000."""
    m = _SHARD.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 1000:
        raise ShardError(f"--shard {text!r}: expected I/N with 1 <= I <= N <= 1000, e.g. 1/4")
    return int(m.group(1)), int(m.group(2))


def shard_of(host: str, count: int) -> int:
    """The shard (1..count) a host belongs to: a hash of its name, stable across runs and machines."""
    digest = hashlib.sha256(host.encode("utf-8", "surrogateescape")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


def pick(items: Sequence[T], names: Iterable[str], shard: tuple[int, int]) -> list[T]:
    """The items whose name falls in ``shard``, in their given order."""
    index, count = shard
    return [item for item, name in zip(items, names) if shard_of(name, count) == index]


# ------------------------------------------------------------------ the run the shards belong to


@dataclass(frozen=True)
class Run:
    """One sharded audit run: its id and when it began. Every shard report carries both."""

    id: str
    started: datetime

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "started": self.started.isoformat(timespec="seconds")}

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.started.isoformat(timespec='seconds')}>"


def new_run(now: datetime, run_id: str | None = None) -> Run:
    """A run beginning ``now``: the given id (an Airflow run id fits), else a fresh one (time + 8 random hex)."""
    rid = run_id if run_id is not None else f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    if not isinstance(rid, str) or not RUN_ID.fullmatch(rid):
        raise ShardError(f"--run-id {rid!r}: 1-128 letters, digits and . _ : + - (starting with a letter or digit)")
    return Run(rid, now.replace(microsecond=0))


def parse_run(data: Any, name: str, field: str = "run") -> Run:
    """A run as a run file or a report holds it: ``{"id": ..., "started": ...}``, both checked."""
    want(data, dict, name, field)
    rid = want(data.get("id"), str, name, f"{field}.id")
    if not RUN_ID.fullmatch(rid):
        raise ReportError(f"{name}: {field}.id: {rid[:60]!r} is not a run id hostprep writes")
    return Run(rid, when(data.get("started"), name, f"{field}.started"))


def run_file_text(run: Run) -> str:
    return json.dumps({"run": run.to_dict()}, indent=2, sort_keys=True) + "\n"


def read_run_file(text: str, name: str) -> Run:
    """The run ``audit.begin`` wrote to ``name``."""
    return parse_run(report_object(_loads(text, name), name).get("run"), name)


def _loads(text: str, name: str) -> Any:
    try:
        return hostdata.loads(text, name)
    except ReportError:
        raise
    except ValueError as exc:
        raise ReportError(f"{name}: not JSON: {exc}") from None


# ------------------------------------------------------------------ shard reports and their merge


@dataclass(frozen=True)
class ShardReport:
    """One shard's ``audit.json``, read and checked: which shard, of which run, when, and its hosts."""

    name: str
    index: int
    count: int
    run: Run | None
    at: datetime
    audits: tuple[HostAudit, ...]

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count} ({self.name})"


def read_report(text: str, name: str) -> ShardReport:
    """A shard report from its text; anything but what ``audit --shard`` writes is a ReportError naming the field."""
    data = report_object(_loads(text, name), name)
    if data.get("shard") is None:
        raise ReportError(f"{name}: shard: missing: not a shard's report (written by `audit` without --shard)")
    shard = want(data.get("shard"), dict, name, "shard")
    index = want(shard.get("index"), int, name, "shard.index")
    count = want(shard.get("count"), int, name, "shard.count")
    if not 1 <= index <= count <= 1000:
        raise ReportError(f"{name}: shard: {index}/{count} is not a shard (1 <= I <= N <= 1000)")
    run = parse_run(data["run"], name) if data.get("run") is not None else None
    return ShardReport(name, index, count, run, when(data.get("at"), name, "at"),
                       tuple(host_audits(data.get("hosts"), name)))


def stale(report: ShardReport, run: Run) -> str | None:
    """Why ``report`` is not this run's (None: it is): no run id, another run, or older than the run's start."""
    if report.run is None:
        return ("it has no run id (written without --run-file, or by a hostprep before run ids): "
                "run the shard again with this run's --run-file")
    if report.run.id != run.id:
        return f"it is from run {report.run.id} ({report.run.started.isoformat()}), not {run.id}"
    if report.run.started != run.started:
        return (f"it is from an earlier start of run {run.id} (began {report.run.started.isoformat()}; "
                f"this one began {run.started.isoformat()})")
    if report.at < run.started:
        return f"it was written at {report.at.isoformat()}, before run {run.id} began at {run.started.isoformat()}"
    return None


@dataclass(frozen=True)
class Merged:
    """The merged audits (one per host), the run's time, and each refused shard with why."""

    audits: list[HostAudit]
    at: datetime
    refused: tuple[str, ...] = ()


def _check_slots(reports: Sequence[ShardReport]) -> None:
    counts = {r.count for r in reports}
    if len(counts) != 1:
        raise ShardError("the reports are not shards of one run (each needs the same shard count N): "
                         + ", ".join(r.label for r in reports))
    count = counts.pop()
    indexes = sorted(r.index for r in reports)
    missing = sorted(set(range(1, count + 1)) - set(indexes))
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if missing or repeated:
        raise ShardError(f"shards of {count}: " + "; ".join(
            p for p in (f"missing {', '.join(f'{i}/{count}' for i in missing)}" if missing else "",
                        f"repeated {', '.join(f'{i}/{count}' for i in repeated)}" if repeated else "") if p))


def merge(reports: Sequence[ShardReport], run: Run) -> Merged:
    """The audits of N shard reports as one run's: every shard once, every host once.

    A missing or repeated shard, or a host in two shards, is an error: a merged report must never
    claim a host was seen when it was not. A shard report that is not this run's (:func:`stale`)
    is refused: its hosts are reported as not audited (status failed, the reason as their error).
    The run's time is its start.
    """
    if not reports:
        raise ShardError("no shard reports to merge")
    whys = [stale(r, run) for r in reports]
    refused = tuple(f"{r.label}: refused: {why}" for r, why in zip(reports, whys) if why is not None)
    try:
        _check_slots(reports)
    except ShardError as exc:
        raise ShardError("; ".join((str(exc), *refused))) from None
    audits: dict[str, HostAudit] = {}
    seen: dict[str, str] = {}
    for r, why in zip(reports, whys):
        for a in r.audits:
            if a.host in audits:
                raise ShardError(f"host {a.host!r} is in two shard reports: {seen[a.host]} and {r.label}")
            seen[a.host] = r.label
            audits[a.host] = a if why is None else HostAudit(
                a.host, FAILED, error=f"not audited in run {run.id}: {r.label} is stale: {why}", labels=a.labels)
    return Merged([audits[h] for h in sorted(audits)], run.started, refused)
