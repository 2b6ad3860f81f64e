"""The fact probe's parser, on output captured from the lab hosts (see fixtures/README.md).

Every ``probe_*.txt`` fixture is the verbatim stdout of ``probe.sh`` on a real
lab host; the hand-made cases below only edit one section of such a capture.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from hostprep.host.facts import PROBED_FILES, Facts, FileFacts
from hostprep.host.probe import parse_probe, sections
from hostprep.host.parse_worker import parse_worker, worker_sections
from hostprep.host.parse_files import parse_file, parse_socket
from hostprep.change.plan import make_plan
from hostprep.inventory.settings import HostSettings

FIXTURES = Path(__file__).parents[1] / "fixtures"
LAB = HostSettings()
PERMISSION_DENIED = "dial unix /var/run/docker.sock: connect: permission denied"


def capture(name: str) -> str:
    return (FIXTURES / f"probe_{name}.txt").read_text()


def facts_of(name: str, settings: HostSettings = LAB, *, deep: bool = True) -> Facts:
    return parse_probe(name.split("_")[0], capture(name), settings, deep=deep)


def with_section(text: str, key: str, body: str) -> str:
    """A capture with one section's body replaced (the hand-made edge cases).

    The in-worker fields (worker_id, worker_docker_ps) live encoded inside ``worker_exec``.
    """
    if key in ("worker_id", "worker_docker_ps"):
        return with_worker_field(text, key, body)
    head, rest = text.split(f"@@hostprep:{key}\n", 1)
    _old, tail = rest.split("\n@@hostprep:", 1)
    return f"{head}@@hostprep:{key}\n{body}\n\n@@hostprep:{tail}"


def with_worker_field(text: str, key: str, body: str) -> str:
    exec_body = sections(text)["worker_exec"].splitlines()
    nonce, rc = exec_body[0].split()
    inner = dict(worker_sections("\n".join(exec_body)))
    inner[key] = body
    raw = "".join(f"@@hostprep-{nonce}:{k}\n{inner[k]}\n" for k in ("worker_id", "worker_docker_ps"))
    encoded = base64.b64encode(raw.encode()).decode()
    return with_section(text, "worker_exec", f"{nonce} {rc}\n{encoded}")


# --- sections -------------------------------------------------------------------------------------

def test_sections_splits_a_real_capture_at_every_marker() -> None:
    sec = sections(capture("lab1_pristine"))
    assert list(sec)[:8] == ["os", "docker_group", "socket", "dockerd", "docker_version", "compose", "project",
                             "file:compose.yaml"]
    assert {f"file:{n}" for n in PROBED_FILES} <= set(sec)
    assert list(sec)[-1] == "end"
    assert sec["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert sec["docker_group"] == "docker:x:998:"


def test_sections_drops_blank_lines_around_each_body_but_keeps_inner_lines() -> None:
    assert sections("@@hostprep:a\n\nx\n\ny\n\n@@hostprep:b\n") == {"a": "x\n\ny", "b": ""}


def test_sections_ignores_anything_printed_before_the_first_marker() -> None:
    assert sections("sudo: motd noise\n@@hostprep:os\nDebian\n") == {"os": "Debian"}


# --- the two pristine lab hosts -------------------------------------------------------------------

def test_lab1_pristine_is_compose_v2_with_docker_gid_998() -> None:
    f = facts_of("lab1_pristine")
    assert (f.host, f.os, f.docker_gid) == ("lab1", "Debian GNU/Linux 12 (bookworm)", 998)
    assert (f.compose_flavour, f.compose_version, f.compose_cmd) == ("v2", "2.26.1-4", ["docker", "compose"])
    assert (f.dockerd_running, f.docker_version) == (True, "20.10.24+dfsg1")
    assert (f.project_dir, f.project_exists) == ("/opt/airflow", True)


def test_lab2_pristine_is_compose_v1_with_docker_gid_121() -> None:
    f = facts_of("lab2_pristine")
    assert f.docker_gid == 121
    assert (f.compose_flavour, f.compose_version, f.compose_cmd) == ("v1", "1.29.2", ["docker-compose"])
    assert f.socket.gid == 121


def test_the_pristine_socket_is_root_docker_660_without_acl() -> None:
    s = facts_of("lab1_pristine").socket
    assert (s.path, s.exists, s.mode, s.uid, s.gid) == ("/var/run/docker.sock", True, 0o660, 0, 998)
    assert (s.owner, s.group, s.has_acl, s.world_writable) == ("root", "docker", False, False)


def test_the_pristine_worker_runs_as_50000_with_primary_group_0_and_no_docker_group() -> None:
    w = facts_of("lab1_pristine").worker
    assert (w.found, w.running, w.name, w.pid) == (True, True, "airflow-airflow-worker-1", 971)
    assert (w.image, w.compose_project) == ("hostprep-lab/airflow:latest", "airflow")
    assert w.image_id == "sha256:a76813473c8aa88dad1bd6bda12afb69d136431f39cc8be6eebb642d7ba5106c"
    assert (w.user, w.user_group, w.group_add) == ("50000:0", "0", ())
    assert (w.proc_uid, w.proc_gid, w.proc_groups) == (50000, 0, (0,))
    assert w.id_output == "uid=50000(airflow) gid=0(root) groups=0(root)"


def test_the_pristine_worker_cannot_reach_docker_permission_denied() -> None:
    f = facts_of("lab2_pristine")
    assert f.worker.docker_check_method == "docker-cli"
    assert f.worker.docker_ps_rc == 1
    assert f.worker.docker_ps_output is not None and f.worker.docker_ps_output.endswith(PERMISSION_DENIED)
    assert "method=" not in f.worker.docker_ps_output
    assert f.worker_reaches_docker is False


def test_compose_v1_container_names_use_underscores_and_lose_the_leading_slash() -> None:
    assert facts_of("lab2_pristine").worker.name == "airflow_airflow-worker_1"


def test_probed_files_that_exist_carry_mode_owner_and_decoded_content() -> None:
    f = facts_of("lab1_pristine")
    env = f.files[".env"]
    assert (env.exists, env.mode, env.uid, env.gid, env.content) == (True, 0o644, 0, 0, "AIRFLOW_UID=50000\n")
    assert f.files["Dockerfile"].content is not None and "USER airflow" in f.files["Dockerfile"].content
    assert f.compose_file is not None and f.compose_file.name == "docker-compose.yaml"


def test_the_captured_compose_file_is_the_lab_project_file_byte_for_byte() -> None:
    """The newest pristine capture holds the lab project as it is; older captures keep it as it was then
    (before the socket moved from x-airflow-common to the worker alone)."""
    lab_file = Path(__file__).parents[2] / "lab" / "airflow" / "docker-compose.yaml"
    assert facts_of("lab1_proxy_pristine").files["docker-compose.yaml"].content == lab_file.read_text()
    assert facts_of("lab2_proxy_pristine").files["docker-compose.yaml"].content == lab_file.read_text()


def test_probed_files_that_do_not_exist_are_listed_as_missing() -> None:
    files = facts_of("lab1_pristine").files
    assert set(files) == set(PROBED_FILES)
    missing = {n for n, f in files.items() if not f.exists}
    assert missing == {"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.override.yml",
                       "docker-compose.hostprep.yml"}
    assert all(files[n].content is None and files[n].sha256 is None for n in missing)


def test_bind_dirs_are_owned_by_the_airflow_uid_on_the_pristine_lab() -> None:
    dirs = facts_of("lab1_pristine").bind_dirs
    assert [(d.name, d.exists, d.uid, d.gid, d.mode) for d in dirs] == [
        (n, True, 50000, 0, 0o755) for n in ("dags", "logs", "plugins", "config")]


def test_a_host_never_provisioned_has_no_record() -> None:
    assert facts_of("lab1_pristine").record is None


def test_facts_repr_is_one_line() -> None:
    assert repr(facts_of("lab1_pristine")) == "<Facts lab1 docker_gid=998 socket=0o660 worker=running>"


def test_recapturing_a_pristine_host_gives_the_same_facts_but_the_pid() -> None:
    first, again = facts_of("lab2_pristine"), facts_of("lab2_pristine_recaptured")
    assert first.worker.pid != again.worker.pid
    assert first.to_dict()["worker"] | {"pid": None} == again.to_dict()["worker"] | {"pid": None}
    assert {k: v for k, v in first.to_dict().items() if k != "worker"} == \
        {k: v for k, v in again.to_dict().items() if k != "worker"}


# --- other real captures --------------------------------------------------------------------------

def test_a_socket_path_that_does_not_exist_is_reported_missing() -> None:
    settings = HostSettings(socket_path="/var/run/hostprep-nope.sock")
    s = facts_of("lab1_no_socket", settings).socket
    assert (s.path, s.exists, s.mode, s.owner, s.world_writable) == ("/var/run/hostprep-nope.sock", False, None,
                                                                     None, False)


def test_a_service_with_no_container_is_worker_not_found() -> None:
    settings = HostSettings(worker_service="airflow-triggerer", services=("airflow-triggerer",))
    f = facts_of("lab1_worker_not_found", settings)
    assert f.worker.found is False
    assert (f.worker.running, f.worker.user_group, f.worker.proc_groups) == (False, None, ())
    assert f.worker_reaches_docker is None


def test_a_missing_project_dir_has_no_files_and_every_bind_dir_missing() -> None:
    f = facts_of("lab2_no_project", HostSettings(project_dir="/opt/hostprep-nope"))
    assert (f.project_dir, f.project_exists, f.compose_file) == ("/opt/hostprep-nope", False, None)
    assert not any(file.exists for file in f.files.values())
    assert [(d.name, d.exists) for d in f.bind_dirs] == [(n, False) for n in ("dags", "logs", "plugins", "config")]


def test_a_shallow_probe_reads_proc_but_does_not_exec_in_the_worker() -> None:
    f = facts_of("lab2_shallow", deep=False)
    assert f.deep is False
    assert f.worker.proc_groups == (0,)
    assert (f.worker.id_output, f.worker.docker_ps_rc, f.worker.docker_check_method) == (None, None, None)
    assert f.worker_reaches_docker is None


def test_after_a_real_group_add_the_worker_has_the_docker_gid_and_reaches_docker() -> None:
    f = facts_of("lab2_groupadd")
    w = f.worker
    assert (w.group_add, w.proc_gid, w.proc_groups) == (("121",), 0, (0, 121))
    assert w.id_output == "uid=50000(airflow) gid=0(root) groups=0(root),121"
    assert (w.docker_check_method, w.docker_ps_rc, f.worker_reaches_docker) == ("docker-cli", 0, True)
    assert f.files["docker-compose.hostprep.yml"].exists
    assert (f.record or {})["strategy"] == "group-add"


# --- hand-made edge cases (one section of a real capture edited) -----------------------------------

def test_an_acl_plus_on_the_socket_sets_has_acl() -> None:
    s = parse_socket("/var/run/docker.sock", "c1b0 0 998 root docker\nsrw-rw----+")
    assert (s.mode, s.has_acl) == (0o660, True)


def test_a_world_writable_socket_is_flagged() -> None:
    s = parse_socket("/var/run/docker.sock", "c1b6 0 998 root docker\nsrw-rw-rw- ")
    assert (s.mode, s.world_writable, s.has_acl) == (0o666, True, False)


def test_an_empty_socket_section_means_the_socket_does_not_exist() -> None:
    assert parse_socket("/run/d.sock", "").exists is False


def test_a_host_without_a_docker_group_has_no_docker_gid() -> None:
    f = parse_probe("h", with_section(capture("lab1_pristine"), "docker_group", ""), LAB)
    assert f.docker_gid is None


def test_a_docker_group_with_members_still_gives_its_gid() -> None:
    f = parse_probe("h", with_section(capture("lab1_pristine"), "docker_group", "docker:x:999:ubuntu,ci"), LAB)
    assert f.docker_gid == 999


def test_dockerd_down_is_seen_as_not_running_with_no_version() -> None:
    text = with_section(with_section(capture("lab1_pristine"), "dockerd", ""), "docker_version", "")
    f = parse_probe("h", text, LAB)
    assert (f.dockerd_running, f.docker_version) == (False, None)


def test_a_compose_v1_without_a_version_still_gives_the_flavour() -> None:
    f = parse_probe("h", with_section(capture("lab2_pristine"), "compose", "v1 "), LAB)
    assert (f.compose_flavour, f.compose_version) == ("v1", None)


def test_no_compose_at_all_gives_no_flavour() -> None:
    assert parse_probe("h", with_section(capture("lab2_pristine"), "compose", ""), LAB).compose_flavour is None


def test_a_record_written_by_hostprep_is_parsed() -> None:
    record = {"strategy": "group-add", "snapshot": "20261125T173000Z-3f9a", "docker_gid": 998}
    f = parse_probe("h", with_section(capture("lab1_pristine"), "record", json.dumps(record, indent=1)), LAB)
    assert f.record == record


def test_a_corrupt_state_json_is_marked_corrupt_instead_of_raising() -> None:
    f = parse_probe("h", with_section(capture("lab1_pristine"), "record", '{"strategy": "group-a'), LAB)
    assert f.record == {"corrupt": True}


@pytest.mark.parametrize("body", ["0", '"group-add"', "[]"])
def test_a_state_json_that_is_not_an_object_is_marked_corrupt_and_plans_without_crashing(body: str) -> None:
    f = parse_probe("h", with_section(capture("lab1_pristine"), "record", body), LAB)
    assert f.record == {"corrupt": True}
    make_plan(f, LAB)


def test_a_worker_without_the_docker_cli_is_checked_through_the_engine_api() -> None:
    body = "method=engine-api\nHTTP/1.0 200 OK\nrc=0"
    f = parse_probe("h", with_section(capture("lab1_pristine"), "worker_docker_ps", body), LAB)
    assert (f.worker.docker_check_method, f.worker.docker_ps_rc, f.worker.docker_ps_output) == \
        ("engine-api", 0, "HTTP/1.0 200 OK")
    assert f.worker_reaches_docker is True


def test_an_engine_api_permission_error_keeps_the_traceback_tail() -> None:
    body = ("method=engine-api\n    s.connect(sys.argv[1])\n"
            "PermissionError: [Errno 13] Permission denied\nrc=1")
    w = parse_worker(sections(with_section(capture("lab1_pristine"), "worker_docker_ps", body)))
    assert (w.docker_check_method, w.docker_ps_rc) == ("engine-api", 1)
    assert w.docker_ps_output == "s.connect(sys.argv[1])\nPermissionError: [Errno 13] Permission denied"


def test_a_worker_with_group_add_and_the_docker_group_in_proc_reaches_docker() -> None:
    text = capture("lab1_pristine").replace("|50000:0|null|", '|50000:0|["998"]|')
    text = with_section(text, "worker_proc", "Uid:\t50000\t50000\t50000\t50000\nGid:\t0\t0\t0\t0\nGroups:\t0 998 ")
    text = with_section(text, "worker_docker_ps", "method=docker-cli\nrc=0")
    w = parse_probe("h", text, LAB).worker
    assert (w.group_add, w.proc_groups, w.docker_ps_rc, w.docker_ps_output) == (("998",), (0, 998), 0, "")


def test_numeric_group_add_entries_become_strings() -> None:
    text = capture("lab1_pristine").replace("|50000:0|null|", "|50000:0|[998, \"docker\"]|")
    assert parse_probe("h", text, LAB).worker.group_add == ("998", "docker")


def test_a_stopped_worker_has_no_pid_and_no_proc_or_deep_facts() -> None:
    sec = {"worker": "/airflow-airflow-worker-1|exited|0|hostprep-lab/airflow:latest|sha256:ab||null|airflow",
           "worker_proc": ""}
    w = parse_worker(sec)
    assert (w.found, w.state, w.running, w.pid, w.user, w.user_group) == (True, "exited", False, None, None, None)
    assert (w.proc_uid, w.proc_groups, w.id_output, w.docker_ps_rc) == (None, (), None, None)


def test_an_empty_worker_section_means_no_worker() -> None:
    assert parse_worker({"worker": "\n"}).found is False


def test_a_missing_file_section_body_means_the_file_does_not_exist() -> None:
    assert parse_file(".env", "") == FileFacts(name=".env", exists=False)


def test_an_empty_file_has_empty_content_not_none() -> None:
    f = parse_file(".env", "600 0 0 0\n")
    assert (f.exists, f.mode, f.content) == (True, 0o600, "")
    assert f.sha256 == hashlib.sha256(b"").hexdigest()


def test_file_content_keeps_crlf_line_endings() -> None:
    raw = b"AIRFLOW_UID=50000\r\n"
    f = parse_file(".env", "644 0 0 19\n" + base64.b64encode(raw).decode())
    assert f.content == "AIRFLOW_UID=50000\r\n"
    assert f.sha256 == hashlib.sha256(raw).hexdigest()


# --- Facts.to_dict ----------------------------------------------------------------------------------

def test_to_dict_hides_file_contents_but_keeps_their_sha256() -> None:
    f = facts_of("lab1_pristine")
    data = f.to_dict()
    env = data["files"][".env"]
    assert "content" not in env
    assert env["sha256"] == hashlib.sha256(b"AIRFLOW_UID=50000\n").hexdigest()
    assert data["files"]["compose.yaml"] == {"name": "compose.yaml", "exists": False, "mode": None, "uid": None,
                                             "gid": None, "sha256": None, "unsafe": None}
    assert "AIRFLOW_UID" not in json.dumps(data)


def test_to_dict_with_contents_includes_them() -> None:
    assert facts_of("lab1_pristine").to_dict(contents=True)["files"][".env"]["content"] == "AIRFLOW_UID=50000\n"


def test_to_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(facts_of("lab2_pristine").to_dict()))
    assert data["docker_gid"] == 121
    assert data["worker"]["proc_groups"] == [0]
    assert data["socket"]["mode"] == 0o660
