"""A run cut by a reboot, a SIGTERM or a SIGINT while `compose up` recreates the worker, with the controller killed
(issue 23, item 2), for real on the lab: each leads to the recovery a `kill -9` gets. `hostprep status` says the run
died mid-change; the next provision puts the snapshot back, removes what Compose left of the recreate (saying so)
and converges; the rollback after it gives back the original host exactly.

Compose is held deterministically: a watcher on the host reads dockerd's events and stops (SIGSTOP) the running
`compose up` the moment it renames the old worker (``<id>_<name>``), the point after which an interrupted recreate
leaves that copy behind; the interruption comes while it is held."""

from __future__ import annotations

import re
import threading

import pytest

from hostprep.change import provision as prov
from hostprep.host.lock import parse_holder
from hostprep.change.results import CHANGED, FAILED
from tests.integration.conftest import Pristine, state_of
from tests.integration.test_interrupted_lab import (COMPOSE_UP, UNMOUNT, controller, kill, no_lock, provision,
                                                    rollback, status, wait_for)
from tests.lab import lab

# Started before the run: the first container created or renamed under Compose's temporary name ("<12 hex>_<name>":
# Compose 2.2x creates the new worker so, v1 renames the old one so) stops every process of the `compose up` (the
# docker CLI and its plugin, found by their command line, stopped by pid) and says so.
HOLD = r"""rm -f /tmp/hp-held /tmp/hp-ev && mkfifo /tmp/hp-ev
setsid sh -c '
timeout 600 docker events --filter type=container --filter event=create --filter event=rename \
    --format "{{.Actor.Attributes.name}}" >/tmp/hp-ev &
ev=$!
h="[0-9a-f]"
while read -r name; do case "$name" in $h$h$h$h$h$h$h$h$h$h$h${h}_*) break ;; esac; done </tmp/hp-ev
for p in $(pgrep -f "[u]p -d --no-deps --force-recreate"); do kill -STOP "$p"; done
echo "$name" >/tmp/hp-held
kill "$ev"' >/dev/null 2>&1 </dev/null &
"""
LEFTOVERS = "docker ps -a --format '{{.Names}} {{.ID}}' | grep -E '^[0-9a-f]{12}_' || true"


@pytest.fixture
def lab1(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> lab.LabHost:
    """lab1 pristine, without a copy an earlier interrupted recreate left (the pristine reset keeps containers)."""
    h = lab_hosts["lab1"]
    h.exec(UNMOUNT)
    for line in h.exec(LEFTOVERS).splitlines():
        h.exec(f"docker rm -f {line.split()[1]}")
    pristine("lab1")
    wait_for(h, "docker ps --filter label=com.docker.compose.service=airflow-worker --filter status=running -q")
    return h


def held_recreate(h: lab.LabHost) -> dict[str, str]:
    """A provision run from a controller process, held on the host right after Compose renamed the old worker;
    the controller is killed. Returns the run's lock holder record (its pid and snapshot)."""
    h.exec(HOLD)
    wait_for(h, "pgrep -f '[d]ocker events --filter type=container'")
    ctl = controller("provision", "--host", "lab1", "--no-smoke")
    try:
        wait_for(h, COMPOSE_UP, timeout=180)
        renamed = wait_for(h, "cat /tmp/hp-held 2>/dev/null", timeout=180)
    finally:
        kill(ctl)
    assert re.fullmatch(r"[0-9a-f]{12}_\S+", renamed), renamed
    return parse_holder(h.exec("cat /var/lib/hostprep/lock/holder"))


def signal_run(h: lab.LabHost, holder: dict[str, str], sig: str) -> None:
    """``sig`` to the run's whole process group (the interpreter and the Compose it waits for), as a shutdown or
    Ctrl-C sends it; then the held Compose is let go (a stopped process gets its signal when it continues)."""
    pgid = h.exec(f"ps -o pgid= -p {holder['pid']}").strip()
    h.exec(f"kill -{sig} -{pgid} && kill -CONT -{pgid}")
    wait_for(h, f"kill -0 {holder['pid']} 2>/dev/null || echo gone")


def recovers_and_rolls_back(h: lab.LabHost, holder: dict[str, str], original: dict[str, object]) -> None:
    """status says died mid-change; provision recovers (removing a leftover, saying so) and converges; rollback
    gives the original back exactly."""
    seen = status()
    assert seen["mid_change"] == "yes" and "died" in seen["last_run"], seen
    assert seen["lock"].startswith("STALE"), seen
    left = [line.split()[0] for line in h.exec(LEFTOVERS).splitlines()]
    assert left, "the held recreate leaves Compose's temporary copy of the worker"
    again = provision("lab1", smoke=False)
    assert again.status == CHANGED, again.error
    assert any(f"restored from snapshot {holder['snapshot']}" in w for w in again.warnings), again.warnings
    said = [s.name for s in again.plan.steps] + again.warnings if again.plan else again.warnings
    for name in left:
        assert any(f"leftover container {name} (left by an interrupted recreate)" in s for s in said), (name, said)
    assert h.exec(LEFTOVERS).strip() == "" and no_lock(h)
    back = rollback("lab1")
    assert back.status == CHANGED and back.data["differences"] == [], (back.error, back.data.get("differences"))
    assert state_of("lab1") == original and no_lock(h)


def test_a_reboot_during_compose_up_with_the_controller_killed_recovers_and_rolls_back_exactly(
        lab1: lab.LabHost) -> None:
    original = state_of("lab1")
    holder = held_recreate(lab1)
    lab.reboot(lab1)
    recovers_and_rolls_back(lab1, holder, original)


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_a_signal_to_the_run_during_compose_up_with_the_controller_killed_recovers_and_rolls_back_exactly(
        lab1: lab.LabHost, sig: str) -> None:
    original = state_of("lab1")
    holder = held_recreate(lab1)
    signal_run(lab1, holder, sig)
    assert not no_lock(lab1), "a run signalled mid-change leaves its lock for the next run to recover"
    assert f"interrupted by SIG{sig} mid-change" in lab1.exec("cat /var/lib/hostprep/journal.log")
    recovers_and_rolls_back(lab1, holder, original)


def test_a_sigterm_to_the_run_while_the_controller_follows_it_is_restored_by_that_controller(
        lab1: lab.LabHost) -> None:
    """With the controller still there: it sees the run end mid-change and restores the snapshot at once (its own
    token names the lock the run left), removing Compose's leftover first."""
    original = state_of("lab1")
    lab1.exec(HOLD)
    wait_for(lab1, "pgrep -f '[d]ocker events --filter type=container'")
    box: list[prov.HostReport] = []
    th = threading.Thread(target=lambda: box.append(provision("lab1", smoke=False)))
    th.start()
    wait_for(lab1, "cat /tmp/hp-held 2>/dev/null", timeout=180)
    signal_run(lab1, parse_holder(lab1.exec("cat /var/lib/hostprep/lock/holder")), "TERM")
    th.join(600)
    report = box[0]
    assert report.status == FAILED and "restored from snapshot" in (report.error or ""), report.error
    assert lab1.exec(LEFTOVERS).strip() == "" and no_lock(lab1)
    assert state_of("lab1") == original
