"""The socket-proxy strategy on real lab hosts: the worker reaches Docker only through the proxy,
the proxy refuses everything DockerOperator does not need, and a rollback leaves no trace."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Callable

import pytest

from hostprep.change import provision as prov
from hostprep.audit.run import audit_host
from hostprep.host.facts import Facts
from hostprep.host.probe import gather
from hostprep.change.results import CHANGED, OK
from hostprep.inventory.settings import HostSettings
from hostprep.strategies.socket_proxy import AREAS, DOCKER_URL, NETWORK, SERVICE
from hostprep.fleet.validate import host_settings
from hostprep.change.verify import verify
from tests.integration.conftest import Pristine, connect, entry, state_of
from tests.lab import docker_proxy, lab

FILES = "cd /opt/airflow && sha256sum docker-compose.yaml Dockerfile .env; ls -a"


@pytest.fixture(scope="session")
def proxy_image(lab_hosts: dict[str, lab.LabHost], lab_log: lab.Log) -> str:
    docker_proxy.build(lab_log)
    return docker_proxy.IMAGE


@pytest.fixture
def proxy_host(proxy_image: str, pristine: Pristine, lab_log: lab.Log) -> Callable[[str], lab.LabHost]:
    """A pristine lab host whose dockerd has the lab's proxy image (there is no registry to pull from)."""
    def ready(name: str) -> lab.LabHost:
        h = pristine(name)   # its project's reset removes a proxy left over; its network goes here
        h.exec(f"ids=$(docker network ls -q --filter label=com.docker.compose.network={NETWORK}); "
               '[ -z "$ids" ] || docker network rm $ids >/dev/null')
        docker_proxy.load_into(h, lab_log)
        return h
    return ready


def settings_with(name: str, **extra: Any) -> HostSettings:
    return host_settings({**entry(name).vars, **extra})


def provision(name: str, settings: HostSettings | None = None, strategy: str | None = "socket-proxy") -> prov.HostReport:
    with connect(name) as t:
        return prov.provision(t, settings or settings_with(name), prov.Options(strategy=strategy))


def rollback(name: str) -> prov.HostReport:
    with connect(name) as t:
        return prov.rollback(t, settings_with(name))


def proxy_facts(name: str) -> Facts:
    with connect(name) as t:
        return gather(t, settings_with(name), deep=True, docker_url=DOCKER_URL)


def in_worker(h: lab.LabHost, worker: str, command: str, *, check: bool = True) -> str:
    """A command in the worker with the worker's own environment (its DOCKER_HOST), as a task runs."""
    return h.exec(f"docker exec {worker} sh -c '{command}' 2>&1", check=check)


