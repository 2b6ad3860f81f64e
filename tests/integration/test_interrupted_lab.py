"""A provision cut off halfway (issue 19), for real on the lab: the host ends finished and recorded,
or back as it was, and the next provision or rollback works without anyone logging in to clean up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hostprep.audit import run as aud
from hostprep.cli import commands
from hostprep.change import provision as prov
from hostprep.change import snapshot_store
from hostprep.fleet.fanout import ConnectOptions
from hostprep.host.lock import parse_holder
from hostprep.change.results import CHANGED, FAILED, OK
from tests.integration.conftest import Pristine, connect, facts_of, settings, state_of
from tests.lab import lab

UNMOUNT = "umount /opt/airflow 2>/dev/null; umount /var/lib/hostprep 2>/dev/null; true"


@pytest.fixture
def lab1(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> lab.LabHost:
    """lab1, pristine, with no mount a fault test made (also undone after the test)."""
    h = lab_hosts["lab1"]
    h.exec(UNMOUNT)
    pristine("lab1")
    wait_for(h, "docker ps --filter label=com.docker.compose.service=airflow-worker --filter status=running -q")
    yield h
    h.exec(UNMOUNT)


def provision(name: str, strategy: str | None = None, **kw: object) -> prov.HostReport:
    with connect(name) as t:
        return prov.provision(t, settings(name), prov.Options(strategy=strategy, **kw))  # type: ignore[arg-type]


def rollback(name: str, **kw: object) -> prov.HostReport:
    with connect(name) as t:
        return prov.rollback(t, settings(name), **kw)  # type: ignore[arg-type]


def hold_lock(h: lab.LabHost) -> str:
    """Another run's live lock (a sleeping process holds it); its pid."""
    pid = h.exec("setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $!").strip()
    start = h.exec(f"sed 's/^.*) //' /proc/{pid}/stat | cut -d' ' -f20").strip()
    boot = h.exec("cat /proc/sys/kernel/random/boot_id").strip()
    h.exec(f"mkdir /var/lib/hostprep/lock && echo other:1:zz > /var/lib/hostprep/lock/owner && "
           f"echo 'pid={pid} start={start} boot={boot} owner=other:1:zz mode=apply' > /var/lib/hostprep/lock/holder")
    return pid


def no_lock(h: lab.LabHost) -> bool:
    return h.exec("test -e /var/lib/hostprep/lock && echo held || true").strip() == ""


def wait_for(h: lab.LabHost, script: str, timeout: float = 120) -> str:
    """Poll the host until ``script`` prints something; return it. The loop runs on the host, every 20 ms:
    a `docker exec` per poll takes 0.1-0.3 s under load, long enough to miss a step that a warm build cache
    makes that short (a cached `compose build` slipped through that way, and the wait ran out)."""
    loop = (f"end=$(( $(date +%s) + {int(timeout)} )); while [ \"$(date +%s)\" -lt \"$end\" ]; do "
            f"o=$({script}); if [ -n \"$o\" ]; then printf '%s\\n' \"$o\"; exit 0; fi; sleep 0.02; done; exit 1")
    out = h.exec(loop, check=False, timeout=timeout + 60).strip()
    if not out:
        raise AssertionError(f"{h.name}: never saw: {script}")
    return out


COMPOSE_UP = "pgrep -f '[u]p -d --no-deps --force-recreate' | head -n1"   # [u]: not this shell's own line


def test_a_read_only_project_names_the_cause_restores_and_releases_the_lock(lab1: lab.LabHost) -> None:
    original = state_of("lab1")
    lab1.exec("mount --bind /opt/airflow /opt/airflow && mount -o remount,ro,bind /opt/airflow")
    report = provision("lab1", "group-add")
    assert report.status == FAILED
    assert "Read-only file system" in (report.error or ""), report.error
    assert "restored from snapshot" in (report.error or "") and "FAILED" not in (report.error or "")
    assert not any("rollback" in w.lower() for w in report.warnings), report.warnings
    assert report.rolled_back and no_lock(lab1)
    assert state_of("lab1") == original
    lab1.exec("umount /opt/airflow")
    again = provision("lab1", "group-add")
    assert again.status == CHANGED, again.error


