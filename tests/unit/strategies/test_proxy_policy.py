"""The socket-proxy guard's policy: what a container may ask for, judged on the bytes a hostile task sends."""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostprep.strategies import proxy_policy as pp
from tests.unit.fuzz import FUZZ

DATA = "/opt/airflow/data"
POLICY = pp.Policy(owner="airflow", binds=(DATA,))
OURS, THEIRS = "a" * 64, "b" * 64
CONTAINERS = {"ours": (OURS, {pp.LABEL: "airflow"}), OURS: (OURS, {pp.LABEL: "airflow"}),
              "airflow-airflow-scheduler-1": (THEIRS, {"com.docker.compose.service": "airflow-scheduler"}),
              "forged": (THEIRS, {pp.LABEL: "someone-else"})}


def lookup(ref: str) -> Optional[Tuple[str, Mapping[str, str]]]:
    return CONTAINERS.get(ref)


def create(body: Any, *, raw: bytes | None = None, headers: pp.Headers = (), policy: pp.Policy = POLICY) -> pp.Verdict:
    data = raw if raw is not None else json.dumps(body).encode()
    hs = (("content-type", "application/json"), ("content-length", str(len(data))), *headers)
    return pp.judge(pp.Request("POST", "/v1.41/containers/create", hs, data), policy, lookup)


def host(**hc: Any) -> dict[str, Any]:
    return {"Image": "hostprep-lab/task:latest", "HostConfig": hc}


# ------------------------------------------------------------------ refusals that name the field

