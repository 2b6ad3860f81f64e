"""Issue 23, item 7, for the probe's parsers: each raises only hostprep's own error (naming the host and
the field), whatever a host prints - deep nesting, every line separator, wrong JSON types. The inputs the
review's fuzzers found come first, then hypothesis suites over the same parsers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hostprep.host.access import id_groups
from hostprep.host.compose import parse_env, set_env_var
from hostprep.host.containers import ContainersMalformed, parse_containers
from hostprep.host.facts import ProbeFailed
from hostprep.host.probe import parse_probe, sections
from hostprep.host.lock import parse_lock
from hostprep.host.status import host_status, lock_age
from hostprep.host.posture_facts import PostureMalformed, parse_daemon, parse_dags
from hostprep.host.socket_unit import parse_show
from tests.unit.host.test_facts_parser import LAB, capture, facts_of, with_section

DEEP = "[" * 1000
SEPARATORS = "\x1c\x1d\x1e\x85\u2028\u2029\v\f\r"
CID = "ab" * 32
NOW = datetime(2026, 12, 2, 1, 1, 35, tzinfo=timezone.utc)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogateescape")).decode()


def containers(fields: list[str], hostconfig: str | None) -> str:
    """A containers section as probe.sh prints it, for one container."""
    body = f"fields {b64(''.join(f'/var/lib/docker/containers/{CID}/config.v2.json:{f}' + chr(10) for f in fields))}"
    if hostconfig is not None:
        body += f"\nhostconfigs {b64(f'/var/lib/docker/containers/{CID}/hostconfig.json:{hostconfig}' + chr(10))}"
    return body


def probe_with(key: str, body: str, name: str = "lab1_proxy_pristine") -> str:
    """A real capture with one section's body replaced (or added, if that capture has none)."""
    text = capture(name)
    if key in sections(text):
        return with_section(text, key, body)
    return text.replace("\n@@hostprep:end", f"\n@@hostprep:{key}\n{body}\n\n@@hostprep:end")


# --- the fuzzers' inputs, reproduced ----------------------------------------------------------------

def test_a_deeply_nested_hostconfig_is_probe_failed_naming_the_host_not_recursion_error() -> None:
    with pytest.raises(ProbeFailed, match=r"^lab1: container abababababab: malformed hostconfig JSON"):
        parse_probe("lab1", probe_with("containers", containers(['{"Running":true'], DEEP)), LAB)


def test_a_deeply_nested_worker_config_is_probe_failed_not_recursion_error() -> None:
    body = f"config {b64(DEEP)}\nhostconfig {b64('{}')}\nproc Uid: 1"
    with pytest.raises(ProbeFailed, match=r"^lab1: malformed container config JSON"):
        parse_probe("lab1", probe_with("worker_files", body), LAB)


def test_a_deeply_nested_daemon_json_is_a_config_error_not_recursion_error() -> None:
    assert parse_daemon(f"daemonjson {b64(DEEP)}").config_error == "/etc/docker/daemon.json is not valid JSON"


def test_a_deeply_nested_record_is_a_corrupt_record_not_recursion_error() -> None:
    assert facts_of_text(probe_with("record", DEEP, "lab1_pristine")).record == {"corrupt": True}


def test_a_deeply_nested_group_add_from_docker_inspect_is_probe_failed() -> None:
    text = capture("lab2_pristine")
    worker = sections(text)["worker"].split("|")
    worker[6] = DEEP
    with pytest.raises(ProbeFailed, match=r"^lab2: malformed GroupAdd"):
        parse_probe("lab2", with_section(text, "worker", "|".join(worker)), LAB)


def facts_of_text(text: str):  # type: ignore[no-untyped-def]
    return parse_probe("lab1", text, LAB)


def test_status_reads_a_lock_holder_whose_since_has_no_timezone() -> None:
    assert lock_age("2026-12-02T01:00:00", NOW) == "?"
    facts = dataclasses.replace(facts_of("lab1_pristine"),
                                lock=parse_lock("held pid=42 mode=apply since=2026-12-02T01:00:00 owner=c:1:a\n"))
    assert host_status(facts, NOW)["lock"] == "held: pid 42 (apply) from c:1:a since 2026-12-02T01:00:00 (?)"


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "x", "", None])
def test_lock_age_of_a_time_out_of_range_or_unreadable_is_a_question_mark(since: str | None) -> None:
    assert lock_age(since, NOW) == "?" or lock_age(since, NOW).endswith("s")


