"""Who makes the Docker socket, read from captured real output (systemd lab hosts, Debian 12's docker.io units).

``systemctl_show_*.txt`` are ``systemctl show docker.socket -p ...`` as the probe asks it, captured on a
lab host; ``probe_lab3_*.txt``, ``probe_lab4_direct_*.txt`` are whole probe outputs from a systemd and a direct lab host (see fixtures/README.md).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hostprep.audit.run import audit
from hostprep.host.facts import Facts, ProbeFailed
from hostprep.host.probe import parse_probe
from hostprep.change.plan import make_plan
from hostprep.cli.render import facts_table
from hostprep.inventory.settings import HostSettings
from hostprep.host.socket_unit import (DOCKERD, SYSTEMD, canonical, dockerd_group, dockerd_hosts, manager, parse_show,
                                  undone_by)
from tests.unit.change.test_plan import in_current_words

FIXTURES = Path(__file__).parents[1] / "fixtures"
SOCK = "/var/run/docker.sock"
SYSTEMD_DOCKERD = ["/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]


def show(name: str, extra: str = "") -> str:
    return (FIXTURES / f"systemctl_show_{name}.txt").read_text() + extra


def test_debians_docker_socket_unit_is_read_as_systemd_loaded_it() -> None:
    u = parse_show(show("docker_socket", "GroupEntry=docker:x:999:\n"))
    assert u is not None and u.active
    assert (u.listen, u.mode, u.user, u.group, u.group_gid) == (("/run/docker.sock",), 0o660, "root", "docker", 999)
    assert (u.fragment, u.drop_ins) == ("/lib/systemd/system/docker.socket", ())


def test_a_drop_in_is_seen_with_the_mode_it_sets() -> None:
    u = parse_show(show("docker_socket_drop_in"))
    assert u is not None and u.mode == 0o666
    assert u.drop_ins == ("/etc/systemd/system/docker.socket.d/hostprep-test.conf",)


@pytest.mark.parametrize("text", ["", "\n", None])
def test_no_systemd_or_no_such_unit_is_none(text: str | None) -> None:
    assert parse_show(show("not_found") if text is None else text) is None


def test_a_group_entry_for_another_group_is_not_taken_for_the_sockets() -> None:
    u = parse_show(show("docker_socket", "GroupEntry=systemd-journal:x:999:\n"))
    assert u is not None and u.group_gid is None


def test_var_run_and_run_are_the_same_socket() -> None:
    u = parse_show(show("docker_socket"))
    assert u is not None and u.listens_on(SOCK) and u.listens_on("/run/docker.sock")
    assert not u.listens_on("/run/other.sock")
    assert canonical("/var/run/x") == "/run/x" and canonical("/srv/var/run/x") == "/srv/var/run/x"


@pytest.mark.parametrize(("argv", "hosts"), [
    (SYSTEMD_DOCKERD, ("fd://",)),
    (["dockerd"], ()),
    (["dockerd", "--host=unix:///var/run/docker.sock", "-H", "tcp://127.0.0.1:2375"],
     ("unix:///var/run/docker.sock", "tcp://127.0.0.1:2375")),
    (["dockerd", "-Hfd://", "-H=unix:///x"], ("fd://", "unix:///x")),
    (["dockerd", "-H"], ()),
])
def test_dockerd_listen_addresses_in_every_spelling(argv: list[str], hosts: tuple[str, ...]) -> None:
    assert dockerd_hosts(argv) == hosts


def test_dockerd_group_defaults_to_docker() -> None:
    assert dockerd_group(SYSTEMD_DOCKERD) == "docker"
    assert dockerd_group(["dockerd", "-G", "dockremote"]) == "dockremote"
    assert dockerd_group(["dockerd", "--group=ops"]) == "ops"


def test_who_makes_the_socket() -> None:
    unit = parse_show(show("docker_socket"))
    assert manager(unit, SYSTEMD_DOCKERD, SOCK) == SYSTEMD
    assert manager(unit, [], SOCK) == SYSTEMD            # dockerd not started yet: the socket activates it
    assert manager(unit, ["dockerd"], SOCK) == DOCKERD   # dockerd makes its own, over systemd's
    assert manager(None, ["dockerd", "-H", "unix:///var/run/docker.sock"], SOCK) == DOCKERD
    assert manager(unit, SYSTEMD_DOCKERD, "/run/other.sock") == DOCKERD
    assert manager(None, [], SOCK) is None


def test_what_undoes_a_chmod_is_said_per_kind_of_host() -> None:
    assert "`systemctl restart docker` keeps it" in undone_by(SYSTEMD)
    assert "docker.socket" in undone_by(SYSTEMD) and "reboot" in undone_by(SYSTEMD)
    assert undone_by(DOCKERD) == "a dockerd restart or a reboot undoes it"
    assert "reboot" in undone_by(None)


# --- whole probes: facts, plan and audit ---------------------------------------------------------------

def probe(name: str) -> Facts:
    host = name.split("_")[0]
    return parse_probe(host, (FIXTURES / f"probe_{name}.txt").read_text(), HostSettings())


def test_a_systemd_lab_host_probe_says_systemd_makes_the_socket() -> None:
    f = probe("lab3_systemd_pristine")
    assert f.socket_manager == SYSTEMD and f.socket_unit is not None and f.socket_unit.group_gid == 995
    assert f.dockerd_argv == ("/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
    assert f.docker_gid == f.access_gid == f.next_socket_gid == f.socket.gid == 995
    assert audit(f, HostSettings()) and "socket-gid-will-change" not in {x.id for x in audit(f, HostSettings())}


def test_a_direct_lab_host_probe_says_dockerd_makes_the_socket() -> None:
    f = probe("lab4_direct_pristine")
    assert (f.socket_manager, f.socket_unit, f.dockerd_argv) == (DOCKERD, None, ("dockerd",))
    assert f.docker_gid == f.access_gid == f.next_socket_gid == 904


def test_an_older_probe_without_the_new_sections_cannot_tell_and_claims_nothing() -> None:
    f = probe("lab2_pristine")
    assert (f.socket_manager, f.socket_unit, f.dockerd_argv) == (None, None, ())
    assert f.next_socket_gid == f.docker_gid == f.access_gid == 121


def test_after_groupmod_the_socket_keeps_its_gid_and_the_worker_is_mapped_to_it() -> None:
    f = probe("lab3_systemd_groupmod_kept")          # group-add with 995, then groupmod -g 1999, restart docker
    assert (f.docker_gid, f.socket.gid, f.access_gid, f.next_socket_gid) == (1999, 995, 995, 1999)
    plan = make_plan(in_current_words(f), HostSettings(), "group-add")
    assert (plan.changed, plan.docker_gid) == (False, 995)
    assert any("hostprep maps 995" in w and "makes it 1999" in w for w in plan.warnings)
    found = {x.id: x for x in audit(f, HostSettings())}
    assert set(found) == {"socket-gid-will-change"} and not found["socket-gid-will-change"].rule.fixable
    assert found["socket-gid-will-change"].detail == (
        "/var/run/docker.sock has GID 995 but group docker is 1999 in /etc/group: a reboot or "
        "`systemctl restart docker.socket` will change the socket's GID to 1999; the worker is mapped to 995")
    assert "sudo systemctl restart docker.socket docker" in found["socket-gid-will-change"].hint


def test_a_socket_unit_drop_in_is_in_the_facts_and_the_facts_table() -> None:
    f = probe("lab3_systemd_drop_in_666")
    assert f.socket_unit is not None and f.socket_unit.mode == 0o666 and f.socket.mode == 0o666
    row = next(ln for ln in facts_table(f).splitlines() if "socket made by" in ln)
    assert row.split("socket made by")[1].strip() == ("systemd docker.socket (666 root:docker, drop-ins "
                                                      "/etc/systemd/system/docker.socket.d/hostprep-test.conf)")


def test_the_chmod_plan_says_what_undoes_it_on_this_host() -> None:
    systemd = make_plan(probe("lab3_systemd_pristine"), HostSettings(), "chmod").warnings[0]
    direct = make_plan(probe("lab4_direct_pristine"), HostSettings(), "chmod").warnings[0]
    assert "`systemctl restart docker` keeps it" in systemd and "`systemctl restart docker.socket`" in systemd
    assert "a dockerd restart or a reboot undoes it" in direct and "keeps it" not in direct


def test_a_malformed_unit_section_is_probe_failed() -> None:
    text = (FIXTURES / "probe_lab3_systemd_pristine.txt").read_text()
    bad = re.sub(r"(@@hostprep:socket_unit\n)[^\n]*", r"\1not base64!", text)
    with pytest.raises(ProbeFailed):
        parse_probe("lab3", bad, HostSettings())


def test_a_socket_given_to_another_named_group_is_not_mapped_into_the_worker() -> None:
    f = probe("lab3_systemd_pristine")
    adm = dataclasses.replace(f, socket=dataclasses.replace(f.socket, gid=4, group="adm"))
    orphan = dataclasses.replace(f, socket=dataclasses.replace(f.socket, gid=995, group="UNKNOWN"), docker_gid=1999)
    assert (adm.access_gid, orphan.access_gid) == (995, 995)
    assert make_plan(adm, HostSettings(), "group-add").docker_gid == 995
