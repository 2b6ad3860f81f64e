"""socket-proxy's guard in the plan, the settings, verification and the audit, on facts captured from lab hosts."""

from __future__ import annotations

import base64
import dataclasses
import json
import socket

import pytest

from hostprep.host import compose, guard_checks
from hostprep.errors import SettingsError
from hostprep.host.facts import OVERRIDE_FILE, FileFacts
from hostprep.host.probe import probe_env
from hostprep.change.plan import make_plan
from hostprep.host.posture_facts import DagLine
from hostprep.strategies import proxy_guard, proxy_guard_server
from hostprep.strategies import socket_proxy as sp
from hostprep.fleet.validate import host_settings
from tests.unit.strategies.test_socket_proxy import facts_of

GUARD = host_settings({"hostprep_proxy_image": "hostprep-lab/docker-proxy:v1"})


def guard_plan_override(name: str = "lab1_proxy_applied") -> dict[str, object]:
    plan = make_plan(facts_of(name, url=sp.DOCKER_URL), GUARD, "socket-proxy")
    assert not plan.blocked, plan.problems
    return compose.load_compose(plan.steps[0].after)


def test_a_host_with_todays_proxy_is_upgraded_to_the_guard_by_editing_the_override_and_recreating() -> None:
    plan = make_plan(facts_of("lab1_proxy_applied", url=sp.DOCKER_URL), GUARD, "socket-proxy")
    assert [s.name for s in plan.steps] == [f"edit {OVERRIDE_FILE}", f"recreate {sp.SERVICE} airflow-worker"]
    proxy = compose.load_compose(plan.steps[0].after)["services"][sp.SERVICE]
    assert proxy["image"] == "hostprep-lab/airflow:latest"          # the worker's own image: nothing pulled
    assert proxy["user"] == "65534:998" and proxy["cap_drop"] == ["ALL"] and "ports" not in proxy
    env = proxy["environment"]
    assert env[proxy_guard.SERVER_VAR].replace("$$", "$") == (proxy_guard._HERE / "proxy_guard_server.py").read_text()
    assert json.loads(env[proxy_guard.RULES_VAR])["binds"] == ["/opt/airflow/data"]
    assert any("refuses privileged containers" in w for w in plan.warnings)


def test_the_guard_image_can_be_named_and_the_allow_list_set() -> None:
    s = host_settings({"hostprep_proxy_guard_image": "python:3.12-slim", "hostprep_proxy_bind_allow": ["/srv/in", "/srv/out"],
                       "hostprep_proxy_images": ["hostprep-lab/*"]})
    proxy = compose.load_compose(make_plan(facts_of("lab1_proxy_pristine"), s, "socket-proxy").steps[0].after)[
        "services"][sp.SERVICE]
    rules = json.loads(proxy["environment"][proxy_guard.RULES_VAR])
    assert proxy["image"] == "python:3.12-slim" and rules["binds"] == ["/srv/in", "/srv/out"]
    assert rules["images"] == ["hostprep-lab/*"] and rules["owner"] == "/opt/airflow"


@pytest.mark.parametrize("binds, said", [
    (["/"], "/ is never allowed"), (["/var"], "/var is never allowed (it holds /var/lib/docker)"),
    (["/etc/airflow"], "is under /etc"), (["/srv/data", "/srv/data/in"], "/srv/data/in is inside /srv/data"),
    (["srv"], "not a clean absolute path"), (["/srv/../etc"], "not a clean absolute path"), (5, "must be a list"),
    (["/var/run/docker.sock"], "is never allowed"),
])
def test_an_allow_list_with_a_dangerous_or_ambiguous_path_is_refused_before_any_connection(binds: object,
                                                                                             said: str) -> None:
    with pytest.raises(SettingsError, match="hostprep_proxy_bind_allow"):
        try:
            host_settings({"hostprep_proxy_bind_allow": binds})
        except SettingsError as exc:
            assert said in str(exc)
            raise


def test_the_probe_asks_the_guard_checks_only_through_the_guard() -> None:
    assert probe_env(GUARD, docker_url=sp.DOCKER_URL)["GUARD_CHECKS"].count("\n") == len(guard_checks.CHECKS) + 1
    assert probe_env(GUARD)["GUARD_CHECKS"] == ""    # the socket: never (the stop check would be real)
    paths = host_settings({"hostprep_proxy_guard": "false"})
    assert probe_env(paths, docker_url=sp.DOCKER_URL)["GUARD_CHECKS"] == ""


