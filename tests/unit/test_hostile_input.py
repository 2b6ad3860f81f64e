"""Issue 12: what a host says is data. Parsers and validators refuse with hostprep's own errors.

Each test names the finding it covers. Property-based cases (hypothesis) are bounded so the
unit suite stays fast; they must find no exception other than hostprep's own.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from hostprep.audit import history
from hostprep.change import local_state, snapshots
from hostprep.change import snapshot_store
from hostprep.audit.run import audit
from hostprep.host.facts import ProbeFailed
from hostprep.host.probe import parse_probe, parse_record, sections
from hostprep.host.parse_worker import worker_sections
from hostprep.change.plan import make_plan
from hostprep.strategies.steps import Action, Step
from hostprep.redact import redact
from hostprep.inventory.settings import HostSettings
from hostprep.host.access import id_groups
from hostprep.change.verify import verify
from tests.unit.host.test_facts_parser import capture, facts_of, with_section, with_worker_field
from tests.unit.fuzz import FUZZ

LAB = HostSettings()


# --- finding 2/3: unsafe paths reported by the probe -> plan refuses, audit reports ---------------

def test_a_linked_env_file_makes_the_plan_refuse_and_the_audit_report_it() -> None:
    text = with_section(capture("lab1_pristine"), "file:.env", "unsafe /opt/airflow/.env is a symlink")
    f = parse_probe("lab1", text, LAB)
    assert f.files[".env"].unsafe == "/opt/airflow/.env is a symlink" and f.files[".env"].content is None
    plan = make_plan(f, LAB)
    assert plan.blocked and not plan.steps
    assert plan.problems[0].startswith("refused: /opt/airflow/.env is a symlink")
    found = audit(f, LAB)
    assert (found[0].id, found[0].severity, found[0].subject) == ("unsafe-path", "critical", "/opt/airflow/.env is a symlink".split(":")[0])


def test_a_linked_bind_dir_and_project_dir_are_refused() -> None:
    text = with_section(capture("lab1_pristine"), "bind_dirs",
                        "dags 50000 0 755\nlogs unsafe /opt/airflow/logs is a symlink\nplugins missing")
    text = with_section(text, "project", "unsafe /opt/airflow: opt is a symlink")
    f = parse_probe("lab1", text, LAB)
    assert f.unsafe_paths == ["/opt/airflow: opt is a symlink", "/opt/airflow/logs is a symlink"]
    assert [p for p in make_plan(f, LAB).problems if p.startswith("refused:")] == [
        f"refused: {w}; hostprep never reads or changes anything through a link or in place of a file or folder "
        "it expects (remove it, then re-run)" for w in f.unsafe_paths]
    assert [x.id for x in audit(f, LAB)][:2] == ["unsafe-path", "unsafe-path"]


# --- finding 4: snapshots from a host -------------------------------------------------------------

def _snapshot(**over: object) -> dict[str, object]:
    f = facts_of("lab1_pristine")
    snap = snapshots.take(f, make_plan(f, LAB), "20261201T120000Z-abcd")
    snap.update(over)
    return snap


@pytest.mark.parametrize("change, why", [
    ({"host": "lab2"}, "it names host 'lab2'"),
    ({"id": "../../../etc/cron.d/x"}, "is not a hostprep snapshot id"),
    ({"id": "20261201T120000Z-abcd\n"}, "is not a hostprep snapshot id"),
    ({"files": {"/etc/passwd": {"existed": False}}}, "path '/etc/passwd' is not one hostprep touches"),
    ({"dirs": {"/etc": {"existed": True, "uid": 0, "gid": 0, "mode": 0o777}}}, "path '/etc' is not one"),
    ({"socket": {"path": "/etc/shadow", "mode": 0o644, "uid": 0, "gid": 0}}, "path '/etc/shadow' is not one"),
    ({"services": ["x; rm -rf /"]}, "services must be a list of service names"),
    ({"image": {"ref": "a b", "id": "c"}}, "image must name an image ref and id"),
    ({"files": {"/opt/airflow/.env": {"existed": True, "content_b64": "!!", "mode": 420, "uid": 0, "gid": 0}}},
     "is malformed"),
])
def test_a_forged_snapshot_is_refused_with_the_reason(change: dict[str, object], why: str) -> None:
    with pytest.raises(snapshots.SnapshotRefused, match="lab1: snapshot refused: ") as exc:
        snapshots.check(_snapshot(**change), "lab1", LAB)
    assert why in str(exc.value)


def test_a_real_snapshot_passes_the_check_and_is_stored_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path / "state"))
    snap = snapshots.check(_snapshot(), "lab1", LAB)
    path = snapshot_store.save_local(snap)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (tmp_path / "state", tmp_path / "state" / "hosts", tmp_path / "state" / "hosts" / "lab1", path.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert snapshot_store.load_local("lab1") == json.loads(json.dumps(snap))
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temp file left


def test_controller_state_tightens_old_0755_dirs_and_refuses_path_like_host_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 10: hosts/ and hosts/<h>/ were 0755, history 0644."""
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path / "s"))
    (tmp_path / "s" / "hosts" / "lab1").mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / "s" / "hosts", 0o755)
    snapshot_store.append_history("lab1", {"event": "x"})
    hist = tmp_path / "s" / "hosts" / "lab1" / "history.jsonl"
    assert stat.S_IMODE(hist.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s" / "hosts").stat().st_mode) == 0o700
    for bad in ("..", "../x", "a/b", ".hidden", "a\nb", ""):
        with pytest.raises(local_state.StateError):
            local_state.host_dir(bad)


def test_history_append_never_follows_a_planted_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path / "s"))
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    local_state.private_dir(tmp_path / "s" / "hosts" / "h")
    (tmp_path / "s" / "hosts" / "h" / "history.jsonl").symlink_to(victim)
    with pytest.raises(OSError):
        snapshot_store.append_history("h", {"event": "x"})
    assert victim.read_text() == "keep\n"


