"""remote-tls's pure parts: settings, the drop-in, the override, the file plans and their undo, the
host script's answers, and how the in-worker checks are judged."""

from __future__ import annotations

import dataclasses

import pytest

from hostprep.change import certs, tls_files
from hostprep.errors import SettingsError
from hostprep.host.posture_facts import DaemonFacts
from hostprep.change.remote_tls_run import judge, task_problems, with_endpoint
from hostprep.strategies import remote_tls as rt
from hostprep.strategies.remote_tls import DROPIN, SERVER_DIR, dropin_text, task_endpoint
from hostprep.change.tls_host import FileState, TlsFacts, TlsHostError, parse_checks, parse_facts
from hostprep.fleet.validate import host_settings

DEBIAN = "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"


def test_the_drop_in_keeps_the_units_own_command_and_its_socket_and_adds_tls_on_tcp() -> None:
    text = dropin_text(DEBIAN, 2376)
    lines = text.split("\n")
    assert lines[1:3] == ["[Service]", "ExecStart="]
    assert lines[3].startswith("ExecStart=" + DEBIAN + " --tlsverify --tlscacert=/etc/hostprep/dockerd-tls/ca.pem")
    assert lines[3].endswith("-H tcp://0.0.0.0:2376")


def test_a_dockerd_without_any_host_flag_keeps_its_default_unix_socket() -> None:
    assert "ExecStart=/usr/bin/dockerd -H unix:///var/run/docker.sock --tlsverify" in dropin_text("/usr/bin/dockerd", 2376)


@pytest.mark.parametrize("exec_start", [
    "/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2375",       # already on TCP
    "/usr/sbin/dockerd -H fd:// --tlsverify",                  # already TLS
    "/usr/sbin/dockerd -H=tcp://0.0.0.0:2375",
    "/usr/sbin/dockerd -H fd://; rm -rf /",                     # not dockerd's words
    "/usr/sbin/dockerd \"-H fd://\"",
    "sh -c dockerd",
    "",
])
def test_an_execstart_hostprep_cannot_extend_safely_is_refused(exec_start: str) -> None:
    with pytest.raises(SettingsError):
        dropin_text(exec_start, 2376)


def test_a_task_hosts_endpoint_defaults_to_its_name_and_2376() -> None:
    assert task_endpoint({}, "tasks1") == {"address": "tasks1", "port": 2376, "ip": None}
    assert task_endpoint({"hostprep_tls_port": "12376", "hostprep_tls_ip": "::1"}, "t")["port"] == 12376


@pytest.mark.parametrize("vars", [{"hostprep_tls_address": "Tasks 1"}, {"hostprep_tls_port": 0},
                                  {"hostprep_tls_port": True}, {"hostprep_tls_port": "2376; x"},
                                  {"hostprep_tls_ip": "10.0.0.300"}, {"hostprep_tls_address": "a$(id)"}])
def test_a_bad_task_host_setting_is_a_settings_error_naming_the_host(vars: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="^tasks1: hostprep_tls_"):
        task_endpoint(vars, "tasks1")


@pytest.mark.parametrize("value", ["", "a b", "../x", 7, "x;y"])
def test_a_task_host_name_that_is_not_an_inventory_name_is_refused(value: object) -> None:
    with pytest.raises(SettingsError, match="hostprep_task_host"):
        rt.RemoteTls().options({"hostprep_task_host": value})


def test_without_a_resolved_task_host_the_plan_is_blocked_and_says_why() -> None:
    from hostprep.strategies.steps import Draft

    draft = Draft()
    settings = host_settings({"hostprep_task_host": "tasks1"})
    rt.RemoteTls().plan(None, settings, draft)   # type: ignore[arg-type]   # facts are not read before the endpoint
    assert draft.problems and "hostprep_task_host" in draft.problems[0]
    assert rt.RemoteTls().docker_url(settings) is None
    ready = with_endpoint(settings, {"address": "tasks1", "port": 2376, "ip": "10.0.0.7"})
    assert rt.RemoteTls().docker_url(ready) == "tcp://tasks1:2376"


