"""Issue 23, item 1: a DAG file must not forge the probe's facts, and root must never act on a forged one.

The probe printed DAG lines (``dag: ./FILE:LINE:TEXT``) in its bind_dirs section and the parser split
with ``str.splitlines()``: ``# docker_url<0x1C>/var/run/docker.sock 0 1000 660`` in a DAG file became a
bind-folder fact, and the plan chowned the socket. Now the DAG scan (and the containers section) travel
base64 inside their sections, host text is split at ``"\\n"`` only, a bind-folder label the settings do
not name (or one seen twice) is refused in the parser and again in the plan, and every ownership change
is checked against the configured paths. The captures are real probe outputs (fixtures/README.md).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hostprep.change import snapshots

from hostprep.change import snapshot_store
from hostprep.host.facts import DirFacts, ProbeFailed
from hostprep.host.probe import host_script, parse_probe, sections
from hostprep.layout import bind_path
from hostprep.change.plan import foreign_paths, make_plan
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Action, Step
from tests.unit.host.test_facts_parser import LAB, capture, facts_of, with_section

SEPARATORS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\v", "\f", "\r"]
FORGED_DIR = "# docker.sock{sep}/etc/acc-forged-dir missing"
FORGED_SOCKET = "# docker_url{sep}/var/run/docker.sock 0 1000 660"


def bind_dirs_with(*extra: str) -> str:
    """lab1's pristine capture with lines added to its bind_dirs section."""
    text = capture("lab1_pristine")
    return with_section(text, "bind_dirs", sections(text)["bind_dirs"] + "".join(f"\n{x}" for x in extra))


def dag_scan(grep_output: str) -> str:
    """The probe's DAG-scan line for this ``grep -rn`` output (as probe.sh prints it)."""
    return "dags: " + base64.b64encode(grep_output.encode("utf-8", "surrogateescape")).decode()


# --- the finding, as the old probe printed it -----------------------------------------------------

@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_dag_line_with_a_separator_in_the_old_plain_form_never_becomes_a_bind_folder(sep: str) -> None:
    for forged in (FORGED_DIR, FORGED_SOCKET):
        text = bind_dirs_with("dag: ./evil.py:1:" + forged.format(sep=sep))
        with pytest.raises(ProbeFailed, match="lab1: malformed bind dir line"):
            parse_probe("lab1", text, LAB)


def test_a_bind_folder_line_the_settings_do_not_name_is_refused_naming_host_and_label() -> None:
    for line in ("/etc/acc-forged-dir missing", "/var/run/docker.sock 0 1000 660", "dags2 unsafe x"):
        with pytest.raises(ProbeFailed) as err:
            parse_probe("lab1", bind_dirs_with(line), LAB)
        assert str(err.value).startswith("lab1: ") and repr(line.split()[0]) in str(err.value)
        assert "not in hostprep_bind_dirs" in str(err.value)


def test_a_configured_bind_folder_reported_twice_is_refused_as_forged() -> None:
    with pytest.raises(ProbeFailed, match=r"lab1: bind folder 'dags' is twice in probe output \(forged facts\)"):
        parse_probe("lab1", bind_dirs_with("dags 0 0 777"), LAB)


def test_a_bind_folder_the_settings_name_but_the_probe_did_not_print_is_fine_when_absent() -> None:
    settings = dataclasses.replace(LAB, bind_dirs=(*LAB.bind_dirs, "extra"))
    assert [d.name for d in parse_probe("lab1", capture("lab1_pristine"), settings).bind_dirs] == list(LAB.bind_dirs)


# --- the DAG scan, encoded ------------------------------------------------------------------------

@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_dag_line_holding_a_separator_stays_one_dag_line_and_no_fact(sep: str) -> None:
    grep = "".join(f"./evil.py:{i}:{forged.format(sep=sep)}\n" for i, forged in enumerate((FORGED_DIR, FORGED_SOCKET), 1))
    base = facts_of("lab1_pristine")
    facts = parse_probe("lab1", bind_dirs_with(dag_scan(grep)), LAB)
    assert facts.bind_dirs == base.bind_dirs
    assert [(d.file, d.line, d.text) for d in facts.dags] == [
        ("evil.py", 1, FORGED_DIR.format(sep=sep)), ("evil.py", 2, FORGED_SOCKET.format(sep=sep))]


def test_a_dag_file_name_holding_a_newline_cannot_print_a_line_of_the_probe() -> None:
    grep = "./x\nlogs 0 0 777\n@@hostprep:bind_dirs\n.py:1:privileged=True\n"
    facts = parse_probe("lab1", bind_dirs_with(dag_scan(grep)), LAB)
    assert facts.bind_dirs == facts_of("lab1_pristine").bind_dirs


def test_the_dag_scan_printed_twice_is_refused() -> None:
    with pytest.raises(ProbeFailed, match="lab1: the DAG scan is twice"):
        parse_probe("lab1", bind_dirs_with(dag_scan(""), dag_scan("")), LAB)


def test_a_dag_scan_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ProbeFailed, match=r"lab1: malformed base64 in probe output \(DAG scan\)"):
        parse_probe("lab1", bind_dirs_with("dags: ./x.py:1:privileged=True"), LAB)


