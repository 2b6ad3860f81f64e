"""Issue 12, findings 6, 8 and 11 (inventory, --limit, compose): what the operator's inputs may hold.

Inventories come from other people too (cloud tags, generated files): every value is full-match
validated, nothing is expanded into a local shell, and every parser refuses with hostprep's own
error (naming the file, host or var), never a crash or a hang. Property-based cases (hypothesis)
are bounded so the unit suite stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from hostprep.host import compose
from hostprep.ssh import config as ssh_config
from hostprep.inventory import yaml_limits
from hostprep.ssh.endpoint import Endpoint
from hostprep.errors import InventoryError, SettingsError
from hostprep.inventory.hosts import HostEntry, _Builder, load_inventory
from hostprep.inventory.formats import parse_ini, parse_yaml
from hostprep.inventory.patterns import select_hosts
from hostprep.inventory.settings import proxy_safe, valid_host_name
from hostprep.fleet.validate import host_settings, validate_host
from tests.unit.fuzz import FUZZ



def parse(text: str, kind: str = "ini") -> Any:
    b = _Builder(Path(f"inv.{kind}"))
    (parse_ini if kind == "ini" else parse_yaml)(text, b)
    return b.finish()


# --- finding 6: full-match validators -------------------------------------------------------------

@pytest.mark.parametrize("var, value", [
    ("hostprep_worker_service", "airflow-worker\n"),
    ("hostprep_services", ["airflow-worker", "airflow-scheduler\n"]),
    ("hostprep_project_dir", "/opt/airflow\n"),
    ("hostprep_socket_path", "/var/run/docker.sock\n"),
    ("hostprep_bind_dirs", ["dags\n"]),
    ("hostprep_smoke_dag", "dag:task\n"),
    ("hostprep_airflow_uid", "50000\n"),
    ("hostprep_airflow_uid", "\u00b2"),
    ("hostprep_airflow_uid", "9" * 5000),
    ("hostprep_airflow_uid", " 50000"),
    ("ansible_port", "22\n"),
    ("ansible_user", "ubuntu\n"),
    ("ansible_host", "10.0.0.5\n"),
    ("ansible_host", "db..internal/x"),
])
def test_a_value_with_a_trailing_newline_or_junk_is_refused_naming_host_and_var(var: str, value: Any) -> None:
    with pytest.raises(SettingsError) as exc:
        validate_host(HostEntry("web1", {var: value}, ()))
    assert str(exc.value).startswith(f"web1: {var}=")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", ["a$(touch x)", "a;b", "a`id`", "a\nb", "a b", "../x", "a/b", "-oProxyCommand=x",
                                  ".hidden", "a..b", "a|b", "", "a\x00"])
def test_a_host_name_that_could_reach_a_shell_or_a_path_is_refused(name: str) -> None:
    with pytest.raises(SettingsError, match="^host name "):
        validate_host(HostEntry(name, {}, ()))


@FUZZ
@given(st.sampled_from(["hostprep_worker_service", "hostprep_project_dir", "hostprep_socket_path",
                        "hostprep_airflow_uid", "hostprep_smoke_dag", "hostprep_compose_file", "ansible_host",
                        "ansible_port", "ansible_user", "hostprep_become_password_env", "hostprep_bind_dirs"]),
       st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=8), max_size=3)))
def test_settings_accept_only_clean_values_and_fail_only_with_settings_error(var: str, value: Any) -> None:
    try:
        s = host_settings({var: value})
    except SettingsError:
        return
    shown = repr(s.as_dict())
    assert "\\n" not in shown and "\\x" not in shown and "$(" not in shown


@FUZZ
@given(st.text(max_size=40))
def test_host_names_are_valid_or_refused_and_never_hold_shell_or_path_characters(name: str) -> None:
    if valid_host_name(name):
        assert not set(name) & set("$`;&|<>(){}'\"\\ /\n\t\x00") and ".." not in name


# --- finding 8: nothing from the inventory is expanded into a local shell --------------------------

def _endpoint(address: str, user: str | None = None) -> Endpoint:
    return Endpoint(name=address, address=address, port=22, user=user)


@pytest.mark.parametrize("host, user", [("db$(touch {c})", None), ("db;touch {c}", None), ("db`touch {c}`", None),
                                        ("db\ntouch {c}", None), ("db", "u;touch {c}"), ("db", "u$(touch {c})x")])
def test_a_proxycommand_never_gets_a_host_or_user_that_opensshs_check_refuses(
        host: str, user: str | None, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    host, user = host.format(c=canary), user.format(c=canary) if user else None
    ssh = {"proxycommand": f"sh -c 'echo {host} {user or ''} >/dev/null; nc {host} 22'", "hostname": host}
    with pytest.raises(SettingsError, match="not expanded into a ProxyCommand"):
        ssh_config.proxy_command(_endpoint(host, user), ssh)
    assert not canary.exists()


def test_a_host_name_with_a_command_substitution_never_reaches_an_ssh_config_proxycommand(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported case end to end: no ansible_host, ProxyCommand with %h; the name is refused first."""
    from hostprep.cli import commands
    from hostprep.fleet.fanout import ConnectOptions

    canary = tmp_path / "canary"
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n  ProxyCommand sh -c \"echo %h > {tmp_path}/seen; nc %h %p\"\n")
    inv = tmp_path / "inv.ini"
    inv.write_text(f"[web]\nweb$(touch${{IFS}}{canary})\n")
    monkeypatch.setenv("HOSTPREP_SSH_CONFIG", str(cfg))
    ssh_config.fabric_config.cache_clear()
    ssh_config.ssh_config.cache_clear()
    try:
        with pytest.raises((SettingsError, InventoryError), match="host name"):
            commands.facts(commands.Selection(inventory=str(inv)), ConnectOptions(connect_timeout=2), as_json=True)
    finally:
        ssh_config.fabric_config.cache_clear()
        ssh_config.ssh_config.cache_clear()
    assert not canary.exists() and not (tmp_path / "seen").exists()


