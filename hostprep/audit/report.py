"""Audit reports: a table, JSON, JUnit XML and a Prometheus textfile. Pure text; ``write_atomic`` does the I/O.

The textfile follows node_exporter's textfile collector: ``*.prom`` files in
its ``--collector.textfile.directory``, replaced atomically (temp file in the
same folder, then rename), so the collector never reads half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from hostprep.audit.run import RULES, HostAudit, exit_code
from hostprep.audit.history import Interval
from hostprep.redact import redact, redact_data

REPORT_FILES = {"json": "audit.json", "junit": "audit-junit.xml", "prom": "hostprep_audit.prom"}


def table(audits: Sequence[HostAudit]) -> str:
    """One line per host, then each host's findings with their fix hints."""
    cloud = any(a.labels for a in audits)  # instance id and Name tag columns, for hosts from a cloud inventory
    rows = [("HOST",) + (("INSTANCE", "NAME") if cloud else ()) + ("STATUS", "FINDINGS", "STRATEGY", "DOCKER GID", "SOCKET")]
    for a in audits:
        labels = (a.labels.get("instance_id", "-"), a.labels.get("name", "-")) if cloud else ()
        rows.append((a.host, *labels, a.status.upper(), str(len(a.findings)) if a.audited else "-",
                     a.strategy or "-", str(a.docker_gid) if a.docker_gid is not None else "-", a.socket or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for a in audits:
        if a.error or a.findings or a.fix:
            out.append("")
            out.append(f"== {a.host}: {a.status}" + (f": {a.error}" if a.error else ""))
        if a.fix:
            fixed = len(a.found_before_fix) - len(a.findings)
            out.append(f"  fix: provision {a.fix['status']} (snapshot {a.fix.get('snapshot_id') or '-'}), "
                       f"{fixed} of {len(a.found_before_fix)} findings gone"
                       + (f": {a.fix['error']}" if a.fix.get("error") else ""))
        for f in a.findings:
            out.append(f"  [{f.severity}] {f.key}: {f.detail}")
            out.append(f"      fix: {f.hint}")
    return "\n".join(out)


def as_dict(audits: Sequence[HostAudit], at: datetime, shard: tuple[int, int] | None = None,
            run: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON report; a shard's names its place (``{"index": 1, "count": 2}``) and, like any run given
    one, its run (``{"id": ..., "started": ...}``), so the merge can tell this run's shards from stale ones."""
    return {"at": at.isoformat(timespec="seconds"), "exit_code": exit_code(audits),
            "summary": {s: sum(a.status == s for a in audits) for s in ("ok", "drift", "unreachable", "failed")},
            "hosts": {a.host: a.to_dict() for a in audits},
            **({"shard": {"index": shard[0], "count": shard[1]}} if shard else {}),
            **({"run": dict(run)} if run else {})}


def as_json(audits: Sequence[HostAudit], at: datetime, shard: tuple[int, int] | None = None,
            run: Mapping[str, str] | None = None) -> str:
    """The JSON report, every string value with credentials masked."""
    return json.dumps(redact_data(as_dict(audits, at, shard, run)), indent=2, sort_keys=True)


def junit(audits: Sequence[HostAudit], at: datetime) -> str:
    """A testsuite per host; a testcase per check (plus "reachable"); each finding is a failure."""
    suites = ET.Element("testsuites", name="hostprep audit")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for a in audits:
        suite = ET.SubElement(suites, "testsuite", name=a.host, timestamp=at.isoformat(timespec="seconds"),
                              time=f"{a.seconds:.3f}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        case = ET.SubElement(suite, "testcase", classname=f"hostprep.audit.run.{a.host}", name="reachable")
        counts["tests"] += 1
        if not a.audited:
            ET.SubElement(case, "error", message=f"host could not be audited ({a.status})").text = redact(a.error or "")
            counts["errors"] += 1
        for rule in RULES:
            case = ET.SubElement(suite, "testcase", classname=f"hostprep.audit.run.{a.host}", name=rule.id)
            counts["tests"] += 1
            found = [f for f in a.findings if f.id == rule.id]
            if not a.audited:
                ET.SubElement(case, "skipped", message="host could not be audited")
                counts["skipped"] += 1
            elif found:
                text = redact("\n".join(f"{f.key}: {f.detail}\nfix: {f.hint}" for f in found))
                ET.SubElement(case, "failure", message=redact(f"{rule.title}: {found[0].detail}"),
                              type=rule.severity).text = text
                counts["failures"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            total[k] += v
    for k, v in total.items():
        suites.set(k, str(v))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(audits: Sequence[HostAudit], at: datetime, interval: int | None = None) -> str:
    """Prometheus text exposition; hosts that could not be audited have no findings sample (not a false 0).

    ``interval``: seconds between scheduled runs (``audit --every``), so an alert can tell an audit that
    stopped running (contrib/prometheus/hostprep.rules.yml); no sample when the run was not scheduled.
    """
    out = [
        "# HELP hostprep_drift_findings Drift findings on the host at the last audit.",
        "# TYPE hostprep_drift_findings gauge",
        *[f'hostprep_drift_findings{{host="{_label(a.host)}"}} {len(a.findings)}' for a in audits if a.audited],
        "# HELP hostprep_drift_finding Findings of one check on the host at the last audit.",
        "# TYPE hostprep_drift_finding gauge",
    ]
    for a in audits:
        counts: dict[tuple[str, str], int] = {}
        for f in a.findings:
            counts[(f.id, f.severity)] = counts.get((f.id, f.severity), 0) + 1
        out += [f'hostprep_drift_finding{{host="{_label(a.host)}",id="{i}",severity="{s}"}} {n}'
                for (i, s), n in sorted(counts.items())]
    out += [
        "# HELP hostprep_host_reachable Whether the host could be audited (1) or not (0).",
        "# TYPE hostprep_host_reachable gauge",
        *[f'hostprep_host_reachable{{host="{_label(a.host)}"}} {int(a.audited)}' for a in audits],
        "# HELP hostprep_audit_last_timestamp_seconds Unix time of the last audit run.",
        "# TYPE hostprep_audit_last_timestamp_seconds gauge",
        f"hostprep_audit_last_timestamp_seconds {at.timestamp():.3f}",
        "# HELP hostprep_audit_exit_code Exit code of the last audit run (0 clean, 2 drift, 3 incomplete).",
        "# TYPE hostprep_audit_exit_code gauge",
        f"hostprep_audit_exit_code {exit_code(audits)}",
    ]
    if interval is not None:
        out += ["# HELP hostprep_audit_interval_seconds Seconds between scheduled audit runs (audit --every).",
                "# TYPE hostprep_audit_interval_seconds gauge",
                f"hostprep_audit_interval_seconds {interval}"]
    return "\n".join(out) + "\n"


def write_atomic(path: str | Path, text: str, mode: int = 0o644) -> Path:
    """Replace ``path`` in one rename; readers see the old file or the new one, never a part."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def history_table(spans: Sequence[Interval]) -> str:
    """When each drift began and ended, per host."""
    if not spans:
        return "no audit history"
    rows = [("HOST", "FINDING", "SEVERITY", "BEGAN", "ENDED", "RUNS")]
    rows += [(i.host, i.key, i.severity, i.began, i.ended or "ongoing", str(i.runs)) for i in spans]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
