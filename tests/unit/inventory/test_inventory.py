"""Reading Ansible YAML and INI inventories: structure, ranges, precedence, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.inventory.hosts import HostEntry, InventoryError, expand_host_pattern, load_inventory, vars_files

SECRET = "hunter2-Sup3rS3cret"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write an inventory directory; the first file is the inventory, the rest group_vars/host_vars."""
    for name, text in files.items():
        write(tmp_path, name, text)
    return tmp_path / next(iter(files))


YAML_FLEET = """\
all:
  vars:
    ansible_user: ubuntu
    level: all
  hosts:
    bastion:
  children:
    workers:
      vars:
        level: workers
      children:
        prod:
          vars:
            level: prod
          hosts:
            w1:
            w2:
              level: host
              extra: {nested: [1, 2]}
    schedulers:
      hosts:
        s1: ~
        w1:
"""

INI_FLEET = """\
bastion

[workers:children]
prod

[workers:vars]
level=workers

[prod]
w1
w2 level=host x='a b' port_list="[1, 2]"

[prod:vars]
level=prod

[schedulers]
s1
w1

[all:vars]
ansible_user=ubuntu
level=all
"""


@pytest.mark.parametrize("name,text", [("fleet.yml", YAML_FLEET), ("fleet.ini", INI_FLEET)])
def test_both_formats_read_the_same_hosts_groups_and_precedence(tmp_path: Path, name: str, text: str) -> None:
    inv = load_inventory(write(tmp_path, name, text))
    assert list(inv.hosts) == ["bastion", "w1", "w2", "s1"]
    assert inv.hosts["w1"].groups == ("prod", "schedulers", "workers")
    assert inv.hosts["bastion"].groups == ("ungrouped",)
    assert inv.hosts["w1"].vars["level"] == "prod"
    assert inv.hosts["w2"].vars["level"] == "host"
    assert inv.hosts["s1"].vars == {"ansible_user": "ubuntu", "level": "all"}
    assert inv.groups["workers"].children == ("prod",)
    assert inv.groups["prod"].hosts == ("w1", "w2")
    assert set(inv.groups["all"].children) == {"ungrouped", "workers", "schedulers"}


def test_yaml_host_with_mapping_vars_keeps_nested_values(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "fleet.yaml", YAML_FLEET))
    assert inv.hosts["w2"].vars["extra"] == {"nested": [1, 2]}
    assert type(inv.hosts["w2"].vars["extra"]) is dict


def test_ini_inline_host_vars_are_typed_like_ansible(tmp_path: Path) -> None:
    line = "web1 ansible_port=2222 x='a b' flag=True name=web ids='[1, 2]'\n"
    inv = load_inventory(write(tmp_path, "hosts.ini", line))
    assert inv.hosts["web1"].vars == {"ansible_port": 2222, "x": "a b", "flag": True, "name": "web", "ids": [1, 2]}