def test_the_airflow_connection_carries_dockeroperators_own_arguments_and_only_paths() -> None:
    import json
    from pathlib import Path
    from hostprep.host.probe import parse_probe

    probe = (Path(__file__).parents[1] / "fixtures" / "probe_lab1_proxy_pristine.txt").read_text()
    settings = host_settings({"hostprep_task_host": "tasks1", "hostprep_tls_conn_id": "tasks_tls"})
    f = parse_probe("lab1", probe, settings, deep=False)
    env = rt.service_entries(f, settings, "airflow-worker", {"address": "tasks1", "port": 2376, "ip": None})["environment"]
    conn = json.loads(env["AIRFLOW_CONN_TASKS_TLS"])
    assert conn == {"conn_type": "generic", "extra": {
        "docker_url": "tcp://tasks1:2376", "tls_ca_cert": "/etc/hostprep/docker-tls/ca.pem",
        "tls_client_cert": "/etc/hostprep/docker-tls/cert.pem", "tls_client_key": "/etc/hostprep/docker-tls/key.pem",
        "tls_verify": True, "tls_hostname": "tasks1"}}
    assert "PRIVATE KEY" not in env["AIRFLOW_CONN_TASKS_TLS"] and "CERTIFICATE" not in env["AIRFLOW_CONN_TASKS_TLS"]


def test_the_connection_id_defaults_to_docker_tasks_and_the_plan_says_what_a_dag_writes() -> None:
    from hostprep.strategies.steps import Draft

    settings = with_endpoint(host_settings({"hostprep_task_host": "tasks1"}), {"address": "tasks1", "port": 2376, "ip": None})
    assert rt.conn_id_of(settings) == "docker_tasks" and rt.conn_env("docker_tasks") == "AIRFLOW_CONN_DOCKER_TASKS"
    draft = Draft()
    rt.RemoteTls().plan(_pristine_facts(settings), settings, draft)
    assert any('**Connection.get("docker_tasks").extra_dejson' in w for w in draft.warnings), draft.warnings
    assert "AIRFLOW_CONN_DOCKER_TASKS" in draft.override["airflow-worker"]["environment"]


def _pristine_facts(settings: object) -> object:
    from pathlib import Path
    from hostprep.host.probe import parse_probe

    probe = (Path(__file__).parents[1] / "fixtures" / "probe_lab1_proxy_pristine.txt").read_text()
    return parse_probe("lab1", probe, settings, deep=False)   # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "Docker_Tasks", "1tasks", "docker-tasks", "a" * 64, "x;y", 7, "tasks\n"])
def test_a_connection_id_that_is_not_a_plain_lower_case_name_is_refused_naming_the_host_and_var(value: object) -> None:
    from hostprep.fleet.validate import validate_host
    from hostprep.inventory.hosts import HostEntry

    with pytest.raises(SettingsError, match="^air1: hostprep_tls_conn_id="):
        validate_host(HostEntry("air1", {"hostprep_task_host": "tasks1", "hostprep_tls_conn_id": value}, ()))


def facts(**files: FileState) -> TlsFacts:
    return TlsFacts("t", {f.path: f for f in files.values()}, systemd=True, active="active", exec_start=DEBIAN)


def test_the_file_plan_makes_missing_folders_and_files_and_its_undo_removes_them_again() -> None:
    f = facts(**{f"p{i}": FileState(p, "missing") for i, p in enumerate(tls_files.TASK_PATHS)})
    want = {f"{SERVER_DIR}/key.pem": (b"KEY", 0o600), DROPIN: (b"[Service]\n", 0o644)}
    plan = tls_files.plan_files(f, tls_files.TASK_DIRS, want, restart_if=tls_files.TASK_PATHS)
    assert [a[0] for a in plan.change.actions] == ["mkdir"] * 3 + ["write"] * 2
    assert plan.change.restart and plan.undo.restart
    assert [a[:2] for a in plan.undo.actions] == [("delete", f"{SERVER_DIR}/key.pem"), ("delete", DROPIN),
                                                  ("rmdir", "/etc/systemd/system/docker.service.d"),
                                                  ("rmdir", SERVER_DIR), ("rmdir", "/etc/hostprep")]


