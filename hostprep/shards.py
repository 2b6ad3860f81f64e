"""Audit shards: a stable 1/N of the selected hosts per run, and the merge of N shard reports into one.

A fleet audit can then run as N mapped tasks (Airflow dynamic task mapping) on the workers
operators already have. A host's shard depends on its name only, so the same host always
lands in the same shard whatever else the inventory holds. Pure.

>>> parse_shard("2/3")
(2, 3)
>>> shard_of("i-0a1", 2) in (1, 2)
True
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from hostprep.audit import RULE, Finding, HostAudit, Rule

_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")
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


def audits_from_report(data: Mapping[str, Any]) -> list[HostAudit]:
    """HostAudits back from an ``audit.json`` (the inverse of ``HostAudit.to_dict``)."""
    out = []
    for host, h in sorted((data.get("hosts") or {}).items()):
        out.append(HostAudit(
            host=host, status=h["status"], findings=[_finding(f) for f in h.get("findings") or []],
            error=h.get("error"), deep=bool(h.get("deep")), strategy=h.get("strategy"),
            docker_gid=h.get("docker_gid"), socket=h.get("socket"), fix=h.get("fix"),
            found_before_fix=[_finding(f) for f in h.get("found_before_fix") or []],
            seconds=float(h.get("seconds") or 0.0), labels=dict(h.get("labels") or {}),
        ))
    return out


def _finding(f: Mapping[str, Any]) -> Finding:
    rule = RULE.get(f["id"]) or Rule(f["id"], f["severity"], f["id"])   # a rule this version does not know
    return Finding(rule, f["detail"], f["hint"], f.get("subject"))


def merge(reports: Sequence[Mapping[str, Any]]) -> tuple[list[HostAudit], datetime]:
    """The audits of N shard reports as one run's: every shard once, every host once.

    The run's time is the earliest shard's. A missing or repeated shard, or a host in two
    shards, is an error: a merged report must never claim a host was seen when it was not.
    """
    if not reports:
        raise ShardError("no shard reports to merge")
    counts = {int((r.get("shard") or {}).get("count") or 0) for r in reports}
    indexes = sorted(int((r.get("shard") or {}).get("index") or 0) for r in reports)
    if len(counts) != 1 or 0 in counts:
        raise ShardError("the reports are not shards of one run (each needs the same shard count N)")
    count = counts.pop()
    if indexes != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(indexes))
        repeated = sorted({i for i in indexes if indexes.count(i) > 1})
        raise ShardError(f"shards of {count}: " + "; ".join(
            p for p in (f"missing {', '.join(f'{i}/{count}' for i in missing)}" if missing else "",
                        f"repeated {', '.join(f'{i}/{count}' for i in repeated)}" if repeated else "") if p))
    audits: dict[str, HostAudit] = {}
    for r in reports:
        for a in audits_from_report(r):
            if a.host in audits:
                raise ShardError(f"host {a.host!r} is in two shard reports")
            audits[a.host] = a
    at = min(datetime.fromisoformat(str(r["at"])) for r in reports)
    return [audits[h] for h in sorted(audits)], at
