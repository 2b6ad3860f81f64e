"""What apply sends to a host and reads back: drift expectations, file bytes, the interpreter's verdicts.

The pure parts (``expectations``, ``parse_compose_seconds``, ``Outcome``) are
tested on their own. The byte-level round trip is tested by running the real
interpreter (``apply.sh``) with a real ``sh`` on this machine, in a temp
project: no SSH, no Docker, and only file actions (never compose).
"""

from __future__ import annotations

import dataclasses

import base64
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping

import pytest

from hostprep.change import apply, snapshots

from hostprep.change import snapshot_store
from hostprep.change.apply import DRIFTED, LOCKED, Outcome, expectations, lock_owner, parse_compose_seconds
from hostprep.host.facts import OVERRIDE_FILE, Facts, SocketFacts
from hostprep.host.probe import parse_probe, probe_env
from hostprep.change.plan import Plan, make_plan
from hostprep.inventory.settings import HostSettings
from hostprep.ssh.transport import CommandResult, script_invocation

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAB = HostSettings()
PROJ = "/opt/airflow"


def capture(name: str) -> str:
    return (FIXTURES / f"probe_{name}.txt").read_text()


def facts_of(name: str) -> Facts:
    return parse_probe(name.split("_")[0], capture(name), LAB)


def raw_file(text: str, name: str) -> bytes:
    """The bytes the probe saw: the base64 line of a ``file:`` section."""
    body = text.split(f"@@hostprep:file:{name}\n", 1)[1].split("\n@@hostprep:", 1)[0]
    return base64.b64decode(body.strip().splitlines()[1])


def with_raw_file(text: str, name: str, raw: bytes, uid: int = 0, gid: int = 0) -> str:
    """A capture whose ``file:<name>`` section shows ``raw`` as probe.sh prints it."""
    head, rest = text.split(f"@@hostprep:file:{name}\n", 1)
    _old, tail = rest.split("\n@@hostprep:", 1)
    body = f"644 {uid} {gid} {len(raw)}\n{base64.b64encode(raw).decode()}\n"
    return f"{head}@@hostprep:file:{name}\n{body}\n@@hostprep:{tail}"


# --- expectations ---------------------------------------------------------------------------------

def test_expectations_name_every_managed_file_with_its_sha_or_missing_and_the_socket() -> None:
    facts = facts_of("lab1_pristine")
    env_sha = hashlib.sha256(b"AIRFLOW_UID=50000\n").hexdigest()
    lines = expectations(facts).splitlines()
    assert f"missing {PROJ}/{OVERRIDE_FILE}" in lines and f"{env_sha} {PROJ}/.env" in lines
    assert len(lines) == len(facts.files) + 1
    s = facts.socket
    assert lines[-1] == f"socket:{s.mode & 0o7777:o}:{s.uid}:{s.gid} {s.path}" == f"socket:660:0:{s.gid} {s.path}"


def test_a_plan_that_writes_no_file_still_expects_the_whole_managed_state() -> None:
    """chmod writes no file, yet another run's override written meanwhile must stop it (one view of the state)."""
    facts = facts_of("lab1_pristine")
    assert not any(a.op == "write" for a in make_plan(facts, LAB, "chmod").actions)
    assert f"missing {PROJ}/{OVERRIDE_FILE}" in expectations(facts).splitlines()


@pytest.mark.parametrize("capture_name", ["lab1_pristine", "lab2_pristine"])
def test_expected_shas_are_what_sha256sum_gives_for_the_bytes_the_probe_saw(capture_name: str) -> None:
    text = capture(capture_name)
    facts = parse_probe("h", text, LAB)
    lines = expectations(facts).splitlines()
    for name in (".env", "Dockerfile"):
        assert f"{hashlib.sha256(raw_file(text, name)).hexdigest()} {PROJ}/{name}" in lines


def test_the_expected_sha_of_a_latin1_env_file_is_its_sha256sum() -> None:
    raw = b"# Z\xfcrich workers\nAIRFLOW_UID=50000\n"
    facts = parse_probe("h", with_raw_file(capture("lab1_pristine"), ".env", raw), LAB)
    assert f"{hashlib.sha256(raw).hexdigest()} {PROJ}/.env" in \
        expectations(facts).splitlines()


