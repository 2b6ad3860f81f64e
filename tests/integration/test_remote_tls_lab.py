"""remote-tls on two real lab hosts: lab1 is the Airflow host, lab2 the task host, on one Docker network
(the lab's network; the controller still talks only to 127.0.0.1). Each test resets both hosts first."""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostprep.audit import remote_tls as remote_tls_audit
from hostprep.cli import remote_tls_cmd
from hostprep.cli.commands import Selection
from hostprep.fleet.fanout import ConnectOptions
from hostprep.change import remote_tls_run as rtls
from hostprep.change.results import CHANGED, OK, HostReport
from tests.integration.conftest import Pristine, connect, entry, settings, state_of
from tests.lab import lab

AIR, TASK = "lab1", "lab2"
NET = f"{lab.PREFIX}-net"
# the task host as the test and the host see it, out of band
TASK_STATE = ("cd / && for f in /etc/hostprep/dockerd-tls/ca.pem /etc/hostprep/dockerd-tls/cert.pem "
              "/etc/hostprep/dockerd-tls/key.pem /etc/systemd/system/docker.service.d/hostprep-tls.conf; do "
              "[ -e $f ] && stat -c '%n %a %U:%G' $f && sha256sum $f || echo \"$f missing\"; done; "
              "ls -d /etc/hostprep /etc/systemd/system/docker.service.d 2>&1; "
              "systemctl show docker.service -p ExecStart --value | sed 's/ ; start_time.*//'; "
              "stat -c '%a %U:%G' /var/run/docker.sock; ss -Hltn 'sport = :2376' | wc -l")
AIR_FILES = "ls -d /etc/hostprep 2>&1; cd /opt/airflow && sha256sum docker-compose.yaml .env; ls -a"
CLEAN_TASK = """
systemctl reset-failed docker.service docker.socket   # earlier tests' restarts count against systemd's start limit
rm -rf /etc/hostprep
rm -f /etc/docker/daemon.json   # the lab's hosts have none; a test plants one
iptables -D INPUT -p tcp --dport 2376 -j REJECT 2>/dev/null || true
docker rm -f hostprep-test-port hostprep-tls-probe >/dev/null 2>&1 || true
if grep -q hostprep-test /etc/default/docker 2>/dev/null; then
    sed -i '/hostprep-test/,+1d' /etc/default/docker
    systemctl reset-failed docker.service docker.socket; systemctl restart docker
fi
"""


def on_lab_network(*hosts: lab.LabHost) -> None:
    """Put lab hosts on the lab's network (made here once, on a subnet no lab host's own Docker uses)."""
    subnet = f"10.{200 + zlib.crc32(lab.PREFIX.encode()) % 50}.{zlib.crc32(lab.PREFIX.encode()) % 250}.0/24"
    if lab.docker("network", "inspect", NET, check=False).returncode != 0:
        lab.docker("network", "create", "--subnet", subnet, "--label", "hostprep.lab=net", NET)
    for h in hosts:
        out = lab.docker("network", "connect", NET, h.container, check=False)
        assert out.returncode == 0 or b"already exists" in out.stderr, out.stderr


@pytest.fixture
def pair(pristine: Pristine, lab_hosts: dict[str, lab.LabHost]) -> tuple[lab.LabHost, lab.LabHost]:
    """lab1 and lab2 pristine, on the lab's network, nothing of remote-tls left on either."""
    on_lab_network(lab_hosts[AIR], lab_hosts[TASK])
    lab_hosts[TASK].exec(CLEAN_TASK)
    lab_hosts[AIR].exec("rm -rf /etc/hostprep /opt/hostprep-test-data")
    pristine(AIR, TASK)
    return lab_hosts[AIR], lab_hosts[TASK]


def task_ip(h: lab.LabHost) -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{NET}").IPAddress}}}}'
    return lab.docker("inspect", "-f", fmt, h.container).stdout.decode().strip()


def run(task: lab.LabHost, what: str = "provision", air: str = AIR, **opts: Any) -> tuple[HostReport, HostReport]:
    tvars = {**entry(TASK).vars, "hostprep_tls_address": task.container, "hostprep_tls_ip": task_ip(task)}
    with connect(air) as a, connect(TASK) as t:
        pair = rtls.Side(a, settings(air)), rtls.Side(t, settings(TASK), tvars)
        return rtls.provision(*pair, rtls.PairOptions(**opts)) if what == "provision" else rtls.rollback(*pair)