def test_a_file_already_as_wanted_is_no_step_and_a_changed_one_is_put_back_by_the_undo() -> None:
    key, dropin = f"{SERVER_DIR}/key.pem", DROPIN
    f = facts(a=FileState(key, "file", 0o600, 0, 0, b"KEY"), b=FileState(dropin, "file", 0o644, 0, 0, b"old"),
              c=FileState("/etc/hostprep", "dir", 0o755, 0, 0), d=FileState(SERVER_DIR, "dir", 0o700, 0, 0),
              e=FileState("/etc/systemd/system/docker.service.d", "dir", 0o755, 0, 0))
    plan = tls_files.plan_files(f, tls_files.TASK_DIRS, {key: (b"KEY", 0o600), dropin: (b"new", 0o644)},
                                restart_if=(dropin,))
    assert plan.change.actions == (("write", dropin, "644"),) and plan.change.contents == (b"new",)
    assert plan.undo.actions == (("write", dropin, "644"),) and plan.undo.contents == (b"old",)
    nothing = tls_files.plan_files(f, tls_files.TASK_DIRS, {key: (b"KEY", 0o600)}, restart_if=(dropin,))
    assert not nothing.changed and not nothing.change.restart


def test_a_link_where_a_managed_file_belongs_blocks_the_plan() -> None:
    f = facts(a=FileState(DROPIN, "unsafe"))
    assert tls_files.plan_files(f, (), {}).problems


def test_an_undo_from_the_record_may_only_touch_remote_tls_paths() -> None:
    ok = {"actions": [["delete", DROPIN, ""]], "contents": [], "restart": True}
    assert tls_files.put_from_dict(ok, tls_files.TASK_PATHS).restart
    for bad in ({"actions": [["write", "/etc/passwd", "644"]], "contents": ["eA=="]},
                {"actions": [["write", DROPIN, "4777"]], "contents": ["eA=="]},
                {"actions": [["write", DROPIN, "644"]], "contents": []},
                {"actions": [["exec", DROPIN, ""]]}):
        with pytest.raises(ValueError):
            tls_files.put_from_dict(bad, tls_files.TASK_PATHS)


def test_valid_certificates_from_the_fleet_ca_are_kept_and_others_reissued() -> None:
    ca = certs.new_ca("t")
    have = certs.issue_client(ca, "lab1")
    folder = "/etc/hostprep/docker-tls"
    f = facts(a=FileState(f"{folder}/cert.pem", "file", 0o640, 0, 0, have.cert_pem.encode()),
              b=FileState(f"{folder}/key.pem", "file", 0o640, 0, 0, have.key_pem.encode()),
              c=FileState(f"{folder}/ca.pem", "file", 0o640, 0, 0, ca.cert_pem.encode()))
    fresh = certs.issue_client(ca, "lab1")
    assert tls_files.keep_or_issue(f, folder, ca, lambda: fresh) == have
    assert tls_files.keep_or_issue(f, folder, ca, lambda: fresh, renew_days=400) == fresh   # rotation
    other = certs.new_ca("t")
    assert tls_files.keep_or_issue(f, folder, other, lambda: fresh) == fresh


PROBE = "\n".join([
    "", "@@hostprep:files", f"file {DROPIN} 644 0 0 eA==", f"missing {SERVER_DIR}", "",
    "@@hostprep:unit", "active active", "fragment /lib/systemd/system/docker.service", "execstart L3Vzci9zYmluL2RvY2tlcmQ=",
    "@@hostprep:port", "busy", "@@hostprep:end", ""])


def test_the_host_scripts_facts_are_read_whole() -> None:
    f = parse_facts("t", PROBE, [DROPIN, SERVER_DIR])
    assert f.files[DROPIN] == FileState(DROPIN, "file", 0o644, 0, 0, b"x")
    assert f.exec_start == "/usr/sbin/dockerd" and f.port_busy and f.systemd


