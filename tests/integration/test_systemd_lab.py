"""What really undoes a fix on a host whose socket systemd makes (docker.socket, `dockerd -H fd://`).

Each test resets its host, then causes real events with the host's own tools (`systemctl restart
docker`, `systemctl restart docker.socket`, `groupmod`, a reboot = a restart of the host's container)
and reads the socket's mode, owner and GID with `stat` on the host after each one, out of band. Then
it checks that hostprep's facts, audit and `--fix` say and do the right thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hostprep.cli import audit_cmd, commands
from hostprep.change import provision as prov
from hostprep.fleet.fanout import ConnectOptions
from hostprep.change.results import CHANGED, OK
from tests.integration.conftest import Pristine, connect, facts_of, settings
from tests.lab import lab

NEW_GID = 1999
RESTART_DOCKER = "/usr/local/sbin/lab-dockerd-restart"       # systemctl restart docker
RESTART_SOCKET = "/usr/local/sbin/lab-socket-recreate"       # systemctl restart docker.socket (and docker)


def socket_stat(h: lab.LabHost) -> str:
    """The socket as the host's own `stat` sees it: mode owner:group gid."""
    return h.exec("stat -L -c '%a %U:%G %g' /var/run/docker.sock").strip()


def on_systemd(pristine: Pristine, name: str) -> lab.LabHost:
    h = pristine(name)
    if h.init != "systemd":
        pytest.skip(f"{name} does not boot systemd (HOSTPREP_LAB_INIT=direct)")
    return h


def provision(name: str, strategy: str | None = None) -> prov.HostReport:
    with connect(name) as t:
        return prov.provision(t, settings(name), prov.Options(strategy=strategy))


def rollback(name: str) -> prov.HostReport:
    with connect(name) as t:
        return prov.rollback(t, settings(name))


def audit(tmp_path: Path, name: str, *, fix: bool = False, deep: bool = False) -> tuple[int, dict[str, Any]]:
    outputs = audit_cmd.AuditOutputs(as_json=True)
    sel = commands.Selection(inventory=str(lab.INVENTORY), host=name)
    reply = audit_cmd.audit(sel, ConnectOptions(), outputs, deep=deep, fix=fix)
    return reply.code, json.loads(reply.lines[-1])["hosts"][name]


def findings(host: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in host["findings"]}


def test_facts_say_systemd_makes_the_socket(pristine: Pristine) -> None:
    h = on_systemd(pristine, "lab1")
    f = facts_of("lab1")
    assert f.socket_manager == "systemd"
    assert f.socket_unit is not None and f.socket_unit.mode == 0o660 and f.socket_unit.group == "docker"
    assert f.socket_unit.listen == ("/run/docker.sock",) and f.socket_unit.drop_ins == ()
    assert "fd://" in f.dockerd_argv
    assert f.docker_gid == f.access_gid == f.next_socket_gid == h.docker_gid == 999
    assert socket_stat(h) == "660 root:docker 999"


def test_a_chmod_survives_a_docker_restart_and_a_socket_restart_undoes_it(pristine: Pristine, tmp_path: Path) -> None:
    h = on_systemd(pristine, "lab1")
    report = provision("lab1", "chmod")
    assert report.status == CHANGED, report.error
    assert any("`systemctl restart docker` keeps it" in w for w in report.plan.warnings)
    assert socket_stat(h) == "666 root:docker 999"

    h.exec(RESTART_DOCKER)
    assert socket_stat(h) == "666 root:docker 999"           # dockerd -H fd:// never touched the file
    _, host = audit(tmp_path, "lab1")
    assert "chmod-lost" not in findings(host)

    h.exec(RESTART_SOCKET)
    assert socket_stat(h) == "660 root:docker 999"           # docker.socket made it again
    code, host = audit(tmp_path, "lab1")
    lost = findings(host)["chmod-lost"]
    assert code == 2 and "`systemctl restart docker.socket`" in lost["detail"]

    code, fixed = audit(tmp_path, "lab1", fix=True)
    assert fixed["fix"]["status"] == "changed" and "chmod-lost" not in findings(fixed)
    assert socket_stat(h) == "666 root:docker 999"
    assert rollback("lab1").status in (CHANGED, OK)
    assert socket_stat(h) == "660 root:docker 999"


