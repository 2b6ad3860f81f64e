"""A rolling change on the lab (Ansible's serial and max_fail_percentage): batches of 2, the first one
holding a host that fails. With --max-fail 0% the second batch is never touched; with 50% it runs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hostprep.cli import commands
from hostprep.change import provision as prov
from hostprep.fleet import rolling as rollout
from hostprep.fleet.fanout import ConnectOptions
from tests.integration.conftest import Pristine, facts_of
from tests.integration.test_facts_lab import closed_port
from tests.lab import lab

ORDER = ("lab1", "lab-dead1", "lab2", "lab-dead2")   # batch 1: lab1, lab-dead1; batch 2: lab2, lab-dead2


def inventory(tmp_path: Path, lab_hosts: dict[str, lab.LabHost]) -> Path:
    """The lab's connection vars, and four hosts in rollout order (the dead ones on closed loopback ports)."""
    base = yaml.safe_load(lab.INVENTORY.read_text())["all"]["vars"]
    hosts = {name: {"ansible_host": "127.0.0.1",
                    "ansible_port": lab_hosts[name].port if name in lab_hosts else closed_port()} for name in ORDER}
    path = tmp_path / "rollout.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": base, "children": {"fleet": {"hosts": hosts}}}}, sort_keys=False))
    return path


def roll(inv: Path, max_fail: str) -> tuple[int, dict]:
    reply = commands.provision(commands.Selection(inventory=str(inv), group="fleet"), ConnectOptions(connect_timeout=3),
                               prov.Options(), as_json=True, rollout=rollout.parse("2", max_fail))
    return reply.code, json.loads(reply.text)


def test_a_failed_first_batch_stops_the_rollout_and_the_second_batch_is_not_touched(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine, tmp_path: Path) -> None:
    pristine("lab1", "lab2")
    code, data = roll(inventory(tmp_path, lab_hosts), "0%")
    status = {h: r["status"] for h, r in data["hosts"].items()}
    assert status == {"lab1": "changed", "lab-dead1": "unreachable", "lab2": "not-started", "lab-dead2": "not-started"}
    assert code == 2 and data["ok"] is False
    assert "batch 1 of 2" in data["stopped"] and "not started" in data["stopped"]
    assert data["recap"]["lab2"] == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0}
    lab2 = facts_of("lab2", deep=False)   # untouched: never provisioned, no override, worker still refused
    assert lab2.record is None and not lab2.files["docker-compose.hostprep.yml"].exists
    assert facts_of("lab1", deep=False).record is not None


def test_a_failure_within_max_fail_lets_the_rollout_go_on(
        lab_hosts: dict[str, lab.LabHost], pristine: Pristine, tmp_path: Path) -> None:
    pristine("lab1", "lab2")
    code, data = roll(inventory(tmp_path, lab_hosts), "50%")
    status = {h: r["status"] for h, r in data["hosts"].items()}
    assert status == {"lab1": "changed", "lab-dead1": "unreachable", "lab2": "changed", "lab-dead2": "unreachable"}
    assert code == 2 and data["stopped"] is None
