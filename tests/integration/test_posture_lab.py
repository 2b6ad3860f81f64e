"""Posture findings on a real lab host: each unsafe workaround operators really use is planted for real
(dockerd on TCP, a published socket proxy, Airflow as root with the socket in the apiserver, risky DAGs),
and both the cheap and the deep audit find it. Every test starts from a pristine lab2 and puts back
what it changed outside the Compose project (dockerd's configuration, a container of its own)."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from hostprep.audit.run import audit_host
from tests.integration.conftest import Pristine, connect, settings
from tests.lab import docker_proxy, lab

NAME = "lab2"
BASE = {"worker-cannot-reach-docker", "never-applied"}   # a pristine lab host, never provisioned
SOCAT = "hppx-socket-on-a-port"


def audits() -> tuple[set[str], set[str]]:
    """Finding keys of the cheap and the deep audit."""
    with connect(NAME) as t:
        cheap = audit_host(t, settings(NAME), deep=False)
        deep = audit_host(t, settings(NAME), deep=True)
    return {f.key for f in cheap.findings}, {f.key for f in deep.findings}


# dockerd on TCP as operators do it: under systemd (dockerd -H fd://, Debian's unit reads DOCKER_OPTS from
# /etc/default/docker) an extra -H there; without it (the lab's direct dockerd) `hosts` in daemon.json
TCP = ("if [ -d /run/systemd/system ]; then cp /etc/default/docker /etc/default/docker.hppx && "
       "echo 'DOCKER_OPTS=\"-H tcp://0.0.0.0:2375\"' >> /etc/default/docker; else mkdir -p /etc/docker && "
       "printf '{\"hosts\": [\"unix:///var/run/docker.sock\", \"tcp://0.0.0.0:2375\"]}' > /etc/docker/daemon.json; fi "
       "&& /usr/local/sbin/lab-dockerd-restart")
UNDO_TCP = ("if [ -f /etc/default/docker.hppx ] || [ -f /etc/docker/daemon.json ]; then "
            "if [ -f /etc/default/docker.hppx ]; then mv /etc/default/docker.hppx /etc/default/docker; fi; "
            "rm -f /etc/docker/daemon.json; /usr/local/sbin/lab-dockerd-restart; fi")


@pytest.fixture
def host(pristine: Pristine, lab_log: lab.Log) -> Iterator[lab.LabHost]:
    h = pristine(NAME)
    h.exec(f"rm -f /opt/airflow/dags/hostprep_test_*.py; docker rm -f {SOCAT} >/dev/null 2>&1; {UNDO_TCP}")
    yield h
    # what a pristine reset does not put back: dockerd's own configuration, a container outside the project
    h.exec(f"rm -f /opt/airflow/dags/hostprep_test_*.py; docker rm -f {SOCAT} >/dev/null 2>&1; {UNDO_TCP}", check=False)


def test_dockerd_listening_on_tcp_without_tls_is_critical(host: lab.LabHost) -> None:
    host.exec(TCP)
    # for real: the API answers on the TCP port, no certificate asked
    said = host.exec("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:2375/_ping').read())\"")
    assert "OK" in said
    cheap, deep = audits()
    assert "dockerd-tcp-no-tls" in cheap and "dockerd-tcp-no-tls" in deep
    with connect(NAME) as t:
        found = next(f for f in audit_host(t, settings(NAME)).findings if f.id == "dockerd-tcp-no-tls")
    assert "tcp://0.0.0.0:2375" in found.detail   # configured: a flag or daemon.json
    assert "listening on [::]:2375" in found.detail or "listening on 0.0.0.0:2375" in found.detail   # dockerd's own socket
    assert found.severity == "critical" and "--tlsverify" in found.hint


def test_a_container_publishing_the_socket_on_a_host_port_is_critical(host: lab.LabHost, lab_log: lab.Log) -> None:
    docker_proxy.build(lab_log)
    docker_proxy.load_into(host, lab_log)
    # the workaround as seen in the field: the socket proxy with CONTAINERS and POST on, on every address
    host.exec(f"docker run -d --name {SOCAT} -v /var/run/docker.sock:/var/run/docker.sock -p 2375:2375 "
              f"-e CONTAINERS=1 -e POST=1 {docker_proxy.IMAGE} >/dev/null")
    said = host.exec("sleep 1; python3 -c \"import urllib.request as u; "
                     "print(u.urlopen('http://127.0.0.1:2375/containers/json').status)\"")
    assert said.strip() == "200"
    cheap, deep = audits()
    assert f"socket-published:{SOCAT}" in cheap and f"socket-published:{SOCAT}" in deep
    assert "dockerd-tcp-no-tls" not in cheap   # the port is docker-proxy's, not dockerd's own listener


def test_airflow_as_root_and_the_socket_in_the_apiserver_are_found(host: lab.LabHost) -> None:
    host.exec("cd /opt/airflow && printf 'services:\\n  airflow-apiserver:\\n    user: \"0:0\"\\n    volumes:\\n"
              "      - /var/run/docker.sock:/var/run/docker.sock\\n' > docker-compose.override.yml && "
              f"{host.compose_cmd} up -d airflow-apiserver >/dev/null 2>&1")
    cheap, deep = audits()
    posture = {"airflow-runs-as-root:airflow-apiserver", "socket-in-non-task-service:airflow-apiserver"}
    assert cheap - BASE == posture and deep - BASE == posture


def test_dags_that_run_privileged_or_bind_the_host_are_found(host: lab.LabHost) -> None:
    host.exec("cd /opt/airflow/dags && printf '%s\\n' "
              "'from docker.types import Mount' "
              "'t1 = DockerOperator(task_id=\"a\", image=\"x\", privileged=True)' "
              "'t2 = DockerOperator(task_id=\"b\", image=\"x\", mounts=[' "
              "'    Mount(target=\"/host\", source=\"/etc\", type=\"bind\")])' "
              "'t3 = DockerOperator(task_id=\"c\", image=\"x\", volumes=[\"/var/run/docker.sock:/var/run/docker.sock\"])' "
              "'t4 = DockerOperator(task_id=\"d\", image=\"x\", mounts=[Mount(source=\"/data/in\", target=\"/in\")])' "
              "> hostprep_test_risky.py && chown 50000:0 hostprep_test_risky.py")
    cheap, deep = audits()
    posture = {"dag-privileged:hostprep_test_risky.py:2", "dag-host-bind:hostprep_test_risky.py:4",
               "dag-host-bind:hostprep_test_risky.py:5"}
    assert cheap - BASE == posture and deep - BASE == posture