def test_ini_group_vars_keep_everything_after_the_first_equals(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[g]\nh\n[g:vars]\nopts = a=b c\nuid=0755\n"))
    assert inv.hosts["h"].vars == {"opts": "a=b c", "uid": "0755"}


def test_ini_range_expands_zero_padded_names(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[web]\nweb[01:03].example.internal\n"))
    assert list(inv.hosts) == ["web01.example.internal", "web02.example.internal", "web03.example.internal"]


def test_ini_range_expands_letters(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[db]\ndb-[a:c] ansible_user=postgres\n"))
    assert list(inv.hosts) == ["db-a", "db-b", "db-c"]
    assert all(h.vars["ansible_user"] == "postgres" for h in inv.hosts.values())


def test_range_with_step_and_a_second_range_expands_both() -> None:
    names, port = expand_host_pattern("n[1:5:2]-[a:b]")
    assert names == ["n1-a", "n1-b", "n3-a", "n3-b", "n5-a", "n5-b"]
    assert port is None


def test_host_port_suffix_sets_ansible_port() -> None:
    assert expand_host_pattern("web[1:2]:2222") == (["web1", "web2"], 2222)


def test_yaml_host_keys_expand_ranges_and_ports_too(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "f.yml", "all:\n  hosts:\n    'web[1:2]:2222':\n"))
    assert [(h.name, h.vars["ansible_port"]) for h in inv.hosts.values()] == [("web1", 2222), ("web2", 2222)]


def test_ini_comments_with_hash_and_semicolon_are_ignored(tmp_path: Path) -> None:
    text = "# top\n; also a comment\n[web]   # trailing\nweb1 a=1  # inline\n  ; indented\n"
    inv = load_inventory(write(tmp_path, "hosts.ini", text))
    assert list(inv.hosts) == ["web1"]
    assert inv.hosts["web1"].vars == {"a": 1}


def test_ini_hosts_before_any_section_are_ungrouped(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts", "lonely\n[web]\nweb1\n"))
    assert inv.groups["ungrouped"].hosts == ("lonely",)
    assert inv.hosts["web1"].groups == ("web",)


def test_host_listed_ungrouped_and_in_a_group_is_not_ungrouped(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "web1\n[web]\nweb1\n"))
    assert inv.groups["ungrouped"].hosts == ()
    assert inv.hosts["web1"].groups == ("web",)


def test_host_vars_from_two_entries_merge_later_wins(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[a]\nh x=1 y=1\n[b]\nh y=2\n"))
    assert inv.hosts["h"].vars == {"x": 1, "y": 2}


def test_child_group_vars_beat_parent_group_vars_wherever_written(tmp_path: Path) -> None:
    text = "[child]\nh\n[child:vars]\nv=child\n[parent:children]\nchild\n[parent:vars]\nv=parent\n"
    assert load_inventory(write(tmp_path, "hosts.ini", text)).hosts["h"].vars["v"] == "child"


def test_host_vars_beat_group_vars(tmp_path: Path) -> None:
    text = "[g]\nh v=host\n[g:vars]\nv=group\n"
    assert load_inventory(write(tmp_path, "hosts.ini", text)).hosts["h"].vars["v"] == "host"


def test_groups_at_same_depth_merge_alphabetically_later_wins(tmp_path: Path) -> None:
    text = "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nv=zeta\n[alpha:vars]\nv=alpha\n"
    assert load_inventory(write(tmp_path, "hosts.ini", text)).hosts["h"].vars["v"] == "zeta"


def test_group_priority_beats_alphabetical_order_and_is_not_a_var(tmp_path: Path) -> None:
    text = "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nv=zeta\n[alpha:vars]\nv=alpha\nansible_group_priority=5\n"
    host = load_inventory(write(tmp_path, "hosts.ini", text)).hosts["h"]
    assert host.vars == {"v": "alpha"}


def test_group_depth_is_the_longest_path_from_all(tmp_path: Path) -> None:
    text = """\
all:
  children:
    a:
      children:
        b:
          vars: {v: b}
          hosts: {h: }
    b:
    c:
      vars: {v: c}
      hosts: {h: }
"""
    # b is depth 2 (under a) even though it is also listed under all; c is depth 1.
    assert load_inventory(write(tmp_path, "f.yml", text)).hosts["h"].vars["v"] == "b"


def test_yaml_hosts_directly_under_all_are_ungrouped(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "f.yml", "all:\n  hosts:\n    solo:\n"))
    assert inv.hosts["solo"].groups == ("ungrouped",)


def test_yaml_string_hosts_section_means_one_host(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "f.yml", "web:\n  hosts: web1\n"))
    assert inv.hosts["web1"].groups == ("web",)


@pytest.mark.parametrize(
    "name,text",
    [("inventory", "all:\n  hosts:\n    h1:\n"), ("inventory", "# c\n[web]\nh1\n"), ("inventory", "h1\n")],
)
def test_format_is_sniffed_when_the_extension_says_nothing(tmp_path: Path, name: str, text: str) -> None:
    assert list(load_inventory(write(tmp_path, name, text)).hosts) == ["h1"]


def test_endpoint_maps_connection_vars(tmp_path: Path) -> None:
    text = "[g]\nh ansible_host=10.0.1.5 ansible_port=2222 ansible_user=ubuntu ansible_ssh_private_key_file=~/k.pem\n"
    ep = endpoint_for(
        load_inventory(write(tmp_path, "hosts.ini", text)).hosts["h"],
        known_hosts="/tmp/kh", accept_new=True, connect_timeout=3.0
    )
    assert (ep.name, ep.address, ep.port, ep.user, ep.key_file) == ("h", "10.0.1.5", 2222, "ubuntu", "~/k.pem")
    assert (ep.known_hosts, ep.accept_new, ep.connect_timeout, ep.become_password_env) == ("/tmp/kh", True, 3.0, None)


def test_endpoint_defaults_to_the_inventory_name_and_port_22() -> None:
    ep = endpoint_for(HostEntry("web1.internal", {}, ()))
    assert (ep.address, ep.port, ep.user, ep.key_file) == ("web1.internal", None, None, None)


@pytest.mark.parametrize(
    "value",
    [
        "\"{{ lookup('env', 'BECOME_PW') }}\"",
        "'{{ lookup(\"env\", \"BECOME_PW\") }}'",
        "\"{{lookup('env','BECOME_PW')}}\"",
        "\"{{ lookup( 'ansible.builtin.env' , 'BECOME_PW' ) }}\"",
    ],
)
def test_become_password_env_lookup_variants_keep_only_the_name(tmp_path: Path, value: str) -> None:
    text = f"g:\n  vars:\n    ansible_become_password: {value}\n  hosts:\n    h:\n"
    inv = load_inventory(write(tmp_path, "f.yml", text))
    host = inv.hosts["h"]
    assert host.vars["hostprep_become_password_env"] == "BECOME_PW"
    assert "ansible_become_password" not in host.vars
    assert endpoint_for(host).become_password_env == "BECOME_PW"


def test_hostprep_become_password_env_names_the_variable_directly(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[g]\nh hostprep_become_password_env=SUDO_PW\n"))
    assert endpoint_for(inv.hosts["h"]).become_password_env == "SUDO_PW"


@pytest.mark.parametrize(
    "name,text,line",
    [
        ("f.yml", f"all:\n  vars:\n    ansible_become_password: {SECRET}\n  hosts:\n    h:\n", 3),
        ("f.yml", f"all:\n  hosts:\n    h:\n      ansible_become_pass: '{SECRET}'\n", 4),
        ("hosts.ini", f"[g]\nh\n[g:vars]\nansible_become_password={SECRET}\n", 4),
        ("hosts.ini", f"[g]\nh ansible_become_password='{SECRET}'\n", 2),
        ("hosts.ini", f"[g]\nh hostprep_become_password_env='{SECRET} x'\n", 2),
    ],
)
def test_become_password_literal_is_refused_without_leaking_it(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    message = str(err.value)
    assert SECRET not in message and "S3cret" not in message
    assert f"{path}:{line}:" in message
    assert "lookup('env'" in message or "environment variable name" in message


def test_malformed_yaml_error_names_file_and_line_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yml", f"all:\n  vars:\n    ansible_become_password: \"{SECRET}\n  hosts:\n")
    with pytest.raises(InventoryError, match=rf"^{path}:\d+: invalid YAML") as err:
        load_inventory(path)
    assert SECRET not in str(err.value)


def test_yaml_bad_indentation_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yml", "all:\n  hosts:\n    h1:\n   bad: [\n")
    with pytest.raises(InventoryError, match=rf"^{path}:4: invalid YAML"):
        load_inventory(path)


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("all:\n  children:\n    web:\n      hosts:\n        - web1\n", 4, "hosts must be a mapping"),
        ("all:\n  children:\n    web:\n      host:\n        web1:\n", 4, "unexpected key 'host'"),
        ("all:\n  hosts:\n    web1: [a]\n", 3, "vars must be a mapping"),
        ("all:\n  hosts:\n    1234:\n", 3, "must be a string"),
        ("- web1\n", 1, "mapping of group names"),
        ("web:\n  hosts:\n    'web[1-3]':\n", 3, "begin:end"),
    ],
)
def test_malformed_yaml_inventory_error_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, "f.yml", text)
    with pytest.raises(InventoryError, match=rf"^{path}:{line}: .*{words}"):
        load_inventory(path)


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("[web]\nweb1 ansible_port\n", 2, "expected key=value"),
        ("[web]\nweb1 x='unclosed\n", 2, "unbalanced quotes"),
        ("[web]\nweb[03:1]\n", 2, "equal-length"),
        ("[web:hosts2]\n", 1, "unknown type"),
        ("[web ]\n", 1, "invalid section header"),
        ("[web]\nweb1\n[web:vars]\nnovalue\n", 4, "key=value"),
        ("[web]\nweb1\n[all:children]\nweb\nmissing\n", 5, "undefined group 'missing'"),
        ("[ghost:vars]\nx=1\n", 1, "undefined group 'ghost'"),
        ("[web]\nweb1:\n", 2, "ends in ':'"),
    ],
)
def test_malformed_ini_inventory_error_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, "hosts.ini", text)
    with pytest.raises(InventoryError, match=rf"^{path}:{line}: .*{words}"):
        load_inventory(path)