def test_a_snapshot_of_a_latin1_env_file_keeps_its_original_bytes() -> None:
    raw = b"# Z\xfcrich workers\nAIRFLOW_UID=50000\n"
    facts = parse_probe("h", with_raw_file(capture("lab1_pristine"), ".env", raw), LAB)
    snap = snapshots.take(facts, make_plan(facts, LAB, "group-add"), "20261125T173000Z-0000")
    assert base64.b64decode(snap["files"][f"{PROJ}/.env"]["content_b64"]) == raw


# --- parse_compose_seconds ---------------------------------------------------------------------------

def test_compose_seconds_add_up_every_compose_run() -> None:
    log = ("@@hostprep:action 1 compose-build airflow-worker\n"
           "#5 DONE 0.4s\n"
           "@@hostprep:compose-seconds 1764091800.250000000 1764091812.750000000\n"
           "@@hostprep:action 2 compose-up airflow-worker\n"
           " Container airflow-airflow-worker-1  Started\n"
           "@@hostprep:compose-seconds 1764091813.000000000 1764091815.500000000\n"
           "@@hostprep:done\n")
    assert parse_compose_seconds(log) == pytest.approx(15.0)


def test_compose_seconds_are_zero_without_compose_runs() -> None:
    assert parse_compose_seconds("@@hostprep:snapshot x\n@@hostprep:done\n") == 0.0


def test_a_compose_seconds_marker_glued_to_output_is_not_counted() -> None:
    assert parse_compose_seconds("Started@@hostprep:compose-seconds 1 2\n") == 0.0


# --- Outcome ---------------------------------------------------------------------------------------

def test_a_locked_host_error_names_the_lock_owner() -> None:
    out = Outcome(LOCKED, "@@hostprep:locked ci-runner:4242:abcdefgh 2026-11-25T17:30:00Z\n")
    assert out.locked_by == "ci-runner:4242:abcdefgh 2026-11-25T17:30:00Z"
    assert out.error() == ("another hostprep run holds the host lock (ci-runner:4242:abcdefgh "
                           "2026-11-25T17:30:00Z); try again later (--lock-wait SECONDS)")
    assert not out.ok


def test_a_lock_without_an_owner_file_says_unknown_owner() -> None:
    assert "(unknown owner)" in Outcome(LOCKED, "@@hostprep:locked  \n").error()


def test_a_drifted_host_error_says_nothing_was_changed() -> None:
    out = Outcome(DRIFTED, f"@@hostprep:drifted {PROJ}/.env\n")
    assert out.error() == "the host changed between fact gathering and apply; nothing was changed, re-run"


def test_a_failed_action_error_names_the_step_and_the_last_output_lines() -> None:
    log = ("@@hostprep:snapshot s1\n@@hostprep:action 1 write /opt/airflow/.env 0 0 644\n"
           "@@hostprep:action 2 compose-build airflow-worker\n"
           + "".join(f"line {i}\n" for i in range(12)) +
           "ERROR: failed to solve: groupadd: GID '998' already exists\n"
           "@@hostprep:compose-seconds 1 2\n@@hostprep:failed 2 compose-build\n")
    out = Outcome(apply.FAILED, log)
    assert out.failed_step == "2 compose-build"
    assert out.error() == ("apply failed at 2 compose-build (exit 20): line 5 | line 6 | line 7 | line 8 | line 9 | "
                           "line 10 | line 11 | ERROR: failed to solve: groupadd: GID '998' already exists")


def test_a_failure_before_any_action_is_reported_at_setup() -> None:
    assert Outcome(70, "mkdir: cannot create directory '/var/lib/hostprep': Permission denied\n").error() == \
        "apply failed at setup (exit 70): mkdir: cannot create directory '/var/lib/hostprep': Permission denied"


def test_outcome_is_ok_only_on_exit_0_and_has_a_one_line_repr() -> None:
    assert Outcome(0, "@@hostprep:done\n").ok
    assert repr(Outcome(76, "")) == "<Outcome exit=76>"


def test_lock_owner_names_this_controller_and_process() -> None:
    host, pid, token = lock_owner().split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert len(token) == 8 and token.isalnum()
    assert lock_owner() != lock_owner()


# --- the real interpreter, run locally on file actions only -----------------------------------------

