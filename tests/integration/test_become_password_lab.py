"""sudo that asks for a password, answered from an env var, on a real lab host; the password never shows.

A throwaway user on lab2 logs in with the lab key and has `ALL=(ALL) ALL` (a
password for every sudo), so hostprep must take the Fabric sudo path with the
password named by ``ansible_become_password: "{{ lookup('env', ...) }}"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from hostprep.inventory.hosts import load_inventory
from tests.integration.conftest import Pristine
from tests.lab import lab

USER = "hpbecome"
PASSWORD = "Hp-t3st-Only-9f2c"   # a test-only password for a user that exists only during this test
ENV = "HOSTPREP_TEST_BECOME"


@pytest.fixture
def password_sudo_host(lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> Iterator[Path]:
    """lab2 with a user whose sudo needs a password; yields an inventory that logs in as that user."""
    h = lab_hosts["lab2"]
    pub = lab.KEY.with_name("id_ed25519.pub").read_text().strip()
    h.exec(f"""set -e
id {USER} >/dev/null 2>&1 || useradd -m -s /bin/sh {USER}
echo '{USER}:{PASSWORD}' | chpasswd
mkdir -p /home/{USER}/.ssh && printf '%s\\n' '{pub}' > /home/{USER}/.ssh/authorized_keys
chown -R {USER}: /home/{USER}/.ssh && chmod 700 /home/{USER}/.ssh && chmod 600 /home/{USER}/.ssh/authorized_keys
echo '{USER} ALL=(ALL) ALL' > /etc/sudoers.d/90-{USER} && chmod 440 /etc/sudoers.d/90-{USER}
""")
    host_vars = dict(load_inventory(lab.INVENTORY).hosts["lab2"].vars, ansible_user=USER,
                     ansible_become_password="{{ lookup('env', '" + ENV + "') }}")
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"lab2": host_vars}}}))
    try:
        yield inv
    finally:
        h.exec(f"rm -f /etc/sudoers.d/90-{USER}; userdel -r {USER} 2>/dev/null; true")


def facts(inv: Path, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if password is not None:
        env[ENV] = password
    return subprocess.run([sys.executable, "-m", "invoke", "facts", "--inventory", str(inv), "--json"],
                          capture_output=True, text=True, env=env, cwd=lab.REPO, timeout=120)


def test_sudo_asks_for_a_password_without_one(password_sudo_host: Path, lab_hosts: dict[str, lab.LabHost]) -> None:
    out = lab_hosts["lab2"].exec(f"su -s /bin/sh {USER} -c 'sudo -n true' 2>&1 || true")
    assert "password is required" in out   # the set-up really needs the password path


def test_facts_through_a_password_sudo_and_the_password_never_shows(password_sudo_host: Path, pristine: Pristine) -> None:
    pristine("lab2")
    done = facts(password_sudo_host, PASSWORD)
    assert done.returncode == 0, done.stderr[-800:]
    data = json.loads(done.stdout[done.stdout.index("{"):])
    f = data["lab2"]
    assert f["docker_gid"] == 121
    assert f["worker"]["id_output"] == "uid=50000(airflow) gid=0(root) groups=0(root)"   # deep checks ran as root
    assert PASSWORD not in done.stdout + done.stderr


def test_a_wrong_password_fails_clearly_and_is_not_echoed(password_sudo_host: Path) -> None:
    wrong = "Wrong-Pw-7d1e"
    done = facts(password_sudo_host, wrong)
    assert done.returncode != 0
    assert "sudo" in (done.stdout + done.stderr).lower()
    assert wrong not in done.stdout + done.stderr and PASSWORD not in done.stdout + done.stderr


def test_an_unset_password_variable_is_named_and_nothing_runs(password_sudo_host: Path) -> None:
    done = facts(password_sudo_host, None)
    assert done.returncode != 0
    assert f"${ENV} is not set" in done.stdout + done.stderr


def test_provision_and_rollback_through_a_password_sudo(password_sudo_host: Path, pristine: Pristine) -> None:
    """The apply's values (a snapshot, the new files) go on stdin only after sudo took the password."""
    pristine("lab2")
    env = dict(os.environ, **{ENV: PASSWORD})

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "invoke", *args, "--inventory", str(password_sudo_host)],
                              capture_output=True, text=True, env=env, cwd=lab.REPO, timeout=300)

    done = invoke("provision", "--json", "--no-smoke")
    assert done.returncode == 0, done.stdout[-800:] + done.stderr[-800:]
    assert json.loads(done.stdout[done.stdout.index("{"):])["hosts"]["lab2"]["status"] == "changed"
    undone = invoke("rollback")
    assert undone.returncode == 0, undone.stdout[-800:] + undone.stderr[-800:]
    assert PASSWORD not in done.stdout + done.stderr + undone.stdout + undone.stderr