def test_ini_children_declared_before_the_child_section_is_fine(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts.ini", "[parent:children]\nkid\n[kid]\nh\n"))
    assert inv.hosts["h"].groups == ("kid", "parent")


def test_group_loop_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "[a]\nh\n[a:children]\nb\n[b:children]\na\n")
    with pytest.raises(InventoryError, match="loop"):
        load_inventory(path)


def test_missing_file_is_an_inventory_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="nope.yml: cannot read inventory"):
        load_inventory(tmp_path / "nope.yml")


def test_empty_yaml_inventory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="empty"):
        load_inventory(write(tmp_path, "f.yml", "# nothing\n"))


def test_reprs_are_one_line_and_never_show_vars(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "f.yml", YAML_FLEET))
    shown = [repr(inv), repr(inv.hosts["w2"]), repr(inv.groups["prod"])]
    assert shown == [
        "<Inventory f.yml: 4 hosts, 5 groups>",
        "<HostEntry w2 groups=prod,workers>",
        "<Group prod: 2 hosts, 0 children>",
    ]


def test_host_entries_are_frozen_and_hashable() -> None:
    entry = HostEntry("h", {"a": 1}, ("g",))
    with pytest.raises(AttributeError):
        entry.name = "other"  # type: ignore[misc]
    assert hash(entry) == hash(HostEntry("h", {"a": 2}, ("g",)))


