"""The host lock: its holder record, a stale holder taken over (or not), --break-lock, release on
every way out, checked writes. The real interpreter runs here with this machine's ``sh`` on file
actions only (as in test_apply_encoding), with hostprep's state dir in a temp folder."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hostprep.change import apply
from hostprep.change.apply import Outcome
from hostprep.host.probe import host_script, parse_probe
from hostprep.host.lock import parse_holder, parse_lock
from hostprep.change.plan import make_plan
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.steps import Action
from tests.unit.change.test_apply_encoding import LocalShell, apply_files, capture, facts_settings, project


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def dead_pid() -> int:
    """A pid that has just exited (its start time no longer matches anything)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def plant_lock(state: Path, holder: str) -> Path:
    lock = state / "lock"
    lock.mkdir(parents=True)
    (lock / "owner").write_text("old-controller:1:zzzz")
    (lock / "holder").write_text(holder + "\n")
    return lock


def group_add(tmp_path: Path, **kw: Any) -> Outcome:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    return apply_files(tmp_path, facts, make_plan(facts, facts_settings(proj), "group-add"), **kw)


def test_a_lock_whose_holder_died_is_stale_and_an_apply_says_so_without_waiting(tmp_path: Path) -> None:
    plant_lock(tmp_path / "state", f"pid={dead_pid()} start=1 boot={boot_id()} owner=old:1:zz mode=apply")
    out = group_add(tmp_path, lock_wait=30)
    assert out.exit_code == apply.STALE
    assert "is gone" in out.error() and "take it over" in out.error()


def test_a_stale_lock_is_taken_over_when_asked_and_the_journal_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    plant_lock(state, f"pid={dead_pid()} start=1 boot={boot_id()} owner=old:1:zz mode=apply snapshot=S1")
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    plan = make_plan(facts, facts_settings(proj), "group-add")
    out = apply.run(LocalShell(state), facts, "apply", owner="new:2:aaaa",  # type: ignore[arg-type]
                    actions=[a for a in plan.actions if a.op == "write"], lock=apply.LockPolicy(takeover=True))
    assert out.ok, out.log
    assert out.lock_notes and "is gone" in out.lock_notes[0] and "old:1:zz" in out.lock_notes[0]
    journal = (state / "journal.log").read_text()
    assert "lock taken-over by new:2:aaaa (apply)" in journal and "snapshot=S1" in journal
    assert not (state / "lock").exists()


def test_a_lock_from_before_a_reboot_is_stale(tmp_path: Path) -> None:
    import os
    plant_lock(tmp_path / "state", f"pid={os.getpid()} start=1 boot=another-boot owner=old:1:zz")
    assert group_add(tmp_path, lock_wait=0).marker("stale", ) == \
        f"its holder ran before the host rebooted | pid={os.getpid()} start=1 boot=another-boot owner=old:1:zz"


