"""hostprep reads the example inventories exactly as `ansible-inventory --list` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.inventory.hosts import load_inventory

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = [ROOT / "inventories" / "example.yml", ROOT / "inventories" / "example.ini"]
BECOME = "ansible_become_password"


def ansible_list(path: Path, workdir: Path, *options: str) -> dict[str, Any]:
    """``ansible-inventory --list``, run in ``workdir`` (it also reads a group_vars/ found there)."""
    binary = shutil.which("ansible-inventory")
    if binary is None:
        pytest.skip("ansible-inventory is not installed (pip install ansible-core)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(workdir / "home"), ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"))
    out = subprocess.run(
        [binary, "-i", str(path), "--list", *options], cwd=workdir, env=env, capture_output=True, text=True, check=True
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
    # issue 12: a child group of ungrouped (ansible-inventory accepts it; hostprep raised ValueError)
    "ungrouped_children.ini": "solo\n[ungrouped:children]\nweb\n[web]\nw1\nsolo\n[db]\nd1\n",
    "ungrouped_children.yml": ("all:\n  children:\n    ungrouped:\n      hosts: {u1: }\n      children:\n"
                               "        web:\n          hosts: {w1: , u1: }\n"),
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
    from hostprep.fleet.validate import validate_host

    for path in EXAMPLES:
        for host in load_inventory(path).hosts.values():
            validate_host(host)
            endpoint_for(host)


# Inventory directories: the inventory file (first key) plus group_vars/ and host_vars/ files beside it.
VARS_DIR_CASES: dict[str, dict[str, str]] = {
    "ini_files_with_and_without_extension": {
        "hosts.ini": (
            "solo x=inv\n[web]\nw1 x=inv y=inv\nw2\n[web:children]\nprod\n[prod]\nw2\n"
            "[all:vars]\na=inv_all\nc=inv_all\n[web:vars]\na=inv_web\nb=inv_web\n"
            "[prod:vars]\nc=inv_prod\nd=inv_prod\n"
        ),
        "group_vars/all.yml": "a: gv_all\nc: gv_all\nnested: {k: all, only_all: 1}\n",
        "group_vars/web": "b: gv_web_noext\nnested: {k: web}\n",
        "group_vars/web.yml": "b: never_read_the_file_without_extension_wins\n",
        "group_vars/prod.json": '{"d": "gv_prod_json", "ids": [1, 2]}\n',
        "group_vars/ungrouped.yaml": "u: gv_ungrouped\n",
        "group_vars/ghost.yml": "ghost: never_read\n",
        "host_vars/w1.yml": "y: hv_w1\n",
        "host_vars/solo": "x: hv_solo\n",
        "host_vars/nobody.yml": "z: never_read\n",
    },
    "yaml_directory_of_files": {
        "inventory.yml": (
            "all:\n  vars: {v: inv_all}\n  hosts:\n    bastion:\n  children:\n    workers:\n"
            "      vars: {v: inv_workers, w: inv_workers}\n      hosts:\n        w1: {h: inv_host}\n"
            "        'w[2:3]':\n"
        ),
        "group_vars/all/10_base.yml": "v: gv_all_10\nbase: 1\n",
        "group_vars/all/20_extra": "v: gv_all_20\n",
        "group_vars/all/30_more/a.json": '{"v": "gv_all_30_a"}\n',
        "group_vars/all/30_more/b.yaml": "",
        "group_vars/all/.hidden.yml": "v: hidden\n",
        "group_vars/all/99.yml~": "v: backup\n",
        "group_vars/all/99.txt": "v: txt\n",
        "group_vars/all/99.YML": "v: upper_case_extension\n",
        "group_vars/all/99.d/x.yml": "v: dir_with_extension\n",
        "group_vars/all.yml": "v: never_read_the_directory_wins\n",
        "group_vars/workers.yml/main": "w: gv_workers_dir_named_yml\nansible_group_priority: 3\n",
        "host_vars/w1/a.yml": "h: hv_w1_a\n",
        "host_vars/w1/b.yml": "h: hv_w1_b\n",
        "host_vars/w2.yml": "---\n# only a comment\n",
        "host_vars/w3.yml": "false\n",
    },
    "yaml_depth_and_priority": {
        "inventory.yml": (
            "all:\n  children:\n    parent:\n      vars: {p: inv_parent, q: inv_parent}\n      children:\n"
            "        child:\n          vars: {p: inv_child, q: inv_child, r: inv_child}\n          hosts: {h: }\n"
            "    zeta:\n      vars: {ansible_group_priority: 0}\n      hosts: {h: }\n"
            "    alpha:\n      hosts: {h: }\n"
        ),
        "group_vars/parent.yml": "p: gv_parent\ns: gv_parent\n",
        "group_vars/child.yml": "s: gv_child\n",
        "group_vars/zeta.yml": "z: gv_zeta\n",
        "group_vars/alpha.yml": "z: gv_alpha\n",
        "group_vars/all.yml": "r: gv_all\nansible_become_password: \"{{ lookup('env', 'SUDO_PW') }}\"\n",
    },
}


def comparable(variables: dict[str, Any]) -> dict[str, Any]:
    """Ansible keeps the become lookup template, hostprep only the env var it names: compare the name."""
    out = dict(variables)
    lookup = out.pop(BECOME, None)
    env_name = out.pop("hostprep_become_password_env", None)
    if lookup is not None:
        assert "lookup('env'" in lookup
        out["become_env"] = lookup.split("'")[-2]
    if env_name is not None:
        out["become_env"] = env_name
    return out


@pytest.mark.parametrize("case", sorted(VARS_DIR_CASES))
def test_group_vars_and_host_vars_merge_like_ansible(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "inventory"  # not Ansible's working directory: it reads group_vars/ there too
    for name, text in VARS_DIR_CASES[case].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    path = folder / next(iter(VARS_DIR_CASES[case]))
    inv, data = load_inventory(path), ansible_list(path, tmp_path)
    assert set(inv.hosts) == ansible_hosts(data)
    assert {n: set(h.groups) for n, h in inv.hosts.items()} == ansible_group_names(data)
    hostvars = data["_meta"]["hostvars"]
    assert {n: comparable(dict(h.vars)) for n, h in inv.hosts.items()} == {
        n: comparable(hostvars.get(n, {})) for n in inv.hosts
    }
    # --export lists each group's own vars: the inventory file's, then its group_vars/ files.
    exported = ansible_list(path, tmp_path, "--export")
    for name, group in inv.groups.items():
        theirs = comparable(exported.get(name, {}).get("vars", {}))
        ours = comparable(dict(group.vars))
        if "ansible_group_priority" in theirs and "ansible_group_priority" not in ours:
            theirs.pop("ansible_group_priority")  # hostprep keeps an inventory priority out of the vars
        assert ours == theirs, name