def test_a_full_state_dir_names_no_space_and_changes_nothing(lab1: lab.LabHost) -> None:
    original = state_of("lab1")
    lab1.exec("mkdir -p /var/lib/hostprep && mount -t tmpfs -o size=12k,mode=700 tmpfs /var/lib/hostprep")
    report = provision("lab1", "group-add")
    assert report.status == FAILED
    error = report.error or ""
    assert "no space left: writing /var/lib/hostprep/" in error and "bytes free in /var/lib/hostprep" in error, error
    assert "nothing was changed" in error or "restored from snapshot" in error
    assert state_of("lab1") == original and no_lock(lab1)
    lab1.exec("umount /var/lib/hostprep")
    assert provision("lab1", "group-add").status == CHANGED


def controller(*args: str) -> subprocess.Popen[bytes]:
    """`hostprep ARGS` as an operator runs it, in its own process (to be killed)."""
    env = {**os.environ, "HOSTPREP_INVENTORY": str(lab.INVENTORY)}
    return subprocess.Popen([sys.executable, "-m", "hostprep", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_controller_during_compose_up_leaves_the_host_finished_recorded_and_unlocked(
        lab1: lab.LabHost) -> None:
    ctl = controller("provision", "--host", "lab1", "--no-smoke")
    try:
        wait_for(lab1, COMPOSE_UP)
    finally:
        kill(ctl)
    wait_for(lab1, "test -e /var/lib/hostprep/lock || echo released")
    after = facts_of("lab1")
    assert after.record is not None and after.record["strategy"] == "group-add"
    assert after.worker.docker_ps_rc == 0
    again = provision("lab1")
    assert (again.status, again.changed) == (OK, 0), again.error


def crash_during(h: lab.LabHost, what: str, *args: str) -> dict[str, str]:
    """Provision in a controller process; once ``what`` runs on the host, SIGKILL the controller, then the
    interpreter that holds the lock (a crash, an OOM kill): nobody is left to finish or restore the
    change. Returns the dead holder's record."""
    ctl = controller("provision", "--host", "lab1", "--no-smoke", *args)
    try:
        wait_for(h, what)
    finally:
        kill(ctl)
    holder = parse_holder(h.exec("cat /var/lib/hostprep/lock/holder"))
    h.exec(f"kill -9 {holder['pid']}")
    return holder


def test_a_dead_apply_leaves_a_stale_lock_that_rollback_takes_over_and_restores_exactly(lab1: lab.LabHost) -> None:
    original = state_of("lab1")
    holder = crash_during(lab1, COMPOSE_UP, "--strategy", "group-add")
    held = facts_of("lab1", deep=False).lock
    assert held is not None and held.stale and held.snapshot == holder["snapshot"], held
    seen = status()
    assert seen["mid_change"] == "yes" and seen["lock"].startswith("STALE") and "is gone" in seen["lock"]
    assert seen["latest_snapshot"] == holder["snapshot"] and "hostprep rollback --host lab1" in seen["next"]
    with connect("lab1") as t:
        found = {f.id for f in aud.audit_host(t, settings("lab1")).findings}
    assert {"lock-stale", "mid-change"} <= found
    undone = rollback("lab1")
    assert undone.status == CHANGED, undone.error
    assert any("lock taken-over" in w and "is gone" in w for w in undone.warnings), undone.warnings
    assert "lock taken-over" in lab1.exec("cat /var/lib/hostprep/journal.log")
    assert state_of("lab1") == original and no_lock(lab1)
    after = status()
    assert (after["mid_change"], after["lock"]) == ("no", "free") and "(restore): ok" in after["last_run"]


def status() -> dict[str, str]:
    """`hostprep status --host lab1 --json`, as the operator runs it."""
    reply = commands.status(commands.Selection(inventory=str(lab.INVENTORY), host="lab1"), ConnectOptions(),
                            as_json=True)
    assert reply.code == 0, reply.text
    return json.loads(reply.text)["lab1"]


def test_the_next_provision_undoes_a_dead_build_then_converges(lab1: lab.LabHost) -> None:
    holder = crash_during(lab1, "pgrep -f '[c]ompose build' | head -n1", "--strategy", "dockerfile")
    report = provision("lab1", "dockerfile", smoke=False)
    assert report.status == CHANGED, report.error
    assert any(f"restored from snapshot {holder['snapshot']}" in w for w in report.warnings), report.warnings
    after = facts_of("lab1")
    assert after.worker.docker_ps_rc == 0 and after.record and after.record["strategy"] == "dockerfile"
    assert no_lock(lab1)


def test_rollback_waits_for_a_live_lock_then_refuses_naming_its_holder(lab1: lab.LabHost) -> None:
    assert provision("lab1", "group-add", smoke=False).status == CHANGED
    pid = hold_lock(lab1)
    try:
        t0 = time.monotonic()
        report = rollback("lab1", lock_wait=2)
        assert report.status == FAILED and time.monotonic() - t0 >= 2
        assert f"pid={pid}" in (report.error or "") and "--lock-wait" in (report.error or "")
        assert facts_of("lab1", deep=False).record is not None   # nothing was restored
    finally:
        lab1.exec(f"kill {pid}")
    undone = rollback("lab1", lock_wait=5)
    assert undone.status == CHANGED, undone.error
    assert any("lock taken-over" in w for w in undone.warnings)
    assert no_lock(lab1)


def test_a_run_refused_before_its_snapshot_is_not_what_a_later_rollback_restores(lab1: lab.LabHost) -> None:
    """A refused run's snapshot (taken on the controller, never stored on the host) is forgotten; a plain
    rollback undoes the change the host's record names, not merely the newest snapshot here."""
    first = provision("lab1", "group-add", smoke=False)
    assert first.status == CHANGED, first.error
    lab1.exec("rm /opt/airflow/docker-compose.hostprep.yml")   # drift: the next run has a change to make
    kept = {s["id"] for s in snapshot_store.list_local("lab1")}
    pid = hold_lock(lab1)
    try:
        refused = provision("lab1", "group-add", smoke=False, lock_wait=1)
    finally:
        lab1.exec(f"kill {pid}; rm -rf /var/lib/hostprep/lock")
    assert refused.status == FAILED and "nothing was changed" in (refused.error or ""), refused.error
    assert {s["id"] for s in snapshot_store.list_local("lab1")} == kept
    undone = rollback("lab1")
    assert (undone.status, undone.snapshot_id) == (CHANGED, first.snapshot_id), undone.error
    assert facts_of("lab1", deep=False).record is None


def test_break_lock_is_recorded_in_the_hosts_journal(lab1: lab.LabHost) -> None:
    lab1.exec("mkdir -p /var/lib/hostprep/lock && echo other:1:zz > /var/lib/hostprep/lock/owner")
    report = provision("lab1", "group-add", smoke=False, break_lock=True)
    assert report.status == CHANGED, report.error
    assert any("lock broken" in w for w in report.warnings)
    assert "broken by request (--break-lock)" in lab1.exec("cat /var/lib/hostprep/journal.log")


SSHD_SESSIONS = "pkill -9 -f '[s]shd: ubuntu'"   # every SSH session on the host: the apply's connection drops


@pytest.mark.parametrize("strategy, during", [("group-add", COMPOSE_UP), ("dockerfile", "pgrep -f '[c]ompose build' | head -n1")])
def test_an_ssh_drop_mid_change_is_followed_to_the_end_after_a_reconnect(lab1: lab.LabHost, strategy: str,
                                                                        during: str) -> None:
    box: list[prov.HostReport] = []
    worker = threading.Thread(target=lambda: box.append(provision("lab1", strategy, smoke=False)))
    worker.start()
    wait_for(lab1, during)
    if lab1.exec("cat /proc/1/comm").strip() == "systemd":   # the run is its own unit, outside the SSH login's scope
        assert "hostprep-run-" in lab1.exec("systemctl list-units 'hostprep-run-*' --no-legend --no-pager")
    lab1.exec(SSHD_SESSIONS, check=False)
    worker.join(600)
    report = box[0]
    assert report.status == CHANGED, report.error
    assert any("reconnected" in w for w in report.warnings), report.warnings
    after = facts_of("lab1")
    assert after.worker.docker_ps_rc == 0 and after.record and after.record["strategy"] == strategy
    assert no_lock(lab1)


def test_two_provisions_with_different_strategies_at_once_apply_one_fix_and_refuse_the_other(
        lab1: lab.LabHost) -> None:
    """Both gather facts on a pristine host; whichever gets the lock second finds the managed state changed
    (the override, or the socket's mode) and refuses instead of stacking a second fix."""
    reports: dict[str, prov.HostReport] = {}

    def run(strategy: str) -> None:
        reports[strategy] = provision("lab1", strategy, lock_wait=180, smoke=False)

    threads = [threading.Thread(target=run, args=(s,)) for s in ("group-add", "chmod")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    status = {s: r.status for s, r in reports.items()}
    assert sorted(status.values()) == [CHANGED, FAILED], {s: (r.status, r.error) for s, r in reports.items()}
    won = next(s for s, r in reports.items() if r.status == CHANGED)
    lost = reports["chmod" if won == "group-add" else "group-add"]
    assert "changed between fact gathering and apply" in (lost.error or "") or "is applied on this host" in \
        (lost.error or ""), lost.error
    # the host holds exactly the winner's fix, and its record says so
    f = facts_of("lab1", deep=True)
    assert (f.record or {}).get("strategy") == won
    assert f.files["docker-compose.hostprep.yml"].exists == (won == "group-add")
    assert (f.socket.mode is not None and f.socket.mode & 0o002 != 0) == (won == "chmod")
    assert f.worker.docker_ps_rc == 0 and no_lock(lab1)
    assert rollback("lab1").status == CHANGED   # and the record's rollback restores the host exactly


def test_rolling_back_a_provision_that_created_a_missing_bind_folder_keeps_it_and_succeeds(
        lab1: lab.LabHost) -> None:
    """Removed, Docker would make the folder again at the recreate, as root:root; so the rollback keeps it,
    says so, and judges the rest against the snapshot."""
    lab1.exec("rm -rf /opt/airflow/plugins")
    first = provision("lab1", smoke=False)
    assert first.status == CHANGED, first.error
    assert lab1.exec("stat -c '%u:%g %a' /opt/airflow/plugins").strip() == "50000:0 755"
    back = rollback("lab1")
    assert back.status == CHANGED, (back.error, back.data.get("differences"))
    assert back.data["differences"] == []
    assert any(w.startswith("kept plugins/") for w in back.warnings), back.warnings
    assert lab1.exec("stat -c '%u:%g %a' /opt/airflow/plugins").strip() == "50000:0 755"   # not Docker's root:root
    f = facts_of("lab1", deep=False)
    assert f.record is None and not f.files["docker-compose.hostprep.yml"].exists and no_lock(lab1)


def test_a_docker_restart_during_compose_up_leaves_the_host_finished_or_restored_and_the_next_runs_converge(
        lab1: lab.LabHost) -> None:
    """`systemctl restart docker` on the systemd host while the apply's `compose up` recreates the worker."""
    before = facts_of("lab1", deep=False)
    result: dict[str, prov.HostReport] = {}
    th = threading.Thread(target=lambda: result.setdefault("r", provision("lab1", smoke=False)))
    th.start()
    wait_for(lab1, COMPOSE_UP)
    lab1.exec("/usr/local/sbin/lab-dockerd-restart")
    th.join(300)
    report = result["r"]
    assert no_lock(lab1)
    after = facts_of("lab1", deep=True)
    if report.status == CHANGED:   # finished: recorded and verified
        assert after.record is not None and after.worker.docker_ps_rc == 0
    else:                          # or restored, and the error names where it stopped
        assert report.status == FAILED and "restored from snapshot" in (report.error or ""), report.error
        assert after.record is None and after.files["docker-compose.hostprep.yml"].exists is False
        assert after.files[".env"].sha256 == before.files[".env"].sha256
    again = provision("lab1", smoke=False)
    assert again.status in (CHANGED, OK), again.error
    assert facts_of("lab1", deep=True).worker.docker_ps_rc == 0
    back = rollback("lab1")
    assert back.status == CHANGED and back.data["differences"] == [], (back.error, back.data.get("differences"))