@FUZZ
@given(st.text(max_size=30), st.one_of(st.none(), st.text(max_size=15)))
def test_proxy_safe_refuses_every_shell_metacharacter_openssh_refuses(host: str, user: str | None) -> None:
    why = proxy_safe(host, user)
    if why is None:
        assert not set(host) & set("'`\"$\\;&<>|(){}") and not any(c.isspace() for c in host)
        assert not host.startswith("-")


# --- finding 11: inventory, --limit and compose parsers ------------------------------------------

def test_ungrouped_children_are_accepted() -> None:
    inv = parse("[ungrouped:children]\nweb\n[web]\nw1\n")
    assert inv.hosts["w1"].groups == ("ungrouped", "web")


def test_a_huge_host_range_is_refused_before_it_is_built() -> None:
    with pytest.raises(InventoryError, match=r"inv.ini:2: host range \[1:1000000000\] expands to more than 100000"):
        parse("[web]\nh[1:1000000000]\n")
    with pytest.raises(InventoryError, match="expands to more than 100000 hosts"):
        parse("[web]\nh[1:1000][1:1000]\n")
    with pytest.raises(InventoryError, match="needs begin and end"):
        parse("[web]\nh[1:" + "9" * 5000 + "]\n")
    assert len(parse("[web]\nh[000001:100000]\n").hosts) == 100_000


@pytest.mark.parametrize("order", [range(1000), range(999, -1, -1)])
def test_thousand_deep_child_groups_are_refused_not_a_recursion_error(order: range) -> None:
    text = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in order) + "[g1000]\nh\n"
    with pytest.raises(InventoryError, match="inv.ini: groups nest deeper than 200 levels"):
        parse(text)


def test_a_yaml_alias_bomb_in_an_inventory_is_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  vars:\n" + "".join("    " + ln + "\n" for ln in bomb.splitlines()))
    with pytest.raises(InventoryError, match="inv.yml: aliases expand to more than"):
        load_inventory(path)


def test_a_non_utf8_inventory_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_bytes(b"[web]\nw\xff1\n")
    with pytest.raises(InventoryError, match="inv.ini: cannot read inventory"):
        load_inventory(path)


@pytest.mark.parametrize("pattern", ["~a{99999999999}", "~(", "web[99999999999]", "nope"])
def test_a_limit_pattern_is_refused_with_hostpreps_error(pattern: str) -> None:
    with pytest.raises(InventoryError):
        select_hosts(pattern, ["web1"], {"all": ["web1"], "web": ["web1"]})


def test_an_alias_bomb_in_a_compose_user_is_refused_naming_the_file_not_a_hang() -> None:
    bomb = "x-a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"x-{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    text = bomb + "services:\n  airflow-worker:\n    user: *i\n"
    with pytest.raises(compose.ComposeError, match="^docker-compose.yaml: aliases expand to more than"):
        compose.load_compose(text, "docker-compose.yaml")


def _tokens(*extra: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(extra), max_size=40).map("".join)


@FUZZ
@given(_tokens(*"[]:abh019\n =#'\"\\,!&*~-", "children", "vars", "ungrouped", "[g:children]\n", "\n[g]\n"))
def test_ini_inventories_parse_or_fail_with_inventory_error(text: str) -> None:
    try:
        parse(text)
    except InventoryError:
        pass


_YAML_SCALAR = st.one_of(st.none(), st.integers(), st.text(alphabet="ab[]:01-", max_size=8))
_YAML_TREE = st.recursive(_YAML_SCALAR, lambda kids: st.one_of(
    st.lists(kids, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(["all", "hosts", "children", "vars", "ungrouped", "h[1:3]"]),
                              st.text(alphabet="abh[]:0", max_size=5)), kids, max_size=3)), max_leaves=12)


@FUZZ
@given(_YAML_TREE)
def test_yaml_inventories_parse_or_fail_with_inventory_error(data: Any) -> None:
    import yaml

    try:
        parse(yaml.safe_dump(data), "yml")
    except InventoryError:
        pass


@FUZZ
@given(_tokens(*"ab1*?~:&!,[]^$.+(){}\\ ", "all", "web", "{99999999999}"))
def test_limit_patterns_select_or_fail_with_inventory_error(pattern: str) -> None:
    try:
        select_hosts(pattern, ["a1", "b1", "web"], {"all": ["a1", "b1", "web"], "web": ["web"]})
    except InventoryError:
        pass


@FUZZ
@given(st.text(max_size=200))
def test_compose_files_load_or_fail_with_compose_error(text: str) -> None:
    try:
        data = compose.load_compose(text, "compose.yaml")
    except compose.ComposeError as exc:
        assert str(exc).startswith("compose.yaml: ")
        return
    for name in data.get("services") or {}:
        compose.service_user(data, str(name), {})
        compose.build_context(data, str(name))


@FUZZ
@given(st.text(max_size=200))
def test_env_files_always_parse(text: str) -> None:
    env = compose.parse_env(text)
    compose.set_env_var(text, "COMPOSE_FILE", "a.yml")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


@FUZZ
@given(_tokens(*"&*ab[]{}:, -\n", "&a ", "*a", "&b ", "*b", "<<: "))
def test_yaml_limits_raise_only_yaml_errors_or_its_own(text: str) -> None:
    import yaml

    try:
        yaml_limits.load(text)
    except (yaml.YAMLError, yaml_limits.YamlLimit):
        pass
