"""Dynamic inventory sources: ansible-inventory's JSON and stderr, captured for real, converted purely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostprep.inventory.hosts import InventoryError
from hostprep.inventory.sources import cloud_labels, from_inventory_json, is_dynamic, source_failure, unwrap
from hostprep.fleet.validate import validate_host

FIXTURES = Path(__file__).parents[1] / "fixtures"
SOURCE = Path("/srv/inventory/prod.aws_ec2.yml")


def _moto() -> dict:
    return json.loads((FIXTURES / "ansible_inventory_aws_ec2_moto.json").read_text())


def test_the_aws_ec2_answer_becomes_hosts_named_by_instance_id_with_the_plugins_groups() -> None:
    inv = from_inventory_json(_moto(), SOURCE)
    workers = [h.name for h in inv.select("tag_Role_airflow_worker")]
    assert len(workers) == 2 and all(n.startswith("i-") for n in workers)
    assert len(inv.select("tag_Env_prod:!tag_Role_airflow_worker")) == 1
    for name in workers:
        h = inv.hosts[name]
        assert h.groups == ("aws_ec2", "tag_Env_prod", "tag_Role_airflow_worker")
        assert h.vars["ansible_host"] == "127.0.0.1" and isinstance(h.vars["ansible_port"], int)
        assert h.vars["tags"]["Role"] == "airflow-worker"   # Ansible's unsafe marking is gone
        assert h.vars["instance_id"] == name
        validate_host(h)   # the plugin's own vars (tags, state, ...) pass hostprep's settings rules


def test_reports_can_name_the_instance_and_its_name_tag() -> None:
    inv = from_inventory_json(_moto(), SOURCE)
    names = {cloud_labels(h.vars)["name"] for h in inv.hosts.values()}
    assert names == {"airflow-worker-1", "airflow-worker-2", "airflow-scheduler"}
    assert cloud_labels({"ansible_host": "10.0.0.1"}) == {}


@pytest.mark.parametrize("name", ["web1;touch /x", "$(id)", "a\nb", "../etc", "-oProxyCommand=x", "", "a b", "é"])
def test_unsafe_host_names_from_a_dynamic_source_refuse_the_source(name: str) -> None:
    data = {"_meta": {"hostvars": {name: {}}}, "all": {"children": ["ungrouped"]}, "ungrouped": {"hosts": [name]}}
    with pytest.raises(InventoryError, match="from the inventory source is refused"):
        from_inventory_json(data, SOURCE)


def test_a_literal_become_password_is_refused_without_being_shown() -> None:
    data = _moto()
    host = next(iter(data["_meta"]["hostvars"]))
    data["_meta"]["hostvars"][host]["ansible_become_password"] = {"__ansible_unsafe": "hunter2"}
    with pytest.raises(InventoryError) as err:
        from_inventory_json(data, SOURCE)
    assert "must be an env lookup" in str(err.value) and "hunter2" not in str(err.value)


def test_an_empty_answer_is_an_error() -> None:
    with pytest.raises(InventoryError, match="returned no hosts"):
        from_inventory_json({"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}}, SOURCE)


def test_unwrap_drops_unsafe_markers_at_any_depth() -> None:
    assert unwrap({"a": [{"__ansible_unsafe": "x"}], "b": {"__ansible_unsafe": "y"}}) == {"a": ["x"], "b": "y"}


@pytest.mark.parametrize("fixture, start", [
    ("no_credentials", "no AWS credentials (Failed to describe instances: Unable to locate credentials); set AWS_PROFILE"),
    ("unreachable", 'cannot reach the API endpoint (Failed to describe instances: Could not connect to the endpoint '
                    'URL: "http://127.0.0.1:5299/")'),
    ("unknown_plugin", "the inventory plugin is not installed (inventory config '/srv/inventory/typo.aws_ec2.yml' "
                       "specifies unknown plugin 'amazon.aws.aws_ec3'): pip install 'hostprep[ec2]'"),
    ("script_failed", "inventory source failed: Inventory script returned non-zero exit code 3."),
])
def test_each_failure_of_ansible_inventory_is_one_line_saying_why(fixture: str, start: str) -> None:
    line = source_failure((FIXTURES / f"ansible_inventory_{fixture}.txt").read_text())
    assert line.startswith(start) and "\n" not in line and len(line) < 400


def test_plugin_files_scripts_and_folders_are_dynamic_plain_files_are_not(tmp_path: Path) -> None:
    (tmp_path / "prod.aws_ec2.yml").write_text("# fleet\nplugin: amazon.aws.aws_ec2\n")
    (tmp_path / "static.yml").write_text("all:\n  hosts:\n    web1:\n")
    (tmp_path / "static.ini").write_text("[web]\nweb1\n")
    script = tmp_path / "cmdb"
    script.write_text("#!/bin/sh\necho '{}'\n")
    script.chmod(0o755)
    assert [is_dynamic(tmp_path / n) for n in ("prod.aws_ec2.yml", "static.yml", "static.ini", "cmdb")] == \
        [True, False, False, True]
    assert is_dynamic(tmp_path)
