"""The socket-proxy strategy on facts captured from lab hosts (pristine, and with the proxy applied)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from hostprep.host import compose
from hostprep.change import snapshots
from hostprep.host.containers import ContainerFacts, Mount
from hostprep.errors import SettingsError
from hostprep.host.facts import OVERRIDE_FILE, Facts
from hostprep.host.probe import parse_probe, probe_env
from hostprep.change.plan import make_plan
from hostprep.host.socket_exposure import socket_views
from hostprep.strategies import socket_proxy as sp
from hostprep.fleet.validate import host_settings
from hostprep.change.verify import verify
from tests.unit.change.test_plan import in_current_words

FIXTURES = Path(__file__).parents[1] / "fixtures"
# the lab inventory's image; the fixtures were captured with today's path-only proxy (the guard: test_proxy_guard.py)
LAB = host_settings({"hostprep_proxy_image": "hostprep-lab/docker-proxy:v1", "hostprep_proxy_guard": False})
SOCK = "/var/run/docker.sock"


def facts_of(name: str, *, deep: bool = True, url: str | None = None) -> Facts:
    host = name.split("_")[0]
    return parse_probe(host, (FIXTURES / f"probe_{name}.txt").read_text(), LAB, deep=deep, docker_url=url)


@pytest.mark.parametrize("host", ["lab1", "lab2"])
def test_the_probe_sees_which_container_mounts_the_socket_and_where_docker_host_points(host: str) -> None:
    before = facts_of(f"{host}_proxy_pristine")
    worker = before.service_containers("airflow-worker")[0]
    assert worker.running and worker.mounts_path(SOCK) and worker.docker_host is None
    assert {c.service for c in before.containers} == {"airflow-apiserver", "airflow-scheduler", "airflow-worker"}

    after = facts_of(f"{host}_proxy_applied", url=sp.DOCKER_URL)
    proxy, worker = after.service_containers(sp.SERVICE)[0], after.service_containers("airflow-worker")[0]
    assert proxy.running and proxy.published == () and proxy.mounts_path(SOCK)
    assert [m.read_only for m in proxy.mounts if m.source == SOCK] == [True]
    assert worker.docker_host == sp.DOCKER_URL and not worker.mounts_path(SOCK)
    assert any(m.source == "/dev/null" and m.target == SOCK for m in worker.mounts)
    assert dict(after.worker.denied) == {a: "403" for a in sp.AREAS}


@pytest.mark.parametrize("host", ["lab1", "lab2"])
def test_the_plan_adds_the_proxy_and_takes_the_socket_from_the_worker(host: str) -> None:
    plan = make_plan(facts_of(f"{host}_proxy_pristine"), LAB, "socket-proxy")
    assert not plan.blocked, plan.problems
    assert [s.name for s in plan.steps] == [f"create {OVERRIDE_FILE}", "edit .env",
                                            f"recreate {sp.SERVICE} airflow-worker"]
    assert (plan.added_services, plan.added_networks, plan.project) == ((sp.SERVICE,), (sp.NETWORK,), "airflow")
    override = compose.load_compose(plan.steps[0].after)
    assert override["networks"] == {sp.NETWORK: {"internal": True}}
    proxy, worker = override["services"][sp.SERVICE], override["services"]["airflow-worker"]
    assert "ports" not in proxy and proxy["networks"] == [sp.NETWORK]
    assert proxy["volumes"] == [f"{SOCK}:/var/run/docker.sock:ro"]
    assert worker == {"environment": {"DOCKER_HOST": sp.DOCKER_URL}, "networks": ["default", sp.NETWORK],
                      "volumes": [f"/dev/null:{SOCK}:ro"]}
    assert any("does not read request bodies" in w for w in plan.warnings)


@pytest.mark.parametrize("host", ["lab1", "lab2"])
def test_an_applied_proxy_plans_nothing_and_verifies(host: str) -> None:
    facts = in_current_words(facts_of(f"{host}_proxy_applied", url=sp.DOCKER_URL))
    plan = make_plan(facts, LAB, "socket-proxy")
    assert plan.steps == () and not plan.blocked
    checks = verify(facts, LAB, "socket-proxy")
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert "the proxy refuses volumes, networks, exec, system, swarm, secrets (403)" in [c.name for c in checks]


def test_verification_fails_when_the_proof_did_not_go_through_the_proxy() -> None:
    facts = facts_of("lab1_proxy_applied")   # the same host, asked without DOCKER_URL
    failed = [c.name for c in verify(facts, LAB, "socket-proxy") if not c.ok]
    assert "the in-worker checks went through the proxy" in failed
    assert not all(c.ok for c in verify(facts_of("lab1_proxy_pristine"), LAB, "socket-proxy"))


def test_a_worker_that_still_mounts_the_socket_is_recreated() -> None:
    facts = in_current_words(facts_of("lab1_proxy_applied", url=sp.DOCKER_URL))
    worker = facts.service_containers("airflow-worker")[0]
    back = dataclasses.replace(worker, mounts=(*worker.mounts, dataclasses.replace(worker.mounts[0], source=SOCK,
                                                                                   target=SOCK)))
    facts = dataclasses.replace(facts, containers=tuple(back if c is worker else c for c in facts.containers))
    plan = make_plan(facts, LAB, "socket-proxy")
    assert [s.name for s in plan.steps] == [f"recreate {sp.SERVICE} airflow-worker"]


def test_rollback_removes_the_proxy_first_and_its_network_last() -> None:
    facts = facts_of("lab1_proxy_pristine")
    plan = make_plan(facts, LAB, "socket-proxy")
    snap = snapshots.take(facts, plan, "20261202T010000Z-abcd")
    ops = [(a.op, a.args) for a in snapshots.restore_plan(snapshots.check(snap, "lab1", LAB))]
    assert ops[0] == ("compose-rm", (sp.SERVICE,))
    assert ops[-2] == ("network-rm", ("airflow", sp.NETWORK))
    assert ("compose-up", ("airflow-worker",)) in ops
    assert ops[-1][0] == "delete"   # hostprep's record: there was none


@pytest.mark.parametrize("forged", [
    {"added": {"services": ["x;reboot"], "networks": [], "project": "airflow"}},
    {"added": {"services": [], "networks": ["n"], "project": "$(id)"}},
    {"added": {"services": "hostprep-docker-proxy"}},
    {"kept_services": ["a b"]},
])
def test_a_snapshot_naming_unsafe_services_or_networks_is_refused(forged: dict[str, object]) -> None:
    facts = facts_of("lab1_proxy_pristine")
    snap = {**snapshots.take(facts, make_plan(facts, LAB, "socket-proxy"), "20261202T010000Z-abcd"), **forged}
    with pytest.raises(snapshots.SnapshotRefused):
        snapshots.check(snap, "lab1", LAB)


def test_a_snapshot_with_a_docker_url_hostprep_would_not_use_is_refused() -> None:
    facts = facts_of("lab1_proxy_pristine")
    snap = snapshots.take(facts, make_plan(facts, LAB, "socket-proxy"), "20261202T010000Z-abcd")
    snap["facts"]["docker_url"] = "tcp://evil;id:1"
    with pytest.raises(snapshots.SnapshotRefused, match="Docker URL"):
        snapshots.check(snap, "lab1", LAB)


@pytest.mark.parametrize("url", ["tcp://a b:1", "unix:///var/run/docker.sock", "tcp://x:1\n", "tcp://$(id):2375"])
def test_the_probe_never_gets_a_docker_url_that_is_not_a_plain_tcp_name_and_port(url: str) -> None:
    with pytest.raises(ValueError):
        probe_env(LAB, docker_url=url)


def test_the_proxy_settings_are_validated_whatever_strategy_the_inventory_picks() -> None:
    s = host_settings({"hostprep_proxy_image": "registry.local/proxy:1@sha256:" + "a" * 64,
                       "hostprep_proxy_auth": "true", "hostprep_proxy_timeout": "90m"})
    assert s.strategy == "group-add"
    assert sp.proxy_options(s) == {"image": "registry.local/proxy:1@sha256:" + "a" * 64, "auth": True,
                                   "timeout": "90m"}
    assert sp.proxy_options(host_settings({}))["image"] == sp.DEFAULT_IMAGE
    for bad in ({"hostprep_proxy_image": "x y"}, {"hostprep_proxy_auth": "maybe"},
                {"hostprep_proxy_timeout": "10 minutes"}, {"hostprep_proxy_timeout": "0s"}):
        with pytest.raises(SettingsError):
            host_settings(bad)


def test_the_proxy_config_opens_only_what_docker_operator_needs() -> None:
    cfg = sp.haproxy_config(auth=False, timeout="1h")
    assert "(_ping|version|containers|images)" in cfg and "auth" not in cfg.split("frontend")[1].split("backend")[0]
    assert "/containers/[^/]+/(exec|export)" in cfg and "METH_PUT" not in cfg
    assert "(_ping|version|containers|images|auth)" in sp.haproxy_config(auth=True, timeout="1h")
    long = cfg.split("\nbackend long")[1]
    assert "timeout server 0" in long and "timeout tunnel 0" in long


def test_the_override_carries_the_config_with_dollars_escaped_for_compose() -> None:
    service = sp.proxy_service(LAB)
    text = service["environment"][sp.CONFIG_VAR]
    assert "$$)" in text and "$)" not in text.replace("$$", "")
    rendered = compose.render_override({sp.SERVICE: service}, "socket-proxy")
    assert yaml.safe_load(rendered)["services"][sp.SERVICE]["environment"][sp.CONFIG_VAR] == text
    assert f"{sp.CONFIG_VAR}: |" in rendered   # a literal block: readable in the file


# ------------------------------------------------------------------ every mount that shows the socket (issue 23, 4)

def with_worker_volumes(facts: Facts, volumes: object) -> Facts:
    """The lab's facts with the compose file's worker ``volumes`` replaced (the running worker unchanged)."""
    cf = facts.compose_file
    assert cf is not None and cf.content
    doc = yaml.safe_load(cf.content)
    doc["services"]["airflow-worker"]["volumes"] = volumes
    files = {**facts.files, cf.name: dataclasses.replace(cf, content=yaml.safe_dump(doc))}
    return dataclasses.replace(facts, files=files)


def running_with(facts: Facts, *mounts: Mount) -> Facts:
    """The lab's facts with the running worker's bind mounts replaced by ``mounts``."""
    worker = facts.service_containers("airflow-worker")[0]
    back = dataclasses.replace(worker, mounts=mounts)
    return dataclasses.replace(facts, containers=tuple(back if c is worker else c for c in facts.containers))


@pytest.mark.parametrize("volume, socket_path, masks", [
    ("/run:/host/run", SOCK, ["/host/run/docker.sock"]),
    ("/var/run:/host/vr:ro", SOCK, ["/host/vr/docker.sock"]),
    ("/var/run/:/host/vr/", SOCK, ["/host/vr/docker.sock"]),
    ("/:/host", SOCK, ["/host/run/docker.sock", "/host/var/run/docker.sock"]),
    ("/run/docker.sock:/var/run/docker.sock", SOCK, ["/var/run/docker.sock"]),      # the socket by its /run alias
    ("/var/run/docker.sock:/d.sock", "/run/docker.sock", ["/d.sock"]),              # ... and the other way round
    ("${HOST_RUN:-/run}:/r", SOCK, ["/r/docker.sock"]),
    ({"type": "bind", "source": "/var", "target": "/v"}, SOCK, ["/v/run/docker.sock"]),
])
def test_every_mount_that_shows_the_socket_is_masked_in_the_override(volume: object, socket_path: str,
                                                                      masks: list[str]) -> None:
    settings = dataclasses.replace(LAB, socket_path=socket_path)
    facts = running_with(with_worker_volumes(facts_of("lab1_proxy_pristine"), ["./dags:/opt/airflow/dags", volume]))
    plan = make_plan(facts, settings, "socket-proxy")
    assert not plan.blocked, plan.problems
    worker = compose.load_compose(plan.steps[0].after)["services"]["airflow-worker"]
    assert worker["volumes"] == [f"/dev/null:{m}:ro" for m in masks]


def test_a_mount_of_a_folder_that_does_not_hold_the_socket_is_left_alone() -> None:
    facts = running_with(with_worker_volumes(facts_of("lab1_proxy_pristine"),
                                             ["./dags:/opt/airflow/dags", "/var/lib:/l", "/runner:/r", "data:/d"]))
    worker = compose.load_compose(make_plan(facts, LAB, "socket-proxy").steps[0].after)["services"]["airflow-worker"]
    assert "volumes" not in worker


@pytest.mark.parametrize("mounts, views", [
    ((Mount("/run", "/host/run"),), ["/host/run/docker.sock"]),
    ((Mount("/run", "/host/run"), Mount("/dev/null", "/host/run/docker.sock", read_only=True)), []),
    ((Mount("/run", "/host/run"), Mount(None, "/host/run", kind="tmpfs")), ["/host/run/docker.sock"]),
    ((Mount("/", "/host"), Mount("/dev/null", "/host/run/docker.sock")), ["/host/var/run/docker.sock"]),
    ((Mount("/run", "/host/run"), Mount(None, "/host", kind="tmpfs")), ["/host/run/docker.sock"]),
    ((Mount(None, "/host", kind="tmpfs"), Mount("/run", "/host/run")), ["/host/run/docker.sock"]),
    ((Mount("/run", "/r"), Mount("/var/run/docker.sock", "/r/docker.sock")), ["/r/docker.sock"]),
    ((Mount("/run", "/r"), Mount("/srv", "/r/docker.sock")), []),
])
def test_the_paths_where_a_container_reaches_the_socket_count_every_alias_and_every_mask(
        mounts: tuple[Mount, ...], views: list[str]) -> None:
    assert socket_views(ContainerFacts("w", mounts=mounts), LAB) == views


def test_a_worker_that_reaches_the_socket_through_a_parent_folder_fails_verification_and_the_audit() -> None:
    facts = facts_of("lab1_proxy_applied", url=sp.DOCKER_URL)
    worker = facts.service_containers("airflow-worker")[0]
    leaky = running_with(facts, *worker.mounts, Mount("/run", "/host/run"))
    failed = [c for c in verify(leaky, LAB, "socket-proxy") if not c.ok]
    assert [c.name for c in failed] == ["airflow-worker does not mount the socket"]
    assert "/host/run/docker.sock" in failed[0].detail
    found = [f for f in sp.SocketProxy().drift(leaky, LAB) if f.id == sp.SOCKET_MOUNTED.id]
    assert len(found) == 1 and "/host/run/docker.sock" in found[0].detail
    masked = running_with(facts, *worker.mounts, Mount("/run", "/host/run"),
                          Mount("/dev/null", "/host/run/docker.sock", read_only=True))
    assert all(c.ok for c in verify(masked, LAB, "socket-proxy"))
    assert not [f for f in sp.SocketProxy().drift(masked, LAB) if f.id == sp.SOCKET_MOUNTED.id]


@pytest.mark.parametrize("volumes, said", [
    (5, "must be a list, not int"),
    ("x", "must be a list, not str"),
    ({"a": "b"}, "must be a list, not dict"),
    ([5], "[0]: must be text or a mapping, not int"),
    (["./dags:/d", ["/run", "/r"]], "[1]: must be text or a mapping, not list"),
    ([{"source": 5, "target": "/x"}], "[0]: source and target must be text"),
    ([{"source": "/run", "target": {"a": [1]}}], "[0]: source and target must be text"),
])
def test_compose_volumes_of_the_wrong_type_are_a_problem_naming_file_service_and_field(volumes: object,
                                                                                     said: str) -> None:
    facts = with_worker_volumes(facts_of("lab1_proxy_pristine"), volumes)
    plan = make_plan(facts, LAB, "socket-proxy")
    assert plan.blocked and plan.steps == ()
    assert any(p.startswith("docker-compose.yaml: services.airflow-worker.volumes") and said in p
               for p in plan.problems), plan.problems