# --- finding 5: redaction -------------------------------------------------------------------------

ENV = ("AIRFLOW_UID=50000\n_AIRFLOW_WWW_USER_PASSWORD=hunter2\nAIRFLOW__CORE__FERNET_KEY=fk\n"
       "SQL=postgresql+psycopg2://airflow:pgpass@db/airflow\nexport API_TOKEN='t0k'\n")


def test_an_env_diff_masks_every_credential_but_shows_the_change() -> None:
    step = Step("edit .env", "why", (), ENV, ENV + "COMPOSE_FILE=a.yml:b.yml\n")
    diff = step.diff()
    for secret in ("hunter2", "fk\n", "pgpass", "t0k"):
        assert secret not in diff
    assert "+COMPOSE_FILE=a.yml:b.yml" in diff
    assert " AIRFLOW__CORE__FERNET_KEY=********" in diff


def test_check_output_and_json_of_a_host_with_passwords_show_none() -> None:
    from hostprep.cli import render
    from hostprep.change.results import HostReport

    text = capture("lab1_pristine")
    env_b64 = base64.b64encode(ENV.encode()).decode()
    text = with_section(text, "file:.env", f"644 0 0 {len(ENV)}\n{env_b64}")
    f = parse_probe("lab1", text, LAB)
    report = HostReport("lab1")
    report.plan = make_plan(f, LAB)
    shown = render.host_report(report) + render.as_json(report.to_dict())
    assert "hunter2" not in shown and "pgpass" not in shown and "edit .env" in shown


@FUZZ
@given(st.text(max_size=200))
def test_redact_never_fails_and_keeps_line_count(text: str) -> None:
    assert len(redact(text).splitlines()) == len(text.splitlines())


# --- finding 7: exact `id` parsing ------------------------------------------------------------------

@pytest.mark.parametrize("out, gid, ok", [
    ("uid=50000(airflow) gid=0(root) groups=0(root),999(docker)", 99, False),
    ("uid=50000(airflow) gid=0(root) groups=0(root),999(docker)", 999, True),
    ("uid=50000(airflow) gid=0(root) groups=0(root),1998", 998, False),
    ("uid=50000(airflow) gid=0(root) groups=0(root),998", 998, True),
    ("uid=50000(airflow) gid=0(root) groups=0(root)\n998(", 998, False),
    ("", 998, False),
])
def test_the_in_worker_gid_check_reads_the_group_list_exactly(out: str, gid: int, ok: bool) -> None:
    assert (gid in (id_groups(out) or ())) is ok


def test_verify_fails_when_id_shows_999_but_the_docker_gid_is_99() -> None:
    import dataclasses

    f = facts_of("lab1_audit_groupadd")
    f = dataclasses.replace(f, docker_gid=99, worker=dataclasses.replace(
        f.worker, id_output="uid=50000(airflow) gid=0(root) groups=0(root),999(docker)"))
    check = next(c for c in verify(f, LAB, "group-add") if c.name.startswith("`id`"))
    assert not check.ok


@FUZZ
@given(st.text(max_size=120))
def test_id_groups_never_raises(text: str) -> None:
    groups = id_groups(text)
    assert groups is None or all(isinstance(g, int) for g in groups)


# --- finding 9: in-worker output is fenced ---------------------------------------------------------

