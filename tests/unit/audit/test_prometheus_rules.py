"""contrib/prometheus: the alert and recording rules pass promtool's check and its unit tests; they and the
Grafana dashboard read only metrics the audit's textfile (or the recording rules) really have."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from hostprep.audit import report as audit_report
from hostprep.audit.run import RULES as CHECKS
from hostprep.audit.run import HostAudit, judged
from hostprep.strategies.findings import CRITICAL, WARNING
from hostprep.change.results import UNREACHABLE
from tests.unit.audit.test_audit import SETTINGS, facts

CONTRIB = Path(__file__).resolve().parents[3] / "contrib" / "prometheus"
RULES = CONTRIB / "hostprep.rules.yml"
RULE_TESTS = CONTRIB / "hostprep_rules_test.yml"
DASHBOARD = CONTRIB / "hostprep-grafana-dashboard.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=CONTRIB, timeout=120)


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def textfile_metrics() -> set[str]:
    """The metric names of a textfile with every kind of sample: drift, a host not audited, the interval."""
    drift = judged(facts("chmod_dockerd_restarted"), SETTINGS)
    text = audit_report.prometheus([drift, HostAudit("down", UNREACHABLE)], datetime.now(timezone.utc), interval=900)
    return set(re.findall(r"^(hostprep_\w+)[{ ]", text, re.M))


def dashboard_exprs() -> list[str]:
    """Every query of the dashboard's panels."""
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0 and "SUCCESS: 10 rules found" in done.stdout, done.stdout + done.stderr


def test_promtools_unit_tests_of_the_rules_pass() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_rules_read_only_metrics_the_audits_textfile_has() -> None:
    used = {m for r in rules() for m in re.findall(r"\b(hostprep_\w+)", r["expr"])}
    assert used and used <= textfile_metrics(), used - textfile_metrics()


def test_the_rules_name_only_checks_and_severities_the_audit_has() -> None:
    ids = {rule.id for rule in CHECKS}
    exprs = " ".join(r["expr"] for r in rules())
    assert set(re.findall(r'id!?="([^"]+)"', exprs)) <= ids
    assert set(re.findall(r'severity="([^"]+)"', exprs)) <= {CRITICAL, WARNING}


def test_every_alert_has_a_severity_and_words_and_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    alerts = [r for r in rules() if "alert" in r]
    assert len(alerts) == 7
    for r in alerts:
        assert r["labels"]["severity"] in (CRITICAL, WARNING), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert r["alert"] in fired, f"{r['alert']} has no promtool test that fires it"


def test_the_dashboard_reads_only_the_textfiles_metrics_and_the_recording_rules() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    used = {m for e in dashboard_exprs() for m in re.findall(r"[a-z_:]*hostprep[a-z_:]*", e)}
    assert used and used <= textfile_metrics() | recorded, used - textfile_metrics() - recorded
    assert recorded <= used   # every recording rule is shown somewhere


def test_the_dashboard_is_grafana_json_with_one_datasource_variable_and_unique_panels() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "hostprep-audit" and board["templating"]["list"][0]["type"] == "datasource"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert [t["refId"] for t in p["targets"]] == [chr(65 + i) for i in range(len(p["targets"]))]