@pytest.mark.parametrize("body, reason", [
    (host(Privileged=True), "Privileged is not allowed"),
    (host(CapAdd=["SYS_ADMIN"]), "CapAdd is not allowed (SYS_ADMIN)"),
    (host(CapAdd=["ALL"]), "CapAdd is not allowed (ALL)"),
    (host(Devices=[{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem", "CgroupPermissions": "rwm"}]),
     "Devices is not allowed"),
    (host(DeviceRequests=[{"Count": -1, "Capabilities": [["gpu"]]}]), "DeviceRequests is not allowed"),
    (host(DeviceCgroupRules=["a *:* rwm"]), "DeviceCgroupRules is not allowed"),
    (host(PidMode="host"), "PidMode host is not allowed"),
    (host(IpcMode="host"), "IpcMode host is not allowed"),
    (host(UTSMode="host"), "UTSMode host is not allowed"),
    (host(UsernsMode="host"), "UsernsMode host is not allowed"),
    (host(CgroupnsMode="host"), "CgroupnsMode host is not allowed"),
    (host(NetworkMode="host"), "NetworkMode host is not allowed"),
    (host(NetworkMode="container:airflow-airflow-scheduler-1"), "NetworkMode container:airflow-airflow-scheduler-1"),
    (host(SecurityOpt=["seccomp=unconfined"]), "SecurityOpt seccomp=unconfined is not allowed"),
    (host(SecurityOpt=["apparmor=unconfined"]), "SecurityOpt apparmor=unconfined is not allowed"),
    (host(SecurityOpt=["label=disable"]), "SecurityOpt label=disable is not allowed"),
    (host(SecurityOpt=["no-new-privileges:false"]), "SecurityOpt no-new-privileges:false is not allowed"),
    (host(Sysctls={"kernel.core_pattern": "|/x"}), "Sysctls is not allowed"),
    (host(VolumesFrom=["airflow-airflow-worker-1"]), "VolumesFrom is not allowed"),
    (host(Links=["postgres:db"]), "Links is not allowed"),
    (host(MaskedPaths=[]), "MaskedPaths is not allowed"),
    (host(Runtime="kata"), "Runtime kata is not allowed"),
    (host(CgroupParent="/"), "CgroupParent / is not allowed"),
    (host(Binds=["/:/host"]), "Binds: / is never allowed"),
    (host(Binds=["/var/run/docker.sock:/var/run/docker.sock"]), "Binds: /var/run/docker.sock is never allowed"),
    (host(Binds=["/run:/r"]), "Binds: /run is never allowed"),
    (host(Binds=["/etc:/etc2"]), "Binds: /etc is never allowed"),
    (host(Binds=["/var:/v"]), "Binds: /var is never allowed (it holds or is under /etc"[:35]),
    (host(Binds=["/opt/airflow/data/../../../etc:/x"]), "is not a clean absolute path"),
    (host(Binds=["/opt/airflow/data/sub:/x"]), "/opt/airflow/data/sub is not in hostprep_proxy_bind_allow"),
    (host(Binds=["/srv:/x"]), "Binds: /srv is not in hostprep_proxy_bind_allow"),
    (host(Binds=["airflow_postgres-db-volume:/x"]), "named volume"),
    (host(Binds=[f"{DATA}:/d:rshared"]), "propagation"),
    (host(Mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}]), "Mounts: / is never allowed"),
    (host(Mounts=[{"Type": "volume", "Target": "/h", "VolumeOptions": {"DriverConfig": {
        "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]), "volume driver options"),
    (host(Mounts=[{"Type": "volume", "Source": "pgdata", "Target": "/h"}]), "named volume"),
    (host(Mounts=[{"Type": "npipe", "Source": "x", "Target": "/h"}]), "Type npipe is not allowed"),
    ({"Image": "x", "Privileged": True}, "Privileged is not allowed"),            # Docker reads it at the top level
    ({"Image": "x", "Binds": ["/:/h"]}, "Binds: / is never allowed"),
    ({"Image": "x", "HostConfig": "privileged"}, "HostConfig must be an object"),
    ({"Image": "x", "NetworkingConfig": {"EndpointsConfig": {"host": {}}}}, "NetworkMode host is not allowed"),
    (host(privileged=True), "Privileged is not allowed"),
    (host(PRIVILEGED=True), "Privileged is not allowed"),
    (host(ſysctls={"a": "b"}), "Sysctls is not allowed"),   # Go folds U+017F to s
])
def test_a_create_that_asks_for_more_than_an_ordinary_container_is_refused_naming_the_field(
        body: Any, reason: str) -> None:
    v = create(body)
    assert (v.status, v.body) == (403, b"") and reason in v.reason, v


@pytest.mark.parametrize("raw, reason", [
    (b'{"Image":"x","HostConfig":{"Privileged":false,"Privileged":true}}', "duplicate key Privileged"),
    (b'{"Image":"x","HostConfig":{"Privileged":false,"privileged":true}}', "are one field to Docker"),
    (b'{"Image":"x","HostConfig":{},"hostconfig":{"Privileged":true}}', "are one field to Docker"),
    (b'{"Image":"x","HostConfig":{"\\u0050rivileged":true}}', "Privileged is not allowed"),
    (b'{"Image":"x"} {"HostConfig":{"Privileged":true}}', "not JSON"),
    (b'{"Image":"x","HostConfig":{"Memory":NaN}}', "not JSON"),
    (b'\xff\xfe{\x00}\x00', "not JSON"),
    (b'image=x&HostConfig.Privileged=true', "not JSON"),
    (b'[' * 100000, "not JSON"),
    (b'null', "must be a JSON object"),
])
def test_ambiguous_or_malformed_bodies_are_refused(raw: bytes, reason: str) -> None:
    v = create(None, raw=raw)
    assert v.status == 403 and reason in v.reason, v


@pytest.mark.parametrize("headers, reason", [
    ((("transfer-encoding", "chunked"),), "Transfer-Encoding and Content-Length together"),
    ((("content-encoding", "gzip"),), "Content-Encoding is not allowed"),
    ((("content-type", "application/x-www-form-urlencoded"),), "Content-Type sent twice"),
    ((("content-length", "5"),), "Content-Length sent twice"),
])
def test_ambiguous_framing_is_refused(headers: pp.Headers, reason: str) -> None:
    v = create(host(), headers=headers)
    assert v.status == 403 and reason in v.reason, v


def test_a_form_encoded_body_is_refused_whatever_the_route() -> None:
    req = pp.Request("POST", "/images/create?fromImage=x", (("content-type", "application/x-www-form-urlencoded"),
                                                             ("content-length", "11")), b"fromSrc=-&a")
    assert pp.judge(req, POLICY, lookup).reason == "form-encoded bodies are not allowed"


def test_an_oversize_body_is_refused_before_it_is_read() -> None:
    with pytest.raises(pp.Refused, match="larger than"):
        pp.framing((("content-length", str(pp.MAX_BODY + 1)),))
    assert pp.framing((("transfer-encoding", "chunked"),)) == -1


# ------------------------------------------------------------------ what DockerOperator does still works

DOCKER_OPERATOR = {   # docker-py 7 / DockerOperator: bind of the data folder, auto_remove, a user network
    "Image": "hostprep-lab/task:latest", "Cmd": ["fetch"], "Env": {"AIRFLOW_TMP": "x"}, "Labels": {"app": "dag"},
    "HostConfig": {"AutoRemove": False, "Binds": None, "Mounts": [{"Target": "/data", "Source": DATA, "Type": "bind",
                                                                   "ReadOnly": False}],
                   "NetworkMode": "hostprep-tasks", "Privileged": False, "CapAdd": None, "SecurityOpt": None,
                   "Devices": None, "DeviceRequests": None, "Tmpfs": {"/tmp": ""}, "ShmSize": 67108864,
                   "IpcMode": None, "PidMode": None, "Dns": None, "ExtraHosts": None, "CpuShares": 512},
    "NetworkingConfig": {"EndpointsConfig": {"hostprep-tasks": {}}}}


def test_dockeroperators_create_is_allowed_and_labelled_with_the_owner() -> None:
    v = create(DOCKER_OPERATOR)
    assert v.allowed and v.target == "/v1.41/containers/create" and v.headers == (("content-type", "application/json"),)
    sent = json.loads(v.body)
    assert sent["Labels"] == {"app": "dag", pp.LABEL: "airflow"} and sent["HostConfig"] == DOCKER_OPERATOR["HostConfig"]
    assert create({**DOCKER_OPERATOR, "HostConfig": {"Binds": [f"{DATA}:/data:ro"]}}).allowed
    assert create({"Image": "x", "labels": None}).body == b'{"Image":"x","labels":{"hostprep.proxy":"airflow"}}'


@pytest.mark.parametrize("method, target", [
    ("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/v1.41/version"), ("GET", "/images/json"),
    ("GET", "/v1.41/images/hostprep-lab/task:latest/json"), ("POST", "/images/create?fromImage=busybox&tag=1"),
    ("GET", "/containers/ours/json"), ("POST", "/v1.44/containers/ours/start"), ("POST", "/containers/ours/wait"),
    ("GET", "/containers/ours/logs?stdout=1&follow=1"), ("DELETE", "/containers/ours?v=1&force=1"),
    ("DELETE", f"/v1.41/containers/{OURS}?v=False&link=False&force=False"),   # docker-py's remove_container
    ("GET", "/containers/ours/archive?path=%2Ftmp%2Fx"), ("POST", "/containers/ours/stop?t=10"),
])
def test_the_calls_dockeroperator_makes_are_forwarded_with_the_containers_full_id(method: str, target: str) -> None:
    v = pp.judge(pp.Request(method, target, ()), POLICY, lookup)
    assert v.allowed, v
    assert "ours" not in v.target and (OURS in v.target or "/containers/" not in v.target)


def test_a_long_call_has_no_timeout_and_attach_keeps_its_upgrade() -> None:
    hs = (("upgrade", "tcp"), ("connection", "Upgrade"))
    attach = pp.judge(pp.Request("POST", "/containers/ours/attach?stream=1&stdout=1", hs), POLICY, lookup)
    assert attach.allowed and attach.upgrade and attach.long
    assert pp.judge(pp.Request("POST", "/containers/ours/wait", ()), POLICY, lookup).long


@pytest.mark.parametrize("method, target, status, reason", [
    ("POST", "/containers/airflow-airflow-scheduler-1/stop", 403, "was not created through hostprep's proxy"),
    ("DELETE", "/containers/forged?force=1", 403, "was not created through hostprep's proxy"),
    ("GET", "/containers/airflow-airflow-scheduler-1/logs", 403, "was not created"),
    ("GET", "/containers/gone/json", 404, "No such container: gone"),
    ("POST", "/containers/ours/exec", 403, "is not opened"),
    ("GET", "/containers/ours/export", 403, "is not opened"),
    ("POST", "/containers/prune", 403, "is not opened"),
    ("DELETE", "/containers/ours?link=1", 403, "links"),
    ("GET", "/volumes", 403, "is not opened"), ("POST", "/volumes/create", 403, "is not opened"),
    ("POST", "/networks/create", 403, "is not opened"), ("GET", "/system/df", 403, "is not opened"),
    ("POST", "/auth", 403, "is not opened"), ("PUT", "/containers/ours/archive", 403, "method PUT"),
    ("POST", "/images/create?fromSrc=-", 403, "only pulls"), ("POST", "/build", 403, "is not opened"),
    ("GET", "/containers/ours/../../volumes", 403, "is not plain"), ("GET", "/v1.41//volumes", 403, "is not plain"),
    ("GET", "/containers/%2e%2e/json", 403, "is not plain"), ("GET", "/_ping?a=1&a=2", 403, "comes twice"),
    ("GET", "/containers%2fours%2fexec", 403, "is not opened"),
])
def test_calls_outside_the_api_a_task_needs_or_on_containers_not_ours_are_refused(
        method: str, target: str, status: int, reason: str) -> None:
    v = pp.judge(pp.Request(method, target, ()), POLICY, lookup)
    assert v.status == status and reason in v.reason, v


def test_the_container_list_only_shows_the_owners_containers() -> None:
    v = pp.judge(pp.Request("GET", '/containers/json?all=1&filters={"label":["app=x"]}', ()), POLICY, lookup)
    q = dict(pp.split_target(v.target)[1])
    assert json.loads(q["filters"]) == {"label": ["app=x", "hostprep.proxy=airflow"]} and q["all"] == "1"
    bare = pp.judge(pp.Request("GET", "/containers/json", ()), POLICY, lookup)
    assert json.loads(dict(pp.split_target(bare.target)[1])["filters"]) == {"label": ["hostprep.proxy=airflow"]}


def test_an_image_allow_list_refuses_other_images_at_create_and_pull() -> None:
    only = pp.Policy(owner="airflow", images=("hostprep-lab/*",))
    assert create({"Image": "hostprep-lab/task:latest"}, policy=only).allowed
    assert "not in hostprep_proxy_images" in create({"Image": "alpine"}, policy=only).reason
    pull = pp.judge(pp.Request("POST", "/images/create?fromImage=alpine&tag=3", ()), only, lookup)
    assert "not in hostprep_proxy_images" in pull.reason


@pytest.mark.parametrize("path, bad", [("/", True), ("/var", True), ("/var/lib", True), ("/opt/airflow/data", False),
                                       ("/srv/data", False), ("/run/user/1000", True), ("/etc/ssl", True),
                                       ("/var/run/docker.sock", True), ("/usr/local", True)])
def test_dangerous_paths_are_the_system_folders_the_socket_and_their_ancestors(path: str, bad: bool) -> None:
    assert (pp.dangerous_path(path) is not None) == bad


def test_the_policy_travels_to_the_container_as_json() -> None:
    assert pp.Policy.from_json(POLICY.to_json()) == POLICY


# ------------------------------------------------------------------ properties (hypothesis)

REFUSED = {"Privileged": True, "CapAdd": ["SYS_ADMIN"], "Devices": [{"PathOnHost": "/dev/sda"}],
           "DeviceRequests": [{"Count": 1}], "DeviceCgroupRules": ["a *:* rwm"], "PidMode": "host",
           "IpcMode": "host", "UTSMode": "host", "UsernsMode": "host", "CgroupnsMode": "host", "NetworkMode": "host",
           "SecurityOpt": ["apparmor=unconfined"], "Sysctls": {"net.ipv4.ip_forward": "1"},
           "VolumesFrom": ["w"], "Binds": ["/:/h"], "Runtime": "nvidia",
           "Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/e"}]}
FOLDS = {"s": ["s", "S", "\u017f"], "k": ["k", "K", "\u212a"]}
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)


@st.composite
def spellings(draw: st.DrawFn, name: str) -> str:
    """One of the spellings Go's decoder reads as field ``name`` (any case, Unicode folds of s and k)."""
    out = []
    for ch in name:
        options = FOLDS.get(ch.lower(), [ch.lower(), ch.upper()])
        out.append(draw(st.sampled_from(options)))
    return "".join(out)


def escaped(text: str, mask: list[bool]) -> str:
    """JSON text with some of its characters written as \\u escapes (what a hostile client may do)."""
    return "".join(f"\\u{ord(c):04x}" if m and c.isalnum() else c for c, m in zip(text, mask + [False] * len(text)))


@FUZZ
@given(extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k.casefold() not in pp._NAMES), json_values,
                             max_size=4),
       field=st.sampled_from(sorted(REFUSED)), data=st.data(), top=st.booleans(),
       mask=st.lists(st.booleans(), max_size=20))
def test_a_body_with_a_refused_field_under_any_spelling_is_never_allowed(
        extra: dict[str, Any], field: str, data: st.DataObject, top: bool, mask: list[bool]) -> None:
    key = data.draw(spellings(field))
    inner = json.dumps({key: REFUSED[field]}, ensure_ascii=False)[1:-1]
    inner = escaped(inner[:len(key) + 2], mask) + inner[len(key) + 2:]   # escape some of the key's letters
    rest = json.dumps({"Image": "x", **{k: v for k, v in extra.items() if k.casefold() not in ("image", "hostconfig")}})
    body = (rest[:-1] + ", " + inner + "}" if top else rest[:-1] + ', "HostConfig": {' + inner + "}}")
    v = create(None, raw=body.encode())
    assert v.status == 403, (body, v)


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       method=st.sampled_from(["GET", "POST", "DELETE", "HEAD", "PUT"]),
       target=st.text(max_size=60).map(lambda t: "/" + t) | st.sampled_from(
           ["/containers/create", "/containers/ours/update", "/auth", "/containers/json?filters=x"]),
       headers=st.lists(st.tuples(st.sampled_from(["content-type", "transfer-encoding", "content-length", "upgrade",
                                                   "x-registry-auth"]), st.text(max_size=20)), max_size=3))
def test_the_policy_never_raises_and_never_forwards_the_clients_bytes_unjudged(
        raw: bytes, method: str, target: str, headers: list[tuple[str, str]]) -> None:
    v = pp.judge(pp.Request(method, target, tuple(headers), raw), pp.Policy("airflow", auth=True), lookup)
    assert isinstance(v, pp.Verdict) and v.status in (200, 403, 404, 413)
    if v.allowed and v.body:
        assert isinstance(json.loads(v.body), dict) and v.headers == (("content-type", "application/json"),)
