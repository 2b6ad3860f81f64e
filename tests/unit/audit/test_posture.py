"""Posture and proxy-drift judgement, on facts captured from lab hosts with one field changed at a time."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from hostprep.audit.run import RULE, audit
from hostprep.host.containers import ContainerFacts, Mount
from hostprep.host.facts import OVERRIDE_FILE, Facts, FileFacts
from hostprep.host.posture_facts import DaemonFacts, PostureMalformed, parse_daemon, parse_dags
from hostprep.strategies import socket_proxy as sp
from tests.unit.strategies.test_socket_proxy import LAB, facts_of

PROXY = dataclasses.replace(LAB, strategy="socket-proxy")
SOCK = "/var/run/docker.sock"


def keys(facts: Facts, settings: object = LAB) -> set[str]:
    return {f.key for f in audit(facts, settings)}   # type: ignore[arg-type]


def applied(*, deep: bool = False) -> Facts:
    return facts_of("lab1_proxy_applied" if deep else "lab1_proxy_applied_cheap", deep=deep,
                    url=sp.DOCKER_URL if deep else None)


def with_container(facts: Facts, c: ContainerFacts) -> Facts:
    return dataclasses.replace(facts, containers=(*facts.containers, c))


def with_dag(facts: Facts, *lines: str) -> Facts:
    return dataclasses.replace(facts, dags=parse_dags("\n".join(f"./d.py:{i}:{t}" for i, t in enumerate(lines, 1))))


def test_a_provisioned_proxy_host_is_clean_in_both_audits_but_for_todays_path_only_proxy() -> None:
    # captured with the path-only haproxy proxy: the one finding left says a provision deploys the guard
    assert keys(applied(), PROXY) == {"proxy-unguarded"} and keys(applied(deep=True), PROXY) == {"proxy-unguarded"}


@pytest.mark.parametrize("body, tcp", [
    ("cmdline dockerd -H fd:// --containerd=/run/containerd/containerd.sock", False),
    ("cmdline dockerd -H=tcp://0.0.0.0:2375", True),
    ("cmdline dockerd --host tcp://10.0.0.5:2375 --tlsverify --tlscacert=/ca.pem", False),
    ("cmdline dockerd --tls -H tcp://0.0.0.0:2376", True),   # server TLS only: anyone still connects
    ("daemonjson " + base64.b64encode(b'{"hosts": ["tcp://0.0.0.0:2375"]}').decode(), True),
    ("daemonjson " + base64.b64encode(b'{"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": true}').decode(), False),
    ("cmdline dockerd -H fd://\nlisten 00000000000000000000000000000000:0947", True),   # socket activation
])
def test_dockerd_on_tcp_without_client_verification_is_found_however_it_was_configured(body: str, tcp: bool) -> None:
    facts = dataclasses.replace(facts_of("lab1_proxy_pristine"), daemon=parse_daemon(body))
    assert ("dockerd-tcp-no-tls" in keys(facts)) is tcp


def test_a_container_mounting_the_socket_and_publishing_a_port_is_critical() -> None:
    socat = ContainerFacts("f" * 64, name="socat", running=True, published=("0.0.0.0:2375->2375/tcp",),
                           mounts=(Mount(SOCK, SOCK),))
    found = audit(with_container(facts_of("lab1_proxy_pristine"), socat), LAB)
    f = next(f for f in found if f.id == "socket-published")
    assert (f.key, f.severity) == ("socket-published:socat", "critical") and "0.0.0.0:2375" in f.detail
    quiet = dataclasses.replace(socat, published=())
    assert "socket-published:socat" not in keys(with_container(facts_of("lab1_proxy_pristine"), quiet))


def test_airflow_as_root_and_the_socket_in_a_service_that_runs_no_tasks_are_warnings() -> None:
    facts = facts_of("lab1_proxy_pristine")
    api = next(c for c in facts.containers if c.service == "airflow-apiserver")
    bad = dataclasses.replace(api, user="0:0", mounts=(*api.mounts, Mount(SOCK, SOCK)))
    facts = dataclasses.replace(facts, containers=tuple(bad if c is api else c for c in facts.containers))
    found = {f.key: f.severity for f in audit(facts, LAB)}
    assert found["airflow-runs-as-root:airflow-apiserver"] == "warning"
    assert found["socket-in-non-task-service:airflow-apiserver"] == "warning"
    # the scheduler runs tasks under LocalExecutor: listed in hostprep_services, its socket is not flagged
    local = dataclasses.replace(LAB, services=("airflow-worker", "airflow-apiserver"))
    assert "socket-in-non-task-service:airflow-apiserver" not in keys(facts, local)


@pytest.mark.parametrize("line, found", [
    ("    privileged=True,", {"dag-privileged:d.py:1"}),
    ("    privileged = False,", set()),
    ("    mounts=[Mount(source='/', target='/host', type='bind')],", {"dag-host-bind:d.py:1"}),
    ('    Mount(target="/x", source="/root/")', {"dag-host-bind:d.py:1"}),
    ('    volumes=["/var/run/docker.sock:/var/run/docker.sock"],', {"dag-host-bind:d.py:1"}),
    ('    volumes=["/etc:/host-etc:ro"],', {"dag-host-bind:d.py:1"}),
    ('    mounts=[Mount(source="/etc-backup", target="/b")],', set()),
    ('    mounts=[Mount(source="/data/in", target="/in")],', set()),
])
def test_risky_docker_options_in_dags_are_found_by_what_they_mount(line: str, found: set[str]) -> None:
    facts = with_dag(facts_of("lab1_proxy_pristine"), line)
    assert {k for k in keys(facts) if k.startswith("dag-")} == found


def test_a_dag_hard_coding_the_socket_bypasses_the_proxy_only_where_the_proxy_is_applied() -> None:
    line = 'DockerOperator(task_id="t", image="x", docker_url="unix://var/run/docker.sock")'
    assert "dag-bypasses-proxy:d.py:1" in keys(with_dag(applied(), line), PROXY)
    assert "dag-bypasses-proxy:d.py:1" in keys(with_dag(applied(), '    "docker_url": "unix:///run/docker.sock",'), PROXY)
    assert not any(k.startswith("dag-bypasses") for k in keys(with_dag(applied(), 'docker_url=os.environ["X"]'), PROXY))
    assert not any(k.startswith("dag-bypasses") for k in keys(with_dag(facts_of("lab1_proxy_pristine"), line)))


def _proxy(facts: Facts) -> ContainerFacts:
    return facts.service_containers(sp.SERVICE)[0]


def _replace(facts: Facts, old: ContainerFacts, new: ContainerFacts | None) -> Facts:
    return dataclasses.replace(facts, containers=tuple(new if c is old else c for c in facts.containers
                                                       if new is not None or c is not old))


def test_proxy_down_or_gone_is_critical_and_fixable() -> None:
    facts = applied()
    for state in (dataclasses.replace(_proxy(facts), running=False), None):
        found = {f.id: f for f in audit(_replace(facts, _proxy(facts), state), PROXY)}
        assert found["proxy-down"].severity == "critical" and RULE["proxy-down"].fixable


def test_a_published_proxy_is_found_twice_as_the_proxy_and_as_a_published_socket() -> None:
    facts = applied()
    out = _replace(facts, _proxy(facts), dataclasses.replace(_proxy(facts), published=("0.0.0.0:2375->2375/tcp",)))
    assert {"proxy-published", f"socket-published:{_proxy(facts).name}"} <= keys(out, PROXY)


def test_a_worker_back_on_the_socket_is_critical() -> None:
    facts = applied()
    w = facts.service_containers("airflow-worker")[0]
    back = dataclasses.replace(w, docker_host=None, mounts=(Mount(SOCK, SOCK),))
    f = next(f for f in audit(_replace(facts, w, back), PROXY) if f.id == "socket-still-mounted")
    assert f.key == "socket-still-mounted:airflow-worker" and "DOCKER_HOST is unset" in f.detail


def _override(facts: Facts, text: str | None) -> Facts:
    old = facts.files[OVERRIDE_FILE]
    new = dataclasses.replace(old, content=text) if text is not None else FileFacts(OVERRIDE_FILE, False)
    return dataclasses.replace(facts, files={**facts.files, OVERRIDE_FILE: new})


def test_the_override_gone_or_widened_is_a_warning() -> None:
    facts = applied()
    text = facts.files[OVERRIDE_FILE].content or ""
    assert keys(_override(facts, None), PROXY) == {"proxy-override-missing"}
    widened = _override(facts, text.replace("|images)", "|images|volumes)").replace("|export)", ")"))
    f = next(f for f in audit(widened, PROXY) if f.id == "proxy-sections")
    assert f.detail == "the proxy's config in the override opens volumes; no longer refuses exec"
    assert "auth" in sp.config_problems(text.replace("|images)", "|images|auth)"), auth=False)[0]
    assert sp.config_problems(text.replace("|images)", "|images|auth)"), auth=True) == []


def test_posture_rules_each_have_a_severity_and_are_not_fixed_by_a_provision() -> None:
    for rid in ("dockerd-tcp-no-tls", "socket-published", "airflow-runs-as-root", "socket-in-non-task-service",
                "dag-privileged", "dag-host-bind", "dag-bypasses-proxy"):
        assert RULE[rid].severity in ("critical", "warning") and not RULE[rid].fixable


def test_daemon_lines_that_are_not_the_probes_fail_the_probe_and_daemon_json_errors_are_kept() -> None:
    with pytest.raises(PostureMalformed):
        parse_daemon("@@hostprep:record")
    assert parse_daemon("daemonjson " + base64.b64encode(b"{not json").decode()).config_error
    assert DaemonFacts().tcp_without_tls is False


def test_dag_lines_never_leave_the_facts_whole() -> None:
    facts = with_dag(facts_of("lab1_proxy_pristine"), 'conn = "postgresql://u:Zq7secret@db/x"; privileged=True')
    data = facts.to_dict(contents=True)
    assert data["dags"] == [{"file": "d.py", "line": 1}] and "Zq7" not in str(data)
    assert [f.detail for f in audit(facts, LAB) if f.id == "dag-privileged"] == ["d.py:1: privileged=True"]
