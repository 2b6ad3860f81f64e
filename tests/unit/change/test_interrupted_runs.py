"""A run cut by a signal, and the writes a later run reads (issue 23, items 2 and 6), run locally with this
machine's ``sh``: the real interpreter (apply.sh), launcher (runner.sh) and lock (lock.sh), hostprep's state dir
in a temp folder, a stand-in Compose that only takes its time. What crosses SSH and Docker (a reboot, a real
``compose up``) is proven on the lab (tests/integration/test_interrupted_lab.py)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hostprep.change import apply, detach
from hostprep.host.probe import host_script
from hostprep.host.journal import new_run_id, parse_runs
from hostprep.strategies.steps import Action
from hostprep.ssh.transport import script_invocation
from tests.unit.change.test_apply_encoding import LocalShell, project
from tests.unit.change.test_detached_runs import probe_runs

SNAP = "20261202T010000Z-abcd"


def launch(state: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
    """The interpreter with ``env``, started detached by the real launcher as a controller would; (run id, launcher)."""
    _, assigns = script_invocation("", {k: v for k, v in env.items() if k not in detach.HOST_SET})
    text = (assigns + apply.interpreter()).encode()
    run_id = new_run_id()
    proc = subprocess.Popen(["sh", "-c", 'eval "$(cat)"\n' + detach.runner()], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None
    proc.stdin.write(f"MODE=launch\nSTATE_DIR='{state}'\nRUN_ID={run_id}\nRUN_MODE={env['MODE']}\n"
                     f"RUN_B64={base64.b64encode(text).decode()}\nRUN_SIZE={len(text)}\n")
    proc.stdin.close()
    return run_id, proc


def slow_compose(tmp_path: Path, seconds: float) -> str:
    """A Compose that takes ``seconds`` (and ignores its arguments)."""
    path = tmp_path / "compose"
    path.write_text(f"#!/bin/sh\nsleep {seconds}\n")
    path.chmod(0o755)
    return str(path)


def wait_until(check: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw: {what}")


def log_of(state: Path, run_id: str) -> str:
    path = state / "runs" / run_id / "log"
    return path.read_text() if path.exists() else ""


def interpreter_pid(state: Path) -> int:
    """The pid the lock's holder record names: the interpreter itself."""
    holder = (state / "lock" / "holder").read_text().split()
    return int(next(w for w in holder if w.startswith("pid="))[4:])


def lock_stale(state: Path) -> str:
    res = LocalShell(state).run_script(host_script() + "lock_stale\n")
    return res.stdout.strip()


def apply_env(tmp_path: Path, mode: str, compose_seconds: float) -> dict[str, str]:
    facts, _ = project(tmp_path, b"AIRFLOW_UID=50000\n")
    env = apply.interpreter_env(facts, mode, "me:1:aaaa", [Action("compose-up", ("w",))], lock_wait=0,
                                lock=apply.LockPolicy(takeover=True, snapshot=SNAP))
    env.update(COMPOSE=slow_compose(tmp_path, compose_seconds), EXPECT="", SNAP_ID=SNAP, SNAP_B64="e30=",
               SNAP_SIZE="2", DRAIN_SVCS="")
    return env


@pytest.mark.parametrize("mode", ["apply", "restore"])
@pytest.mark.parametrize("sig, name, group", [(signal.SIGTERM, "SIGTERM", False), (signal.SIGINT, "SIGINT", True),
                                              (signal.SIGTERM, "SIGTERM", True)])
def test_a_signal_mid_change_leaves_the_lock_stale_for_recovery_as_kill_9_would(
        tmp_path: Path, mode: str, sig: signal.Signals, name: str, group: bool) -> None:
    """The interpreter alone (a shutdown's SIGTERM), or its whole process group (Ctrl-C, a unit stopped)."""
    state = tmp_path / "state"
    run_id, proc = launch(state, apply_env(tmp_path, mode, 1.5))
    wait_until(lambda: "@@hostprep:action 1 compose-up w" in log_of(state, run_id), "compose-up")
    pid = interpreter_pid(state)
    os.killpg(os.getpgid(pid), sig) if group else os.kill(pid, sig)
    proc.wait(30)
    wait_until(lambda: "is gone" in lock_stale(state), "the interpreter's end")
    assert (state / "lock").is_dir(), "the lock must stay: its holder is gone, the next run recovers"
    assert f"interrupted by {name} mid-change; lock left for recovery (snapshot {SNAP})" in \
        (state / "journal.log").read_text()
    if not group:   # the launcher lived on: it wrote the exit code
        wait_until(lambda: (state / "runs" / run_id / "exit").exists(), "the run's exit code")
    run = {r.id: r for r in parse_runs(probe_runs(state))}[run_id]
    # the group's launcher died with it: no exit code at all (as after kill -9 or a reboot)
    assert run.state == ("died" if group else f"died ({name})"), run
    assert run.mid_change and run.last_action == "1 compose-up w"


