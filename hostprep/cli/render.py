"""Rendering: tables, diffs, the recap and JSON. The library never prints; tasks.py does.

What a host or a file said (an error's tail, a check's detail, ``id`` and ``docker ps`` output, a
plan's problems) is masked here, where it meets hostprep's own text (``redact``, with the host's
name as hostprep's own word); the host names, labels, counts and the recap are never masked.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from hostprep.host.facts import Facts
from hostprep.hostdata import lines
from hostprep.redact import redact, redact_data
from hostprep.host.socket_unit import DOCKERD, SYSTEMD
from hostprep.change.verify import first_line
from hostprep.change.results import FAILED, NOT_STARTED, STEP_COUNTS, FleetReport, HostReport, recap_counts

_COLORS = {"ok": "32", "changed": "33", "failed": "31", "unreachable": "31"}


def color(text: str, status: str, enabled: bool) -> str:
    return f"\033[{_COLORS.get(status, '0')}m{text}\033[0m" if enabled else text


def socket_maker(facts: Facts) -> str:
    """Who makes the socket, and the GID it gets when made again if that is not the GID it has."""
    by, u = facts.socket_manager, facts.socket_unit
    if by == SYSTEMD and u is not None:
        drop_ins = f", drop-ins {' '.join(u.drop_ins)}" if u.drop_ins else ""
        text = f"systemd docker.socket ({format(u.mode or 0, 'o')} {u.user or 'root'}:{u.group or 'root'}{drop_ins})"
    else:
        text = {DOCKERD: "dockerd itself", None: "unknown"}.get(by, str(by))
    nxt = facts.next_socket_gid
    if facts.socket.exists and by is not None and nxt is not None and nxt != facts.socket.gid:
        text += f"; next time GID {nxt}, not {facts.socket.gid}"
    return text


def facts_table(facts: Facts) -> str:
    """A readable summary of one host's facts."""
    s, w = facts.socket, facts.worker
    mode = format(s.mode, "o") if s.mode is not None else "-"
    dirs = ", ".join(f"{d.name}={d.uid}:{d.gid}/{format(d.mode or 0, 'o')}" if d.exists else f"{d.name}=missing"
                     for d in facts.bind_dirs)
    rows = [
        ("os", facts.os or "-"),
        ("docker group GID", str(facts.docker_gid) if facts.docker_gid is not None else "none"),
        ("socket", f"{s.path} {mode} {s.owner}:{s.group}{' +acl' if s.has_acl else ''}" if s.exists else f"{s.path} missing"),
        ("socket made by", socket_maker(facts)),
        ("dockerd", f"{'running' if facts.dockerd_running else 'NOT running'} {facts.docker_version or ''}".strip()),
        ("compose", f"{facts.compose_flavour or 'none'} {facts.compose_version or ''}".strip()),
        ("project", f"{facts.project_dir} ({facts.compose_file.name if facts.compose_file else 'no compose file'})"),
        ("worker", f"{w.name} {w.state} image={w.image} user={w.user} group_add={list(w.group_add)}" if w.found else "not found"),
        ("worker groups (/proc)", " ".join(map(str, w.proc_groups)) or "-"),
        ("worker id", w.id_output or "-"),
        ("worker docker ps", "-" if w.docker_ps_rc is None else
         ("ok" if w.docker_ps_rc == 0 else f"FAILS rc={w.docker_ps_rc}: {first_line(w.docker_ps_output)}")),
        ("bind dirs", dirs or "-"),
        ("hostprep record", json.dumps(facts.record, sort_keys=True) if facts.record else "never applied"),
    ]
    width = max(len(k) for k, _ in rows)
    own = (facts.host,)
    return f"== {facts.host}\n" + "\n".join(f"  {k:<{width}}  {redact(v, own)}" for k, v in rows)