@pytest.mark.parametrize("name", ["lab1", "lab2"])
def test_socket_proxy_gives_the_worker_docker_through_the_proxy_only_and_rolls_back_exactly(
        name: str, proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host(name)
    original, files = state_of(name), h.exec(FILES)

    report = provision(name)
    assert report.status == CHANGED, report.error
    assert all(c.ok for c in report.checks), [c for c in report.checks if not c.ok]
    names = [c.name for c in report.checks]
    assert "the proxy refuses volumes, networks, exec, system, swarm, secrets (403)" in names
    assert any(n.startswith("`docker ps` in the worker") for n in names)

    f = proxy_facts(name)
    proxy, worker = f.service_containers(SERVICE)[0], f.service_containers("airflow-worker")[0]
    assert proxy.running and not proxy.published
    assert proxy.mounts_path("/var/run/docker.sock") and all(m.read_only for m in proxy.mounts if m.kind == "bind")
    assert worker.docker_host == DOCKER_URL and not worker.mounts_path("/var/run/docker.sock")
    assert f.worker.docker_ps_rc == 0 and dict(f.worker.denied) == {a: "403" for a in AREAS}
    assert f.worker.id_output == "uid=50000(airflow) gid=0(root) groups=0(root)"   # no docker group
    # and for real, in the worker, as a task would: no socket file; a container run through the proxy
    assert in_worker(h, f.worker.name or "", "test -S /var/run/docker.sock || echo no-socket").strip() == "no-socket"
    out = in_worker(h, f.worker.name or "", "docker run --rm hostprep-lab/airflow-base:latest echo ran-through-the-proxy")
    assert "ran-through-the-proxy" in out
    for refused in ("docker volume ls", f"docker exec {f.worker.name} true", "docker system df", "docker plugin ls",
                    "docker network create hppx-nope", "docker secret ls", "docker swarm init"):
        said = in_worker(h, f.worker.name or "", refused, check=False)
        assert "403 Forbidden" in said, (refused, said)

    again = provision(name)
    assert (again.status, again.changed) == (OK, 0), again.error
    assert all(c.ok for c in again.checks), [c for c in again.checks if not c.ok]

    undone = rollback(name)
    assert undone.status == CHANGED, undone.error
    assert undone.data["differences"] == []
    assert state_of(name) == original
    assert h.exec(FILES) == files, "the project's files are not byte-identical after the rollback"
    assert h.exec(f"docker ps -aq --filter label=com.docker.compose.service={SERVICE}").strip() == ""
    assert h.exec(f"docker network ls -q --filter label=com.docker.compose.network={NETWORK}").strip() == ""


def test_switching_from_socket_proxy_removes_the_proxy_and_its_network_and_a_rollback_brings_them_back(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host("lab1")
    original = state_of("lab1")
    proxied = "docker ps -q --filter status=running --filter label=com.docker.compose.service=" + SERVICE
    network = f"docker network ls -q --filter label=com.docker.compose.network={NETWORK}"
    assert provision("lab1").status == CHANGED
    assert h.exec(proxied).strip() and h.exec(network).strip()

    switched = provision("lab1", strategy="group-add")
    assert switched.status == CHANGED, switched.error
    assert switched.plan is not None and [s.name for s in switched.plan.steps][0] == f"undo socket-proxy: remove {SERVICE}"
    assert h.exec(f"docker ps -aq --filter label=com.docker.compose.service={SERVICE}").strip() == ""
    assert h.exec(network).strip() == "", "the proxy's network outlived the switch"
    f = proxy_facts("lab1")
    assert f.record and f.record["strategy"] == "group-add"
    worker = f.service_containers("airflow-worker")[0]
    assert worker.docker_host is None and worker.mounts_path("/var/run/docker.sock")

    back = rollback("lab1")   # to socket-proxy, exactly: the proxy runs again and the worker reaches Docker through it
    assert (back.status, back.data["differences"]) == (CHANGED, []), back.error
    assert h.exec(proxied).strip()
    again = proxy_facts("lab1")
    assert again.worker.docker_ps_rc == 0 and dict(again.worker.denied) == {a: "403" for a in AREAS}
    assert rollback("lab1").status == CHANGED and state_of("lab1") == original


def test_a_task_longer_than_the_proxy_timeout_survives(proxy_host: Callable[[str], lab.LabHost]) -> None:
    """The proxy's client/server timeout shortened to 3 s: a 7 s task (silent attach, long wait) still
    ends well, while an ordinary call that takes longer than 3 s is cut (the timeout is real)."""
    h = proxy_host("lab1")
    report = provision("lab1", settings_with("lab1", hostprep_proxy_timeout="3s"))
    assert report.status == CHANGED, report.error
    worker = proxy_facts("lab1").worker.name or ""
    out = in_worker(h, worker, "docker run --rm hostprep-lab/airflow-base:latest sh -c \"sleep 7; echo task-done\"")
    assert "task-done" in out, out
    h.exec("docker rm -f hppx-stubborn >/dev/null 2>&1", check=False)   # made through the proxy: the guard lets a
    in_worker(h, worker, "docker run -d --name hppx-stubborn hostprep-lab/airflow-base:latest sleep 60")  # task stop its own
    try:
        cut = in_worker(h, worker, "docker stop -t 6 hppx-stubborn", check=False)
    finally:
        h.exec("docker rm -f hppx-stubborn >/dev/null 2>&1", check=False)
    assert "504" in cut or "Gateway" in cut, cut


def test_hostprep_provision_strategy_socket_proxy_from_the_command_line(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    proxy_host("lab2")
    run = subprocess.run([sys.executable, "-m", "hostprep", "provision", "--host", "lab2", "--strategy", "socket-proxy"],
                         capture_output=True, text=True, cwd=lab.REPO, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[ok] the proxy refuses volumes, networks, exec, system, swarm, secrets (403)" in run.stdout
    assert "[ok] proxy refuses privileged: 403 Privileged is not allowed" in run.stdout
    assert "still reads and writes the allowed data folders" in run.stdout   # the strategy's honest warning


# ------------------------------------------------------------------ the audit knows the proxy

def audit_ids(name: str, *, deep: bool) -> set[str]:
    with connect(name) as t:
        return {f.key for f in audit_host(t, settings_with(name, hostprep_strategy="socket-proxy"), deep=deep).findings}


PORTS_FILE = "docker-compose.ports.yml"
PROXY_DRIFT = {   # induced as root on a host provisioned with socket-proxy -> findings (both audits, deep may add)
    "clean": ("", set()),
    "proxy_down": (f"docker stop -t 1 $(docker ps -q --filter label=com.docker.compose.service={SERVICE})",
                   {"proxy-down"}),
    "proxy_published": (f"printf 'services:\\n  {SERVICE}:\\n    ports: [\"127.0.0.1:2375:2375\"]\\n' > {PORTS_FILE} && "
                        f"sed -i 's/^COMPOSE_FILE=.*/&:{PORTS_FILE}/' .env && {{compose}} up -d {SERVICE}",
                        {"proxy-published", "socket-published:airflow-hostprep-docker-proxy-1"}),
    "socket_still_mounted": ("COMPOSE_FILE=docker-compose.yaml {compose} up -d --no-deps --force-recreate airflow-worker",
                             {"socket-still-mounted:airflow-worker", "worker-cannot-reach-docker"}),
    "override_missing": ("rm docker-compose.hostprep.yml", {"proxy-override-missing"}),
    "sections_widened": ("sed -i 's/|images)/|images|volumes|exec)/' docker-compose.hostprep.yml",
                         {"proxy-sections", "proxy-unguarded"}),   # today's haproxy proxy (hostprep_proxy_guard: false)
    "guard_allows_root": ("""sed -i 's#"binds": \\["/opt/airflow/data"\\]#"binds": ["/", "/opt/airflow/data"]#' """
                          "docker-compose.hostprep.yml", {"proxy-bind-allow-dangerous:/"}),
    "dag_mount_refused": ("printf 'from docker.types import Mount\\nm = Mount(source=\"/srv/raw\", target=\"/in\")\\n'"
                          " > dags/hostprep_test_mount.py", {"dag-mount-refused:hostprep_test_mount.py:2:/srv/raw"}),
    "dag_bypasses": ("printf 'from airflow.providers.docker.operators.docker import DockerOperator\\n"
                     "t = DockerOperator(task_id=\"x\", image=\"busybox\", docker_url=\"unix://var/run/docker.sock\")\\n'"
                     " > dags/hostprep_test_bypass.py", {"dag-bypasses-proxy:hostprep_test_bypass.py:2"}),
}


@pytest.mark.parametrize("scenario", list(PROXY_DRIFT))
def test_the_audit_finds_each_way_the_proxy_comes_undone(scenario: str, proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host("lab1")
    paths_only = settings_with("lab1", hostprep_proxy_guard=False) if scenario == "sections_widened" else None
    assert provision("lab1", paths_only).status == CHANGED
    induce, expected = PROXY_DRIFT[scenario]
    if induce:
        h.exec(f"cd /opt/airflow && {{ {induce.replace('{compose}', h.compose_cmd)}; }} >/dev/null 2>&1")
    cheap, deep = audit_ids("lab1", deep=False), audit_ids("lab1", deep=True)
    assert expected - {"worker-cannot-reach-docker"} <= cheap, cheap
    assert expected <= deep, deep
    assert cheap <= deep and deep - expected <= {"worker-cannot-reach-docker"}, (cheap, deep)


# ------------------------------------------------------------------ a folder above the socket (issue 23, 4)

RUN_MOUNT = "    - /run:/host/run\n"


def socket_answers(h: lab.LabHost, worker: str, path: str) -> str:
    """Whether Docker answers on ``path`` inside the worker, asked as the container's root (who needs
    no group: the strongest caller a mount can serve)."""
    said = h.exec(f"docker exec -u 0 {worker} sh -c 'DOCKER_HOST=unix://{path} docker ps -q' 2>&1; echo rc=$?",
                  check=False)
    return "answers" if said.rstrip().endswith("rc=0") else "refused: " + said.strip()[-200:]


def test_a_worker_that_mounts_run_keeps_no_usable_socket_under_it_and_verify_and_audit_agree(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host("lab1")
    compose = h.exec("cat /opt/airflow/docker-compose.yaml")
    sock = "    - /var/run/docker.sock:/var/run/docker.sock\n"
    assert sock in compose
    h.exec("cd /opt/airflow && cat > docker-compose.yaml", input=compose.replace(sock, RUN_MOUNT).encode())
    h.exec(f"cd /opt/airflow && {h.compose_cmd} up -d --force-recreate airflow-worker >/dev/null 2>&1")
    worker = proxy_facts("lab1").worker.name or ""
    assert socket_answers(h, worker, "/host/run/docker.sock") == "answers"   # the hole is real before the fix

    report = provision("lab1")
    assert report.status == CHANGED, report.error
    assert all(c.ok for c in report.checks), [c for c in report.checks if not c.ok]
    f = proxy_facts("lab1")
    worker = f.worker.name or ""
    said = socket_answers(h, worker, "/host/run/docker.sock")
    assert said.startswith("refused"), said
    assert in_worker(h, worker, "test -S /host/run/docker.sock || echo no-socket").strip() == "no-socket"
    assert in_worker(h, worker, "test -d /host/run && echo still-mounted").strip() == "still-mounted"
    assert f.worker.docker_ps_rc == 0   # through the proxy
    assert "socket-still-mounted:airflow-worker" not in audit_ids("lab1", deep=True)

    # the override gone from the worker (recreated from the compose file alone): both audits say so
    h.exec(f"cd /opt/airflow && COMPOSE_FILE=docker-compose.yaml {h.compose_cmd} up -d --no-deps --force-recreate "
           "airflow-worker >/dev/null 2>&1")
    assert socket_answers(h, proxy_facts("lab1").worker.name or "", "/host/run/docker.sock") == "answers"
    assert "socket-still-mounted:airflow-worker" in audit_ids("lab1", deep=False)
    checks = verify(proxy_facts("lab1"), settings_with("lab1"), "socket-proxy")
    assert "airflow-worker does not mount the socket" in [c.name for c in checks if not c.ok]
