"""How a host's SSH session is set up, from the inventory and ~/.ssh/config (no host needed)."""

from __future__ import annotations

import io

import paramiko
import pytest
from fabric import Config

from hostprep.ssh.transport import Endpoint, TransportError, connect_kwargs, jump_chain, parse_hop


def ssh_config(text: str, host: str) -> paramiko.SSHConfigDict:
    conf = paramiko.SSHConfig()
    conf.parse(io.StringIO(text))
    return conf.lookup(host)


CONFIG = """
Host web1
  HostName 10.0.0.5
  User deploy
  Port 2222
  IdentityFile ~/.ssh/web_key
  ProxyJump ops@bastion:2200,inner
Host bastion
  HostName bastion.example
Host *
  User fallback
"""


def test_inventory_values_win_and_ssh_config_fills_the_rest() -> None:
    ep = Endpoint("web1", "web1", 22, user=None, connect_timeout=7.0)
    kw = connect_kwargs(ep, ssh_config(CONFIG, "web1"), Config(), {"pkey": "K"})
    assert kw["hostname"] == "10.0.0.5"           # HostName
    assert kw["port"] == 22                        # the inventory's port wins over Port 2222
    assert kw["username"] == "deploy"              # User, since the inventory gave none
    assert kw["timeout"] == 7.0 and kw["pkey"] == "K"
    assert kw["key_filename"][0].endswith("/.ssh/web_key")
    assert connect_kwargs(Endpoint("web1", "web1", user="me"), ssh_config(CONFIG, "web1"), Config(), {})["username"] == "me"


def test_the_port_is_the_inventorys_else_ssh_configs_else_22() -> None:
    web = ssh_config(CONFIG, "web1")
    assert connect_kwargs(Endpoint("web1", "web1"), web, Config(), {})["port"] == 2222
    assert connect_kwargs(Endpoint("web1", "web1", 2200), web, Config(), {})["port"] == 2200
    assert connect_kwargs(Endpoint("db", "db"), ssh_config(CONFIG, "db"), Config(), {})["port"] == 22


def test_no_key_files_means_no_key_filename_argument() -> None:
    kw = connect_kwargs(Endpoint("h", "127.0.0.1", 2201), ssh_config("", "127.0.0.1"), Config(), {})
    assert "key_filename" not in kw and kw["hostname"] == "127.0.0.1"


@pytest.mark.parametrize("hop, parsed", [
    ("bastion", (None, "bastion", None)),
    ("ops@bastion", ("ops", "bastion", None)),
    ("ops@bastion:2200", ("ops", "bastion", 2200)),
    ("127.0.0.1:2201", (None, "127.0.0.1", 2201)),
    ("[::1]:22", (None, "::1", 22)),
    ("a@b@host:1", ("a@b", "host", 1)),
])
def test_parse_hop(hop: str, parsed: tuple[str | None, str, int | None]) -> None:
    assert parse_hop(hop) == parsed


@pytest.mark.parametrize("hop", ["", "ops@", "ssh://bastion:22"])
def test_parse_hop_refuses_what_it_cannot_read(hop: str) -> None:
    with pytest.raises(TransportError):
        parse_hop(hop)


def test_jump_chain_from_ssh_config_or_from_the_endpoint() -> None:
    web = ssh_config(CONFIG, "web1")
    assert jump_chain(Endpoint("web1", "web1"), web) == ["ops@bastion:2200", "inner"]
    assert jump_chain(Endpoint("hop", "inner", jump="ops@bastion:2200"), ssh_config(CONFIG, "inner")) == ["ops@bastion:2200"]
    assert jump_chain(Endpoint("hop", "inner", jump=""), web) == []
    assert jump_chain(Endpoint("x", "x"), ssh_config("Host *\n  ProxyJump none\n", "x")) == []


def test_a_host_that_is_its_own_jump_host_goes_direct() -> None:
    conf = "Host *\n  ProxyJump bastion\n"
    assert jump_chain(Endpoint("b", "bastion"), ssh_config(conf, "bastion")) == []
    assert jump_chain(Endpoint("w", "web"), ssh_config(conf, "web")) == ["bastion"]
    # same address, another port: a different sshd (the lab jumps through 127.0.0.1:2201 to 127.0.0.1:22)
    assert jump_chain(Endpoint("t", "127.0.0.1", 22, jump="127.0.0.1:2201"), {}) == ["127.0.0.1:2201"]