def test_groupmod_keeps_the_old_gid_until_the_socket_is_made_again(pristine: Pristine, tmp_path: Path) -> None:
    h = on_systemd(pristine, "lab2")
    assert provision("lab2", "group-add").status == CHANGED
    h.exec(f"groupmod -g {NEW_GID} docker && {RESTART_DOCKER}")
    assert socket_stat(h) == f"660 root:UNKNOWN {h.docker_gid}"   # the old number: systemd still holds the socket

    f = facts_of("lab2")
    assert (f.docker_gid, f.access_gid, f.next_socket_gid) == (NEW_GID, h.docker_gid, NEW_GID)
    assert f.worker.docker_ps_rc == 0                         # the worker still gets in, with the old GID
    again = provision("lab2", "group-add")                    # maps the GID that opens the socket now
    assert (again.status, again.changed) == (OK, 0)
    assert any(f"hostprep maps {h.docker_gid}" in w for w in again.plan.warnings)
    code, host = audit(tmp_path, "lab2", deep=True)
    change = findings(host)["socket-gid-will-change"]
    assert set(findings(host)) == {"socket-gid-will-change"} and code == 2
    assert f"GID to {NEW_GID}" in change["detail"] and f"mapped to {h.docker_gid}" in change["detail"]

    h.exec(RESTART_SOCKET)                                     # what the next reboot does
    assert socket_stat(h) == f"660 root:docker {NEW_GID}"
    code, host = audit(tmp_path, "lab2")
    assert set(findings(host)) == {"gid-mapping-stale", "worker-cannot-reach-docker"}
    code, fixed = audit(tmp_path, "lab2", fix=True)
    assert code == 0 and fixed["fix"]["status"] == "changed"
    after = facts_of("lab2")
    assert after.worker.docker_ps_rc == 0 and NEW_GID in after.worker.proc_groups


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile", "chmod"])
def test_a_reboot_after_each_strategy(strategy: str, pristine: Pristine, tmp_path: Path, lab_log: lab.Log) -> None:
    h = on_systemd(pristine, "lab1")
    assert provision("lab1", strategy).status == CHANGED
    seconds = lab.reboot(h)
    lab_log(f"lab1 rebooted in {seconds:.1f}s after {strategy}")
    assert socket_stat(h) == "660 root:docker 999"           # a reboot makes the socket again: a chmod is gone
    after = facts_of("lab1")
    assert after.socket_manager == "systemd" and after.worker.running
    _, host = audit(tmp_path, "lab1")
    if strategy == "chmod":
        assert after.worker.docker_ps_rc != 0 and "chmod-lost" in findings(host)
        _, fixed = audit(tmp_path, "lab1", fix=True)
        assert fixed["fix"]["status"] == "changed" and socket_stat(h) == "666 root:docker 999"
    else:
        assert after.worker.docker_ps_rc == 0, after.worker.docker_ps_output   # the mapping holds
        assert not {"gid-mapping-stale", "worker-cannot-reach-docker"} & set(findings(host))
    assert rollback("lab1").status in (CHANGED, OK)                # the latest snapshot: before the fix, or all
    assert socket_stat(h) == "660 root:docker 999"


GROUP_IN_IMAGE = r"""set -e; cd /opt/airflow
# an image that already has the host's docker GID as another group (systemd-sysusers gives 999 to systemd-journal)
sed -i 's|^USER airflow$|USER root\nRUN groupadd -g 999 systemd-journal\nUSER airflow|' Dockerfile
grep -q 'groupadd -g 999 systemd-journal' Dockerfile
docker compose build -q airflow-worker >/dev/null 2>&1 && docker compose up -d airflow-worker >/dev/null 2>&1
"""


@pytest.mark.parametrize("strategy", ["group-add", "dockerfile"])
def test_a_docker_gid_taken_by_another_group_in_the_worker_image(strategy: str, pristine: Pristine) -> None:
    h = on_systemd(pristine, "lab1")
    h.exec(GROUP_IN_IMAGE)
    assert "systemd-journal:x:999:" in h.exec("docker exec airflow-airflow-worker-1 getent group 999")
    report = provision("lab1", strategy)
    assert report.status == CHANGED, report.error
    after = facts_of("lab1")
    assert after.worker.docker_ps_rc == 0, after.worker.docker_ps_output
    assert "999(systemd-journal)" in (after.worker.id_output or "") and after.worker.proc_gid == 0
