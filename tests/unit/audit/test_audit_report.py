"""Audit reports: table, JSON, JUnit and the Prometheus textfile, from audits of captured facts."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hostprep.audit import report as audit_report
from hostprep.audit.run import RULES, HostAudit, judged
from hostprep.change.results import UNREACHABLE
from tests.unit.audit.test_audit import SETTINGS, facts

AT = datetime(2026, 11, 25, 17, 30, tzinfo=timezone.utc)


@pytest.fixture
def audits() -> list[HostAudit]:
    clean = judged(facts("groupadd"), SETTINGS)
    clean.host = "clean"
    drift = judged(facts("chmod_dockerd_restarted"), SETTINGS)
    return [clean, drift, HostAudit("down", UNREACHABLE, error="down: cannot connect to 127.0.0.1:1: refused")]


def test_table_has_one_line_per_host_then_findings_with_fix_hints(audits: list[HostAudit]) -> None:
    text = audit_report.table(audits)
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "STATUS", "FINDINGS", "STRATEGY", "DOCKER", "GID", "SOCKET"]
    assert lines[1].split()[:3] == ["clean", "OK", "0"]
    assert lines[2].split()[:4] == ["lab2", "DRIFT", "3", "chmod"]
    assert lines[3].split()[:3] == ["down", "UNREACHABLE", "-"]
    assert "  [critical] chmod-lost: /var/run/docker.sock is 660 again: the socket was made again since the chmod " \
           "(a restart of whatever makes the socket (dockerd or docker.socket) or a reboot)" in lines
    assert "== down: unreachable: down: cannot connect to 127.0.0.1:1: refused" in lines
    assert "== clean" not in text


def test_json_report_has_every_host_and_the_exit_code(audits: list[HostAudit]) -> None:
    data = json.loads(audit_report.as_json(audits, AT))
    assert data["exit_code"] == 3 and data["at"] == "2026-11-25T17:30:00+00:00"
    assert data["summary"] == {"ok": 1, "drift": 1, "unreachable": 1, "failed": 0}
    assert [f["id"] for f in data["hosts"]["lab2"]["findings"]] == [
        "worker-cannot-reach-docker", "chmod-lost", "strategy-differs"]
    assert data["hosts"]["down"]["reachable"] is False and data["hosts"]["down"]["findings"] == []


def test_junit_has_a_testcase_per_host_and_check_and_failures_for_findings(audits: list[HostAudit]) -> None:
    root = ET.fromstring(audit_report.junit(audits, AT))
    per_host = len(RULES) + 1
    assert root.get("tests") == str(3 * per_host)
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("3", "1", str(len(RULES)))
    lab2 = root.find("testsuite[@name='lab2']")
    assert lab2 is not None
    failed = {c.get("name"): f for c in lab2.iter("testcase") if (f := c.find("failure")) is not None}
    assert set(failed) == {"worker-cannot-reach-docker", "chmod-lost", "strategy-differs"}
    assert failed["chmod-lost"].get("type") == "critical"
    assert "fix: `invoke provision --host lab2 --strategy chmod`" in (failed["chmod-lost"].text or "")
    down = root.find("testsuite[@name='down']/testcase[@name='reachable']/error")
    assert down is not None and "cannot connect" in (down.text or "")


SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+]+$')


def test_prometheus_textfile_is_valid_exposition_with_the_three_metrics(audits: list[HostAudit]) -> None:
    text = audit_report.prometheus(audits, AT)
    samples = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert all(SAMPLE.match(ln) for ln in samples), samples
    assert 'hostprep_drift_findings{host="clean"} 0' in samples
    assert 'hostprep_drift_findings{host="lab2"} 3' in samples
    assert not any(ln.startswith('hostprep_drift_findings{host="down"}') for ln in samples)  # unknown, not 0
    assert 'hostprep_host_reachable{host="down"} 0' in samples
    assert 'hostprep_drift_finding{host="lab2",id="chmod-lost",severity="critical"} 1' in samples
    assert f"hostprep_audit_last_timestamp_seconds {AT.timestamp():.3f}" in samples
    assert text.endswith("\n")
    types = re.findall(r"^# TYPE (\S+) gauge$", text, re.M)
    assert len(types) == len(set(types)) == 5


def test_prometheus_textfile_says_the_schedules_interval_only_when_it_has_one(audits: list[HostAudit]) -> None:
    scheduled = audit_report.prometheus(audits, AT, interval=900)
    assert "\nhostprep_audit_interval_seconds 900\n" in scheduled
    assert "# TYPE hostprep_audit_interval_seconds gauge" in scheduled
    assert "hostprep_audit_interval_seconds" not in audit_report.prometheus(audits, AT)


def test_prometheus_label_values_are_escaped() -> None:
    text = audit_report.prometheus([HostAudit('we"ird\\host', "ok")], AT)
    assert 'hostprep_drift_findings{host="we\\"ird\\\\host"} 0' in text


def test_write_atomic_replaces_the_file_readably_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "hostprep_audit.prom"
    audit_report.write_atomic(target, "old\n")
    inode = target.stat().st_ino
    audit_report.write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_ino != inode
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(target.parent) == ["hostprep_audit.prom"]