# ---------------------------------------------------------------- group_vars/ and host_vars/

HOST_IN_G = "[g]\nh\n"


@pytest.mark.parametrize("name", ["g", "g.yml", "g.yaml", "g.json"])
def test_group_vars_file_may_have_no_extension_or_yml_yaml_json(tmp_path: Path, name: str) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, f"group_vars/{name}": '{"x": 1}\n'})
    assert load_inventory(path).hosts["h"].vars == {"x": 1}


def test_first_vars_file_found_wins_so_a_directory_hides_g_yml(tmp_path: Path) -> None:
    tree(tmp_path, {"group_vars/g/a.yml": "x: 1\n", "group_vars/g.yml": "x: 2\n", "group_vars/g.json": "{}"})
    assert vars_files(tmp_path / "group_vars", "g") == [tmp_path / "group_vars/g/a.yml"]
    tree(tmp_path, {"host_vars/h": "x: 1\n", "host_vars/h.yml": "x: 2\n"})
    assert vars_files(tmp_path / "host_vars", "h") == [tmp_path / "host_vars/h"]


def test_vars_directory_lists_files_sorted_recursively_skipping_hidden_backups_and_other_extensions(
    tmp_path: Path,
) -> None:
    names = ["b.yml", "a.json", "c", "sub/z.yaml", "sub/.hidden.yml", ".x.yml", "d.yml~", "e.txt", "f.YML",
             "g.d/x.yml"]
    tree(tmp_path, {f"group_vars/g/{n}": "" for n in names})
    found = vars_files(tmp_path / "group_vars", "g")
    assert [f.relative_to(tmp_path / "group_vars/g").as_posix() for f in found] == ["a.json", "b.yml", "c", "sub/z.yaml"]