def test_the_next_run_takes_over_the_lock_a_signalled_run_left(tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_id, proc = launch(state, apply_env(tmp_path, "apply", 0.5))
    wait_until(lambda: "compose-up" in log_of(state, run_id), "compose-up")
    os.kill(interpreter_pid(state), signal.SIGTERM)
    proc.wait(30)
    wait_until(lambda: (state / "runs" / run_id / "exit").exists(), "the run's end")
    (tmp_path / "next").mkdir()
    again, proc = launch(state, {**apply_env(tmp_path / "next", "restore", 0), "LOCK_OWNER": "other:2:bbbb"})
    proc.wait(30)
    wait_until(lambda: (state / "runs" / again / "exit").exists(), "the recovery's end")
    log = log_of(state, again)
    assert "@@hostprep:lock-taken-over its holder (pid" in log and "@@hostprep:done" in log, log
    assert not (state / "lock").exists()


def own_start() -> str:
    """This process's start time in clock ticks (what a lock holder record names)."""
    return subprocess.run(["sh", "-c", "sed 's/^.*) //' /proc/$PPID/stat | cut -d' ' -f20"],
                          capture_output=True, text=True).stdout.strip()


def test_a_signal_before_the_change_began_leaves_no_lock_and_says_no_mid_change(tmp_path: Path) -> None:
    """Stopped while it waits for another run's lock: nothing changed, the other's lock is untouched."""
    state = tmp_path / "state"
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "owner").write_text("other:1:zz")
    holder = f"pid={os.getpid()} start={own_start()} boot={Path('/proc/sys/kernel/random/boot_id').read_text().strip()}"
    (state / "lock" / "holder").write_text(holder + " owner=other:1:zz mode=apply\n")
    run_id, proc = launch(state, {**apply_env(tmp_path, "apply", 0), "LOCK_WAIT": "30"})
    pid_file = state / "runs" / run_id / "pid"
    wait_until(pid_file.exists, "the run's start")
    starter = pid_file.read_text().split()[0]
    child = subprocess.run(["pgrep", "-P", starter], capture_output=True, text=True).stdout.split()
    os.kill(int(child[0]), signal.SIGTERM)
    proc.wait(30)
    wait_until(lambda: (state / "runs" / run_id / "exit").exists(), "the run's end")
    assert (state / "lock" / "holder").read_text().startswith(holder)
    assert "interrupted" not in ((state / "journal.log").read_text() if (state / "journal.log").exists() else "")
    run = {r.id: r for r in parse_runs(probe_runs(state))}[run_id]
    assert run.state == "died (SIGTERM)" and not run.mid_change


def test_a_short_write_leaves_the_file_it_would_replace_whole(tmp_path: Path) -> None:
    """A power loss or a full disk mid-write never leaves a truncated snapshot or record: the old one stays."""
    target = tmp_path / "snap.json"
    target.write_text('{"old": 1}')
    res = LocalShell(tmp_path).run_script(host_script() + 'printf ab | put "$F" 3\n', {"F": str(target)})
    assert res.exit_code == 72 and "@@hostprep:short-write" in res.stdout
    assert target.read_text() == '{"old": 1}' and sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]


def test_a_put_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    res = LocalShell(tmp_path).run_script(host_script() + 'printf abc | put "$F" 3 && echo ok\n', {"F": str(target)})
    assert res.stdout.strip() == "ok" and target.read_text() == "abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    assert target.stat().st_mode & 0o777 == 0o600


def dead_run(state: Path, run_id: str, *, exit_code: str | None = None, pid: str = "999999 1 apply") -> Path:
    d = state / "runs" / run_id
    d.mkdir(parents=True)
    (d / "run.sh").write_text("ENV_PASSWORD=secret\n")
    (d / "start.sh").write_text("x\n")
    (d / "log").write_text("@@hostprep:snapshot S\n@@hostprep:action 1 compose-up w\n")
    (d / "pid").write_text(pid + "\n")
    if exit_code is not None:
        (d / "exit").write_text(exit_code + "\n")
    return d


def test_a_new_run_prunes_the_scripts_of_runs_that_died_and_keeps_what_status_reads(tmp_path: Path) -> None:
    state = tmp_path / "state"
    died = dead_run(state, "20261202T010000Z-aaaa")
    alive = dead_run(state, "20261202T010001Z-bbbb", pid=f"{os.getpid()} {own_start()} apply")
    (state / "snapshots").mkdir()
    cut, writing = state / "snapshots" / f".{SNAP}.json.a1B2c3D4e5", state / "snapshots" / f".{SNAP}.json.f6G7h8I9j0"
    cut.write_text("AIRFLOW_PASSWORD=...")   # a put a crash cut (its hidden temp file), and one being written now
    writing.write_text("AIRFLOW_PASSWORD=...")
    os.utime(cut, (time.time() - 3600, time.time() - 3600))
    detach.run_detached(LocalShell(state), new_run_id(), "exit 0", {})  # type: ignore[arg-type]
    assert not (died / "run.sh").exists() and not (died / "start.sh").exists()
    assert (died / "log").exists() and (died / "pid").exists()
    assert (alive / "run.sh").exists(), "a run whose process lives keeps its script"
    assert not cut.exists() and writing.exists()
    run = {r.id: r for r in parse_runs(probe_runs(state))}["20261202T010000Z-aaaa"]
    assert run.state == "died" and run.mid_change


def test_the_journal_keeps_the_last_twenty_runs_that_ended_or_died(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for i in range(25):
        dead_run(state, f"20261202T0100{i:02d}Z-aaaa", exit_code="0" if i % 2 else None)
    detach.run_detached(LocalShell(state), new_run_id(), "exit 0", {})  # type: ignore[arg-type]
    kept = sorted(p.name for p in (state / "runs").iterdir())
    assert len(kept) == 20 and kept[0] == "20261202T010006Z-aaaa", kept
    assert not any((state / "runs" / k / "run.sh").exists() for k in kept)
