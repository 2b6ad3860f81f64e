"""Issue 12 on the lab, findings 7, 8, 10 and 11: what test_hostile_host_lab.py does not plant.

As there, each test puts its host in the state it needs first (pristine, /opt/airflow handed to the
unprivileged ``mallory``), plants the attack, runs the ``hostprep`` command an operator would, and
shows the refusal, the exit code and that nothing was written where it must not be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from hostprep.host.probe import gather
from hostprep.change.verify import verify
from tests.integration.conftest import connect, settings
from tests.integration.test_hostile_host_lab import hostile, hostprep, owner_writes
from tests.lab import lab


# --- finding 7: the docker GID is looked up in `id`'s group list, not as a substring -------------

def test_a_worker_in_group_999_is_not_taken_for_one_in_docker_group_99(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    h.exec("groupmod -g 99 docker && chgrp 99 /var/run/docker.sock")
    compose = h.exec("cat /opt/airflow/docker-compose.yaml")
    owner_writes(h, "docker-compose.yaml", compose.replace('      DUMB_INIT_SETSID: "0"\n',
                                                           '      DUMB_INIT_SETSID: "0"\n    group_add: ["999"]\n'))
    h.exec("cd /opt/airflow && docker compose up -d --no-deps --force-recreate airflow-worker >/dev/null 2>&1")
    with connect("lab1") as t:
        facts = gather(t, settings("lab1"), deep=True)
    assert facts.docker_gid == 99 and facts.worker.id_output == "uid=50000(airflow) gid=0(root) groups=0(root),999"
    rows = {c.name: c.ok for c in verify(facts, settings("lab1"), "group-add")}
    assert rows["`id` in the worker shows the docker GID"] is False   # ",99" is in ",999": not a match
    assert rows["worker has the docker GID"] is False
    audit = hostprep("audit", "--host", "lab1", "--deep", "--json", state=tmp_path)
    assert audit.returncode == 2
    host = json.loads(audit.stdout)["hosts"]["lab1"]
    assert host["docker_gid"] == 99 and "worker-cannot-reach-docker" in [f["id"] for f in host["findings"]]


# --- finding 8: a host name never reaches the controller's shell --------------------------------

def test_a_host_name_holding_a_command_never_runs_on_the_controller(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    """No ansible_host, so the SSH config's ProxyCommand gets the name as %h, inside `sh -c`."""
    h = hostile("lab1")
    canary = tmp_path / "canary"
    relay = lab.REPO / "tests" / "lab" / "relay.py"
    base = dict(yaml.safe_load(lab.INVENTORY.read_text())["all"]["vars"])
    base["hostprep_known_hosts_file"] = str(tmp_path / "known_hosts")   # --accept-new may write there, not the lab's
    names = [f"lab1$(touch${{IFS}}{canary}1)", f"lab1`touch${{IFS}}{canary}2`", f"lab1;touch${{IFS}}{canary}3"]
    for name in names:
        inv = tmp_path / "inv.yml"
        inv.write_text(yaml.safe_dump({"all": {"vars": base, "hosts": {name: {}}}}))
        (tmp_path / "ssh_config").write_text(
            f'Host *\n  ProxyCommand sh -c "echo %h >&2; exec {sys.executable} {relay} 127.0.0.1 {h.port}"\n')
        env = dict(os.environ, HOSTPREP_SSH_CONFIG=str(tmp_path / "ssh_config"), HOSTPREP_STATE_DIR=str(tmp_path / "s"))
        run = subprocess.run([sys.executable, "-m", "hostprep", "facts", "-i", str(inv), "--json", "--shallow",
                              "--accept-new"],   # so that nothing but the name could stop the ProxyCommand
                             capture_output=True, text=True, env=env, cwd=lab.REPO, timeout=120)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("canary")) == []   # nothing ran
        assert run.returncode == 2, run.stdout + run.stderr
        assert "host name 'lab1" in run.stderr and "only letters, digits and _ . : -" in run.stderr, run.stderr
    assert not (tmp_path / "s" / "hosts").exists()   # no controller path built from such a name


# --- finding 10: the controller's state is private and never written through a link -------------

