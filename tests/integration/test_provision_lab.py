"""Provision and roll back on real lab hosts, every strategy, both Compose flavours."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from hostprep.cli import commands
from hostprep.change import provision as prov
from hostprep.fleet.fanout import ConnectOptions
from hostprep.change.results import CHANGED, FAILED, OK
from tests.integration.conftest import Pristine, connect, facts_of, settings, state_of
from tests.integration.test_facts_lab import inventory_with_dead_host
from tests.lab import lab


def provision(name: str, strategy: str | None = None, *, check: bool = False, lock_wait: int = 10) -> prov.HostReport:
    with connect(name) as t:
        return prov.provision(t, settings(name), prov.Options(strategy=strategy, check=check, lock_wait=lock_wait))


def rollback(name: str, snapshot: str | None = None) -> prov.HostReport:
    with connect(name) as t:
        return prov.rollback(t, settings(name), snapshot)


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile", "chmod"])
@pytest.mark.parametrize("name", ["lab1", "lab2"])
def test_provision_fixes_the_worker_and_rollback_restores_the_host_exactly(
        name: str, strategy: str, pristine: Pristine) -> None:
    pristine(name)
    before = facts_of(name)
    assert before.worker.docker_ps_rc != 0
    original = state_of(name)

    checked = provision(name, strategy, check=True)
    assert checked.status == CHANGED and checked.changed > 0
    assert state_of(name) == original, "--check changed the host"

    report = provision(name, strategy)
    assert report.status == CHANGED, report.error
    after = facts_of(name)
    assert after.worker.docker_ps_rc == 0, after.worker.docker_ps_output
    assert after.worker.proc_gid == 0
    if strategy == "chmod":
        assert after.socket.mode == 0o666
    else:
        assert after.docker_gid in after.worker.proc_groups
        assert f"{after.docker_gid}" in (after.worker.id_output or "")
        assert after.socket.mode == 0o660
    assert after.record and after.record["strategy"] == strategy

    again = provision(name, strategy)
    assert (again.status, again.changed) == (OK, 0)
    assert again.plan is not None and not again.plan.steps

    undone = rollback(name)
    assert undone.status == CHANGED, undone.error
    assert undone.data["differences"] == []
    assert state_of(name) == original
    assert facts_of(name).worker.id_output == "uid=50000(airflow) gid=0(root) groups=0(root)"


@pytest.mark.parametrize("name, first, then", [("lab1", "group-add", "chmod"), ("lab2", "chmod", "dockerfile"),
                                              ("lab1", "dockerfile", "group-add")])
def test_switching_strategy_undoes_the_recorded_fix_first_and_a_rollback_returns_to_it(
        name: str, first: str, then: str, pristine: Pristine) -> None:
    """Issue 19: another strategy is an explicit change under one snapshot, not a refusal and not a second fix
    stacked on the first."""
    pristine(name)
    original = state_of(name)
    assert provision(name, first).status == CHANGED
    fixed = state_of(name)
    checked = provision(name, then, check=True)
    assert checked.status == CHANGED and checked.plan is not None and checked.plan.switched_from == first
    assert any(s.name.startswith(f"undo {first}: ") for s in checked.plan.steps), [s.name for s in checked.plan.steps]
    assert state_of(name) == fixed, "--check changed the host"

    switched = provision(name, then)
    assert switched.status == CHANGED, switched.error
    after = facts_of(name, deep=True)
    assert after.record and (after.record["strategy"], after.record["switched_from"]) == (then, first)
    assert after.worker.docker_ps_rc == 0 and after.worker.proc_gid == 0
    assert (after.socket.mode == 0o666) == (then == "chmod")   # chmod's 666 is undone when leaving it
    assert after.files["docker-compose.hostprep.yml"].exists == (then != "chmod")
    assert provision(name, then).status == OK   # converged: the switch is not planned again

    back = rollback(name)
    assert (back.status, back.data["differences"]) == (CHANGED, []), back.error
    assert state_of(name) == fixed and (facts_of(name).record or {}).get("strategy") == first
    assert rollback(name).status == CHANGED and state_of(name) == original


def test_a_failed_build_rolls_back_automatically(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = lab_hosts["lab1"]
    pristine("lab1")
    original = state_of("lab1")
    # hide the build's base image: `compose build` then fails for real (no registry to pull from)
    h.exec("docker tag hostprep-lab/airflow-base:latest hostprep-lab/airflow-base:hidden"
           " && docker rmi hostprep-lab/airflow-base:latest >/dev/null")
    try:
        report = provision("lab1", "dockerfile")
    finally:
        h.exec("docker tag hostprep-lab/airflow-base:hidden hostprep-lab/airflow-base:latest"
               " && docker rmi hostprep-lab/airflow-base:hidden >/dev/null")
    assert report.status == FAILED and report.rolled_back
    assert "compose-build" in (report.error or "")
    assert state_of("lab1") == original


def test_a_failed_verification_rolls_back_and_leaves_no_record(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = lab_hosts["lab1"]
    pristine("lab1")
    # the socket no longer belongs to the docker group: mapping the docker GID applies cleanly,
    # but `docker ps` in the worker still fails, so verification must fail and undo everything
    h.exec("chgrp 4 /var/run/docker.sock")
    original = state_of("lab1")
    report = provision("lab1", "group-add")
    assert report.status == FAILED and report.rolled_back, report.error
    assert "verification failed" in (report.error or "") and "docker ps" in (report.error or "")
    assert state_of("lab1") == original
    assert facts_of("lab1").record is None, "the record written with the change must be undone with it"
    assert "lock" not in h.exec("ls /var/lib/hostprep").split(), "the host lock was left behind"


def test_a_provision_that_changes_the_host_takes_two_execs(lab_hosts: dict[str, lab.LabHost],
                                                           pristine: Pristine) -> None:
    pristine("lab2")
    with connect("lab2") as t:
        report = prov.provision(t, settings("lab2"), prov.Options(smoke=False))
        assert report.status == CHANGED, report.error
        assert t.execs == 2   # facts; then apply, record, release and the proof in one
    assert facts_of("lab2").record["snapshot_id"] == report.snapshot_id


def visible(text: str, secret: str, depth: int = 3) -> bool:
    """Whether ``secret`` is in ``text`` as it is or inside base64, nested up to ``depth`` times."""
    if secret in text:
        return True
    for token in re.findall(r"[A-Za-z0-9+/]{24,}", text) if depth else []:
        token = token[:-1] if len(token) % 4 == 1 else token   # a stray character: not base64's
        decoded = base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "ignore")
        if visible(decoded, secret, depth - 1):
            return True
    return False


# run as `nobody`: every command line on the host, over and over, until /tmp/hp-stop appears
SAMPLER = r"""end=$(($(date +%s)+90))
while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/hp-stop ]; do
    for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done
