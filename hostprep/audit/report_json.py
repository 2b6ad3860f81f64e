"""An ``audit.json`` read back into HostAudits, every field checked (the inverse of ``HostAudit.to_dict``). Pure.

A report is a file someone else could have written or cut short: a value of the wrong type is a
:class:`ReportError` naming the file and the field (``s2/audit.json: hosts.lab1.findings[0].severity:
expected a string, got null``), never a KeyError or TypeError from deep inside the merge.

>>> [a.status for a in host_audits({"lab1": {"status": "ok"}}, "r.json")]
['ok']
>>> host_audits({"lab1": {"status": "ok", "seconds": "x"}}, "r.json")
Traceback (most recent call last):
...
hostprep.audit.report_json.ReportError: r.json: hosts.lab1.seconds: expected a number of seconds, got 'x'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from hostprep.audit.run import CLEAN, DRIFT, RULE, Finding, HostAudit, Rule
from hostprep.strategies.findings import CRITICAL, WARNING
from hostprep.change.results import FAILED, UNREACHABLE
from hostprep.inventory.settings import valid_host_name

STATUSES = (CLEAN, DRIFT, UNREACHABLE, FAILED)
_KINDS = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


class ReportError(ValueError):
    """An audit report (or a shard's, or a run file) that is not what hostprep wrote; names file and field."""


def _shown(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def want(value: Any, kind: type, name: str, field: str, *, optional: bool = False) -> Any:
    """``value`` if it is of ``kind`` (``bool`` is not an integer), else a ReportError naming ``name`` and ``field``."""
    if value is None and optional:
        return None
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ReportError(f"{name}: {field}: expected {_KINDS[kind]}{' or null' if optional else ''}, got {_shown(value)}")


def when(value: Any, name: str, field: str) -> datetime:
    """An ISO 8601 time with its offset (naive and aware times cannot be compared)."""
    text = want(value, str, name, field)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ReportError(f"{name}: {field}: expected an ISO 8601 time with its UTC offset, got {_shown(value)}")
    return at


def _finding(f: Any, name: str, field: str) -> Finding:
    want(f, dict, name, field)
    rule_id = want(f.get("id"), str, name, f"{field}.id")
    severity = want(f.get("severity"), str, name, f"{field}.severity")
    if severity not in (CRITICAL, WARNING):
        raise ReportError(f"{name}: {field}.severity: expected critical or warning, got {_shown(severity)}")
    rule = RULE.get(rule_id) or Rule(rule_id, severity, rule_id)   # a rule this version does not know
    return Finding(rule, want(f.get("detail"), str, name, f"{field}.detail"),
                   want(f.get("hint"), str, name, f"{field}.hint"),
                   want(f.get("subject"), str, name, f"{field}.subject", optional=True))


def _findings(value: Any, name: str, field: str) -> list[Finding]:
    return [_finding(f, name, f"{field}[{i}]") for i, f in enumerate(want(value or [], list, name, field))]


def _labels(value: Any, name: str, field: str) -> dict[str, str]:
    labels = want(value or {}, dict, name, field)
    return {k: want(v, str, name, f"{field}.{k}") for k, v in labels.items()}


def _fix(value: Any, name: str, field: str) -> dict[str, Any] | None:
    """What ``audit --fix`` did: its status, and any error and snapshot id, as the table shows them."""
    fix = want(value, dict, name, field, optional=True)
    if fix is not None:
        want(fix.get("status"), str, name, f"{field}.status")
        for key in ("error", "snapshot_id"):
            want(fix.get(key), str, name, f"{field}.{key}", optional=True)
    return fix


def host_audit(host: str, h: Any, name: str) -> HostAudit:
    """One host's entry of a report's ``hosts``."""
    field = f"hosts.{host}"
    if not valid_host_name(host):
        raise ReportError(f"{name}: hosts: {_shown(host)} is not a host name hostprep accepts")
    want(h, dict, name, field)
    status = want(h.get("status"), str, name, f"{field}.status")
    if status not in STATUSES:
        raise ReportError(f"{name}: {field}.status: expected one of {', '.join(STATUSES)}, got {_shown(status)}")
    seconds = h.get("seconds") or 0.0
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) \
            or not 0 <= seconds < 10 ** 9:   # NaN and the infinities fail the range too
        raise ReportError(f"{name}: {field}.seconds: expected a number of seconds, got {_shown(seconds)}")
    return HostAudit(
        host=host, status=status, findings=_findings(h.get("findings"), name, f"{field}.findings"),
        error=want(h.get("error"), str, name, f"{field}.error", optional=True),
        deep=want(h.get("deep", False), bool, name, f"{field}.deep"),
        strategy=want(h.get("strategy"), str, name, f"{field}.strategy", optional=True),
        docker_gid=want(h.get("docker_gid"), int, name, f"{field}.docker_gid", optional=True),
        socket=want(h.get("socket"), str, name, f"{field}.socket", optional=True),
        fix=_fix(h.get("fix"), name, f"{field}.fix"),
        found_before_fix=_findings(h.get("found_before_fix"), name, f"{field}.found_before_fix"),
        seconds=float(seconds), labels=_labels(h.get("labels"), name, f"{field}.labels"))


def host_audits(hosts: Any, name: str) -> list[HostAudit]:
    """HostAudits from a report's ``hosts`` object, sorted by host."""
    return [host_audit(host, h, name) for host, h in sorted(want(hosts, dict, name, "hosts").items())]


def report_object(data: Any, name: str) -> Mapping[str, Any]:
    """The report's top level: a JSON object, or an error saying what the file holds instead."""
    if not isinstance(data, dict):
        raise ReportError(f"{name}: not an audit report: expected a JSON object, got {_shown(data)}")
    return data
