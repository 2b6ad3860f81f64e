"""Runs detached from their SSH session (runner.sh) and the host's journal of them, run locally with
this machine's ``sh`` (hostprep's state dir in a temp folder), and the journal's pure parser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hostprep.change import apply, detach
from hostprep.errors import Unreachable
from hostprep.host.probe import host_script, sections
from hostprep.host.journal import new_run_id, parse_runs
from hostprep.change.plan import make_plan
from hostprep.change.snapshots import restore_plan, take
from hostprep.strategies.steps import Action
from tests.unit.change.test_apply_encoding import LocalShell, facts_settings, project


def probe_runs(state: Path) -> str:
    res = LocalShell(state).run_script(host_script("probe.sh"), {
        "SOCK": "/nonexistent", "PROJ": "/nonexistent", "WORKER_SVC": "w", "BIND_DIRS": "", "DEEP": "0",
        "VERSIONS": "0", "FILES": ""})
    return sections(res.stdout)["runs"]


def test_a_detached_run_is_followed_to_its_end_and_journaled(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = new_run_id()
    res = detach.run_detached(LocalShell(state), run_id, 'echo "@@hostprep:action 1 x"; echo "$X"; exit 3',  # type: ignore[arg-type]
                              {"X": "it's $(not) run"})
    assert res.exit_code == 3 and res.stdout.splitlines() == ["@@hostprep:action 1 x", "it's $(not) run"]
    d = state / "runs" / run_id
    assert (d / "log").read_text() == res.stdout and not (d / "run.sh").exists() and (d / "exit").read_text() == "3\n"


def test_following_again_reads_the_same_output_from_the_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id = new_run_id()
    first = detach.run_detached(LocalShell(state), run_id, "echo one; sleep 0.3; echo two",  # type: ignore[arg-type]
                                {})
    again = LocalShell(state).run_script(detach.runner(), {"MODE": "follow", "RUN_ID": run_id})
    assert (again.exit_code, again.stdout) == (first.exit_code, first.stdout) == (0, "one\ntwo\n")


class DroppingShell(LocalShell):
    """Its first exec is cut off like a dropped SSH connection (the run goes on on the host)."""

    drops = 1

    def run_script(self, script: str, env: Any = None, **kw: Any) -> Any:
        res = super().run_script(script, env, **kw)
        if self.drops and (env or {}).get("MODE") == "launch":
            self.drops -= 1
            raise Unreachable("h: connection lost: EOF")
        return res

    def close(self) -> None:
        pass

    @property
    def endpoint(self) -> Any:
        return type("E", (), {"name": "h"})()


def test_a_dropped_connection_reconnects_and_reports_the_runs_own_outcome(tmp_path: Path) -> None:
    res = detach.run_detached(DroppingShell(tmp_path / "state"), new_run_id(), "echo done; exit 0", {},  # type: ignore[arg-type]
                              backoff=0.01)
    assert res.exit_code == 0 and res.stdout == "@@hostprep:reconnected 1\ndone\n"


def test_when_every_reconnect_fails_the_error_says_the_run_goes_on(tmp_path: Path) -> None:
    shell = DroppingShell(tmp_path / "state")
    shell.drops = 99
    original = shell.run_script

    def always_drop(script: str, env: Any = None, **kw: Any) -> Any:
        original(script, env, **kw)
        raise Unreachable("h: connection lost: EOF")
    shell.run_script = always_drop  # type: ignore[method-assign]
    with pytest.raises(Unreachable, match="the run goes on on the host: `hostprep status --host h`"):
        detach.run_detached(shell, new_run_id(), "exit 0", {}, backoff=0.001)  # type: ignore[arg-type]


def test_a_run_killed_on_the_host_is_reported_died_and_mid_change(tmp_path: Path) -> None:
    state = tmp_path / "state"
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    plan = make_plan(facts, facts_settings(proj), "group-add")
    run_id = new_run_id()
    env = apply.interpreter_env(facts, "apply", "me:1:aaaa", [Action("compose-up", ("w",))], lock_wait=0,
                                lock=apply.LockPolicy())
    slow = tmp_path / "compose"   # a Compose that takes its time (and ignores its arguments)
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    env.update(COMPOSE=str(slow), EXPECT="", SNAP_ID="20261202T010000Z-abcd", SNAP_B64="e30=", SNAP_SIZE="2")
    shell: Any = LocalShell(state)
    launched = shell.run_script(detach.runner(), {"MODE": "launch", "RUN_ID": run_id, "RUN_B64": "", "RUN_SIZE": "0"})
    assert launched.exit_code in (0, 69)   # an empty script: started and ended at once
    import base64
    import subprocess
    from hostprep.ssh.transport import script_invocation
    _, assigns = script_invocation("", {k: v for k, v in env.items() if k not in detach.HOST_SET})
    text = (assigns + apply.interpreter()).encode()
    other = new_run_id()
    proc = subprocess.Popen(["sh", "-c", 'eval "$(cat)"\n' + detach.runner()], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    proc.stdin.write(f"MODE=launch\nSTATE_DIR='{state}'\nRUN_ID={other}\nRUN_MODE=apply\nRUN_B64={base64.b64encode(text).decode()}\n"  # type: ignore[union-attr]
                     f"RUN_SIZE={len(text)}\n")
    proc.stdin.close()  # type: ignore[union-attr]
    pid_file = state / "runs" / other / "pid"
    for _ in range(100):
        if "compose-up" in (state / "runs" / other / "log").read_text() if pid_file.exists() else False:
            break
        time.sleep(0.1)
    subprocess.run(["kill", "-9", "--", "-" + pid_file.read_text().split()[0]], check=True)   # its whole session
    proc.wait(10)
    runs = {r.id: r for r in parse_runs(probe_runs(state))}
    dead = runs[other]
    assert dead.state == "died" and dead.mid_change and dead.mode == "apply"
    assert dead.snapshot == "20261202T010000Z-abcd" and dead.last_action == "1 compose-up w"
    assert "died" in dead.describe() and plan.changed


def test_a_failed_apply_is_restored_on_the_host_itself(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    plan = make_plan(facts, facts_settings(proj), "group-add")
    snap = take(facts, plan, "20261202T010000Z-abcd")
    writes = [a for a in plan.actions if a.op == "write"]
    broken = [*writes, Action("write", (str(tmp_path / "missing-dir" / "f"), "0", "0", "600"), "x")]
    restore = [a for a in restore_plan(snap) if a.op in ("write", "delete") and "hostprep/state" not in a.args[0]]
    import base64, json
    out = apply.run(LocalShell(tmp_path / "state"), facts, "apply", owner="me:1:aaaa", actions=broken,  # type: ignore[arg-type]
                    snapshot=(snap["id"], base64.b64encode(json.dumps(snap).encode()).decode()), restore=restore)
    assert out.exit_code == apply.REFUSED and out.restored and not out.restore_failed
    assert (proj / ".env").read_bytes() == b"AIRFLOW_UID=50000\n"
    assert not (proj / "docker-compose.hostprep.yml").exists()


def test_the_journal_parser_keeps_only_run_ids_and_known_markers() -> None:
    runs = parse_runs("run ../../etc mode=apply exit=0 alive=0\n"
                      "run 20261202T021500Z-3f9a1c mode=restore exit=0 alive=0\n> failed $(x)\n"
                      "run 20261202T021600Z-3f9a1d mode=evil exit=20 alive=0\n> restored S\n")
    assert [(r.id, r.mode, r.state, r.failed) for r in runs] == [
        ("20261202T021500Z-3f9a1c", "restore", "ok", None), ("20261202T021600Z-3f9a1d", "?", "restored", None)]


def test_the_probe_reads_the_last_three_runs_their_first_three_markers_and_last_action(tmp_path: Path) -> None:
    """The journal as the probe reads it (one awk per run, names by glob): only "@@hostprep:" lines, bare or
    under a 24-hex nonce, count; a nonce of another length, or text before the marker, never does."""
    state = tmp_path / "state"
    nonce = "0123456789abcdef01234567"
    ids = [f"2026120{d}T010000Z-abcd" for d in range(1, 6)]
    for run_id in ids:
        d = state / "runs" / run_id
        d.mkdir(parents=True)
        (d / "pid").write_text("999999999 1 apply\n")
        (d / "exit").write_text("0\n")
        (d / "log").write_text("\n".join([
            "@@hostprep:action 1 first", f"@@hostprep:{nonce}:snapshot 1", "@@hostprep:failed 2",
            "@@hostprep:abcdef:restored 3",            # a nonce of 6 hex: not a marker
            " @@hostprep:restored 4", "x @@hostprep:action 9 no",  # not at a line's start
            f"@@hostprep:{nonce}:restored 5", "@@hostprep:snapshot 6",  # a fourth: past the first three
            f"@@hostprep:{nonce}:action 2 last", "@@hostprep:actionless"]) + "\n")
    (state / "snapshots").mkdir()
    for name in ("20261201T000000Z-aaaa.json", "20261203T000000Z-cccc.json", "20261202T000000Z-bbbb.json"):
        (state / "snapshots" / name).write_text("{}")
    res = LocalShell(state).run_script(host_script("probe.sh"), {
        "SOCK": "/nonexistent", "PROJ": "/nonexistent", "WORKER_SVC": "w", "BIND_DIRS": "", "DEEP": "0",
        "VERSIONS": "0", "FILES": ""})
    runs = sections(res.stdout)["runs"].splitlines()
    block = ["> snapshot 1", "> failed 2", "> restored 5", "> action 2 last"]
    assert runs == [line for run_id in ids[2:] for line in (f"run {run_id} mode=apply exit=0 alive=0", *block)]
    assert sections(res.stdout)["snapshots"] == "20261203T000000Z-cccc.json"
