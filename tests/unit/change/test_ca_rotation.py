"""A CA switch's pure parts: the steps and their order, the bundle, which containers count as tasks,
and the new CA beside the old on the controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostprep.change import ca_rotation as car
from hostprep.change import certs, tls_files
from hostprep.change.tls_host import FileState, TlsFacts
from hostprep.strategies.remote_tls import CLIENT_DIR, SERVER_DIR

EP = {"address": "tasks1", "port": 2376, "ip": "10.0.0.7"}
OLD, NEW = certs.new_ca("old"), certs.new_ca("new")


def provisioned(folder: str, paths: tuple[str, ...], dirs: tuple[tuple[str, int], ...], issued: certs.Issued,
                mode: int) -> TlsFacts:
    files = {d: FileState(d, "dir", m, 0, 0) for d, m in dirs}
    for p in paths:
        files.setdefault(p, FileState(p, "missing"))
    for name, pem in (("ca.pem", issued.ca_pem), ("cert.pem", issued.cert_pem), ("key.pem", issued.key_pem)):
        files[f"{folder}/{name}"] = FileState(f"{folder}/{name}", "file", mode, 0, 0, pem.encode())
    return TlsFacts("h", files, systemd=True, active="active", exec_start="/usr/sbin/dockerd -H fd://")


def pair(ca: certs.CA) -> tuple[TlsFacts, TlsFacts]:
    af = provisioned(CLIENT_DIR, tls_files.AIRFLOW_PATHS, tls_files.AIRFLOW_DIRS, certs.issue_client(ca, "air1"), 0o640)
    tf = provisioned(SERVER_DIR, tls_files.TASK_PATHS, tls_files.TASK_DIRS,
                     certs.issue_server(ca, "tasks1", addresses=("10.0.0.7",)), 0o600)
    return af, tf


def written(plan: tls_files.FilePlan) -> dict[str, bytes]:
    it = iter(plan.change.contents)
    return {a[1].rsplit("/", 1)[1]: next(it) for a in plan.change.actions if a[0] == "write"}


def test_a_new_ca_first_gives_the_airflow_host_the_bundle_then_the_task_host_its_new_certificate_then_the_client() -> None:
    af, tf = pair(OLD)
    (w1, s1), (w2, s2), (w3, s3) = car.steps(car.NEW, OLD, NEW, af, tf, EP, "air1", 365)
    assert (w1, w2, w3) == ("air", "task", "air")
    assert written(s1) == {"ca.pem": (OLD.cert_pem + NEW.cert_pem).encode()} and not s1.change.restart
    task = written(s2)
    assert task["ca.pem"] == (OLD.cert_pem + NEW.cert_pem).encode() and s2.change.restart
    assert certs.verify_chain(task["cert.pem"].decode(), NEW.cert_pem) is None
    assert certs.sans_of(task["cert.pem"].decode()) == ["tasks1", "10.0.0.7"]
    client = written(s3)
    assert set(client) == {"cert.pem", "key.pem"} and certs.verify_chain(client["cert.pem"].decode(), NEW.cert_pem) is None
    assert not s3.change.restart


def test_finishing_trusts_only_the_new_ca_task_host_first_and_keeps_the_certificates() -> None:
    af, tf = pair(NEW)
    (w1, s1), (w2, s2) = car.steps(car.FINISH, OLD, NEW, af, tf, EP, "air1", 365)
    assert (w1, w2) == ("task", "air")
    assert written(s1) == {} and written(s2) == {}     # already only the new CA: nothing to do
    bundled = [car._after(f, {f"{d}/ca.pem": ((OLD.cert_pem + NEW.cert_pem).encode(), m)})
               for f, d, m in ((tf, SERVER_DIR, 0o600), (af, CLIENT_DIR, 0o640))]
    (_, s1), (_, s2) = car.steps(car.FINISH, OLD, NEW, bundled[1], bundled[0], EP, "air1", 365)
    assert written(s1) == {"ca.pem": NEW.cert_pem.encode()} and s1.change.restart
    assert written(s2) == {"ca.pem": NEW.cert_pem.encode()}
    assert s1.undo.contents == ((OLD.cert_pem + NEW.cert_pem).encode(),)


def test_finishing_is_refused_while_the_pairs_certificates_are_from_the_old_ca() -> None:
    af, tf = pair(OLD)

    class Unchanged:
        changed = False

    assert "not from the new CA yet" in car._problems(car.FINISH, Unchanged(), af, tf, NEW)[0]
    assert car._problems(car.NEW, Unchanged(), af, tf, NEW) == []


def test_a_certificate_is_valid_against_a_bundle_holding_its_ca_and_refused_by_one_without() -> None:
    leaf = certs.issue_client(NEW, "air1").cert_pem
    assert certs.verify_chain(leaf, OLD.cert_pem + NEW.cert_pem) is None
    assert "not by" in (certs.verify_chain(leaf, OLD.cert_pem) or "")
    forged = certs.new_ca("new")   # same name, other key
    assert certs.verify_chain(leaf, OLD.cert_pem + forged.cert_pem) == "its signature is not the CA's"


def test_task_containers_are_the_running_ones_no_compose_project_owns() -> None:
    out = "airflow_worker_1\tairflow\nhostprep-tls-real\t\ndocker_proxy\tairflow\n"
    assert car.task_containers(out) == ["hostprep-tls-real"]
    assert car.task_containers("") == []


@pytest.mark.parametrize("out", ["a b c\n", "$(id)\t\n", "x\ty\tz\n"])
def test_a_docker_ps_line_of_another_shape_is_refused(out: str) -> None:
    with pytest.raises(ValueError):
        car.task_containers(out)


def test_the_new_ca_waits_beside_the_old_and_finishing_retires_the_old(tmp_path: Path) -> None:
    path = str(tmp_path / "ca")
    old = certs.load_or_create_ca(path)
    assert not certs.switching(path)
    with pytest.raises(certs.CertError, match="no CA switch"):
        certs.load_next_ca(path)
    new = certs.load_next_ca(path, create=True)
    assert certs.switching(path) and certs.load_next_ca(path).cert_pem == new.cert_pem
    assert certs.load_or_create_ca(path).cert_pem == old.cert_pem
    assert (Path(path) / "next" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    retired = certs.promote_next_ca(path)
    assert not certs.switching(path) and certs.load_or_create_ca(path).cert_pem == new.cert_pem
    assert (retired / "ca.pem").read_text() == old.cert_pem


def test_the_audit_accepts_a_certificate_from_either_ca_of_a_bundle_during_a_switch() -> None:
    from hostprep.audit.remote_tls import cert_findings

    bundle = (OLD.cert_pem + NEW.cert_pem).encode()
    for ca in (OLD, NEW):
        assert cert_findings("air1:cert.pem", certs.issue_client(ca, "air1").cert_pem.encode(), bundle, "air1") == []
    assert cert_findings("air1:cert.pem", certs.issue_client(certs.new_ca("x"), "air1").cert_pem.encode(), bundle, "air1")