done
"""


def test_no_value_hostprep_sends_shows_in_the_hosts_process_list(lab_hosts: dict[str, lab.LabHost],
                                                                  pristine: Pristine) -> None:
    """Every local user can read every process's command line (`ps`), and sudo logs it: the .env
    hostprep edits (and snapshots) holds passwords, so no value may ride on a command line."""
    h = lab_hosts["lab1"]
    pristine("lab1")
    secret = "hp-Secret-" + os.urandom(6).hex()
    h.exec("cat > /tmp/hp-sampler.sh", input=SAMPLER.encode())
    h.exec(f"cd /opt/airflow && echo '_AIRFLOW_WWW_USER_PASSWORD={secret}' >> .env && rm -f /tmp/hp-stop /tmp/hp-seen"
           " && (setsid su -s /bin/sh nobody -c 'sh /tmp/hp-sampler.sh' > /tmp/hp-seen 2>/dev/null < /dev/null &)")
    try:
        report = provision("lab1", "group-add")
    finally:
        h.exec("touch /tmp/hp-stop; sleep 0.5")
    assert report.status == CHANGED, report.error
    assert "edit .env" in [s.name for s in report.plan.steps]   # the .env was snapshotted and rewritten
    seen = h.exec("cat /tmp/hp-seen; rm -f /tmp/hp-seen /tmp/hp-stop /tmp/hp-sampler.sh")
    # the apply runs detached, from its folder in the host's journal: /var/lib/hostprep/runs/<id>/run.sh
    assert "/var/lib/hostprep/runs/" in seen, "the sampler never saw the apply running"
    assert not visible(seen, secret)


def test_the_user_group_trap_is_reported_and_fixed(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = lab_hosts["lab1"]
    pristine("lab1")
    # the classic wrong fix: the docker GID as the primary group
    h.exec(f"cd /opt/airflow && sed -i 's/AIRFLOW_UID:-50000}}:0/AIRFLOW_UID:-50000}}:{h.docker_gid}/' docker-compose.yaml"
           f" && {h.compose_cmd} up -d >/dev/null 2>&1")
    assert facts_of("lab1").worker.proc_gid == h.docker_gid
    report = provision("lab1")
    assert report.status == CHANGED, report.error
    assert any("primary group 0" in w for w in report.warnings)
    after = facts_of("lab1")
    assert after.worker.proc_gid == 0 and h.docker_gid in after.worker.proc_groups
    assert after.worker.docker_ps_rc == 0


def test_a_second_run_waits_for_the_host_lock_then_refuses(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    h = lab_hosts["lab1"]
    pristine("lab1")
    original = state_of("lab1")
    h.exec("mkdir -p /var/lib/hostprep/lock && echo other-controller:4242 > /var/lib/hostprep/lock/owner")
    report = provision("lab1", lock_wait=1)
    assert report.status == FAILED
    assert "lock" in (report.error or "") and "other-controller:4242" in (report.error or "")
    h.exec("rm -rf /var/lib/hostprep/lock")
    assert state_of("lab1") == original


def test_rollback_without_a_snapshot_is_a_clear_error(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    pristine("lab2")   # a snapshot left by an earlier run would be rolled back to
    original = state_of("lab2")
    report = rollback("lab2")
    assert report.status == FAILED
    assert report.error == "no snapshot for lab2; nothing was changed"
    assert state_of("lab2") == original


def test_two_hosts_one_unreachable_the_other_is_provisioned(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine, tmp_path: Path) -> None:
    pristine("lab1")
    inv = inventory_with_dead_host(tmp_path)
    reply = commands.provision(commands.Selection(inventory=str(inv), limit="lab1:lab-dead"),
                               ConnectOptions(connect_timeout=3), prov.Options(), as_json=True)
    data = json.loads(reply.text)
    assert reply.code != 0
    assert data["recap"]["lab-dead"]["unreachable"] == 1
    checks = data["hosts"]["lab1"]["checks"]
    ran = [c for c in checks if not c["skipped"]]
    assert all(c["ok"] for c in ran)
    assert data["recap"]["lab1"] == {"ok": 3 + len(ran), "changed": 3, "failed": 0, "unreachable": 0,
                                     "skipped": len(checks) - len(ran)}
    assert facts_of("lab1").worker.docker_ps_rc == 0


def test_provision_task_shows_recap_and_exit_codes(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    pristine("lab2")
    run = subprocess.run(["invoke", "provision", "--host", "lab2"], capture_output=True, text=True, cwd=lab.REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    recap = next(ln for ln in run.stdout.splitlines() if ln.startswith("lab2 : "))
    counts = dict(kv.split("=") for kv in recap.split(":", 1)[1].split())
    checks = [ln for ln in run.stdout.splitlines() if ln.startswith("  [ok] ") or ln.startswith("  [skip] ")]
    assert int(counts["changed"]) == 3 and int(counts["ok"]) == 3 + sum(ln.startswith("  [ok]") for ln in checks)
    assert (counts["failed"], counts["unreachable"]) == ("0", "0") and int(counts["skipped"]) == len(checks) - sum(
        ln.startswith("  [ok]") for ln in checks)
    assert "counts are steps" in run.stdout
    assert "after  docker ps: ok" in run.stdout
    assert re.search(r"time: connect [0-9.]+s \+ facts .* = total [0-9.]+s", run.stdout), run.stdout

    again = subprocess.run(["hostprep", "provision", "--host", "lab2"], capture_output=True, text=True, cwd=lab.REPO)
    assert again.returncode == 0, again.stdout + again.stderr
    rechecked = [ln.split(":")[0] for ln in again.stdout.splitlines() if ln.startswith(("  [ok] ", "  [skip] "))]
    assert rechecked == [ln.split(":")[0] for ln in checks]   # nothing to do: the same checks, the same way
    gid = lab_hosts["lab2"].docker_gid
    assert f"after  id: uid=50000(airflow) gid=0(root) groups=0(root),{gid}" in again.stdout   # `id` ran in the worker
    assert "[ok] `docker ps` in the worker exits 0 (" in again.stdout
    assert re.search(r"lab2 : ok=\d+ +changed=0 ", again.stdout)
    bad = subprocess.run(["invoke", "provision", "--host", "lab2", "--strategy", "777"], capture_output=True,
                         text=True, cwd=lab.REPO)
    assert bad.returncode == 2 and "unknown strategy" in bad.stderr