@dataclasses.dataclass
class LocalShell:
    """Runs scripts with this machine's ``sh``; hostprep's state dir is moved under a temp dir."""

    state_dir: Path

    def run_script(self, script: str, env: Mapping[str, str] | None = None, *, sudo: bool = False,
                   stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        command, values = script_invocation(script, {**(env or {}), "STATE_DIR": str(self.state_dir)})
        done = subprocess.run(command, shell=True, input=values, capture_output=True, text=True, timeout=30)
        return CommandResult(command, done.returncode, done.stdout, done.stderr)


def facts_settings(proj: Path) -> HostSettings:
    return HostSettings(project_dir=str(proj))


def project(tmp_path: Path, env_bytes: bytes) -> tuple[Facts, Path]:
    """A temp Compose project holding the lab's files, and the facts the probe would report for it."""
    proj = tmp_path / "proj"
    proj.mkdir()
    text = capture("lab1_pristine")
    uid, gid = os.getuid(), os.getgid()
    for name in ("docker-compose.yaml", "Dockerfile"):
        (proj / name).write_bytes(raw_file(text, name))
        text = with_raw_file(text, name, raw_file(text, name), uid, gid)
    (proj / ".env").write_bytes(env_bytes)
    text = with_raw_file(text, ".env", env_bytes, uid, gid)
    facts = parse_probe("local", text, HostSettings(project_dir=str(proj)))
    sock = tmp_path / "docker.sock"   # the socket the apply re-checks: a local stand-in, as the probe saw it
    sock.write_bytes(b"")
    sock.chmod(0o660)
    st = sock.stat()
    return dataclasses.replace(facts, socket=SocketFacts(str(sock), True, 0o660, st.st_uid, st.st_gid)), proj


def apply_files(tmp_path: Path, facts: Facts, plan: Plan, *, lock_wait: int = 10) -> Outcome:
    """``apply.run`` of the plan's file actions only (compose never runs here)."""
    writes = [a for a in plan.actions if a.op in ("write", "delete")]
    snap = snapshots.take(facts, plan, "20261125T173000Z-0000")
    shell: Any = LocalShell(tmp_path / "state")
    return apply.run(shell, facts, "apply", owner="test:1:aaaa", actions=writes, lock_wait=lock_wait,
                     snapshot=(snap["id"], snapshot_store.encode(snap)), expect=expectations(facts))


def test_the_interpreter_writes_exactly_the_planned_bytes_of_a_utf8_env(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, "# Zürich ☃\nAIRFLOW_UID=50000\n".encode())
    plan = make_plan(facts, facts_settings(proj), "group-add")
    out = apply_files(tmp_path, facts, plan)
    assert out.ok, out.log
    after = {s.name: s.after for s in plan.steps}
    assert (proj / ".env").read_bytes() == (after["edit .env"] or "").encode()
    assert (proj / OVERRIDE_FILE).read_bytes() == (after[f"create {OVERRIDE_FILE}"] or "").encode()
    assert oct((proj / ".env").stat().st_mode & 0o7777) == "0o644"
    assert not (tmp_path / "state" / "lock").exists()


def test_the_interpreter_stores_the_snapshot_before_writing(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    out = apply_files(tmp_path, facts, make_plan(facts, facts_settings(proj), "group-add"))
    assert "@@hostprep:snapshot 20261125T173000Z-0000" in out.log
    stored = json.loads((tmp_path / "state" / "snapshots" / "20261125T173000Z-0000.json").read_text())
    assert stored["files"][f"{proj}/.env"]["content_b64"] == base64.b64encode(b"AIRFLOW_UID=50000\n").decode()


def test_the_interpreter_refuses_a_file_that_changed_since_the_facts(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    plan = make_plan(facts, facts_settings(proj), "group-add")
    (proj / ".env").write_bytes(b"AIRFLOW_UID=1000\n")
    out = apply_files(tmp_path, facts, plan)
    assert out.exit_code == DRIFTED
    assert f"@@hostprep:drifted {proj}/.env" in out.log
    assert (proj / ".env").read_bytes() == b"AIRFLOW_UID=1000\n"
    assert not (proj / OVERRIDE_FILE).exists()


def test_the_interpreter_reports_a_held_lock_with_its_owner(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    lock = tmp_path / "state" / "lock"
    lock.mkdir(parents=True)
    (lock / "owner").write_text("ci-runner:4242:zzzz")
    out = apply_files(tmp_path, facts, make_plan(facts, facts_settings(proj), "group-add"), lock_wait=0)
    assert out.exit_code == LOCKED
    assert out.locked_by is not None and out.locked_by.startswith("ci-runner:4242:zzzz")
    assert "ci-runner:4242:zzzz" in out.error()


def test_an_unchanged_latin1_env_file_is_not_drift(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"# Z\xfcrich workers\nAIRFLOW_UID=50000\n")
    out = apply_files(tmp_path, facts, make_plan(facts, facts_settings(proj), "group-add"))
    assert out.ok, out.log


# --- the proof gathered in the apply's own exec ------------------------------------------------------

N = "0123456789abcdef01234567"   # a run's marker nonce


def test_split_probe_separates_the_interpreter_log_from_the_probe_output() -> None:
    log, probe = apply.split_probe(f"@@hostprep:{N}:snapshot s\n@@hostprep:{N}:done\n@@hostprep:{N}:probe\n"
                                   "\n@@hostprep:os\nX\n", N)
    assert log == f"@@hostprep:{N}:snapshot s\n@@hostprep:{N}:done"
    assert probe == "\n@@hostprep:os\nX\n"


def test_split_probe_finds_no_probe_when_none_ran() -> None:
    assert apply.split_probe("@@hostprep:failed 2 compose-up\n", N) == ("@@hostprep:failed 2 compose-up\n", None)


def test_a_probe_marker_glued_to_output_or_without_the_nonce_is_not_a_probe() -> None:
    assert apply.split_probe(f"Started@@hostprep:{N}:probe\nx\n", N)[1] is None
    assert apply.split_probe("x\n@@hostprep:probe\nx\n", N)[1] is None


def test_the_interpreter_runs_the_probe_after_a_successful_apply(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    settings = facts_settings(proj)
    plan = make_plan(facts, settings, "group-add")
    shell: Any = LocalShell(tmp_path / "state")
    out = apply.run(shell, facts, "apply", owner="test:1:aaaa",
                    actions=[a for a in plan.actions if a.op == "write"], expect=expectations(facts),
                    probe=probe_env(settings, deep=False))
    assert out.ok, out.log
    assert "@@hostprep:done" in out.log and "@@hostprep:os" not in out.log
    assert out.probe_output is not None and out.probe_output.rstrip().endswith("@@hostprep:end")
    after = parse_probe("local", out.probe_output, settings, deep=False)
    assert after.files[OVERRIDE_FILE].exists   # the probe saw the file the apply had just written


def test_the_interpreter_runs_no_probe_when_the_apply_fails(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    settings = facts_settings(proj)
    plan = make_plan(facts, settings, "group-add")
    (proj / ".env").write_bytes(b"AIRFLOW_UID=1000\n")
    shell: Any = LocalShell(tmp_path / "state")
    out = apply.run(shell, facts, "apply", owner="test:1:aaaa", actions=plan.actions,
                    expect=expectations(facts), probe=probe_env(settings, deep=False))
    assert out.exit_code == DRIFTED and out.probe_output is None


def test_a_probe_that_disagrees_with_the_interpreter_on_the_project_is_refused(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    shell: Any = LocalShell(tmp_path / "state")
    with pytest.raises(ValueError, match="PROJ"):
        apply.run(shell, facts, "apply", owner="test:1:aaaa", probe=probe_env(HostSettings(project_dir="/elsewhere")))


def test_the_probe_after_an_apply_is_timed_on_the_host(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    shell: Any = LocalShell(tmp_path / "state")
    out = apply.run(shell, facts, "apply", owner="test:1:aaaa",
                    probe=probe_env(facts_settings(proj), deep=False))
    assert out.ok and 0.0 < out.probe_seconds < 30
    assert out.probe_output is not None and "probe-seconds" not in out.probe_output


def test_values_far_past_the_128_kib_argument_limit_reach_the_interpreter_intact(tmp_path: Path) -> None:
    # a long .env: its snapshot and its new bytes (~1 MB of values) would not fit in one argument
    big = b"AIRFLOW_UID=50000\n" + b"".join(b"# note %06d " % i + b"x" * 80 + b"\n" for i in range(3000))
    facts, proj = project(tmp_path, big)
    plan = make_plan(facts, facts_settings(proj), "group-add")
    out = apply_files(tmp_path, facts, plan)
    assert out.ok, out.log[-500:]
    assert (proj / ".env").read_bytes() == ({s.name: s.after for s in plan.steps}["edit .env"] or "").encode()
    stored = json.loads((tmp_path / "state" / "snapshots" / "20261125T173000Z-0000.json").read_text())
    assert base64.b64decode(stored["files"][f"{proj}/.env"]["content_b64"]) == big