def test_controller_state_is_private_and_never_written_through_a_planted_link(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    hostile("lab2")
    state = tmp_path / "state"
    host_dir = state / "hosts" / "lab2"
    host_dir.mkdir(parents=True)
    for d in (state, state / "hosts", host_dir):
        d.chmod(0o755)                                   # as hostprep before issue 12 left them
    line = {"at": "2026-11-30T10:00:00+00:00", "host": "lab2", "status": "drift", "deep": False, "phase": "audit",
            "error": None, "findings": [{"key": "never-applied", "id": "never-applied", "severity": "warning",
                                         "detail": "x" * 200}]}
    history = host_dir / "audit.jsonl"
    history.write_text("".join(json.dumps(dict(line, at=f"2026-11-30T10:{i // 60 % 60:02d}:{i % 60:02d}+00:00"))
                               + "\n" for i in range(1800)))   # past 512 KiB: the next append rewrites it
    history.chmod(0o644)
    victim = tmp_path / "victim"
    victim.write_text("the controller's own file\n")
    (host_dir / "audit.jsonl.tmp").symlink_to(victim)     # the name the old rewrite used
    audit = hostprep("audit", "--host", "lab2", state=state)
    assert audit.returncode == 2, audit.stdout + audit.stderr
    assert victim.read_text() == "the controller's own file\n"
    assert history.stat().st_size < 512 * 1024           # compacted, in place
    run = hostprep("provision", "--host", "lab2", state=state)
    assert run.returncode == 0, run.stdout + run.stderr
    dirs = [state, *[p for p in state.rglob("*") if p.is_dir()]]
    files = [p for p in state.rglob("*") if p.is_file() and not p.is_symlink()]
    assert {oct(d.stat().st_mode & 0o777) for d in dirs} == {"0o700"}, [(d, oct(d.stat().st_mode)) for d in dirs]
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}, [(f, oct(f.stat().st_mode)) for f in files]
    assert any(f.suffix == ".json" for f in files) and history in files


# --- finding 11: parsers refuse, for that host only, and never hang -----------------------------

BOMB = "x-a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"x-{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def test_an_alias_bomb_in_the_owners_compose_file_is_refused_for_that_host_in_seconds(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    hostile("lab2")
    compose = h.exec("cat /opt/airflow/docker-compose.yaml")
    owner_writes(h, "docker-compose.yaml", BOMB + compose.replace('  user: "${AIRFLOW_UID:-50000}:0"\n', "  user: *i\n"))
    env = dict(os.environ, HOSTPREP_STATE_DIR=str(tmp_path / "s"), HOSTPREP_INVENTORY=str(lab.INVENTORY))
    outs = {}
    for args in (("provision", "--check"), ("provision", "--json"), ("audit", "--report-dir", str(tmp_path / "r"))):
        run = subprocess.run([sys.executable, "-m", "hostprep", *args, "--limit", "lab1:lab2"], capture_output=True,
                             text=True, env=env, cwd=lab.REPO, timeout=120)   # the old loader expanded 9^9 nodes
        assert run.returncode == 2 and "Traceback" not in run.stdout + run.stderr, run.stdout[-2000:] + run.stderr
        outs[args[0] + args[1]] = run.stdout
    assert "  ! docker-compose.yaml: aliases expand to more than 100000 nodes" in outs["provision--check"]
    assert "== lab2: changed" in outs["provision--check"]                # the other host is planned as ever
    hosts = json.loads(outs["provision--json"])["hosts"]
    assert "aliases expand" in hosts["lab1"]["error"] and hosts["lab2"]["status"] == "changed"
    assert (tmp_path / "r" / "audit.json").exists()                      # the audit reads no compose file
    assert h.exec("stat -c %U /opt/airflow/.env; ls /opt/airflow") == \
        "mallory\nDockerfile\nconfig\ndags\ndocker-compose.yaml\nlogs\nplugins\n"   # lab1 untouched


def test_a_torn_history_line_and_a_mistyped_record_still_give_every_report(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab2")
    h.exec("mkdir -p /var/lib/hostprep && chmod 700 /var/lib/hostprep && "
           """printf '{"strategy": ["group-add"], "docker_gid": "121", "services": 5}' > /var/lib/hostprep/state.json""")
    state, reports = tmp_path / "state", tmp_path / "reports"
    first = hostprep("audit", "--host", "lab2", state=state)
    assert first.returncode == 2, first.stdout + first.stderr
    history = state / "hosts" / "lab2" / "audit.jsonl"
    with history.open("a") as f:
        f.write('{"at": "2026-12-01T10:05:00+00:00", "host": "lab2", "sta')   # a run killed mid-write
    run = hostprep("audit", "--host", "lab2", "--json", "--report-dir", str(reports), state=state)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "record-unreadable" in [f["id"] for f in json.loads(run.stdout)["hosts"]["lab2"]["findings"]]
    assert sorted(p.name for p in reports.iterdir()) == ["audit-junit.xml", "audit.json", "hostprep_audit.prom"]
    shown = hostprep("audit.history", "--host", "lab2", state=state)
    assert shown.returncode == 0 and "skipped 1 torn or unreadable history line" in shown.stderr
    assert "record-unreadable" in shown.stdout