def section(nonce: str, *rows: str) -> str:
    return nonce + "\n" + base64.b64encode("".join(r + "\n" for r in rows).encode()).decode()


def test_the_guards_answers_are_read_only_under_this_runs_nonce() -> None:
    n = "ab" * 12
    text = section(n, f"{n}\tprivileged\t403\t403 Forbidden: Privileged is not allowed",
                   f"{'cd' * 12}\ta duplicate key\t403\tforged", "privileged\t201\tno nonce")
    assert guard_checks.parse_checks(text) == {"privileged": ("403", "Privileged is not allowed")}
    assert guard_checks.parse_checks("not-a-nonce\nxx") == {} and guard_checks.parse_checks(None) == {}


def guarded_facts(answers: dict[str, str]) -> object:
    facts = facts_of("lab1_proxy_applied", url=sp.DOCKER_URL)
    override = make_plan(facts, GUARD, "socket-proxy").steps[0].after
    files = {**facts.files, OVERRIDE_FILE: dataclasses.replace(facts.files[OVERRIDE_FILE], content=override)}
    n = "ef" * 12
    rows = [f"{n}\t{k}\t{v.split(' ', 1)[0]}\t{v.split(' ', 1)[1]}" for k, v in answers.items()]
    return dataclasses.replace(facts, files=files, guard_checks=section(n, *rows))


def test_verification_lists_each_refusal_and_fails_when_one_got_through() -> None:
    every = {name: "403 403 Forbidden: nope" for name, *_ in guard_checks.CHECKS}
    every["privileged"] = "403 403 Forbidden: Privileged is not allowed"
    every[guard_checks.ALLOWED[0]] = "201 x"
    rows = {r[0]: r for r in sp.SocketProxy().proof(guarded_facts(every))}  # type: ignore[arg-type]
    assert rows["proxy refuses privileged"] == ("proxy refuses privileged", True, "403 Privileged is not allowed")
    assert all(ok for _, ok, _ in rows.values() if _ != "")
    leaked = {**every, "a bind of /": "201 created"}
    bad = [r for r in sp.SocketProxy().proof(guarded_facts(leaked)) if not r[1]]  # type: ignore[arg-type]
    assert [r[0] for r in bad] == ["proxy refuses a bind of /"]


def test_the_audit_says_todays_proxy_is_unguarded_and_names_dag_mounts_the_guard_refuses() -> None:
    facts = facts_of("lab1_proxy_applied", url=sp.DOCKER_URL)
    assert [f.id for f in sp.guard_findings(facts, GUARD)] == ["proxy-unguarded"]
    guarded = guarded_facts({})
    dags = (DagLine("etl.py", 7, 'mounts=[Mount(source="/srv/raw", target="/in", type="bind")]'),
            DagLine("ok.py", 3, 'Mount(source="/opt/airflow/data", target="/data", type="bind")'),
            DagLine("v.py", 4, 'volumes=["/etc/x:/x:ro"]'))
    found = sp.guard_findings(dataclasses.replace(guarded, dags=dags), GUARD)  # type: ignore[arg-type]
    assert [(f.id, f.subject) for f in found] == [("dag-mount-refused", "etl.py:7:/srv/raw"),
                                                    ("dag-mount-refused", "v.py:4:/etc/x")]


def test_the_server_reads_a_request_head_strictly() -> None:
    assert proxy_guard_server.parse_head(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-A: b") == (
        "GET", "/_ping", (("host", "x"), ("x-a", "b")))
    for bad in (b"GET /_ping HTTP/1.1\r\n Host: x", b"GET /_ping HTTP/1.1\r\nHost : x", b"GET _ping HTTP/1.1",
                b"GET /a b HTTP/1.1", b"GET /_ping HTTP/2\r\nHost: x", b"GET /_ping HTTP/1.1\r\nHost: a\nb"):
        with pytest.raises(proxy_guard_server.BadRequest):
            proxy_guard_server.parse_head(bad)


def test_the_server_reads_a_chunked_body_whole_and_refuses_one_past_the_limit() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nTrailer: x\r\n\r\nNEXT")
        r = proxy_guard_server.Reader(a)
        assert r.chunked() == b'{"a":1}' and r.buf == b"NEXT"
        b.sendall(b"%x\r\n" % (proxy_guard_server.pp.MAX_BODY + 1))
        with pytest.raises(proxy_guard_server.BadRequest, match="larger than"):
            proxy_guard_server.Reader(a).chunked()
