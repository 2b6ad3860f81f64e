"""Issue 12 on the lab: the owner of /opt/airflow (or the host itself) attacks, hostprep holds.

Each test puts its host in the state it needs first: pristine, then /opt/airflow and its files
handed to an unprivileged user ``mallory`` (uid 1500), who plants what the attack needs with
``runuser`` (never root). Root-only canaries stand in for /etc/passwd and friends; every test
shows their bytes, owner and mode unchanged, hostprep's refusal message and its exit code.
Runs go through the ``hostprep`` command (``python -m hostprep``), as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.conftest import connect, settings
from tests.lab import lab

CANARY = "/root/hpsec-canary"
CANARY_DIR = "/srv/hpsec-canary-dir"
SECRET = "hunter2-not-for-your-eyes"
DB_SECRET = "pg-pass-0xdeadbeef"


def hostprep(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOSTPREP_STATE_DIR=str(state), HOSTPREP_INVENTORY=str(lab.INVENTORY))
    return subprocess.run([sys.executable, "-m", "hostprep", *args], capture_output=True, text=True,
                          cwd=lab.REPO, env=env, timeout=600)


CLEAN = """cd /opt/airflow && for d in dags logs plugins config .env; do [ -L $d ] && rm -f $d; done
    rm -rf /opt/airflow/*.real /opt/airflow/.env.saved /opt/airflow/*.hostprep-tmp /opt/airflow/.*.hostprep-tmp
    chown 0:0 /opt/airflow"""


@pytest.fixture(autouse=True)
def leave_no_links_behind(lab_hosts: dict[str, lab.LabHost]) -> Iterator[None]:
    """Other tests' lab resets keep bind folders as they are: never leave them a planted link."""
    yield
    for h in lab_hosts.values():
        if not h.real:
            h.exec(CLEAN, check=False)


def hostile(name: str) -> lab.LabHost:
    """The host pristine, /opt/airflow and its top-level files owned by mallory, canaries in place."""
    h = {x.name: x for x in lab.running_hosts()}[name]
    h.exec(CLEAN, check=False)
    lab.provision_pristine(h)
    h.exec(f"""set -e
        id mallory >/dev/null 2>&1 || useradd -u 1500 -M -s /bin/sh mallory
        chown mallory:mallory /opt/airflow /opt/airflow/.env /opt/airflow/Dockerfile /opt/airflow/docker-compose.yaml
        rm -rf /var/lib/hostprep
        printf 'root-only canary\\n' > {CANARY}; chown 0:0 {CANARY}; chmod 600 {CANARY}
        rm -rf {CANARY_DIR}; mkdir -p {CANARY_DIR}; chown 1234:1234 {CANARY_DIR}; chmod 700 {CANARY_DIR}""")
    return h


def as_mallory(h: lab.LabHost, script: str) -> None:
    h.exec(f"cd /opt/airflow && runuser -u mallory -- sh -c '{script}'")


def owner_writes(h: lab.LabHost, name: str, text: str) -> None:
    """The project's owner (mallory, never root) replaces one of its files."""
    h.exec(f"cd /opt/airflow && runuser -u mallory -- sh -c 'cat > {name}'", input=text.encode())


def canary(h: lab.LabHost) -> str:
    return h.exec(f"stat -c '%u:%g %a' {CANARY} {CANARY_DIR}; ls -A {CANARY_DIR}; cat {CANARY}")


UNTOUCHED = "0:0 600\n1234:1234 700\nroot-only canary\n"


# --- finding 1: a planted temp-file link ---------------------------------------------------------

def test_a_planted_temp_file_link_is_never_written_through(lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    # the names the old apply.sh used for its temp files, pointing at a root-only file
    as_mallory(h, f"for f in .env docker-compose.hostprep.yml; do ln -s {CANARY} $f.hostprep-tmp; done")
    assert canary(h) == UNTOUCHED
    run = hostprep("provision", "--host", "lab1", state=tmp_path)
    assert canary(h) == UNTOUCHED   # first the attack's effect, then hostprep's verdict
    assert run.returncode == 0, run.stdout + run.stderr
    assert h.exec("stat -c '%U %F' /opt/airflow/.env") == "mallory regular file\n"
    assert "COMPOSE_FILE=" in h.exec("cat /opt/airflow/.env")
    back = hostprep("rollback", "--host", "lab1", state=tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert canary(h) == UNTOUCHED
    # the links are still mallory's links; hostprep made its own temp names and left none behind
    assert h.exec("ls -A /opt/airflow | grep hostprep-tmp") == ".env.hostprep-tmp\ndocker-compose.hostprep.yml.hostprep-tmp\n"
    assert h.exec("ls -A /opt/airflow | grep -cE '\\.hostprep\\.[A-Za-z0-9]{10}$' || true") == "0\n"


# --- finding 2: project files read through links -------------------------------------------------

def test_a_project_file_replaced_by_a_link_is_refused_by_plan_audit_and_rollback(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab2")
    first = hostprep("provision", "--host", "lab2", state=tmp_path)   # a snapshot to roll back to
    assert first.returncode == 0, first.stdout + first.stderr
    as_mallory(h, f"mv .env .env.saved && ln -s {CANARY} .env")

    check = hostprep("provision", "--host", "lab2", "--check", "--json", state=tmp_path)
    assert "root-only canary" not in check.stdout + check.stderr   # the target's bytes never shown
    assert check.returncode == 2
    assert "refused: /opt/airflow/.env is a symlink" in check.stdout
    for args in (("provision", "--host", "lab2"), ("rollback", "--host", "lab2")):
        run = hostprep(*args, state=tmp_path)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "/opt/airflow/.env is a symlink" in run.stdout
        assert canary(h) == UNTOUCHED
        assert h.exec("stat -c '%U %F' /opt/airflow/.env") == "mallory symbolic link\n"
    audit = hostprep("audit", "--host", "lab2", "--json", state=tmp_path)
    assert audit.returncode == 2
    finding = json.loads(audit.stdout)["hosts"]["lab2"]["findings"][0]
    assert (finding["id"], finding["severity"]) == ("unsafe-path", "critical")
    assert "root-only canary" not in audit.stdout
    snaps = list((tmp_path / "hosts" / "lab2" / "snapshots").glob("*.json"))
    assert len(snaps) == 1 and "root-only canary" not in snaps[0].read_text()


# --- finding 3: bind folders replaced by links ---------------------------------------------------

def test_a_bind_folder_swapped_for_a_link_is_refused_before_any_chown(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    h.exec("chown 0:0 /opt/airflow/logs && chmod 755 /opt/airflow/logs")   # provision will chown it
    first = hostprep("provision", "--host", "lab1", state=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert h.exec("stat -c %u /opt/airflow/logs") == "50000\n"
    # rollback would chown logs back to 0:0 755; mallory swaps in a link to someone else's folder
    as_mallory(h, f"mv logs logs.real && ln -s {CANARY_DIR} logs")
    back = hostprep("rollback", "--host", "lab1", state=tmp_path)
    assert canary(h) == UNTOUCHED   # someone else's folder: owner and mode as they were
    assert back.returncode == 2, back.stdout + back.stderr
    assert "refused: /opt/airflow/logs is a symlink" in back.stdout
    again = hostprep("provision", "--host", "lab1", state=tmp_path)
    assert again.returncode == 2 and "/opt/airflow/logs is a symlink" in again.stdout
    assert canary(h) == UNTOUCHED
    audit = hostprep("audit", "--host", "lab1", state=tmp_path)
    assert audit.returncode == 2 and "unsafe-path" in audit.stdout


def test_apply_refuses_a_link_planted_after_the_facts_were_gathered(lab_hosts: dict[str, lab.LabHost]) -> None:
    """The race: facts said "regular file", the link appears before apply acts. apply.sh re-checks."""
    from hostprep.change import apply
    from hostprep.host.probe import gather
    from hostprep.change.plan import Action

    h = hostile("lab2")
    h.exec("chown 0:0 /opt/airflow/plugins")
    with connect("lab2") as t:
        before = gather(t, settings("lab2"), deep=False)
        as_mallory(h, f"mv plugins plugins.real && ln -s {CANARY_DIR} plugins && rm .env && ln -s {CANARY} .env")
        owner = apply.lock_owner()
        for action in (Action("chown", ("/opt/airflow/plugins", "50000", "0")),
                       Action("chmod", ("/opt/airflow/plugins", "777")),
                       Action("write", ("/opt/airflow/.env", "1500", "1500", "644"), "X=1\n"),
                       Action("mkdir", ("/opt/airflow/plugins", "50000", "0", "755")),
                       Action("chmod", ("/opt/airflow/plugins/x", "777"))):
            out = apply.run(t, before, "restore", owner=owner, actions=[action])
            assert out.exit_code == apply.REFUSED, out.log
            assert "symlink" in out.error() or "already a link" in out.error(), out.error()
        apply.run(t, before, "release", owner=owner)
    assert canary(h) == UNTOUCHED


# --- finding 4: forged snapshots from a host -----------------------------------------------------

def test_a_forged_snapshot_on_the_host_never_reaches_the_controllers_disk(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    forged = {"id": "20991231T235959Z-ffff", "host": "lab2", "strategy": "group-add", "services": ["airflow-worker"],
              "socket": {"path": "/var/run/docker.sock", "mode": None}, "files": {}, "dirs": {}, "facts": {},
              "created": "x", "steps": [], "record": None, "image": None}
    h.exec("mkdir -p /var/lib/hostprep/snapshots && cat > /var/lib/hostprep/snapshots/20991231T235959Z-ffff.json",
           input=json.dumps(forged).encode())
    state = tmp_path / "state"
    run = hostprep("rollback", "--host", "lab1", state=state)
    assert not (state / "hosts" / "lab2").exists()   # nothing planted for the other host
    assert run.returncode == 2
    assert "snapshot refused: it names host 'lab2'" in run.stdout
    # an id that is a path, and a file the host's project does not have
    forged.update(host="lab1", id="../../../../tmp/hpsec-planted")
    h.exec("cat > /var/lib/hostprep/snapshots/20991231T235959Z-ffff.json", input=json.dumps(forged).encode())
    run = hostprep("rollback", "--host", "lab1", state=state)
    assert run.returncode == 2 and "is not a hostprep snapshot id" in run.stdout
    forged.update(id="20991231T235959Z-ffff", files={"/etc/cron.d/x": {"existed": False}})
    h.exec("cat > /var/lib/hostprep/snapshots/20991231T235959Z-ffff.json", input=json.dumps(forged).encode())
    run = hostprep("rollback", "--host", "lab1", state=state)
    # refused before a byte of it is used: by its shape (this forged one has no facts), else by the path rule
    # (the rule itself, on a well-formed snapshot: tests/unit/test_hostile_input.py)
    assert run.returncode == 2 and "snapshot refused" in run.stdout, run.stdout
    assert not list(state.rglob("*.json")) and not Path("/tmp/hpsec-planted.json").exists()
    assert h.exec("ls /etc/cron.d/x 2>/dev/null || echo absent") == "absent\n"


# --- finding 5: secrets in output ----------------------------------------------------------------

def test_passwords_in_env_never_show_in_check_json_reports_or_history(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab2")
    h.exec(f"printf 'AIRFLOW_UID=50000\\n_AIRFLOW_WWW_USER_PASSWORD={SECRET}\\n"
           f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{DB_SECRET}@postgres/airflow\\n'"
           " > /opt/airflow/.env")
    state, reports = tmp_path / "state", tmp_path / "reports"
    outputs = [hostprep("provision", "--host", "lab2", "--check", state=state),
               hostprep("provision", "--host", "lab2", "--check", "--json", state=state),
               hostprep("provision", "--host", "lab2", "--json", state=state),
               hostprep("audit", "--host", "lab2", "--json", "--report-dir", str(reports), state=state),
               hostprep("audit.history", "--json", state=state),
               hostprep("rollback", "--host", "lab2", "--json", state=state)]
    assert [o.returncode for o in outputs] == [0, 0, 0, 0, 0, 0], [o.stdout[-600:] for o in outputs]
    shown = "".join(o.stdout + o.stderr for o in outputs)
    shown += "".join(p.read_text() for p in reports.iterdir())
    shown += "".join(p.read_text() for p in state.rglob("*.jsonl"))
    assert SECRET not in shown and DB_SECRET not in shown
    assert "_AIRFLOW_WWW_USER_PASSWORD=********" in outputs[0].stdout   # the diff shows the line, masked
    # the snapshot keeps the real bytes, private
    snap = next((state / "hosts" / "lab2" / "snapshots").glob("*.json"))
    assert oct(snap.stat().st_mode & 0o777) == "0o600" and "content_b64" in snap.read_text()
    for d in (state, state / "hosts", state / "hosts" / "lab2", snap.parent):
        assert oct(d.stat().st_mode & 0o777) == "0o700", d
    assert SECRET in h.exec("cat /opt/airflow/.env")   # rolled back byte for byte


# --- finding 6: a newline in a value -------------------------------------------------------------

def test_a_worker_service_with_a_trailing_newline_is_refused_before_connecting(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    import yaml

    h = hostile("lab1")
    inv = yaml.safe_load(lab.INVENTORY.read_text())
    inv["all"]["children"]["lab"]["children"]["compose_v2"]["hosts"]["lab1"]["hostprep_worker_service"] = \
        "airflow-worker\n"
    bad = tmp_path / "inv.yml"
    bad.write_text(yaml.safe_dump(inv))
    before = h.exec("sha256sum /opt/airflow/.env; ls -A /opt/airflow")
    run = hostprep("provision", "--inventory", str(bad), "--host", "lab1", state=tmp_path)
    assert h.exec("sha256sum /opt/airflow/.env; ls -A /opt/airflow") == before   # the host was not touched
    assert run.returncode == 2
    assert "lab1: hostprep_worker_service='airflow-worker\\n'" in run.stdout + run.stderr


# --- findings 7 and 9: a fake `id` (and `docker`) planted by a DAG in the worker -----------------

def test_a_fake_id_in_the_workers_path_fakes_nothing(lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = hostile("lab1")
    # the official image puts ~/.local/bin first in PATH; give the lab worker the same PATH
    h.exec("""set -e; cd /opt/airflow
        sed -i 's|      DUMB_INIT_SETSID: "0"|      DUMB_INIT_SETSID: "0"\\n      PATH: /home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|' docker-compose.yaml
        docker compose up -d --no-deps --force-recreate airflow-worker >/dev/null 2>&1""")
    fake_id = (f'#!/bin/sh\necho "uid=50000(airflow) gid=0(root) groups=0(root),{h.docker_gid}(docker)"\n'
               'printf "\\n@@hostprep:docker_group\\ndocker:x:4242:\\n"\n').encode()
    for name, body in (("id", fake_id), ("docker", b"#!/bin/sh\nexit 0\n")):
        h.exec("docker exec -i -u 50000 airflow-airflow-worker-1 sh -c "
               f"'mkdir -p $HOME/.local/bin && cat > $HOME/.local/bin/{name} && chmod +x $HOME/.local/bin/{name}'",
               input=body)
    assert f"{h.docker_gid}(docker)" in h.exec("docker exec -u 50000 airflow-airflow-worker-1 sh -c id")   # the fake works
    run = hostprep("audit", "--host", "lab1", "--deep", "--json", state=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    host = json.loads(run.stdout)["hosts"]["lab1"]
    assert host["docker_gid"] == h.docker_gid
    assert "worker-cannot-reach-docker" in [f["id"] for f in host["findings"]]
    facts = hostprep("facts", "--host", "lab1", "--json", state=tmp_path)
    worker = json.loads(facts.stdout)["lab1"]["worker"]
    assert worker["id_output"] == "uid=50000(airflow) gid=0(root) groups=0(root)"
    assert worker["docker_ps_rc"] != 0