def test_files_in_a_group_vars_directory_merge_in_name_order(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": HOST_IN_G,
        "group_vars/g/10.yml": "x: 10\ny: 10\nd: {a: 1}\n",
        "group_vars/g/20.yml": "x: 20\nd: {b: 2}\n",
    })
    assert load_inventory(path).hosts["h"].vars == {"x": 20, "y": 10, "d": {"b": 2}}  # dicts replace, not merge


def test_group_vars_file_beats_the_inventory_vars_of_that_group(tmp_path: Path) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G + "[g:vars]\nx=inv\ny=inv\n", "group_vars/g.yml": "x: file\n"})
    inv = load_inventory(path)
    assert inv.hosts["h"].vars == {"x": "file", "y": "inv"}
    assert inv.groups["g"].vars == {"x": "file", "y": "inv"}


def test_group_vars_all_file_beats_inventory_vars_of_child_groups_as_in_ansible(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": HOST_IN_G + "[g:vars]\nx=inv_g\n[all:vars]\nx=inv_all\n",
        "group_vars/all.yml": "x: file_all\n",
    })
    assert load_inventory(path).hosts["h"].vars["x"] == "file_all"


def test_group_vars_files_merge_by_depth_then_priority_then_name(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "f.yml": "all:\n  children:\n    parent:\n      children:\n        child:\n          hosts: {h: }\n"
                 "    zeta:\n      vars: {ansible_group_priority: 0}\n      hosts: {h: }\n"
                 "    alpha:\n      hosts: {h: }\n",
        "group_vars/all.yml": "d: all\np: all\n",
        "group_vars/child.yml": "d: child\n",
        "group_vars/parent.yml": "d: parent\n",
        "group_vars/zeta.yml": "p: zeta\n",
        "group_vars/alpha.yml": "p: alpha\n",
    })
    assert load_inventory(path).hosts["h"].vars == {"d": "child", "p": "alpha"}


def test_host_vars_file_beats_inventory_host_vars_and_every_group(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": "[g]\nh x=inv y=inv\n",
        "group_vars/g.yml": "x: group\nz: group\n",
        "host_vars/h.yml": "x: file\n",
    })
    assert load_inventory(path).hosts["h"].vars == {"x": "file", "y": "inv", "z": "group"}


def test_group_vars_ungrouped_applies_to_ungrouped_hosts_only(tmp_path: Path) -> None:
    path = tree(tmp_path, {"hosts.ini": "solo\n" + HOST_IN_G, "group_vars/ungrouped.yml": "u: 1\n"})
    inv = load_inventory(path)
    assert (inv.hosts["solo"].vars, inv.hosts["h"].vars) == ({"u": 1}, {})


def test_vars_files_for_groups_and_hosts_not_in_the_inventory_are_never_read(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": HOST_IN_G,
        "group_vars/ghost.yml": "- not even valid vars\n",
        "host_vars/nobody.yml": "- not even valid vars\n",
    })
    inv = load_inventory(path)
    assert "ghost" not in inv.groups and inv.hosts["h"].vars == {}


