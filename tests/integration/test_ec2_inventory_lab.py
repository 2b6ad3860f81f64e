"""EC2 fleets: an unchanged aws_ec2.yml read through ansible-inventory, against moto on 127.0.0.1.

The session starts moto's server and creates instances whose tags point at the lab hosts'
loopback ports: two running prod workers (lab1, lab2), a stopped prod worker, a running
staging worker and a prod scheduler, the last three pointing at a port nobody listens on, so
selecting any of them would show up as an unreachable host. The inventory source is a
directory: the committed ``lab.aws_ec2.yml`` plus ``group_vars/all.yml`` for the SSH user,
key and known_hosts, as an operator's inventory folder would be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from hostprep.cli import audit_cmd, commands
from hostprep.change import provision as prov
from hostprep.fleet.fanout import ConnectOptions
from hostprep.inventory.hosts import InventoryError
from tests.lab import lab
from tests.lab.fake_ec2 import LAB_FILE, FakeEC2, free_port, moto_server

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ec2() -> Iterator[FakeEC2]:
    with moto_server() as fake:
        yield fake


@pytest.fixture
def aws_env(ec2: FakeEC2, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeEC2:
    """AWS clients (the plugin in ansible-inventory included) talk to moto, never to AWS or an IMDS."""
    for key, value in ec2.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return ec2


def _inventory_dir(tmp_path: Path) -> Path:
    """The committed plugin file, unchanged, beside the SSH settings every host shares."""
    folder = tmp_path / "inventory"
    (folder / "group_vars").mkdir(parents=True)
    shutil.copy2(LAB_FILE, folder / "prod.aws_ec2.yml")
    (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "ansible_user": "ubuntu", "ansible_ssh_private_key_file": str(lab.KEY),
        "hostprep_known_hosts_file": str(lab.KNOWN_HOSTS)}))
    return folder


@pytest.fixture
def fleet(aws_env: FakeEC2, lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> Iterator[dict[str, str]]:
    """Instance id -> lab host name for the two prod workers; the other instances must never be contacted."""
    aws_env.terminate_all()
    nobody = str(free_port())
    workers = {}
    for name in ("lab1", "lab2"):
        [iid] = aws_env.launch({"Name": f"airflow-worker-{name}", "Role": "airflow-worker", "Env": "prod",
                                "LabAddress": "127.0.0.1", "LabPort": str(lab_hosts[name].port)})
        workers[iid] = name
    elsewhere = {"LabAddress": "127.0.0.1", "LabPort": nobody}
    aws_env.launch({"Name": "airflow-worker-old", "Role": "airflow-worker", "Env": "prod", **elsewhere}, stopped=True)
    aws_env.launch({"Name": "airflow-worker-stg", "Role": "airflow-worker", "Env": "staging", **elsewhere})
    aws_env.launch({"Name": "airflow-scheduler", "Role": "airflow-scheduler", "Env": "prod", **elsewhere})
    for name in workers.values():
        lab.provision_pristine(lab_hosts[name])
    yield workers
    aws_env.terminate_all()


def test_plugin_groups_select_only_the_running_prod_workers_named_by_instance_id(
        fleet: dict[str, str], tmp_path: Path) -> None:
    inv = _inventory_dir(tmp_path)
    hosts = commands.select(commands.Selection(inventory=str(inv), limit="tag_Role_airflow_worker"))
    assert sorted(h.name for h in hosts) == sorted(fleet)
    for h in hosts:
        assert h.vars["ansible_host"] == "127.0.0.1" and h.vars["tags"]["Name"] == f"airflow-worker-{fleet[h.name]}"
        assert {"aws_ec2", "tag_Env_prod", "tag_Role_airflow_worker"} <= set(h.groups)
    everything = commands.select(commands.Selection(inventory=str(inv)))
    assert len(everything) == 3   # the scheduler is prod and running; stopped and staging are not in the source


def test_provision_and_audit_run_on_the_lab_hosts_chosen_from_the_ec2_inventory(
        fleet: dict[str, str], tmp_path: Path) -> None:
    inv = str(_inventory_dir(tmp_path))
    sel = commands.Selection(inventory=inv, limit="tag_Role_airflow_worker")
    reply = commands.provision(sel, ConnectOptions(), prov.Options(smoke=False), as_json=True)
    report = json.loads(reply.text)
    assert reply.code == 0, reply.text[-3000:]
    assert sorted(report["hosts"]) == sorted(fleet)
    for iid, name in fleet.items():
        assert report["hosts"][iid]["status"] == "changed"
        assert report["hosts"][iid]["labels"] == {"instance_id": iid, "name": f"airflow-worker-{name}"}

    audited = audit_cmd.audit(sel, ConnectOptions())
    assert audited.code == 0, audited.text
    table = audited.lines[-1].splitlines()
    assert table[0].split()[:4] == ["HOST", "INSTANCE", "NAME", "STATUS"]
    rows = {line.split()[0]: line.split() for line in table[1:] if line.strip()}
    for iid, name in fleet.items():
        assert rows[iid][1:4] == [iid, f"airflow-worker-{name}", "OK"]


def test_two_shards_cover_every_host_once_and_merge_into_the_unsharded_report(
        fleet: dict[str, str], tmp_path: Path) -> None:
    inv = str(_inventory_dir(tmp_path))
    lab_host = next(iter(fleet))
    # one host drifted (never provisioned: pristine), one clean: the merged exit code must say drift
    sel = commands.Selection(inventory=inv, limit="tag_Role_airflow_worker")
    commands.provision(commands.Selection(inventory=inv, host=lab_host), ConnectOptions(), prov.Options(smoke=False),
                       as_json=True)
    whole, run_file = tmp_path / "whole", str(tmp_path / "run.json")
    assert audit_cmd.audit_begin(run_file, "run-1").lines == ("run-1",)
    codes = [audit_cmd.audit(sel, ConnectOptions(), audit_cmd.AuditOutputs(report_dir=str(whole)),
                            run_file=run_file).code]
    for i in (1, 2):
        shard_sel = commands.Selection(inventory=inv, limit="tag_Role_airflow_worker", shard=f"{i}/2")
        codes.append(audit_cmd.audit(shard_sel, ConnectOptions(), audit_cmd.AuditOutputs(report_dir=str(tmp_path / f"s{i}")),
                                    run_file=run_file).code)
    shard_hosts = [set(json.loads((tmp_path / f"s{i}" / "audit.json").read_text())["hosts"]) for i in (1, 2)]
    assert not shard_hosts[0] & shard_hosts[1] and shard_hosts[0] | shard_hosts[1] == set(fleet)

    merged = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-m", "invoke", "audit.merge", "--report", str(tmp_path / "s1"),
                           "--report", str(tmp_path / "s2" / "audit.json"), "--report-dir", str(merged),
                           "--run-file", run_file],
                          cwd=lab.REPO, capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == codes[0] == 2, proc.stderr   # drift on the host never provisioned
    assert max(codes[1:]) == 2

    def comparable(path: Path) -> dict[str, object]:
        data = json.loads(path.read_text())
        data.pop("at")
        for h in data["hosts"].values():
            h.pop("seconds")
        return data

    assert comparable(merged / "audit.json") == comparable(whole / "audit.json")
    prom = (merged / "hostprep_audit.prom").read_text()
    assert "hostprep_audit_exit_code 2" in prom and all(f'host="{iid}"' in prom for iid in fleet)


def _cli(inv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", "provision", "--inventory", str(inv), *args],
                          cwd=lab.REPO, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_no_credentials_is_one_line_naming_the_source_and_exit_2(aws_env: FakeEC2, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    inv = _inventory_dir(tmp_path)
    proc = _cli(inv)
    assert proc.returncode == 2
    assert proc.stdout == ""   # nothing ran, no host was contacted
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"hostprep: error: {inv}: no AWS credentials (")


def test_an_unreachable_endpoint_is_one_clear_line(aws_env: FakeEC2, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_URL", f"http://127.0.0.1:{free_port()}")
    inv = _inventory_dir(tmp_path)
    with pytest.raises(InventoryError, match=r"^\S+inventory: cannot reach the API endpoint \(.*127\.0\.0\.1"):
        commands.select(commands.Selection(inventory=str(inv)))


def test_an_empty_result_is_an_error_not_an_empty_run(aws_env: FakeEC2, tmp_path: Path) -> None:
    aws_env.terminate_all()
    source = tmp_path / "prod.aws_ec2.yml"
    shutil.copy2(LAB_FILE, source)
    with pytest.raises(InventoryError, match=r"prod\.aws_ec2\.yml: the inventory source returned no hosts"):
        commands.select(commands.Selection(inventory=str(source)))


def test_a_plugin_error_names_the_source_and_the_plugins_reason(tmp_path: Path) -> None:
    source = tmp_path / "typo.aws_ec2.yml"
    source.write_text("plugin: amazon.aws.aws_ec3\nregions: [eu-west-1]\n")
    with pytest.raises(InventoryError, match=r"typo\.aws_ec2\.yml: the inventory plugin is not installed "
                                             r"\(.*unknown plugin 'amazon\.aws\.aws_ec3'\): pip install"):
        commands.select(commands.Selection(inventory=str(source)))
    script = tmp_path / "inventory.sh"
    script.write_text("#!/bin/sh\necho 'cmdb down' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError, match=r"inventory\.sh: inventory source failed: Inventory script returned "
                                             r"non-zero exit code 3"):
        commands.select(commands.Selection(inventory=str(script)))


def test_a_hostile_tag_name_is_refused_before_anything_connects(aws_env: FakeEC2, tmp_path: Path) -> None:
    aws_env.terminate_all()
    aws_env.launch({"Name": "web1;touch /tmp/pwned", "Role": "airflow-worker", "Env": "prod",
                    "LabAddress": "127.0.0.1", "LabPort": "22"})
    source = tmp_path / "byname.aws_ec2.yml"
    source.write_text(LAB_FILE.read_text().replace("  - instance-id", "  - tag:Name"))
    with pytest.raises(InventoryError, match=r"host name 'web1;touch /tmp/pwned' from the inventory source is refused"):
        commands.select(commands.Selection(inventory=str(source)))
    aws_env.terminate_all()


def test_a_literal_become_password_from_a_dynamic_source_is_refused_and_not_shown(tmp_path: Path) -> None:
    script = tmp_path / "cmdb.py"
    script.write_text("#!/usr/bin/env python3\nimport json\nprint(json.dumps({'workers': {'hosts': ['w1'], "
                      "'vars': {'ansible_become_password': 'hunter2'}}, '_meta': {'hostvars': {'w1': {}}}}))\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError) as err:
        commands.select(commands.Selection(inventory=str(script)))
    assert "ansible_become_password must be an env lookup" in str(err.value) and "hunter2" not in str(err.value)
    script.write_text(script.read_text().replace("'hunter2'", "\"{{ lookup('env', 'HOSTPREP_BECOME_PASSWORD') }}\""))
    [w1] = commands.select(commands.Selection(inventory=str(script)))
    assert w1.vars["hostprep_become_password_env"] == "HOSTPREP_BECOME_PASSWORD"
