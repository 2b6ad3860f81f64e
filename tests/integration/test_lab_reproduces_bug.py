"""The lab reproduces the seed bug for real, over SSH through hostprep's transport."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.ssh.transport import HostKeyRejected, Transport
from tests.integration.conftest import Pristine, connect, entry
from tests.lab import lab

DENIED = "permission denied while trying to connect to the Docker daemon socket"


@pytest.mark.parametrize("name", ["lab1", "lab2"])
def test_fresh_lab_host_shows_the_socket_permission_error(name: str, pristine: Pristine) -> None:
    h = pristine(name)
    with connect(name) as t:
        group = t.run(["getent", "group", "docker"])
        sock = t.run(["stat", "-c", "%a %U %G", "/var/run/docker.sock"])
        worker = t.run(["sudo", "docker", "ps", "-q", "--filter", "label=com.docker.compose.service=airflow-worker"]).stdout.strip()
        ident = t.run(["docker", "exec", worker, "id"], sudo=True)
        ps = t.run(["docker", "exec", worker, "docker", "ps"], sudo=True)
        compose = t.run(["sh", "-c", h.compose_cmd + " version"])
    assert group.stdout.split(":")[2] == str(h.docker_gid)
    assert sock.stdout.strip() == "660 root docker"
    assert ident.stdout.strip() == "uid=50000(airflow) gid=0(root) groups=0(root)"
    assert ps.exit_code != 0 and DENIED in ps.stderr
    assert compose.ok, compose.stderr


def test_lab_hosts_use_both_compose_flavours_and_different_gids(lab_hosts: dict[str, lab.LabHost]) -> None:
    with connect("lab1") as t1, connect("lab2") as t2:
        v2 = t1.run(["docker", "compose", "version", "--short"], sudo=True)
        no_v1 = t1.run(["sh", "-c", "command -v docker-compose"])
        v1 = t2.run(["docker-compose", "version", "--short"], sudo=True)
        no_v2 = t2.run(["docker", "compose", "version"], sudo=True)
    assert v2.ok and v2.stdout.startswith("2.") and not no_v1.ok
    assert v1.ok and v1.stdout.startswith("1.") and not no_v2.ok
    assert lab_hosts["lab1"].docker_gid != lab_hosts["lab2"].docker_gid


def test_wrong_host_key_is_refused(lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    e = entry("lab1")
    ep = endpoint_for(e)
    bogus = paramiko.RSAKey.generate(1024)
    known = tmp_path / "known_hosts"
    # the right key type with the wrong key: a changed host key
    real_type = Path(e.vars["hostprep_known_hosts_file"]).read_text().splitlines()[0].split()[1]
    assert real_type == "ssh-ed25519"
    fake = paramiko.Ed25519Key.from_private_key_file(lab.KEY)  # any other ed25519 key will do
    known.write_text(f"[127.0.0.1]:{ep.port} {fake.get_name()} {fake.get_base64()}\n")
    with pytest.raises(HostKeyRejected, match="HOST KEY CHANGED"):
        Transport(endpoint_for(e, known_hosts=str(known))).open()
    known.write_text(f"[127.0.0.1]:{ep.port} {bogus.get_name()} {bogus.get_base64()}\n")
    with pytest.raises(HostKeyRejected):
        Transport(endpoint_for(e, known_hosts=str(known))).open()


def test_unknown_host_key_is_refused_unless_accept_new(lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    e = entry("lab1")
    known = tmp_path / "known_hosts"
    with pytest.raises(HostKeyRejected, match="not in"):
        Transport(endpoint_for(e, known_hosts=str(known))).open()
    assert not known.exists()
    with Transport(endpoint_for(e, known_hosts=str(known), accept_new=True)) as t:
        assert t.run(["true"]).ok
    recorded = known.read_text()
    assert f"[127.0.0.1]:{endpoint_for(e).port} ssh-ed25519" in recorded
    # accept-new still refuses a key that changed
    fake = paramiko.Ed25519Key.from_private_key_file(lab.KEY)
    known.write_text(f"[127.0.0.1]:{endpoint_for(e).port} ssh-ed25519 {fake.get_base64()}\n")
    with pytest.raises(HostKeyRejected, match="CHANGED"):
        Transport(endpoint_for(e, known_hosts=str(known), accept_new=True)).open()