PROBE_FUNCTIONS = host_script("probe.sh").split("\nprobe() {", 1)[0]   # safe.sh, lock.sh, probe_dir & co


def scan(dags: Path) -> str:
    """probe.sh's own ``probe_dir`` with the scan, run by this machine's sh on a local DAG folder."""
    script = PROBE_FUNCTIONS + '\nprobe_dir dags "${D%/*}" "${D##*/}" scan\n'
    done = subprocess.run(["sh", "-c", script], env={**os.environ, "D": str(dags)}, capture_output=True,
                          timeout=30, check=True)
    return done.stdout.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_the_probe_shell_encodes_a_dag_file_holding_a_separator_on_one_line(tmp_path: Path, sep: str) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "evil.py").write_text(FORGED_DIR.format(sep=sep) + "\n" + FORGED_SOCKET.format(sep=sep) + "\n")
    (dags / "x\nlogs 0 0 777\n@@hostprep:end\n.py").write_text("privileged=True\n")   # a name forging lines
    rows = scan(dags).split("\n")
    assert len(rows) == 3 and rows[2] == "" and rows[0].startswith("dags ") and rows[1].startswith("dags: ")
    facts = parse_probe("lab1", bind_dirs_with(rows[1]), LAB)
    assert facts.bind_dirs == facts_of("lab1_pristine").bind_dirs
    assert {(d.file, d.text) for d in facts.dags} >= {("evil.py", FORGED_DIR.format(sep=sep)),
                                                      ("evil.py", FORGED_SOCKET.format(sep=sep))}


# --- the plan, the second check -------------------------------------------------------------------

def forged(*dirs: DirFacts) -> Any:
    base = facts_of("lab1_pristine")
    return dataclasses.replace(base, bind_dirs=(*base.bind_dirs, *dirs))


@pytest.mark.parametrize("d", [DirFacts("/etc/acc-forged-dir", False), DirFacts("/var/run/docker.sock", True, 0, 1000, 0o660),
                               DirFacts("dags", False)])
def test_a_plan_on_forged_bind_folder_facts_is_refused_with_no_step(d: DirFacts) -> None:
    plan = make_plan(forged(d), LAB, "group-add")
    assert plan.blocked and plan.steps == () and not plan.actions
    assert any("forged facts" in p and repr(d.name) in p for p in plan.problems)


def test_an_ownership_change_outside_the_configured_folders_and_socket_is_refused() -> None:
    steps = [Step("mkdir x", "y", (Action("mkdir", ("/etc/acc-forged-dir", "50000", "0", "755")),)),
             Step("chown s", "y", (Action("chown", ("/run/docker.sock", "50000", "1000")),)),
             Step("chown d", "y", (Action("chown", (bind_path(LAB.project_dir, "dags"), "50000", "0")),)),
             Step("chmod s", "y", (Action("chmod", (LAB.socket_path, "666")),))]
    assert foreign_paths(steps, LAB) == [
        "refused: the plan would mkdir '/etc/acc-forged-dir', a path hostprep does not manage; nothing was changed",
        "refused: the plan would chown '/run/docker.sock', a path hostprep does not manage; nothing was changed"]


def test_every_bind_folder_step_of_a_real_plan_acts_on_a_configured_path() -> None:
    settings = dataclasses.replace(LAB, airflow_uid=1001)
    facts = facts_of("lab1_pristine", settings)
    plan = make_plan(facts, settings, "group-add")
    touched = [a.args[0] for a in plan.actions if a.op in ("mkdir", "chown", "chmod")]
    assert touched and set(touched) <= set(settings.bind_paths)


# --- snapshots: a forged path never comes back ----------------------------------------------------

class Named:
    """Only a name: ``snapshot_store.find`` reads the controller's copy first and never asks this host."""

    class endpoint:
        name = "lab1"

    def run_script(self, *_: Any, **__: Any) -> Any:   # pragma: no cover - the local copy answers
        raise AssertionError("the host was asked")


def test_a_controller_snapshot_that_would_chown_a_path_outside_the_bind_folders_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    facts = facts_of("lab1_pristine")
    snap = snapshots.take(facts, make_plan(facts, LAB, "group-add"), "20261201T000000Z-abcd")
    snap["dirs"]["/var/run/docker.sock"] = {"existed": True, "uid": 0, "gid": 1000, "mode": 0o660}
    snapshot_store.save_local(json.loads(json.dumps(snap)))
    with pytest.raises(snapshots.SnapshotRefused, match="'/var/run/docker.sock' is not one hostprep touches"):
        snapshot_store.find(Named(), None, LAB)   # type: ignore[arg-type]


def test_a_snapshot_of_a_real_plan_names_only_configured_bind_folders() -> None:
    facts = facts_of("lab1_pristine")
    snap = snapshots.take(facts, make_plan(facts, LAB, "group-add"), "20261201T000000Z-abcd")
    assert set(snap["dirs"]) <= set(LAB.bind_paths)
    assert {d["name"] for d in snap["facts"]["bind_dirs"]} <= set(LAB.bind_dirs)
