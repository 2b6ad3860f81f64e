"""hostprep's own vars: defaults, normalization and refusals with clear messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.inventory.hosts import HostEntry
from hostprep.inventory.settings import HostSettings, SettingsError, connection_settings
from hostprep.fleet.validate import host_settings, validate_host

PWNED = "; touch /tmp/hostprep-pwned"


def test_no_vars_gives_documented_defaults() -> None:
    s = host_settings({})
    assert s == HostSettings()
    assert s.as_dict() == {
        "project_dir": "/opt/airflow", "worker_service": "airflow-worker", "services": ["airflow-worker"],
        "strategy": "group-add", "airflow_uid": 50000, "socket_path": "/var/run/docker.sock",
        "bind_dirs": ["dags", "logs", "plugins", "config"], "compose_file": None, "become_password_env": None, "smoke_dag": None,
    }


def test_as_dict_is_json_ready() -> None:
    json.dumps(host_settings({"hostprep_services": "a,b"}).as_dict())


def test_paths_are_normalized() -> None:
    s = host_settings({"hostprep_project_dir": "//opt/./airflow/", "hostprep_socket_path": "/run//d.sock"})
    assert (s.project_dir, s.socket_path) == ("/opt/airflow", "/run/d.sock")


def test_services_accept_a_comma_string_and_always_include_the_worker() -> None:
    s = host_settings({"hostprep_worker_service": "worker", "hostprep_services": "scheduler, triggerer"})
    assert s.services == ("scheduler", "triggerer", "worker")


def test_services_default_to_the_worker_alone() -> None:
    assert host_settings({"hostprep_worker_service": "celery-worker"}).services == ("celery-worker",)


def test_bind_dirs_resolve_under_the_project_dir_unless_absolute() -> None:
    s = host_settings({"hostprep_project_dir": "/srv/af", "hostprep_bind_dirs": ["dags/", "/data/l", "dags"]})
    assert s.bind_dirs == ("dags", "/data/l")
    assert s.bind_paths == ("/srv/af/dags", "/data/l")


def test_airflow_uid_accepts_a_digit_string() -> None:
    assert host_settings({"hostprep_airflow_uid": "1000"}).airflow_uid == 1000


@pytest.mark.parametrize("value", [0, -1, 2147483648, True, "50k", 1.5, None])
def test_airflow_uid_out_of_range_or_not_an_integer_is_refused(value: Any) -> None:
    with pytest.raises(SettingsError, match=r"^hostprep_airflow_uid="):
        host_settings({"hostprep_airflow_uid": value})


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile", "chmod"])
def test_each_documented_strategy_is_accepted(strategy: str) -> None:
    assert host_settings({"hostprep_strategy": strategy}).strategy == strategy


def test_unknown_strategy_is_refused_listing_the_choices() -> None:
    with pytest.raises(SettingsError, match=r"hostprep_strategy='sudo': must be one of group-add, dockerfile, chmod"):
        host_settings({"hostprep_strategy": "sudo"})


@pytest.mark.parametrize(
    "var,value",
    [
        ("hostprep_project_dir", "/opt/airflow" + PWNED),
        ("hostprep_socket_path", "/var/run/docker.sock" + PWNED),
        ("hostprep_compose_file", "compose.yaml" + PWNED),
        ("hostprep_bind_dirs", ["dags" + PWNED]),
        ("hostprep_worker_service", "airflow-worker" + PWNED),
        ("hostprep_services", ["airflow-worker", "x" + PWNED]),
        ("ansible_host", "10.0.0.1" + PWNED),
        ("ansible_user", "ubuntu" + PWNED),
        ("hostprep_project_dir", "/opt/$(touch /tmp/hostprep-pwned)"),
        ("hostprep_worker_service", "`id`"),
    ],
)
def test_shell_metacharacters_are_refused_naming_var_and_value(var: str, value: Any) -> None:
    with pytest.raises(SettingsError) as err:
        host_settings({var: value})
    assert str(err.value).startswith(f"{var}=")
    assert "hostprep-pwned" in str(err.value) or "id" in str(err.value)


@pytest.mark.parametrize(
    "var,value,why",
    [
        ("hostprep_project_dir", "/opt/../etc", "'..'"),
        ("hostprep_project_dir", "opt/airflow", "absolute"),
        ("hostprep_project_dir", "/", "below /"),
        ("hostprep_socket_path", "docker.sock", "absolute"),
        ("hostprep_bind_dirs", ["../secrets"], "'..'"),
        ("hostprep_bind_dirs", ["-rf"], "must not start with '-'"),
        ("hostprep_bind_dirs", [], "must not be empty"),
        ("hostprep_bind_dirs", 5, "list"),
        ("hostprep_compose_file", "../compose.yaml", "'..'"),
        ("hostprep_compose_file", "", "non-empty"),
        ("hostprep_worker_service", "-worker", "service name"),
        ("hostprep_worker_service", "w" * 64, "service name"),
    ],
)
def test_bad_paths_and_names_are_refused(var: str, value: Any, why: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{var}=.*{why}"):
        host_settings({var: value})


def test_unknown_hostprep_var_is_refused_suggesting_the_known_one() -> None:
    expected = "hostprep_stratgy: unknown hostprep setting; did you mean hostprep_strategy"
    with pytest.raises(SettingsError, match=expected):
        host_settings({"hostprep_stratgy": "chmod"})


@pytest.mark.parametrize(
    "vars,why",
    [
        ({"ansible_port": 0}, "between 1 and 65535"),
        ({"ansible_port": 70000}, "between 1 and 65535"),
        ({"ansible_port": "ssh"}, "integer"),
        ({"ansible_host": "web 1"}, "host name or IP"),
        ({"ansible_host": "-oProxyCommand=x"}, "host name or IP"),
        ({"ansible_user": "Ubuntu"}, "Linux user name"),
        ({"ansible_ssh_private_key_file": ""}, "private key"),
    ],
)
def test_bad_connection_vars_are_refused(vars: dict[str, Any], why: str) -> None:
    with pytest.raises(SettingsError, match=why):
        host_settings(vars)


def test_connection_vars_accept_digit_string_ports_and_ipv6() -> None:
    conn = connection_settings({"ansible_port": "2222", "ansible_host": "fe80::1", "ansible_user": "ec2-user"})
    assert (conn.address, conn.port, conn.user) == ("fe80::1", 2222, "ec2-user")


def test_ssh_aliases_win_over_plain_names_like_ansible() -> None:
    conn = connection_settings(
        {"ansible_host": "10.0.0.1", "ansible_ssh_host": "10.0.0.2", "ansible_private_key_file": "k"},
    )
    assert (conn.address, conn.key_file) == ("10.0.0.2", "k")


def test_validate_host_prefixes_errors_with_the_host_name() -> None:
    entry = HostEntry("web1", {"hostprep_project_dir": "relative"}, ("web",))
    with pytest.raises(SettingsError, match=r"^web1: hostprep_project_dir='relative': must be an absolute path"):
        validate_host(entry)


def test_endpoint_refuses_a_bad_port_naming_the_host() -> None:
    with pytest.raises(SettingsError, match=r"^web1: ansible_port=99999"):
        endpoint_for(HostEntry("web1", {"ansible_port": 99999}, ()))


def test_become_password_env_error_never_shows_the_value() -> None:
    with pytest.raises(SettingsError) as err:
        host_settings({"hostprep_become_password_env": "hunter2 secret"})
    assert "hunter2" not in str(err.value)


def test_long_bad_values_are_shortened_in_messages() -> None:
    with pytest.raises(SettingsError) as err:
        host_settings({"hostprep_strategy": "x" * 500})
    assert len(str(err.value)) < 200


def test_repr_is_one_line() -> None:
    assert repr(HostSettings()) == "<HostSettings group-add /opt/airflow worker=airflow-worker uid=50000>"
