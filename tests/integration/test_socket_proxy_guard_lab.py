"""socket-proxy's guard on real lab hosts (real dockerd): what a hostile task sends from inside the worker, as
raw HTTP, is refused and creates nothing; an ordinary task still runs; today's proxy upgrades in place and
a rollback brings it back byte for byte."""

from __future__ import annotations

import gzip
import json
from typing import Any, Callable

import pytest

from hostprep.change.results import CHANGED, OK
from hostprep.strategies.socket_proxy import SERVICE
from tests.integration.conftest import state_of
from tests.integration.test_socket_proxy_lab import (FILES, in_worker, provision, proxy_facts, proxy_host,  # noqa: F401
                                                     proxy_image, rollback, settings_with)
from tests.lab import lab

DATA = "/opt/airflow/data"
IMG = "hostprep-lab/airflow-base:latest"


def raw(method: str, path: str, body: bytes = b"", headers: str = "", *, length: bool = True) -> bytes:
    """One HTTP request as a hostile task would write it."""
    cl = f"Content-Length: {len(body)}\r\n" if length else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: docker\r\n{headers}{cl}Connection: close\r\n\r\n").encode() + body


def create(body: Any, headers: str = "Content-Type: application/json\r\n") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw("POST", "/v1.41/containers/create", data, headers)


def hc(**fields: Any) -> bytes:
    return create({"Image": IMG, "Cmd": ["true"], "HostConfig": fields})