def host_report(r: HostReport, *, diff: bool = True, use_color: bool = False) -> str:
    """Everything an operator wants to read about one host's run."""
    labels = r.data.get("labels") or {}
    known = " ".join(v for v in (labels.get("instance_id"), labels.get("name")) if v and v != r.host)
    own = (r.host,)
    out = [color(f"== {r.host}{f' ({known})' if known else ''}: {r.status}", r.status, use_color)]
    plan = r.plan
    if plan is not None:
        out.append(f"  strategy {plan.strategy}, docker GID {plan.docker_gid}")
        out += [f"  ! {redact(p, own)}" for p in plan.problems]
        for s in plan.steps:
            out.append(f"  ~ {s.name}  ({redact(s.why, own)})")
            if diff and s.diff():
                out += ["      " + ln for ln in lines(s.diff().rstrip("\n"))]
            elif diff and (s.before or s.after):
                out.append("      " + redact(f"{s.before or '(absent)'} -> {s.after or '(absent)'}", own))
        out += [f"  - {redact(n, own)}" for n in plan.notes]
    out += [f"  WARNING: {redact(w, own)}" for w in r.warnings]
    for label, view in (("before", r.before), ("after", r.after)):
        if view:
            ps = "ok" if view.get("docker_ps_rc") == 0 else f"rc={view.get('docker_ps_rc')} {first_line(str(view.get('docker_ps') or ''))}"
            out.append(f"  {label:<6} id: {redact(str(view.get('id')), own)}")
            out.append(f"  {label:<6} docker ps: {redact(ps, own)}")
    out += [f"  [{c.label}] {c.name}: {redact(c.detail, own)}" for c in r.checks]
    if r.snapshot_id:
        out.append(f"  snapshot {r.snapshot_id}{' (rolled back)' if r.rolled_back and r.failed else ''}")
    if r.error:
        out.append(color(f"  error: {redact(r.error, own)}", "failed", use_color))
    if r.timings:
        out.append("  time: " + timings(r.timings))
    return "\n".join(out)


PHASES = ("connect", "facts", "drain", "apply", "restore", "verify", "smoke")   # drain: --check's look at a busy worker
INSIDE = {"apply": ("drain", "compose", "proof"), "restore": ("compose",)}   # parts of a phase, timed on the host


def timings(t: dict[str, float]) -> str:
    """Phase times that add up to the total; the host-side parts of a phase in parentheses.

    >>> timings({"connect": 0.1, "facts": 0.2, "apply": 2.0, "compose": 1.5, "proof": 0.3, "verify": 0.01, "total": 2.4})
    'connect 0.10s + facts 0.20s + apply 2.00s (compose 1.50s, proof 0.30s) + verify 0.01s + other 0.09s = total 2.40s'
    """
    parts, counted = [], 0.0
    inside = {k for ks in INSIDE.values() for k in ks}
    for phase in (p for p in PHASES if p in t and not (p in inside and "apply" in t)):
        inner = ", ".join(f"{k} {t[k]:.2f}s" for k in INSIDE.get(phase, ()) if k in t)
        parts.append(f"{phase} {t[phase]:.2f}s" + (f" ({inner})" if inner else ""))
        counted += t[phase]
    if "total" not in t:
        return " + ".join(parts)
    rest = t["total"] - counted
    if rest >= 0.005:
        parts.append(f"other {rest:.2f}s")
    return " + ".join(parts) + f" = total {t['total']:.2f}s"


def recap(fleet: FleetReport, *, use_color: bool = False) -> str:
    """Ansible-style PLAY RECAP."""
    width = max((len(r.host) for r in fleet.reports), default=4)
    lines = ["", "RECAP " + "*" * 60]
    for r in fleet.reports:
        c = recap_counts(r)
        line = f"{r.host:<{width}} : " + "  ".join(f"{k}={c[k]:<3}" for k in STEP_COUNTS).rstrip()
        lines.append(color(line + ("  (not started)" if r.status == NOT_STARTED else ""), r.status, use_color))
    if fleet.stopped:
        lines.append(color(f"ROLLOUT STOPPED: {fleet.stopped}", FAILED, use_color))
    lines.append(f"({len(fleet.reports)} host{'s' * (len(fleet.reports) != 1)} in {fleet.seconds:.1f}s; "
                 "counts are steps: changes made and checks run)")
    return "\n".join(lines)


def as_json(data: Any, own: Iterable[str] = ()) -> str:
    """JSON for --json, every string value with credentials masked (``own``: the run's host names)."""
    return json.dumps(redact_data(json.loads(json.dumps(data, default=str)), frozenset(own)), indent=2,
                      sort_keys=True)


def progress_line(r: HostReport, done: int, total: int, use_color: bool) -> str:
    return f"[{done}/{total}] " + color(f"{r.host}: {r.status}", r.status, use_color) + \
        (f" ({redact(first_line(r.error), (r.host,))})" if r.error else "")


def table(rows: Iterable[dict[str, Any]], cols: list[str]) -> str:
    """Columns of host-reported values, each masked (a row's ``host`` is hostprep's own word)."""
    rows = [{c: redact(str(r.get(c, "")), (str(r.get("host", "")),)) for c in cols} for r in rows]
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in cols}
    head = "  ".join(f"{c:<{widths[c]}}" for c in cols)
    return "\n".join([head] + ["  ".join(f"{str(r.get(c, '')):<{widths[c]}}" for c in cols) for r in rows])
