"""hostprep reads the example inventories exactly as `ansible-inventory --list` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hostprep.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "inventories" / "example.yml", ROOT / "inventories" / "example.ini"]
BECOME = "ansible_become_password"


def ansible_list(path: Path, workdir: Path) -> dict[str, Any]:
    binary = shutil.which("ansible-inventory")
    if binary is None:
        pytest.skip("ansible-inventory is not installed (pip install ansible-core)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(workdir / "home"), ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"))
    out = subprocess.run(
        [binary, "-i", str(path), "--list"], cwd=workdir, env=env, capture_output=True, text=True, check=True
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def ansible_hosts(data: dict[str, Any]) -> set[str]:
    """Every host: ``_meta.hostvars`` leaves out hosts without vars, so read the groups too."""
    listed = {h for g, body in data.items() if g != "_meta" for h in body.get("hosts", [])}
    return listed | set(data["_meta"]["hostvars"])


def ansible_group_names(data: dict[str, Any]) -> dict[str, set[str]]:
    """Host -> every group holding it directly or through children (Ansible's group_names)."""

    def hosts_of(group: str) -> set[str]:
        body = data.get(group, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            found |= hosts_of(child)
        return found

    groups = {g for g in data if g != "_meta"} | set(data["all"].get("children", []))
    result: dict[str, set[str]] = {h: set() for h in ansible_hosts(data)}
    for group in groups - {"all"}:
        for host in hosts_of(group):
            result[host].add(group)
    return result


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.name)
def both(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    path: Path = request.param
    return load_inventory(path), ansible_list(path, tmp_path)


def test_example_inventory_has_the_same_hosts_as_ansible(both: tuple[Any, dict[str, Any]]) -> None:
    inv, data = both
    assert set(inv.hosts) == ansible_hosts(data)


def test_example_inventory_has_the_same_group_membership_as_ansible(both: tuple[Any, dict[str, Any]]) -> None:
    inv, data = both
    expected = ansible_group_names(data)
    assert {name: set(host.groups) for name, host in inv.hosts.items()} == expected
    for group, body in data.items():
        if group != "_meta":
            assert set(inv.groups[group].hosts) == set(body.get("hosts", [])), group
            assert set(inv.groups[group].children) == set(body.get("children", [])), group


def test_example_inventory_merges_the_same_vars_as_ansible(both: tuple[Any, dict[str, Any]]) -> None:
    inv, data = both
    for name, host in inv.hosts.items():
        ours, ansible_vars = dict(host.vars), dict(data["_meta"]["hostvars"].get(name, {}))
        env_name = ours.pop("hostprep_become_password_env", None)
        lookup = ansible_vars.pop(BECOME, None)
        assert ours == ansible_vars, name
        # Ansible keeps the lookup template; hostprep keeps only the env var it names.
        assert (lookup is None) == (env_name is None), name
        if lookup is not None:
            assert f"'{env_name}'" in lookup and "lookup('env'" in lookup


CORNER_CASES = {
    "priority.ini": "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nv=zeta\n[alpha:vars]\nv=alpha\nansible_group_priority=5\n",
    "same_depth.ini": "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nv=zeta\n[alpha:vars]\nv=alpha\n",
    "depth.yml": (
        "all:\n  vars: {v: all, w: all}\n  children:\n    a:\n      children:\n        b:\n"
        "          vars: {v: b}\n          hosts: {h: }\n    b:\n    c:\n      vars: {v: c, w: c}\n      hosts: {h: }\n"
    ),
    "mixed.ini": (
        "web1\nsolo\n[web]\nweb1\n[a]\nh x=1 y=1\n[b]\nh y=2 z=\"{'k': [1, 2]}\"\n"
        "[g]\nh2 ansible_port=2222 x='a b' flag=True ids='[1, 2]'\nh3:2200\nn[08:10]\ndb-[a:c]:2201 p=1\n"
        "[g:vars]\nopts = a=b c\nuid=0755\n[top:children]\ng\n[top:vars]\nopts=top\n"
    ),
    "nested.yml": (
        "all:\n  hosts:\n    solo:\n  children:\n    web:\n      hosts:\n        'web[1:2]:2222':\n"
        "          x: {a: 1}\n        web1:\n          y: true\n"
        "    db:\n      hosts: db1\n      vars:\n        port: 5432\n"
    ),
}


@pytest.mark.parametrize("name", sorted(CORNER_CASES))
def test_inventory_corner_cases_match_ansible(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(CORNER_CASES[name])
    inv, data = load_inventory(path), ansible_list(path, tmp_path)
    assert set(inv.hosts) == ansible_hosts(data)
    hostvars = data["_meta"]["hostvars"]
    assert {n: dict(h.vars) for n, h in inv.hosts.items()} == {n: hostvars.get(n, {}) for n in inv.hosts}
    assert {n: set(h.groups) for n, h in inv.hosts.items()} == ansible_group_names(data)


def test_both_example_files_describe_the_same_fleet() -> None:
    yml, ini = (load_inventory(p) for p in EXAMPLES)
    assert list(yml.hosts) == list(ini.hosts)
    assert {n: (dict(h.vars), h.groups) for n, h in yml.hosts.items()} == {
        n: (dict(h.vars), h.groups) for n, h in ini.hosts.items()
    }


def test_every_example_host_passes_settings_validation() -> None:
    from hostprep.settings import validate_host

    for path in EXAMPLES:
        for host in load_inventory(path).hosts.values():
            validate_host(host)
            host.endpoint()
