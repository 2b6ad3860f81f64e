"""The remote-tls audit on facts built from real certificates: expiry thresholds, TLS, the drop-in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hostprep.change import certs
from hostprep.host.posture_facts import DaemonFacts
from hostprep.audit.remote_tls import cert_findings, judge
from hostprep.strategies.remote_tls import CLIENT_DIR, DROPIN, SERVER_DIR, dropin_text
from hostprep.change.tls_host import FileState, TlsFacts

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
DEBIAN = "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS"
EP = {"address": "tasks1", "port": 2376, "ip": None}


class TaskFacts:   # the one field of Facts the audit reads on the task host
    def __init__(self, daemon: DaemonFacts = DaemonFacts(listening=("0.0.0.0:2376",), tls_verify=True)) -> None:
        self.daemon = daemon


def pair(days: int = 365, *, dropin: bytes | None = None, port_busy: bool = True) -> tuple[TlsFacts, TlsFacts]:
    ca = certs.new_ca("t", now=NOW)
    client = certs.issue_client(ca, "lab1", now=NOW, days=days)
    server = certs.issue_server(ca, "tasks1", now=NOW, days=days)

    def f(p: str, data: str | bytes) -> FileState:
        return FileState(p, "file", 0o600, 0, 0, data.encode() if isinstance(data, str) else data)
    af = TlsFacts("lab1", {p: f(p, d) for p, d in ((f"{CLIENT_DIR}/cert.pem", client.cert_pem), (f"{CLIENT_DIR}/ca.pem", ca.cert_pem))})
    files = {p: f(p, d) for p, d in ((f"{SERVER_DIR}/cert.pem", server.cert_pem), (f"{SERVER_DIR}/ca.pem", ca.cert_pem),
                                     (DROPIN, dropin if dropin is not None else dropin_text(DEBIAN, 2376).encode()))}
    return af, TlsFacts("tasks1", files, systemd=True, active="active", exec_start=DEBIAN, port_busy=port_busy)


def ids(findings: list) -> list[str]:   # type: ignore[type-arg]
    return sorted(f.key for f in findings)


def test_a_fresh_pair_has_no_findings() -> None:
    af, tf = pair()
    assert judge("lab1", af, tf, TaskFacts(), EP, now=NOW) == []   # type: ignore[arg-type]


@pytest.mark.parametrize("days, rule", [(31, None), (30, "tls-cert-expiring"), (8, "tls-cert-expiring"),
                                        (7, "tls-cert-expires-soon"), (1, "tls-cert-expires-soon")])
def test_certificates_warn_at_thirty_days_and_are_critical_at_seven(days: int, rule: str | None) -> None:
    af, tf = pair(days)
    got = judge("lab1", af, tf, TaskFacts(), EP, now=NOW + timedelta(minutes=10))   # type: ignore[arg-type]
    assert ids(got) == ([] if rule is None else sorted([f"{rule}:lab1:{CLIENT_DIR}/cert.pem",
                                                         f"{rule}:tasks1:{SERVER_DIR}/cert.pem"]))


def test_an_expired_or_foreign_or_missing_certificate_is_critical() -> None:
    af, _ = pair(30)
    path = f"{CLIENT_DIR}/cert.pem"
    assert "expired" in cert_findings("x", af.files[path].content, af.files[f"{CLIENT_DIR}/ca.pem"].content, "lab1",
                                      NOW + timedelta(days=40))[0].detail
    other = certs.new_ca("t", now=NOW).cert_pem.encode()
    assert cert_findings("x", af.files[path].content, other, "lab1", NOW)[0].detail == "x: its signature is not the CA's"
    assert cert_findings("x", None, other, "lab1", NOW)[0].id == "tls-cert-expires-soon"


def test_a_task_host_without_tls_or_without_its_port_or_with_a_changed_drop_in_is_reported() -> None:
    af, tf = pair(dropin=b"[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375\n",
                  port_busy=False)
    got = judge("lab1", af, tf, TaskFacts(DaemonFacts(tcp_hosts=("tcp://0.0.0.0:2375",))), EP, now=NOW)   # type: ignore[arg-type]
    assert ids(got) == ["tls-dropin-drift", "tls-task-host-unreachable", "tls-task-host-without-tls"]
    gone = TlsFacts(tf.host, {k: v for k, v in tf.files.items() if k != DROPIN}, True, "active", DEBIAN, (), True)
    assert "is gone" in judge("lab1", af, gone, TaskFacts(), EP, now=NOW)[0].detail   # type: ignore[arg-type]


def test_dags_that_reach_for_the_local_socket_or_mount_what_only_the_airflow_host_has_are_named() -> None:
    from hostprep.host.posture_facts import DagLine
    from hostprep.audit.remote_tls import dag_findings, mount_sources

    dags = (DagLine("etl.py", 4, '    docker_url="unix://var/run/docker.sock",'),
            DagLine("etl.py", 9, '    mounts=[Mount(source="/opt/airflow/data", target="/data", type="bind")],'),
            DagLine("etl.py", 10, '    mounts=[Mount("/data", source="/srv/both")],'),
            DagLine("odd.py", 2, '    mounts=[Mount("/target/only", "/srv/x/../../etc")],'))
    assert mount_sources(dags) == {"/opt/airflow/data": "etl.py:9", "/srv/both": "etl.py:10"}
    air = TlsFacts("lab1", {"/opt/airflow/data": FileState("/opt/airflow/data", "dir", 0o755, 0, 0),
                            "/srv/both": FileState("/srv/both", "dir", 0o755, 0, 0)})
    task = TlsFacts("lab2", {"/opt/airflow/data": FileState("/opt/airflow/data", "missing"),
                             "/srv/both": FileState("/srv/both", "dir", 0o755, 0, 0)})
    assert ids(dag_findings(dags, air, task)) == ["tls-dag-uses-local-socket:etl.py:4",
                                                  "tls-mount-missing-on-task-host:/opt/airflow/data"]