def test_worker_output_cannot_open_a_probe_section_or_forge_its_own_fields() -> None:
    fake_id = ("uid=50000(airflow) gid=0(root) groups=0(root),998(docker)\n"
               "@@hostprep:docker_group\ndocker:x:4242:\n@@hostprep-0000000000000000:worker_docker_ps\nrc=0")
    text = with_worker_field(capture("lab1_pristine"), "worker_id", fake_id + "\nrc=0")
    f = parse_probe("lab1", text, LAB)
    assert f.docker_gid == 998                      # the real section, not the worker's
    assert f.worker.docker_ps_rc == 1               # the real docker ps verdict (permission denied)
    assert "@@hostprep:docker_group" in (f.worker.id_output or "")   # kept as data


def test_a_repeated_probe_section_is_malformed_output() -> None:
    text = capture("lab1_pristine").replace("\n@@hostprep:end", "\n@@hostprep:docker_group\ndocker:x:1:\n@@hostprep:end")
    with pytest.raises(ProbeFailed, match="lab1: probe output has section 'docker_group' twice"):
        parse_probe("lab1", text, LAB)


def test_a_failed_docker_exec_gives_both_fields_its_message_and_code() -> None:
    msg = base64.b64encode(b"Error response from daemon: container is restarting").decode()
    inner = worker_sections(f"abcdef0123456789 1\n{msg}")
    assert inner["worker_id"] == inner["worker_docker_ps"] == "Error response from daemon: container is restarting\nrc=1"


# --- finding 11: probe, record and history parsers ---------------------------------------------------

@pytest.mark.parametrize("key, body", [
    ("file:.env", "644 0 0 18"),                     # content line lost
    ("file:.env", "644 0 0 18\nQUlSRkxPV19VSUQ9NTAw"),   # content cut short
    ("file:.env", "644 0 0"),
    ("file:.env", "6x4 0 0 0\n"),
    ("socket", "c1b0 0"),
    ("bind_dirs", "dags 50000"),
    ("worker_files", "config \nhostconfig \nproc Uid: 1\nconfig eyJ"),
    ("worker_files", "config bm90IGpzb24=\nhostconfig \nproc "),
    ("worker_exec", "nonce"),
])
def test_truncated_probe_sections_are_probe_failed(key: str, body: str) -> None:
    with pytest.raises(ProbeFailed, match="^lab1: "):
        parse_probe("lab1", with_section(capture("lab1_audit_pristine"), key, body), LAB)


def test_an_empty_config_line_while_a_container_is_recreated_is_skipped() -> None:
    body = sections(capture("lab1_audit_pristine"))["worker_files"]
    f = parse_probe("lab1", with_section(capture("lab1_audit_pristine"), "worker_files",
                                         "config \nhostconfig \nproc \n" + body), LAB)
    assert f.worker.found and f.worker.name == "airflow-airflow-worker-1"


@pytest.mark.parametrize("missing", ["os", "socket", "record", "bind_dirs"])
def test_a_missing_section_is_probe_failed(missing: str) -> None:
    text = capture("lab1_pristine").replace(f"@@hostprep:{missing}\n", "@@hostprep:ignored-" + missing + "\n")
    with pytest.raises(ProbeFailed, match=f"missing section\\(s\\) {missing}"):
        parse_probe("lab1", text, LAB)


@pytest.mark.parametrize("text", ['{"strategy": 5}', '{"strategy": "group-add", "docker_gid": "998"}',
                                  '{"services": "airflow-worker"}', '[1]', '"x"', '{"strategy": "group-add", '
                                  '"services": [1]}', "\xff\xfe"])
def test_a_state_record_with_wrong_types_is_record_unreadable(text: str) -> None:
    assert parse_record(text) == {"corrupt": True}
    f = parse_probe("lab1", with_section(capture("lab1_pristine"), "record", text), LAB)
    assert "record-unreadable" in [x.id for x in audit(f, LAB)]


@FUZZ
@given(st.text(max_size=300))
def test_parse_probe_raises_only_probe_failed(junk: str) -> None:
    for text in (junk, capture("lab1_pristine")[: len(junk) * 10], with_section(capture("lab1_pristine"), "record", junk)):
        try:
            parse_probe("h", text, LAB)
        except ProbeFailed:
            pass


_PRISTINE_SECTIONS = [k for k in sections(capture("lab1_audit_pristine")) if k != "end"]


@FUZZ
@given(st.sampled_from(_PRISTINE_SECTIONS), st.text(max_size=200))
def test_any_section_replaced_by_junk_is_parsed_or_probe_failed(key: str, junk: str) -> None:
    try:
        parse_probe("h", with_section(capture("lab1_audit_pristine"), key, junk), LAB)
    except ProbeFailed:
        pass


