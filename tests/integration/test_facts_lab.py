"""Facts on real lab hosts: one exec, the truth the lab set up, unreachable hosts isolated."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from hostprep.cli import commands
from hostprep.host.probe import gather
from hostprep.fleet.fanout import ConnectOptions
from hostprep.inventory.settings import SettingsError
from tests.integration.conftest import Pristine, connect, settings
from tests.lab import lab


@pytest.mark.parametrize("name", ["lab1", "lab2"])
def test_facts_match_what_the_lab_set_up_in_one_exec(name: str, pristine: Pristine) -> None:
    h = pristine(name)
    with connect(name) as t:
        f = gather(t, settings(name), versions=True)
        assert t.execs == 1
    assert f.docker_gid == h.docker_gid
    assert (f.socket.mode, f.socket.owner, f.socket.group, f.socket.gid) == (0o660, "root", "docker", h.docker_gid)
    assert f.socket.has_acl is False
    assert f.dockerd_running and f.docker_version and f.compose_version
    assert f.compose_flavour == h.compose
    assert f.compose_file is not None and f.compose_file.name == "docker-compose.yaml"
    assert f.worker.running and f.worker.user == "50000:0" and f.worker.group_add == ()
    assert (f.worker.proc_uid, f.worker.proc_gid, f.worker.proc_groups) == (50000, 0, (0,))
    assert f.worker.id_output == "uid=50000(airflow) gid=0(root) groups=0(root)"
    assert f.worker.docker_ps_rc == 1 and "permission denied" in (f.worker.docker_ps_output or "")
    assert [(d.name, d.uid, d.gid) for d in f.bind_dirs] == [(n, 50000, 0) for n in ("dags", "logs", "plugins", "config")]
    assert f.record is None


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def inventory_with_dead_host(tmp_path: Path) -> Path:
    """The lab inventory plus a host on a closed loopback port."""
    text = lab.INVENTORY.read_text()
    text += ("    dead:\n      hosts:\n        lab-dead:\n          ansible_host: 127.0.0.1\n"
             f"          ansible_port: {closed_port()}\n")
    path = tmp_path / "inv.yml"
    path.write_text(text)
    return path


def test_unreachable_host_is_reported_while_others_succeed(lab_hosts: dict[str, lab.LabHost], pristine: Pristine,
                                                           tmp_path: Path) -> None:
    pristine("lab1", "lab2")
    inv = inventory_with_dead_host(tmp_path)
    reply = commands.facts(commands.Selection(inventory=str(inv)), ConnectOptions(connect_timeout=3), as_json=True)
    data = json.loads(reply.text)
    assert reply.code != 0
    assert data["lab-dead"]["status"] == "unreachable"
    assert "cannot connect" in data["lab-dead"]["error"]
    assert data["lab1"]["docker_gid"] == lab_hosts["lab1"].docker_gid
    assert data["lab2"]["docker_gid"] == lab_hosts["lab2"].docker_gid


def test_shell_metacharacters_in_a_host_var_are_refused_and_nothing_runs(
        lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    h = lab_hosts["lab1"]
    h.exec("rm -f /tmp/hostprep-pwned")
    data = yaml.safe_load(lab.INVENTORY.read_text())
    data["all"]["children"]["lab"]["children"]["compose_v2"]["hosts"]["lab1"]["hostprep_worker_service"] = \
        "airflow-worker; touch /tmp/hostprep-pwned"
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump(data))
    with pytest.raises(SettingsError, match="hostprep_worker_service"):
        commands.facts(commands.Selection(inventory=str(inv), host="lab1"), ConnectOptions(), as_json=True)
    assert h.exec("test -e /tmp/hostprep-pwned && echo yes || echo no").strip() == "no"


def test_values_reaching_the_remote_shell_are_quoted(lab_hosts: dict[str, lab.LabHost]) -> None:
    h = lab_hosts["lab1"]
    h.exec("rm -f /tmp/hostprep-pwned")
    evil = "x; touch /tmp/hostprep-pwned; $(touch /tmp/hostprep-pwned) `touch /tmp/hostprep-pwned`"
    with connect("lab1") as t:
        echoed = t.run_script('printf %s "$V"', {"V": evil}, sudo=True)
        argv = t.run(["printf", "%s", evil])
    assert echoed.stdout == evil and argv.stdout == evil
    assert h.exec("test -e /tmp/hostprep-pwned && echo yes || echo no").strip() == "no"


def test_facts_task_prints_a_table_and_json(lab_hosts: dict[str, lab.LabHost], pristine: Pristine) -> None:
    pristine("lab1", "lab2")
    import subprocess

    table = subprocess.run(["invoke", "facts", "--host", "lab1"], capture_output=True, text=True, cwd=lab.REPO)
    assert table.returncode == 0, table.stderr
    assert f"docker group GID       {lab_hosts['lab1'].docker_gid}" in table.stdout
    js = subprocess.run(["invoke", "facts", "--limit", "lab", "--json"], capture_output=True, text=True, cwd=lab.REPO)
    data = json.loads(js.stdout)
    assert set(data) == {"lab1", "lab2"} and data["lab2"]["compose_flavour"] == "v1"
    bad = subprocess.run(["invoke", "facts", "--host", "nope"], capture_output=True, text=True, cwd=lab.REPO)
    assert bad.returncode == 2 and "unknown host 'nope'" in bad.stderr and "lab1" in bad.stderr
