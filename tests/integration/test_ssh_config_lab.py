"""~/.ssh/config on real lab hosts: HostName, ProxyJump and ProxyCommand, host keys checked at every hop.

lab1 serves as its own jump host: the jump session to 127.0.0.1:2201 opens a
direct-tcpip channel to 127.0.0.1:22 inside lab1, so all traffic stays on loopback
and lab1's sshd logs the inner login as coming from 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hostprep.inventory.hosts import load_inventory
from tests.lab import lab


def run_facts(tmp_path: Path, host_vars: dict[str, object], ssh_config: str, known_hosts: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "ssh_config").write_text(ssh_config)
    (tmp_path / "known_hosts").write_text(known_hosts)
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"viaconfig": {
        **host_vars, "hostprep_known_hosts_file": str(tmp_path / "known_hosts")}}}}))
    env = dict(os.environ, HOSTPREP_SSH_CONFIG=str(tmp_path / "ssh_config"))
    return subprocess.run([sys.executable, "-m", "invoke", "facts", "--inventory", str(inv), "--json", "--shallow"],
                          capture_output=True, text=True, env=env, cwd=lab.REPO, timeout=120)


@pytest.fixture
def lab1(lab_hosts: dict[str, lab.LabHost]) -> tuple[lab.LabHost, dict[str, object], str]:
    h = lab_hosts["lab1"]
    host_vars = dict(load_inventory(lab.INVENTORY).hosts["lab1"].vars)
    key = h.exec("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    return h, host_vars, f"{key[0]} {key[1]}"


def logins_from_loopback(h: lab.LabHost) -> int:
    return h.sshd_log().count("Accepted publickey for ubuntu from 127.0.0.1 ")


def test_proxyjump_reaches_the_host_through_a_verified_jump_host(lab1, tmp_path: Path) -> None:
    h, host_vars, key = lab1
    before = logins_from_loopback(h)
    conf = f"Host lab1-jumped\n  HostName 127.0.0.1\n  ProxyJump ubuntu@127.0.0.1:{h.port}\n"
    both = f"[127.0.0.1]:{h.port} {key}\n127.0.0.1 {key}\n"
    res = run_facts(tmp_path, {**host_vars, "ansible_host": "lab1-jumped", "ansible_port": 22}, conf, both)
    assert res.returncode == 0, res.stderr + res.stdout
    assert json.loads(res.stdout)["viaconfig"]["docker_gid"] == h.docker_gid
    assert logins_from_loopback(h) == before + 1   # the inner login came through the jump


def test_an_unknown_jump_host_key_is_refused(lab1, tmp_path: Path) -> None:
    h, host_vars, key = lab1
    conf = f"Host lab1-jumped\n  HostName 127.0.0.1\n  ProxyJump ubuntu@127.0.0.1:{h.port}\n"
    res = run_facts(tmp_path, {**host_vars, "ansible_host": "lab1-jumped", "ansible_port": 22}, conf,
                    f"127.0.0.1 {key}\n")   # the target's key only: the jump host is unknown
    assert res.returncode != 0
    data = json.loads(res.stdout)["viaconfig"]
    assert data["status"] == "unreachable"
    assert "jump host 127.0.0.1" in data["error"] and "not in" in data["error"], data["error"]


def test_proxycommand_carries_the_session(lab1, tmp_path: Path) -> None:
    h, host_vars, key = lab1
    relay = lab.REPO / "tests" / "lab" / "relay.py"
    conf = f"Host lab1-proxied\n  HostName 127.0.0.1\n  ProxyCommand {sys.executable} {relay} %h {h.port}\n"
    res = run_facts(tmp_path, {**host_vars, "ansible_host": "lab1-proxied"}, conf, f"[127.0.0.1]:{h.port} {key}\n")
    assert res.returncode == 0, res.stderr + res.stdout
    assert json.loads(res.stdout)["viaconfig"]["docker_gid"] == h.docker_gid


def test_hostname_port_and_user_come_from_ssh_config_when_the_inventory_has_none(lab1, tmp_path: Path) -> None:
    h, host_vars, key = lab1
    bare = {k: v for k, v in host_vars.items() if k not in ("ansible_host", "ansible_port", "ansible_user")}
    conf = f"Host viaconfig\n  HostName 127.0.0.1\n  Port {h.port}\n  User ubuntu\n"
    res = run_facts(tmp_path, bare, conf, f"[127.0.0.1]:{h.port} {key}\n")
    assert res.returncode == 0, res.stderr + res.stdout
    assert json.loads(res.stdout)["viaconfig"]["docker_gid"] == h.docker_gid
