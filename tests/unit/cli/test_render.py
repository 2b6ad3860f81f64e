"""Rendering: the facts table, one host's report and the Ansible-style recap, from real lab facts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from hostprep.cli import render
from hostprep.host.facts import DirFacts, Facts
from hostprep.host.probe import parse_probe
from hostprep.change.plan import make_plan
from hostprep.change.results import CHANGED, FAILED, OK, UNREACHABLE, FleetReport, HostReport, recap_counts
from hostprep.inventory.settings import HostSettings
from hostprep.change.verify import Check, verify, worker_view

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAB = HostSettings()


def facts_of(name: str, settings: HostSettings = LAB) -> Facts:
    return parse_probe(name.split("_")[0], (FIXTURES / f"probe_{name}.txt").read_text(), settings)


def rows(table: str) -> dict[str, str]:
    """``{label: value}`` of a facts table (labels and values are separated by two spaces or more)."""
    return dict(re.split(r"\s{2,}", ln.strip(), maxsplit=1) for ln in table.splitlines()[1:])


def squeeze(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


# --- facts_table --------------------------------------------------------------------------------------

def test_facts_table_of_pristine_lab1_shows_the_bug_at_a_glance() -> None:
    table = render.facts_table(facts_of("lab1_pristine"))
    assert table.splitlines()[0] == "== lab1"
    r = rows(table)
    assert r["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert r["docker group GID"] == "998"
    assert r["socket"] == "/var/run/docker.sock 660 root:docker"
    assert r["dockerd"] == "running 20.10.24+dfsg1"
    assert r["compose"] == "v2 2.26.1-4"
    assert r["project"] == "/opt/airflow (docker-compose.yaml)"
    assert r["worker"] == ("airflow-airflow-worker-1 running image=hostprep-lab/airflow:latest user=50000:0 "
                           "group_add=[]")
    assert r["worker groups (/proc)"] == "0"
    assert r["worker id"] == "uid=50000(airflow) gid=0(root) groups=0(root)"
    assert r["worker docker ps"].startswith("FAILS rc=1: permission denied while trying to connect")
    assert r["bind dirs"] == "dags=50000:0/755, logs=50000:0/755, plugins=50000:0/755, config=50000:0/755"
    assert r["hostprep record"] == "never applied"


def test_facts_table_values_line_up_in_one_column() -> None:
    lines = render.facts_table(facts_of("lab2_pristine")).splitlines()[1:]
    starts = {len(ln) - len(re.split(r"\s{2,}", ln.strip(), maxsplit=1)[1]) for ln in lines}
    assert len(starts) == 1


def test_facts_table_shows_what_is_missing() -> None:
    settings = HostSettings(worker_service="airflow-triggerer", services=("airflow-triggerer",))
    f = facts_of("lab1_worker_not_found", settings)
    f = dataclasses.replace(f, docker_gid=None, dockerd_running=False, compose_flavour=None, compose_version=None,
                            bind_dirs=(DirFacts("logs", False),),
                            socket=dataclasses.replace(f.socket, exists=False, mode=None))
    r = rows(render.facts_table(f))
    assert r["docker group GID"] == "none"
    assert r["socket"] == "/var/run/docker.sock missing"
    assert r["dockerd"] == "NOT running 20.10.24+dfsg1"
    assert r["compose"] == "none"
    assert r["worker"] == "not found"
    assert (r["worker groups (/proc)"], r["worker id"], r["worker docker ps"]) == ("-", "-", "-")
    assert r["bind dirs"] == "logs=missing"


def test_facts_table_marks_a_socket_acl_and_a_working_docker_ps_and_a_record() -> None:
    f = facts_of("lab1_pristine")
    f = dataclasses.replace(f, socket=dataclasses.replace(f.socket, has_acl=True),
                            worker=dataclasses.replace(f.worker, docker_ps_rc=0, proc_groups=(0, 998)),
                            record={"strategy": "group-add", "snapshot": "s1"})
    r = rows(render.facts_table(f))
    assert r["socket"].endswith(" +acl")
    assert r["worker docker ps"] == "ok"
    assert r["worker groups (/proc)"] == "0 998"
    assert json.loads(r["hostprep record"]) == {"strategy": "group-add", "snapshot": "s1"}


def test_facts_table_of_a_missing_project_says_no_compose_file() -> None:
    settings = HostSettings(project_dir="/opt/hostprep-nope")
    assert rows(render.facts_table(facts_of("lab2_no_project", settings)))["project"] == \
        "/opt/hostprep-nope (no compose file)"


# --- host_report ---------------------------------------------------------------------------------------

def report_for(strategy: str, **kw: object) -> HostReport:
    f = facts_of("lab1_pristine")
    plan = make_plan(f, LAB, strategy)
    return HostReport("lab1", status=CHANGED, changed=len(plan.steps), plan=plan, warnings=list(plan.warnings),
                      before=dict(worker_view(f)), **kw)  # type: ignore[arg-type]


def test_host_report_lists_each_step_with_why_and_its_diff() -> None:
    text = render.host_report(report_for("group-add"))
    lines = text.splitlines()
    assert lines[:2] == ["== lab1: changed", "  strategy group-add, docker GID 998"]
    assert "  ~ create docker-compose.hostprep.yml  (hostprep's own override: the operator's compose file is " \
           "untouched)" in lines
    assert "      +    - '998'" in lines
    assert "      +COMPOSE_FILE=docker-compose.yaml:docker-compose.hostprep.yml" in lines
    assert "  ~ recreate airflow-worker  (containers pick up the change)" in lines


def test_host_report_without_diff_lists_only_the_steps() -> None:
    text = render.host_report(report_for("group-add"), diff=False)
    assert "---" not in text and "+++" not in text
    assert text.count("  ~ ") == 3


def test_host_report_shows_the_worker_before_view() -> None:
    lines = render.host_report(report_for("group-add")).splitlines()
    assert "  before id: uid=50000(airflow) gid=0(root) groups=0(root)" in lines
    assert any(ln.startswith("  before docker ps: rc=1 permission denied while trying") for ln in lines)


def test_host_report_shows_warnings_checks_snapshot_and_timings() -> None:
    f = facts_of("lab1_pristine")
    r = report_for("chmod", checks=[Check(c.name, c.ok, c.detail) for c in verify(f, LAB, "chmod")],
                   snapshot_id="20261125T173000Z-3f9a", timings={"facts": 0.25, "apply": 1.5})
    lines = render.host_report(r).splitlines()
    assert any(ln.startswith("  WARNING: chmod 666 on the Docker socket") for ln in lines)
    assert "  [FAIL] socket is 666: 660" in lines
    assert "  [ok] worker is running: running" in lines
    assert "  snapshot 20261125T173000Z-3f9a" in lines
    assert lines[-1] == "  time: facts 0.25s + apply 1.50s"


def test_host_report_of_a_blocked_plan_shows_the_problems() -> None:
    f = dataclasses.replace(facts_of("lab1_pristine"), dockerd_running=False)
    r = HostReport("lab1", status=FAILED, plan=make_plan(f, LAB), error="plan blocked")
    lines = render.host_report(r).splitlines()
    assert "  ! dockerd is not running on the host" in lines
    assert lines[-1] == "  error: plan blocked"


def test_host_report_of_a_host_with_nothing_to_do_shows_the_note() -> None:
    f = facts_of("lab1_pristine")
    f = dataclasses.replace(f, socket=dataclasses.replace(f.socket, mode=0o666))
    text = render.host_report(HostReport("lab1", plan=make_plan(f, LAB, "chmod")))
    assert "  - nothing to do: the host already matches the desired state" in text.splitlines()


def test_host_report_says_when_a_failed_run_was_rolled_back() -> None:
    r = HostReport("lab2", status=FAILED, snapshot_id="s1", rolled_back=True, error="apply failed at 4 compose-build")
    assert render.host_report(r).splitlines() == ["== lab2: failed", "  snapshot s1 (rolled back)",
                                                  "  error: apply failed at 4 compose-build"]


def test_an_unreachable_host_report_is_its_status_and_error() -> None:
    r = HostReport("lab9").fail("lab9: cannot connect to 127.0.0.1:2209: refused", UNREACHABLE)
    assert render.host_report(r) == "== lab9: unreachable\n  error: lab9: cannot connect to 127.0.0.1:2209: refused"


def test_host_report_colors_only_when_asked() -> None:
    r = HostReport("lab1", status=CHANGED)
    assert "\033[" not in render.host_report(r)
    assert render.host_report(r, use_color=True) == "\033[33m== lab1: changed\033[0m"


# --- recap ------------------------------------------------------------------------------------------

def fleet() -> FleetReport:
    return FleetReport([
        HostReport("lab1", status=CHANGED, changed=3, checks=[Check("a", True, "x"), Check("b", True, "y")]),
        HostReport("lab2", status=OK, checks=[Check("a", True, "x"), Check("smoke", True, "no airflow", skipped=True)]),
        HostReport("lab3", status=FAILED, error="apply failed"),
        HostReport("lab-long-name").fail("no route", UNREACHABLE),
    ], seconds=12.345)


def test_recap_has_one_ansible_style_line_per_host() -> None:
    lines = render.recap(fleet()).splitlines()
    assert lines[0] == ""
    assert lines[1] == "RECAP " + "*" * 60
    assert [squeeze(ln) for ln in lines[2:6]] == [
        "lab1 : ok=5 changed=3 unreachable=0 failed=0 skipped=0",   # 3 changes + 2 checks, as Ansible counts
        "lab2 : ok=1 changed=0 unreachable=0 failed=0 skipped=1",
        "lab3 : ok=0 changed=0 unreachable=0 failed=1 skipped=0",
        "lab-long-name : ok=0 changed=0 unreachable=1 failed=0 skipped=0",
    ]
    assert lines[6] == "(4 hosts in 12.3s; counts are steps: changes made and checks run)"


def test_a_failed_check_counts_as_a_failed_step_and_a_rolled_back_change_as_none() -> None:
    r = HostReport("h", status=FAILED, changed=0, rolled_back=True,
                   checks=[Check("a", True, ""), Check("b", False, ""), Check("c", False, "")])
    assert recap_counts(r) == {"ok": 1, "changed": 0, "unreachable": 0, "failed": 2, "skipped": 0}


def test_recap_columns_line_up_across_hosts() -> None:
    lines = render.recap(fleet()).splitlines()[2:6]
    assert len({ln.index(" : ") for ln in lines}) == 1
    assert len({ln.index("changed=") for ln in lines}) == 1
    assert len({ln.index("unreachable=") for ln in lines}) == 1


def test_recap_colors_each_host_by_status_when_asked() -> None:
    lines = render.recap(fleet(), use_color=True).splitlines()[2:6]
    assert [ln[:5] for ln in lines] == ["\033[33m", "\033[32m", "\033[31m", "\033[31m"]


def test_recap_of_no_hosts_still_renders() -> None:
    assert render.recap(FleetReport([])).splitlines()[-1] == "(0 hosts in 0.0s; counts are steps: changes made and checks run)"


# --- small helpers -----------------------------------------------------------------------------------

def test_as_json_is_sorted_indented_and_stringifies_the_unknown() -> None:
    assert render.as_json({"b": 1, "a": Path("/x")}) == '{\n  "a": "/x",\n  "b": 1\n}'


def test_progress_line_counts_hosts_and_shows_the_errors_whole_first_line() -> None:
    said = ('Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: '
            'Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.47/containers/json": dial unix /var/run/docker.sock: connect: '
            'permission denied')
    r = HostReport("lab3").fail(said + "\nsecond line")
    assert render.progress_line(r, 2, 5, False) == f"[2/5] lab3: failed ({said})"
    assert render.progress_line(HostReport("lab1"), 1, 5, False) == "[1/5] lab1: ok"


def test_table_pads_every_column_to_its_widest_cell() -> None:
    text = render.table([{"host": "lab1", "id": "s1"}, {"host": "lab-two", "id": "20261125T173000Z-3f9a"}],
                        ["host", "id"])
    assert text.splitlines() == ["host     id                   ",
                                 "lab1     s1                   ",
                                 "lab-two  20261125T173000Z-3f9a"]