@pytest.mark.parametrize("change", [
    lambda t: t.replace(f"file {DROPIN}", "file /etc/shadow"),            # a path nobody asked about
    lambda t: t.replace("@@hostprep:end", ""),                            # cut short
    lambda t: t.replace(f"missing {SERVER_DIR}", f"missing {SERVER_DIR}\nmissing {SERVER_DIR}"),
    lambda t: t.replace("active active", "active $(reboot)"),
    lambda t: t.replace("644 0 0 eA==", "644 0 0 not-base64!"),
])
def test_a_forged_or_cut_answer_from_the_host_script_is_refused(change: object) -> None:
    with pytest.raises(TlsHostError):
        parse_facts("t", change(PROBE), [DROPIN, SERVER_DIR])   # type: ignore[operator]


def test_the_in_worker_checks_pass_only_when_tls_works_and_everything_else_is_refused() -> None:
    good = {"tls": "0", "nocert": "1", "otherca": "1", "plain": "1", "sock": "none"}
    assert all(c.ok for c in judge(good))
    for key, value in (("tls", "1"), ("nocert", "0"), ("otherca", "0"), ("plain", "0"), ("sock", "socket")):
        assert [c.ok for c in judge({**good, key: value})].count(False) == 1
    assert not any(c.ok for c in judge({}) if "refuses" in c.name or "plain" in c.name)   # no answer proves nothing


def test_only_answers_under_this_runs_nonce_count() -> None:
    assert parse_checks("@@n1 tls 0\n@@n2 tls 1\n@@n1 plain 1\n@@n1 tls 1\n@@n1 bogus 0\n", "n1") == {"tls": "0", "plain": "1"}


def test_the_task_host_is_refused_when_dockerd_listens_without_tls_or_the_port_is_taken() -> None:
    tf = TlsFacts("t", {}, systemd=True, active="active", exec_start=DEBIAN, port_busy=True)
    ep = {"address": "t", "port": 2376, "ip": None}

    class F:   # the one field of Facts that task_problems reads
        def __init__(self, daemon: DaemonFacts) -> None:
            self.daemon = daemon
    plain = task_problems(tf, F(DaemonFacts(tcp_hosts=("tcp://0.0.0.0:2375",))), ep, False)   # type: ignore[arg-type]
    assert any("without TLS" in p for p in plain) and any("2376 is already in use" in p for p in plain)
    assert task_problems(dataclasses.replace(tf, port_busy=False), F(DaemonFacts()), ep, False) == []   # type: ignore[arg-type]
    assert task_problems(tf, F(DaemonFacts(listening=("0.0.0.0:2376",), tls_verify=True)), ep, True) == []   # type: ignore[arg-type]
    other = dataclasses.replace(tf, port_busy=False, execstart_dropins=("/etc/systemd/system/docker.service.d/x.conf",))
    assert "replaces docker.service's ExecStart" in task_problems(other, F(DaemonFacts()), ep, False)[0]   # type: ignore[arg-type]


def test_a_daemon_json_that_repeats_the_drop_ins_flags_is_refused_before_dockerd_would_refuse_to_start() -> None:
    from hostprep.change.remote_tls_run import DAEMON_JSON

    class F:
        daemon = DaemonFacts()
    clash = FileState(DAEMON_JSON, "file", 0o644, 0, 0, b'{"tlscacert": "/etc/docker/ca.pem", "log-driver": "local"}')
    tf = TlsFacts("t", {DAEMON_JSON: clash}, systemd=True, active="active", exec_start=DEBIAN)
    ep = {"address": "t", "port": 2376, "ip": None}
    assert "sets tlscacert" in task_problems(tf, F(), ep, False)[0]   # type: ignore[arg-type]
    fine = dataclasses.replace(clash, content=b'{"log-driver": "local"}')
    assert task_problems(dataclasses.replace(tf, files={DAEMON_JSON: fine}), F(), ep, False) == []   # type: ignore[arg-type]