def chunked(data: bytes) -> bytes:
    return raw("POST", "/containers/create", f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n",
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", length=False)


PRIV = json.dumps({"Image": IMG, "HostConfig": {"Privileged": True}}).encode()
ATTACKS: dict[str, bytes] = {
    "privileged": hc(Privileged=True),
    "bind /": hc(Binds=["/:/host"]),
    "bind the socket": hc(Binds=["/var/run/docker.sock:/var/run/docker.sock"]),
    "bind /etc": hc(Binds=["/etc:/etc2"]),
    "bind /var/lib/docker": hc(Binds=["/var/lib/docker:/d"]),
    "mount type=bind source=/": hc(Mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}]),
    "bind through ..": hc(Binds=[f"{DATA}/../../../etc:/e"]),
    "pid host": hc(PidMode="host"),
    "ipc host": hc(IpcMode="host"),
    "uts host": hc(UTSMode="host"),
    "userns host": hc(UsernsMode="host"),
    "network host": hc(NetworkMode="host"),
    "cgroupns host": hc(CgroupnsMode="host"),
    "cap-add SYS_ADMIN": hc(CapAdd=["SYS_ADMIN"]),
    "cap-add ALL": hc(CapAdd=["ALL"]),
    "device /dev/mem": hc(Devices=[{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem",
                                    "CgroupPermissions": "rwm"}]),
    "gpus": hc(DeviceRequests=[{"Count": -1, "Capabilities": [["gpu"]]}]),
    "device cgroup rule": hc(DeviceCgroupRules=["a *:* rwm"]),
    "seccomp unconfined": hc(SecurityOpt=["seccomp=unconfined"]),
    "apparmor unconfined": hc(SecurityOpt=["apparmor=unconfined"]),
    "label disable": hc(SecurityOpt=["label=disable"]),
    "sysctl": hc(Sysctls={"kernel.shm_rmid_forced": "1"}),
    "volumes-from the worker": hc(VolumesFrom=["@WORKER@"]),
    "network container:worker": hc(NetworkMode="container:@WORKER@"),
    "local volume binding /": hc(Mounts=[{"Type": "volume", "Target": "/h", "VolumeOptions": {"DriverConfig": {
        "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]),
    "systempaths unconfined": hc(MaskedPaths=[], ReadonlyPaths=[]),
    "runtime": hc(Runtime="io.containerd.runsc.v1"),
    "privileged at the top level": create({"Image": IMG, "Privileged": True}),
    "privileged lower-case": hc(privileged=True),
    "PRIVILEGED upper-case": hc(PRIVILEGED=True),
    "sysctls with a long s": create(b'{"Image":"' + IMG.encode() + b'","HostConfig":{"\\u017fysctls":{"a.b":"1"}}}'),
    "privileged as a unicode escape": create(b'{"Image":"' + IMG.encode() + b'","HostConfig":{"\\u0050rivileged":true}}'),
    "duplicate key": create(b'{"Image":"' + IMG.encode() + b'","HostConfig":{"Privileged":false,"Privileged":true}}'),
    "case-variant HostConfig": create(b'{"Image":"' + IMG.encode() + b'","HostConfig":{},"hostconfig":{"Privileged":true}}'),
    "chunked": chunked(PRIV),
    "gzip": raw("POST", "/containers/create", gzip.compress(PRIV),
                "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"),
    "form-encoded": raw("POST", "/containers/create?Image=x", b"HostConfig.Privileged=true",
                        "Content-Type: application/x-www-form-urlencoded\r\n"),
    "transfer-encoding and content-length": raw("POST", "/containers/create", b"0\r\n\r\n" + PRIV,
                                                "Transfer-Encoding: chunked\r\n"),
    "trailing second body": create(PRIV[:-1] + b"} " + PRIV),
    "named volume of another service": hc(Binds=["airflow_postgres-db-volume:/pg"]),
    "exec into the worker": raw("POST", "/containers/@WORKER@/exec", b'{"Cmd":["id"]}',
                                "Content-Type: application/json\r\n"),
    "stop a container it did not create": raw("POST", "/containers/@WORKER@/stop?t=600"),
}


def send(h: lab.LabHost, worker: str, request: bytes) -> str:
    """``request`` sent from inside the worker over bash's /dev/tcp to the proxy; the answer's first 2000 bytes."""
    script = ('exec 3<>/dev/tcp/hostprep-docker-proxy/2375 || exit 9; cat >&3; timeout 20 head -c 2000 <&3')
    return h.exec(f"docker exec -i {worker} bash -c '{script}'",
                  input=request.replace(b"@WORKER@", worker.encode()), check=False)


def containers(h: lab.LabHost) -> list[str]:
    return sorted(h.exec("docker ps -aq --no-trunc").split())


def test_every_escape_a_hostile_task_sends_is_refused_and_creates_nothing(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    assert len(ATTACKS) >= 30
    h = proxy_host("lab1")
    report = provision("lab1")
    assert report.status == CHANGED, report.error
    worker = proxy_facts("lab1").worker.name or ""
    before = containers(h)
    answers = {name: send(h, worker, req) for name, req in ATTACKS.items()}
    not_refused = {k: v[:300] for k, v in answers.items() if not v.startswith("HTTP/1.1 403 ")}
    assert not_refused == {}, not_refused
    assert containers(h) == before, "a refused request created a container"
    assert "Privileged is not allowed" in answers["privileged as a unicode escape"]
    assert "running" in h.exec(f"docker inspect -f '{{{{.State.Status}}}}' {worker}")


def test_the_guard_proves_its_refusals_from_inside_the_worker_and_an_ordinary_task_still_runs(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host("lab2")
    h.exec(f"mkdir -p {DATA} && chown 50000:0 {DATA}")
    report = provision("lab2")
    assert report.status == CHANGED, report.error
    rows = {c.name: c for c in report.checks}
    assert all(c.ok for c in report.checks), [c for c in report.checks if not c.ok]
    assert rows["proxy refuses privileged"].detail == "403 Privileged is not allowed"
    assert rows["proxy refuses stopping a container it did not create"].detail.startswith("403 container ")
    assert rows["proxy allows an allowed bind of the data folder with auto_remove and a network"].ok
    f = proxy_facts("lab2")
    worker = f.worker.name or ""
    out = in_worker(h, worker, f"docker run --rm -v {DATA}:/data {IMG} sh -c \"echo through-the-guard > /data/x; "
                               "cat /data/x\"")
    assert "through-the-guard" in out
    listed = in_worker(h, worker, "docker ps -a --format {{.Names}}")
    assert worker not in listed and "airflow-scheduler" not in listed   # a task sees only its own containers
    said = in_worker(h, worker, f"docker run --rm --privileged {IMG} true", check=False)
    assert "403 Forbidden: Privileged is not allowed" in said, said
    assert "Privileged is not allowed" in h.exec(
        f"docker logs $(docker ps -q --filter label=com.docker.compose.service={SERVICE}) 2>&1")
    again = provision("lab2")
    assert (again.status, again.changed) == (OK, 0), again.error
    assert rollback("lab2").status == CHANGED


def test_todays_proxy_upgrades_to_the_guard_in_place_and_rolls_back_to_it_byte_for_byte(
        proxy_host: Callable[[str], lab.LabHost]) -> None:
    h = proxy_host("lab1")
    original = state_of("lab1")
    paths_only = settings_with("lab1", hostprep_proxy_guard=False)
    assert provision("lab1", paths_only).status == CHANGED
    worker = proxy_facts("lab1").worker.name or ""
    files = h.exec(FILES + " docker-compose.hostprep.yml")
    assert "Privileged is not allowed" not in send(h, worker, ATTACKS["bind /"])   # today's proxy lets it through
    h.exec("docker rm -f $(docker ps -aq --filter status=created) >/dev/null 2>&1", check=False)

    up = provision("lab1")
    assert up.status == CHANGED, up.error
    assert up.plan is not None and [s.name for s in up.plan.steps] == [
        "edit docker-compose.hostprep.yml", f"recreate {SERVICE} airflow-worker"]
    assert all(c.ok for c in up.checks), [c for c in up.checks if not c.ok]
    assert send(h, worker, ATTACKS["bind /"]).startswith("HTTP/1.1 403 ")

    back = rollback("lab1")
    assert (back.status, back.data["differences"]) == (CHANGED, []), back.error
    assert h.exec(FILES + " docker-compose.hostprep.yml") == files, "not byte-identical to today's proxy"
    assert "haproxy" in h.exec(f"docker inspect -f '{{{{json .Config.Entrypoint}}}}' "
                               f"$(docker ps -q --filter label=com.docker.compose.service={SERVICE})")
    assert rollback("lab1").status == CHANGED and state_of("lab1") == original