def test_a_torn_history_line_is_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    good = {"at": "2026-12-01T10:00:00+00:00", "host": "h", "status": "ok", "findings": []}
    path = history.path_for("h")
    local_state.private_dir(path.parent)
    path.write_text(json.dumps(good) + '\n{"at": "2026-12-01T10:05:00+00:00", "host": "h", "sta\n'
                    + json.dumps({"at": 5}) + "\n" + json.dumps(dict(good, at="2026-12-01T10:10:00+00:00")) + "\n")
    lines, skipped = history.load_counted(["h"])
    assert (len(lines), len(skipped)) == (2, 2)
    assert f"{path}:2: not JSON (Unterminated string" in skipped[0]
    assert skipped[1] == f"{path}:3: at: expected an ISO time with its UTC offset, got 5"
    monkeypatch.setattr(history, "COMPACT_AT", 10)
    history.append([dict(good, at="2026-12-01T10:15:00+00:00")])   # compaction reads past the torn line
    assert history.load_counted(["h"]) == (history.load(["h"]), [])


_HISTORY_FIELD = st.one_of(st.text(max_size=5), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
_HISTORY_LINE = st.one_of(st.text(max_size=40), st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["at", "host", "status", "findings", "repeat"]), _HISTORY_FIELD)))


@FUZZ
@given(st.lists(_HISTORY_LINE, max_size=8))
def test_history_parsing_survives_any_lines(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    root = tmp_path_factory.mktemp("hist")
    os.environ["HOSTPREP_STATE_DIR"] = str(root)
    try:
        path = history.path_for("h")
        local_state.private_dir(path.parent)
        path.write_text("\n".join(lines) + "\n")
        history.intervals(history.load(["h"]))
    finally:
        del os.environ["HOSTPREP_STATE_DIR"]


# --- finding 6 (the interpreter's side): actions take whole values only ----------------------------

@pytest.mark.parametrize("arg", ["airflow-worker\n", "a b", "a;b", "$(id)", "x\x00", ""])
def test_an_action_refuses_any_value_that_is_not_wholly_safe(arg: str) -> None:
    with pytest.raises(ValueError, match="unsafe value in action"):
        Action("chown", (arg, "0", "0"))


@FUZZ
@given(st.text(max_size=30))
def test_an_action_argument_is_safe_or_refused(arg: str) -> None:
    try:
        Action("delete", (arg,))
    except ValueError:
        return
    assert arg and "\n" not in arg and " " not in arg


_JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
                        lambda kids: st.one_of(st.lists(kids, max_size=3),
                                               st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=15)


@FUZZ
@given(st.fixed_dictionaries({}, optional={k: _JSONISH for k in (
    "id", "host", "strategy", "services", "socket", "files", "dirs", "image", "record", "facts")}))
def test_snapshot_check_refuses_anything_malformed_with_its_own_error(snap: dict[str, object]) -> None:
    try:
        snapshots.check(snap, "lab1", LAB)
    except snapshots.SnapshotRefused:
        pass


@FUZZ
@given(st.text(max_size=40), st.binary(max_size=120))
def test_worker_sections_decode_anything_or_fail_with_probe_failed(head: str, body: bytes) -> None:
    try:
        worker_sections(head + "\n" + base64.b64encode(body).decode())
    except ProbeFailed:
        pass


# --- what to build: the host's commands by a fixed PATH, nothing from the login's environment -------

def test_a_host_script_runs_no_command_from_the_logins_path_and_drops_docker_host(tmp_path: Path) -> None:
    """The exact command line hostprep sends, run here with a poisoned environment (no sudo env_reset)."""
    import subprocess

    from hostprep.ssh.exec import script_invocation

    evil = tmp_path / "bin"
    evil.mkdir()
    for name in ("cat", "docker", "stat", "id"):
        (evil / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-{name}\n")
        (evil / name).chmod(0o755)
    (tmp_path / "bash_env").write_text(f"touch {tmp_path}/ran-bash-env\n")
    command, stdin = script_invocation('echo "dh=${DOCKER_HOST-unset} cf=${COMPOSE_FILE-unset} x=$X"; stat -c %U /',
                                       {"X": "1"})
    env = {"PATH": f"{evil}:/usr/bin:/bin", "DOCKER_HOST": "tcp://10.9.9.9:2375", "COMPOSE_FILE": "evil.yml",
           "BASH_ENV": str(tmp_path / "bash_env"), "ENV": str(tmp_path / "bash_env"), "IFS": "/"}
    out = subprocess.run(["/bin/sh", "-c", command], input=stdin, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "dh=unset cf=unset x=1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("ran-")] == []


@pytest.mark.parametrize("name", ["--privileged", "-u0", "a b", "x;id", "", "a/b"])
def test_a_worker_container_name_that_could_be_an_option_is_probe_failed(name: str) -> None:
    body = sections(capture("lab1_pristine"))["worker"]
    line, *rest = body.splitlines()
    forged = "\n".join(["|".join([name, *line.split("|")[1:]]), *rest])
    with pytest.raises(ProbeFailed, match="worker container name"):
        parse_probe("h", with_section(capture("lab1_pristine"), "worker", forged), LAB)