@pytest.mark.parametrize("text", ["", "---\n# nothing\n", "{}\n", "false\n", "[]\n"])
def test_empty_or_falsy_vars_file_means_no_vars_as_in_ansible(tmp_path: Path, text: str) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, "group_vars/g.yml": text, "host_vars/h": text})
    assert load_inventory(path).hosts["h"].vars == {}


@pytest.mark.parametrize("text,kind", [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_vars_file_that_is_not_a_mapping_is_an_error_naming_it(tmp_path: Path, text: str, kind: str) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, "group_vars/g/main.yml": text})
    bad = tmp_path / "group_vars/g/main.yml"
    with pytest.raises(InventoryError, match=rf"^{bad}:1: a vars file must be a mapping .*not a {kind}$"):
        load_inventory(path)


def test_vault_encrypted_vars_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, "group_vars/g.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162\n"})
    with pytest.raises(InventoryError, match=rf"^{tmp_path / 'group_vars/g.yml'}:1: vault-encrypted"):
        load_inventory(path)


def test_malformed_vars_file_error_names_file_and_line_without_echoing_it(tmp_path: Path) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, "host_vars/h.yml": f"a: 1\nb: \"{SECRET}\n"})
    with pytest.raises(InventoryError, match=rf"^{tmp_path / 'host_vars/h.yml'}:\d+: invalid YAML") as err:
        load_inventory(path)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize(
    "name,text,line",
    [
        ("group_vars/all.yml", f"x: 1\nansible_become_password: {SECRET}\n", 2),
        ("group_vars/g/secrets.yml", f"ansible_become_pass: '{SECRET}'\n", 1),
        ("host_vars/h.json", f'{{"ansible_sudo_pass": "{SECRET}"}}', 1),
        ("host_vars/h", f"hostprep_become_password_env: '{SECRET} x'\n", 1),
    ],
)
def test_become_password_literal_in_vars_files_is_refused_without_leaking_it(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, name: text})
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    message = str(err.value)
    assert SECRET not in message and "S3cret" not in message
    assert message.startswith(f"{tmp_path / name}:{line}: ")
    assert "lookup('env'" in message or "environment variable name" in message


def test_become_password_lookup_in_group_vars_keeps_only_the_name(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": HOST_IN_G,
        "group_vars/all.yml": "ansible_become_password: \"{{ lookup('env', 'SUDO_PW') }}\"\n",
    })
    host = load_inventory(path).hosts["h"]
    assert host.vars == {"hostprep_become_password_env": "SUDO_PW"}
    assert endpoint_for(host).become_password_env == "SUDO_PW"


def test_ansible_group_priority_in_a_group_vars_file_is_a_plain_var(tmp_path: Path) -> None:
    path = tree(tmp_path, {
        "hosts.ini": "[zeta]\nh\n[alpha]\nh\n",
        "group_vars/zeta.yml": "ansible_group_priority: 0\nx: zeta\n",
        "group_vars/alpha.yml": "x: alpha\n",
    })
    assert load_inventory(path).hosts["h"].vars == {"ansible_group_priority": 0, "x": "zeta"}


def test_vars_dirs_are_found_beside_the_inventory_path_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path / "real", {"hosts.ini": HOST_IN_G, "group_vars/g.yml": "where: real\n"})
    tree(tmp_path / "link", {"group_vars/g.yml": "where: link\n"})
    (tmp_path / "link/hosts.ini").symlink_to(tmp_path / "real/hosts.ini")
    tree(tmp_path / "cwd", {"group_vars/all.yml": "cwd: 1\n"})
    monkeypatch.chdir(tmp_path / "cwd")
    assert load_inventory("../real/hosts.ini").hosts["h"].vars == {"where": "real"}
    assert load_inventory(tmp_path / "link/hosts.ini").hosts["h"].vars == {"where": "link"}


def test_a_group_vars_file_instead_of_a_directory_is_ignored(tmp_path: Path) -> None:
    path = tree(tmp_path, {"hosts.ini": HOST_IN_G, "group_vars": "x: 1\n"})
    assert load_inventory(path).hosts["h"].vars == {}