def in_worker(h: lab.LabHost, script: str) -> str:
    """A command in lab1's worker with its own environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)."""
    worker = h.exec("docker ps -q --filter label=com.docker.compose.service=airflow-worker").strip()
    return h.exec(f"docker exec {worker} sh -c '{script}' 2>&1", check=False)


def test_remote_tls_runs_the_workers_containers_on_the_task_host_and_rolls_both_back_byte_identical(
        pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    air_before, air_files, task_before = state_of(AIR), air.exec(AIR_FILES), task.exec(TASK_STATE)

    ra, rt = run(task)
    assert (ra.status, rt.status) == (CHANGED, CHANGED), (ra.error, rt.error)
    assert all(c.ok for c in ra.checks), [(c.name, c.detail) for c in ra.checks if not c.ok]
    names = {c.name for c in ra.checks}
    assert {"`docker ps` in the worker through TLS exits 0", "the task host refuses the worker without a client certificate",
            "the task host refuses a client certificate from another CA", "the task host does not answer plain TCP",
            "the worker has no Docker socket"} <= names
    # out of band: the keys are root's, the unix socket stayed, dockerd listens with TLS
    assert "/etc/hostprep/dockerd-tls/key.pem 600 root:root" in task.exec(TASK_STATE)
    assert "640 root:root" in air.exec("stat -c '%a %U:%G' /etc/hostprep/docker-tls/key.pem")
    assert task.exec("stat -c %a /etc/hostprep/dockerd-tls").strip() == "700"
    assert "--tlsverify" in task.exec("systemctl show docker.service -p ExecStart --value")
    assert task.exec("test -S /var/run/docker.sock && docker version -f '{{.Server.Version}}'").strip()

    # a container the worker starts runs on the task host, not on the Airflow host
    in_worker(air, "docker run -d --name hostprep-tls-probe hostprep-lab/airflow-base:latest sleep 60")
    assert "hostprep-tls-probe" in task.exec("docker ps --format '{{.Names}}'")
    assert "hostprep-tls-probe" not in air.exec("docker ps -a --format '{{.Names}}'")
    task.exec("docker rm -f hostprep-tls-probe >/dev/null")

    again_a, again_t = run(task)
    assert (again_a.status, again_t.status) == (OK, OK), (again_a.error, again_t.error)
    assert again_a.changed == again_t.changed == 0

    ba, bt = run(task, "rollback")
    assert not ba.failed and not bt.failed, (ba.error, bt.error)
    assert ba.data.get("differences") == []
    assert state_of(AIR) == air_before
    assert air.exec(AIR_FILES) == air_files
    assert task.exec(TASK_STATE) == task_before


def test_a_failure_on_the_task_host_after_the_airflow_host_changed_puts_both_back(
        pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    """The task host's firewall rejects 2376 (a security group the operator forgot): its dockerd comes up
    with TLS, the Airflow host is changed, and the worker cannot reach the task host: both are restored."""
    air, task = pair
    task.exec("iptables -I INPUT -p tcp --dport 2376 -j REJECT")
    air_before, air_files, task_before = state_of(AIR), air.exec(AIR_FILES), task.exec(TASK_STATE)
    try:
        ra, rt = run(task)
    finally:
        task.exec("iptables -D INPUT -p tcp --dport 2376 -j REJECT")
    assert ra.failed and rt.failed
    assert "`docker ps` in the worker through TLS exits 0" in (ra.error or "")
    assert ra.rolled_back and rt.rolled_back, (ra.warnings, rt.warnings)
    assert state_of(AIR) == air_before
    assert air.exec(AIR_FILES) == air_files
    assert task.exec(TASK_STATE) == task_before
    assert task.exec("ls /var/lib/hostprep/lock 2>&1; ls /var/lib/hostprep/remote-tls.holder 2>&1", check=False).count("No such") == 2


def test_a_task_host_whose_port_is_taken_is_refused_and_nothing_changes(pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    task.exec("docker run -d --name hostprep-test-port -p 2376:80 hostprep-lab/airflow-base:latest sleep 600 >/dev/null")
    air_files, task_before = air.exec(AIR_FILES), task.exec(TASK_STATE)
    ra, rt = run(task)
    assert rt.failed and "TCP port 2376 is already in use on the task host" in (rt.error or "")
    assert air.exec(AIR_FILES) == air_files and task.exec(TASK_STATE) == task_before


def test_a_task_host_whose_dockerd_listens_on_tcp_without_tls_is_refused(pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    task.exec("printf '# hostprep-test\\nDOCKER_OPTS=\"-H tcp://127.0.0.1:2375\"\\n' >> /etc/default/docker && "
              "systemctl restart docker && sleep 2 && docker version >/dev/null")
    air_files, task_before = air.exec(AIR_FILES), task.exec(TASK_STATE)
    ra, rt = run(task)
    assert rt.failed and "already listens on TCP without TLS" in (rt.error or ""), rt.error
    assert air.exec(AIR_FILES) == air_files and task.exec(TASK_STATE) == task_before


def test_a_task_host_whose_daemon_json_repeats_the_drop_ins_flags_is_refused(pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    """dockerd would refuse to start with tlscacert both in daemon.json and as a flag: refused before any change."""
    air, task = pair
    task.exec("""printf '{"tlscacert": "/etc/docker/ca.pem"}' > /etc/docker/daemon.json""")
    air_files, task_before = air.exec(AIR_FILES), task.exec(TASK_STATE)
    ra, rt = run(task)
    assert rt.failed and "/etc/docker/daemon.json sets tlscacert" in (rt.error or ""), rt.error
    assert air.exec(AIR_FILES) == air_files and task.exec(TASK_STATE) == task_before


def test_check_mode_shows_both_hosts_plans_and_changes_nothing(pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    air_files, task_before = air.exec(AIR_FILES), task.exec(TASK_STATE)
    ra, rt = run(task, check=True)
    assert (ra.status, rt.status) == (CHANGED, CHANGED)
    assert "restart docker.service (once)" in rt.data["plan"]
    assert "write /etc/hostprep/docker-tls/key.pem root:0 640" in ra.data["files"]
    assert air.exec(AIR_FILES) == air_files and task.exec(TASK_STATE) == task_before



def audit_ids(task: lab.LabHost) -> list[str]:
    tvars = {**entry(TASK).vars, "hostprep_tls_address": task.container, "hostprep_tls_ip": task_ip(task)}
    with connect(AIR) as a, connect(TASK) as t:
        return sorted(f.key for f in remote_tls_audit.audit(a, settings(AIR), t, settings(TASK), tvars))


def test_the_audit_reports_expiring_certificates_a_changed_drop_in_and_a_worker_back_on_the_socket(
        pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    ra, rt = run(task, days=20)
    assert (ra.status, rt.status) == (CHANGED, CHANGED), (ra.error, rt.error)
    assert audit_ids(task) == ["tls-cert-expiring:lab1:/etc/hostprep/docker-tls/cert.pem",
                               "tls-cert-expiring:lab2:/etc/hostprep/dockerd-tls/cert.pem"]
    air.exec("mkdir -p /opt/hostprep-test-data && cat > /opt/airflow/dags/hostprep_test_tls_lint.py", input=(
        'DockerOperator(task_id="a", image="x", docker_url="unix://var/run/docker.sock")\n'
        'DockerOperator(task_id="b", image="x", mounts=[Mount(source="/opt/hostprep-test-data", target="/d")])\n'
        'DockerOperator(task_id="c", image="x", mounts=[Mount(source="/opt/airflow/dags", target="/d")])\n').encode())
    assert audit_ids(task)[:2] == ["tls-cert-expiring:lab1:/etc/hostprep/docker-tls/cert.pem",
                                   "tls-cert-expiring:lab2:/etc/hostprep/dockerd-tls/cert.pem"]
    assert audit_ids(task)[2:] == ["tls-dag-uses-local-socket:hostprep_test_tls_lint.py:1",
                                   "tls-mount-missing-on-task-host:/opt/hostprep-test-data"]
    task.exec("echo '# edited by hand' >> /etc/systemd/system/docker.service.d/hostprep-tls.conf")
    air.exec("cd /opt/airflow && docker compose -f docker-compose.yaml up -d airflow-worker >/dev/null 2>&1")
    found = audit_ids(task)
    assert "tls-dropin-drift" in found
    assert "tls-socket-still-mounted:airflow-worker" in found and "tls-client-certs-unmounted:airflow-worker" in found


def test_rotation_gives_a_new_client_certificate_while_a_task_runs_and_the_task_finishes(
        pair: tuple[lab.LabHost, lab.LabHost]) -> None:
    air, task = pair
    ra, rt = run(task)
    assert (ra.status, rt.status) == (CHANGED, CHANGED), (ra.error, rt.error)
    old = air.exec("sha256sum /etc/hostprep/docker-tls/cert.pem /etc/hostprep/docker-tls/key.pem")
    server = task.exec("sha256sum /etc/hostprep/dockerd-tls/cert.pem")
    dockerd = task.exec("systemctl show docker.service -p MainPID --value").strip()
    in_worker(air, "nohup sh -c \"docker run --rm --name hostprep-tls-inflight hostprep-lab/airflow-base:latest "
                   "sh -c \\\"sleep 30; echo finished\\\" > /tmp/inflight.log 2>&1; echo rc=\\$? >> /tmp/inflight.log\" "
                   ">/dev/null 2>&1 &")
    for _ in range(40):
        if "hostprep-tls-inflight" in task.exec("docker ps --format '{{.Names}}'"):
            break
        time.sleep(0.25)
    else:
        pytest.fail("the in-flight task never started on the task host")

    with connect(AIR) as a, connect(TASK) as t:
        tvars = {**entry(TASK).vars, "hostprep_tls_address": task.container, "hostprep_tls_ip": task_ip(task)}
        ra, rt = rtls.rotate(rtls.Side(a, settings(AIR)), rtls.Side(t, settings(TASK), tvars))
    assert ra.status == CHANGED and rt.status == OK, (ra.error, rt.error)
    assert all(c.ok for c in ra.checks), [(c.name, c.detail) for c in ra.checks if not c.ok]
    assert air.exec("sha256sum /etc/hostprep/docker-tls/cert.pem /etc/hostprep/docker-tls/key.pem") != old
    assert task.exec("sha256sum /etc/hostprep/dockerd-tls/cert.pem") == server
    assert task.exec("systemctl show docker.service -p MainPID --value").strip() == dockerd   # no restart
    assert "hostprep-tls-inflight" in task.exec("docker ps --format '{{.Names}}'")   # still in flight after the switch
    for _ in range(160):
        log = in_worker(air, "cat /tmp/inflight.log")
        if "rc=" in log:
            break
        time.sleep(0.25)
    assert "finished" in log and "rc=0" in log, log


def test_the_commands_find_the_task_host_in_the_inventory_and_audit_rotate_and_roll_back_the_pair(
        pair: tuple[lab.LabHost, lab.LabHost], tmp_path: Path) -> None:
    air, task = pair
    inv = yaml.safe_load(lab.INVENTORY.read_text())
    hosts = {**inv["all"]["children"]["lab"]["children"]["compose_v2"]["hosts"],
             **inv["all"]["children"]["lab"]["children"]["compose_v1"]["hosts"]}
    hosts[AIR]["hostprep_task_host"] = TASK
    hosts[TASK].update(hostprep_tls_address=task.container, hostprep_tls_ip=task_ip(task))
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": inv["all"]["vars"], "hosts": hosts}}))
    sel, conn = Selection(inventory=str(path), host=AIR), ConnectOptions()
    air_files, task_before = air.exec(AIR_FILES), task.exec(TASK_STATE)

    planned = remote_tls_cmd.provision(sel, conn, rtls.PairOptions(check=True), as_json=True)
    assert planned.code == 0 and air.exec(AIR_FILES) == air_files
    done = json.loads(remote_tls_cmd.provision(sel, conn, rtls.PairOptions(), as_json=True).lines[0])
    assert done[AIR]["status"] == done[TASK]["status"] == CHANGED, done
    assert remote_tls_cmd.audit(sel, conn, as_json=True).code == 0
    old = air.exec("sha256sum /etc/hostprep/docker-tls/cert.pem")
    rotated = json.loads(remote_tls_cmd.rotate(sel, conn, rtls.PairOptions(), as_json=True).lines[0])
    assert rotated[AIR]["status"] == CHANGED and rotated[TASK]["status"] == OK, rotated
    assert air.exec("sha256sum /etc/hostprep/docker-tls/cert.pem") != old
    back = remote_tls_cmd.rollback(sel, conn, None, as_json=True)   # undoes the rotation: the first certificate again
    assert back.code == 0 and air.exec("sha256sum /etc/hostprep/docker-tls/cert.pem") == old
    assert remote_tls_cmd.rollback(sel, conn, None, as_json=True).code == 0   # and then the provision
    assert air.exec(AIR_FILES) == air_files and task.exec(TASK_STATE) == task_before
    hosts[AIR]["hostprep_task_host"] = "nosuchhost"
    path.write_text(yaml.safe_dump({"all": {"vars": inv["all"]["vars"], "hosts": hosts}}))
    refused = json.loads(remote_tls_cmd.provision(sel, conn, rtls.PairOptions(), as_json=True).lines[0])
    assert "nosuchhost" in refused[AIR]["error"]