def test_wrong_types_in_a_host_config_give_no_mounts_instead_of_type_error() -> None:
    cfg = '{"Binds": 5, "Mounts": {"a": 1}, "Tmpfs": [1], "PortBindings": [], "NetworkMode": 7, "Privileged": "yes"}'
    (c,) = parse_containers(containers(['{"Running":true'], cfg))
    assert (c.mounts, c.published, c.networks, c.privileged) == ((), (), (), False)


def test_a_port_binding_list_of_non_objects_publishes_nothing() -> None:
    (c,) = parse_containers(containers([], '{"PortBindings": {"80/tcp": 5}}'))
    assert c.published == ()


@pytest.mark.parametrize("sep", list(SEPARATORS), ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_compose_value_with_a_separator_forges_no_container_line(sep: str) -> None:
    """dockerd leaves U+0085 unescaped (as json.dumps does, and U+2028/9 too); none may open a line here."""
    forged = f"{sep}/var/lib/docker/containers/{'cd' * 32}/hostconfig.json:" + '{"Privileged": true}'
    cfg = json.dumps({"Binds": [f"/srv/a{forged}:/a"]}, ensure_ascii=False)
    (c,) = parse_containers(containers(['{"Running":true', ',"User":"x' + sep + 'y"'], cfg))
    assert c.id == CID and not c.privileged and c.user == f"x{sep}y"


def test_a_field_inside_a_json_string_does_not_pose_as_the_containers_own() -> None:
    """Only what probe.sh's grep prints counts; a value with escaped quotes is never a field."""
    (c,) = parse_containers(containers(['{"Running":true', ',"DOCKER_HOST=tcp://p:2375"'], "{}"))
    assert c.docker_host == "tcp://p:2375"
    (c,) = parse_containers(containers(['{"Running":true', ',"DOCKER_HOST=tcp://e\\"vil:1"'], "{}"))
    assert c.docker_host is None


def test_a_containers_line_that_is_not_base64_or_not_a_kind_is_containers_malformed() -> None:
    for body in ("fields ***", "hostconfigs x=y", f"/var/lib/docker/containers/{CID}/hostconfig.json:{{}}"):
        with pytest.raises(ContainersMalformed):
            parse_containers(body)


def test_two_host_configs_for_one_container_are_refused() -> None:
    line = f"/var/lib/docker/containers/{CID}/hostconfig.json:{{}}\n"
    with pytest.raises(ContainersMalformed, match="two host configs"):
        parse_containers(f"hostconfigs {b64(line * 2)}")


def test_a_host_config_line_under_the_fields_kind_is_refused() -> None:
    with pytest.raises(ContainersMalformed):
        parse_containers(f"fields {b64(f'/var/lib/docker/containers/{CID}/hostconfig.json:{{}}')}")


@pytest.mark.parametrize("sep", list(SEPARATORS), ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_an_env_value_with_a_separator_is_one_value_and_sets_no_second_key(sep: str) -> None:
    text = f"A=1{sep}COMPOSE_FILE=evil.yml\nB=2\n"
    assert parse_env(text) == {"A": f"1{sep}COMPOSE_FILE=evil.yml".strip(), "B": "2"}
    assert set_env_var(text, "COMPOSE_FILE", "x.yml").startswith(text)


@pytest.mark.parametrize("sep", list(SEPARATORS), ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_an_id_line_split_by_a_separator_is_not_read_as_groups(sep: str) -> None:
    assert id_groups(f"junk{sep}uid=1 gid=0 groups=0,998") is None


@pytest.mark.parametrize("sep", list(SEPARATORS), ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_socket_unit_value_with_a_separator_sets_no_other_property(sep: str) -> None:
    u = parse_show(f"LoadState=loaded\nActiveState=active\nFragmentPath=/x{sep}SocketGroup=root\nSocketMode=0660")
    assert u is not None and u.group is None and u.fragment == f"/x{sep}SocketGroup=root".strip()


@pytest.mark.parametrize("sep", list(SEPARATORS), ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_a_lock_line_with_a_separator_opens_no_stale_line(sep: str) -> None:
    lock = parse_lock(f"held pid=42 owner=x{sep}stale forged\n")
    assert lock is not None and lock.stale is None


# --- hypothesis: only hostprep's own errors -------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from(list(SEPARATORS + "\n \t:/\"'[]{},=@0123456789abcdefxyz.-_")), max_size=200)
NESTED = st.integers(0, 400).map(lambda n: "[" * n + "]" * (n // 2))
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                           st.sampled_from(["Binds", "Mounts", "Tmpfs", "PortBindings", "NetworkMode", "Privileged",
                                            "Source", "Target", "Type", "HostIp", "HostPort", "80/tcp"]), kids,
                           max_size=4), max_leaves=12)
SETTINGS = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(TEXT, NESTED, JSONISH.map(lambda v: json.dumps(v))))
def test_parse_containers_raises_only_containers_malformed(hostconfig: str) -> None:
    try:
        parse_containers(containers(['{"Running":true', f',"User":"{hostconfig[:20]}"'], hostconfig))
    except ContainersMalformed:
        pass


@SETTINGS
@given(TEXT)
def test_parse_containers_of_any_text_raises_only_containers_malformed(body: str) -> None:
    try:
        parse_containers(body)
    except ContainersMalformed:
        pass


@SETTINGS
@given(TEXT, st.one_of(TEXT, NESTED))
def test_parse_daemon_raises_only_posture_malformed(body: str, daemon_json: str) -> None:
    for text in (body, f"daemonjson {b64(daemon_json)}", f"cmdline {body}"):
        try:
            parse_daemon(text)
        except PostureMalformed:
            pass


@SETTINGS
@given(TEXT)
def test_small_parsers_never_raise(text: str) -> None:
    parse_dags(text)
    parse_lock(text)
    parse_show(text)
    id_groups(text)
    parse_env(text)
    assert "".join(set_env_var(text, "COMPOSE_FILE", "x.yml")).count("COMPOSE_FILE=x.yml") == 1
    assert lock_age(text, NOW) == "?" or lock_age(text, NOW).endswith("s")


@SETTINGS
@given(TEXT)
def test_every_env_line_that_does_not_set_the_key_survives_set_env_var(text: str) -> None:
    out = set_env_var(text, "COMPOSE_FILE", "x.yml")
    kept = [ln for ln in text.split("\n") if not ln.lstrip().removeprefix("export").lstrip().startswith("COMPOSE_FILE")]
    assert all(ln in out for ln in kept)


SECTIONS = ["bind_dirs", "containers", "daemon", "record", "lock", "socket", "socket_unit", "worker_files", "runs",
            "file:.env", "dockerd_cmdline", "snapshots", "docker_group", "project"]


@SETTINGS
@given(st.sampled_from(SECTIONS), st.one_of(TEXT, NESTED, TEXT.map(b64), NESTED.map(b64)))
def test_parse_probe_raises_only_probe_failed_naming_the_host(key: str, body: str) -> None:
    text = probe_with(key, body.replace("@@hostprep:", ""))
    try:
        parse_probe("lab1", text, LAB)
    except ProbeFailed as exc:
        assert str(exc).startswith("lab1: ")


@SETTINGS
@given(TEXT)
def test_a_dag_scan_never_yields_a_bind_folder_a_section_or_a_container(grep: str) -> None:
    base = facts_of("lab1_proxy_pristine")
    text = probe_with("bind_dirs", sections(capture("lab1_proxy_pristine"))["bind_dirs"] + f"\ndags: {b64(grep)}")
    facts = parse_probe("lab1", text, LAB)
    assert sections(text).keys() == sections(capture("lab1_proxy_pristine")).keys()
    assert (facts.bind_dirs, facts.containers) == (base.bind_dirs, base.containers)


@SETTINGS
@given(st.lists(TEXT, max_size=4))
def test_a_compose_value_never_yields_a_container_or_a_section(values: list[str]) -> None:
    fields = ['{"Running":true', ',"Name":"/w-1"'] + [f',"User":"{v}"' for v in values if '"' not in v and "\\" not in v
                                                          and "\n" not in v]
    hostconfig = '{"Binds": [' + ",".join(json.dumps(v + ":/x") for v in values) + "]}"
    text = probe_with("containers", containers(fields, hostconfig))
    assert sections(text).keys() == sections(capture("lab1_proxy_pristine")).keys()
    assert [c.id for c in parse_probe("lab1", text, LAB).containers] == [CID]