def test_a_live_holder_is_waited_for_and_named(tmp_path: Path) -> None:
    live = subprocess.Popen(["sleep", "30"])
    try:
        start = Path(f"/proc/{live.pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
        plant_lock(tmp_path / "state", f"pid={live.pid} start={start} boot={boot_id()} owner=old:1:zz mode=restore")
        out = group_add(tmp_path, lock_wait=1)
    finally:
        live.kill()
    assert out.exit_code == apply.LOCKED
    assert f"pid={live.pid}" in out.error() and "--lock-wait" in out.error()


def test_break_lock_removes_a_live_lock_and_is_journaled(tmp_path: Path) -> None:
    import os
    state = tmp_path / "state"
    start = Path("/proc/self/stat").read_text().rsplit(") ", 1)[1].split()[19]
    plant_lock(state, f"pid={os.getpid()} start={start} boot={boot_id()} owner=old:1:zz")
    facts, _ = project(tmp_path, b"AIRFLOW_UID=50000\n")
    out = apply.run(LocalShell(state), facts, "restore", owner="me:3:bbbb",  # type: ignore[arg-type]
                    lock=apply.LockPolicy(break_lock=True))
    assert out.ok, out.log
    assert "broken by request (--break-lock)" in (state / "journal.log").read_text()
    assert any(n.startswith("lock broken") for n in out.lock_notes)


def test_the_lock_is_released_when_the_apply_fails(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    plan = make_plan(facts, facts_settings(proj), "group-add")
    (proj / ".env").write_bytes(b"AIRFLOW_UID=1000\n")   # drift: refused
    assert apply_files(tmp_path, facts, plan).exit_code == apply.DRIFTED
    assert not (tmp_path / "state" / "lock").exists()
    out = apply.run(LocalShell(tmp_path / "state"), facts, "restore", owner="me:3:bbbb",  # type: ignore[arg-type]
                    actions=[Action("write", (str(tmp_path / "nowhere" / "x"), "0", "0", "600"), "x")])
    assert out.exit_code == apply.REFUSED and not (tmp_path / "state" / "lock").exists()


def test_a_write_that_cannot_be_made_names_the_cause_and_releases_the_lock(tmp_path: Path) -> None:
    facts, proj = project(tmp_path, b"AIRFLOW_UID=50000\n")
    target = proj / "sub"
    target.mkdir()
    target.chmod(0o500)
    try:
        out = apply.run(LocalShell(tmp_path / "state"), facts, "apply", owner="me:3:bbbb",  # type: ignore[arg-type]
                        actions=[Action("write", (str(target / "f"), "0", "0", "600"), "x")])
    finally:
        target.chmod(0o700)
    if out.ok:   # root writes anyway: nothing to see on this machine
        return
    assert out.exit_code == apply.FAILED and "cannot write" in out.error()
    assert not (tmp_path / "state" / "lock").exists()


def test_fewer_actions_than_sent_is_never_an_apply(tmp_path: Path) -> None:
    facts, _ = project(tmp_path, b"AIRFLOW_UID=50000\n")
    env = apply.interpreter_env(facts, "apply", "me:3:bbbb", [], lock_wait=0, lock=apply.LockPolicy())
    env.update(N_ACTIONS="3", EXPECT="", SNAP_ID="", SNAP_B64="", SNAP_SIZE="0")
    res = LocalShell(tmp_path / "state").run_script(apply.interpreter(), env)
    out = Outcome(res.exit_code, res.stdout)
    assert out.exit_code == apply.INCOMPLETE and not out.ok
    assert "ran 0 of 3 actions" in out.error() and "not counted as applied" in out.error()


def test_an_exit_0_without_the_interpreter_saying_done_is_not_ok() -> None:
    assert not Outcome(0, "@@hostprep:action 1 write /x\n").ok
    assert Outcome(0, "@@hostprep:released\n").ok


def test_a_short_write_names_the_file_the_sizes_and_the_free_space() -> None:
    out = Outcome(apply.NOSPACE, "@@hostprep:short-write /var/lib/hostprep/snapshots/S.json 30000 12288 0\n")
    assert out.error() == ("no space left: writing /var/lib/hostprep/snapshots/S.json needed 30000 bytes, "
                           "12288 written, 0 bytes free in /var/lib/hostprep/snapshots")


def test_the_probe_reports_a_held_lock_and_why_it_is_stale(tmp_path: Path) -> None:
    state = tmp_path / "state"
    plant_lock(state, f"pid={dead_pid()} start=1 boot={boot_id()} since=2026-12-02T01:00:00Z owner=old:1:zz "
                      "mode=apply snapshot=20261202T010000Z-abcd")
    script = host_script("probe.sh")
    res = LocalShell(state).run_script(script, {"SOCK": "/nonexistent", "PROJ": str(tmp_path), "WORKER_SVC": "w",
                                                "BIND_DIRS": "", "DEEP": "0", "VERSIONS": "0", "FILES": ""})
    text = res.stdout
    lock = parse_lock(text.split("@@hostprep:lock\n", 1)[1].split("\n@@hostprep:", 1)[0])
    assert lock is not None and lock.stale is not None and "is gone" in lock.stale
    assert lock.snapshot == "20261202T010000Z-abcd"
    assert lock.describe().startswith("pid ") and "(apply, snapshot 20261202T010000Z-abcd) from old:1:zz" in lock.describe()


def test_a_probe_without_a_lock_section_or_lock_reports_none() -> None:
    assert parse_probe("lab1", capture("lab1_pristine"), HostSettings()).lock is None


def test_a_holder_record_keeps_only_known_keys_with_plain_values() -> None:
    assert parse_holder("pid=1 owner=a;b mode=apply x=y snapshot=") == {"pid": "1", "mode": "apply"}


# --- what the audit and `status` make of a lock and the host's journal ----------------------------------

def lab_facts(**changes: Any) -> Any:
    import dataclasses
    return dataclasses.replace(parse_probe("lab1", capture("lab1_pristine"), HostSettings()), **changes)


def test_a_stale_lock_and_a_dead_run_are_critical_findings_with_the_way_out() -> None:
    from hostprep.audit import run as audit
    from hostprep.host.lock import HostLock
    from hostprep.host.journal import parse_runs
    runs = tuple(parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit= alive=0\n"
                            "> snapshot 20261202T021459Z-ab12\n> action 4 compose-up airflow-worker\n"))
    lock = HostLock({"pid": "42", "mode": "apply", "snapshot": "20261202T021459Z-ab12"}, "its holder (pid 42) is gone")
    found = {f.id: f for f in audit.audit(lab_facts(lock=lock, runs=runs), HostSettings())}
    assert found["mid-change"].severity == "critical" and "died" in found["mid-change"].detail
    assert "--snapshot 20261202T021459Z-ab12" in found["mid-change"].hint
    assert "is gone" in found["lock-stale"].detail and "takes it over" in found["lock-stale"].hint
    assert "lock-held" not in found


def test_a_live_lock_is_a_run_in_progress() -> None:
    from hostprep.audit import run as audit
    from hostprep.host.lock import HostLock
    found = {f.id: f for f in audit.audit(lab_facts(lock=HostLock({"pid": "42", "mode": "apply"})), HostSettings())}
    assert found["lock-held"].severity == "warning" and "in progress" in found["lock-held"].detail
    assert "lock-stale" not in found and "mid-change" not in found


def test_status_shows_the_holder_its_age_the_last_run_and_what_to_run() -> None:
    from datetime import datetime, timezone
    from hostprep.host.lock import HostLock
    from hostprep.host.status import host_status
    from hostprep.host.journal import parse_runs
    lock = HostLock({"pid": "42", "mode": "apply", "since": "2026-12-02T01:00:00Z"}, "its holder (pid 42) is gone")
    runs = tuple(parse_runs("run 20261202T021500Z-3f9a1c mode=apply exit=137 alive=0\n> action 2 write /x\n"))
    row = host_status(lab_facts(lock=lock, runs=runs, latest_snapshot="20261202T021459Z-ab12"),
                      datetime(2026, 12, 2, 1, 2, 0, tzinfo=timezone.utc))
    assert row["lock"] == "STALE (its holder (pid 42) is gone): pid 42 (apply) from ? since 2026-12-02T01:00:00Z (120s)"
    assert row["mid_change"] == "yes" and "died (SIGKILL)" in row["last_run"]   # exit 128+9
    assert row["latest_snapshot"] == "20261202T021459Z-ab12" and "hostprep rollback --host lab1" in row["next"]
    quiet = host_status(lab_facts(), datetime.now(timezone.utc))
    assert (quiet["lock"], quiet["last_run"], quiet["mid_change"], quiet["next"]) == ("free", "none", "no", "")
