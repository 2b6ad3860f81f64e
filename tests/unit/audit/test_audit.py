"""audit(facts, settings) on facts parsed from real probe output captured on lab hosts.

Fixtures ``probe_<host>_audit_<scenario>.txt`` (deep) and ``..._cheap.txt`` are
the raw stdout of the probe on lab1 (Compose v2, GID 998) and lab2 (Compose v1,
GID 121) in each state of ``tests/integration/test_audit_lab.py``'s SCENARIOS
(provisioned with a strategy, then a drift induced as root); that module's
``capture()`` writes them: ``python -m tests.integration.test_audit_lab``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hostprep.audit.run import (CLEAN, DRIFT, EXIT_CLEAN, EXIT_DRIFT, EXIT_INCOMPLETE, RULE, RULES, Finding, HostAudit,
                            audit, can_connect, exit_code, fixable, from_fleet, judged)
from hostprep.host.facts import OVERRIDE_FILE, DirFacts, Facts, FileFacts, SocketFacts
from hostprep.host.probe import parse_probe
from hostprep.change.results import FAILED, OK, UNREACHABLE, FleetReport, HostReport
from hostprep.inventory.settings import HostSettings
from hostprep.strategies import dockerfile

FIXTURES = Path(__file__).parents[1] / "fixtures"
SETTINGS = HostSettings()
HOSTS = ("lab1", "lab2")

# scenario -> the finding ids the audit must report (the lab inventory wants group-add)
EXPECTED = {
    "pristine": {"worker-cannot-reach-docker", "never-applied"},
    "groupadd": set(),
    "groupadd_override_deleted": {"override-missing"},
    "groupadd_chmod_by_hand": {"socket-world-writable"},
    "groupadd_gid_changed": {"worker-cannot-reach-docker", "gid-mapping-stale"},
    "chmod": {"strategy-differs"},
    "chmod_dockerd_restarted": {"worker-cannot-reach-docker", "chmod-lost", "strategy-differs"},
    "dockerfile": {"strategy-differs"},
    "dockerfile_block_removed": {"dockerfile-block-missing", "strategy-differs"},
    "groupadd_worker_stopped": {"worker-not-running"},
    "primary_gid_bind_dirs": {"worker-cannot-reach-docker", "never-applied", "worker-primary-gid",
                              "bind-dir-not-writable", "bind-dir-world-writable"},
}


def facts(scenario: str, *, deep: bool = True, host: str = "lab2") -> Facts:
    text = (FIXTURES / f"probe_{host}_audit_{scenario}{'' if deep else '_cheap'}.txt").read_text()
    return parse_probe(host, text, SETTINGS, deep=deep)


def ids(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings}


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_induced_drift_is_found_with_its_id(scenario: str, host: str) -> None:
    assert ids(audit(facts(scenario, host=host), SETTINGS)) == EXPECTED[scenario]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_cheap_audit_agrees_with_deep_audit_on_every_scenario(scenario: str, host: str) -> None:
    deep, cheap = facts(scenario, host=host), facts(scenario, deep=False, host=host)
    assert (deep.deep, cheap.deep, cheap.worker.docker_ps_rc) == (True, False, None)  # cheap never ran docker ps
    assert {f.key for f in audit(cheap, SETTINGS)} == {f.key for f in audit(deep, SETTINGS)}


def test_deep_finding_quotes_what_docker_ps_said_and_cheap_one_the_ids() -> None:
    deep = next(f for f in audit(facts("pristine"), SETTINGS) if f.id == "worker-cannot-reach-docker")
    cheap = next(f for f in audit(facts("pristine", deep=False), SETTINGS) if f.id == "worker-cannot-reach-docker")
    assert "permission denied" in deep.detail
    assert cheap.detail == "worker runs as uid 50000 gid 0 groups [0]; socket is 660 0:121"


def test_gid_change_names_every_stale_place_and_the_new_gid() -> None:
    f = next(f for f in audit(facts("groupadd_gid_changed"), SETTINGS) if f.id == "gid-mapping-stale")
    assert f.detail == ("host's docker GID is now 1999; recorded 121; docker-compose.hostprep.yml maps 121; "
                        "worker container has group_add 121")
    assert "--strategy group-add" in f.hint and "1999" in f.hint


def test_lost_chmod_hint_reapplies_the_recorded_strategy() -> None:
    found = {f.id: f for f in audit(facts("chmod_dockerd_restarted"), SETTINGS)}
    assert "--strategy chmod" in found["chmod-lost"].hint
    assert "--strategy chmod" in found["worker-cannot-reach-docker"].hint


def test_bind_dir_findings_name_the_folder() -> None:
    found = audit(facts("primary_gid_bind_dirs"), SETTINGS)
    assert {f.key for f in found if f.id.startswith("bind-dir")} == {"bind-dir-not-writable:dags",
                                                                     "bind-dir-world-writable:logs"}


def test_findings_are_sorted_critical_first_and_every_one_has_a_hint() -> None:
    found = audit(facts("primary_gid_bind_dirs"), SETTINGS)
    severities = [f.severity for f in found]
    assert severities == sorted(severities, key=lambda s: s != "critical")
    assert all(f.hint and "\n" not in f.hint and "\n" not in f.detail for f in found)


def test_audit_is_pure_same_facts_same_findings() -> None:
    f = facts("primary_gid_bind_dirs")
    assert audit(f, SETTINGS) == audit(f, SETTINGS)


# ------------------------------------------------------------------ edited facts: states the lab did not capture


def with_file(f: Facts, name: str, content: str | None) -> Facts:
    files = dict(f.files)
    old = files.get(name)
    files[name] = FileFacts(name, content is not None, old.mode if old else 0o644, 0, 0, content)
    return dataclasses.replace(f, files=files)


def test_env_no_longer_loading_the_override_is_override_missing() -> None:
    f = facts("groupadd")
    f = with_file(f, ".env", "AIRFLOW_UID=50000\n")
    found = audit(f, SETTINGS)
    assert ids(found) == {"override-missing"}
    assert "COMPOSE_FILE" in found[0].detail


def test_override_edited_to_drop_group_add_is_override_missing() -> None:
    f = facts("groupadd")
    text = f.files[OVERRIDE_FILE].content or ""
    f = with_file(f, OVERRIDE_FILE, text.split("services:")[0] + "services:\n  airflow-worker:\n    user: '50000:0'\n")
    assert ids(audit(f, SETTINGS)) == {"override-missing"}


def test_dockerfile_strategy_needs_its_override_when_user_names_a_group() -> None:
    f = with_file(facts("dockerfile"), OVERRIDE_FILE, None)
    assert ids(audit(f, HostSettings(strategy="dockerfile"))) == {"override-missing"}


def test_dockerfile_block_with_an_old_gid_is_stale() -> None:
    f = facts("dockerfile")
    df = f.files["Dockerfile"].content or ""
    f = with_file(f, "Dockerfile", dockerfile.with_block(dockerfile.strip_block(df), 4242, 50000))
    assert ids(audit(f, HostSettings(strategy="dockerfile"))) == {"gid-mapping-stale"}


def test_corrupt_record_is_reported_not_crashed_on() -> None:
    f = dataclasses.replace(facts("groupadd"), record={"corrupt": True})
    assert ids(audit(f, SETTINGS)) == {"record-unreadable"}


def test_stopped_worker_is_reported_and_access_is_not_judged() -> None:
    f = facts("groupadd")
    f = dataclasses.replace(f, worker=dataclasses.replace(f.worker, state="exited", pid=None, docker_ps_rc=None))
    assert ids(audit(f, SETTINGS)) == {"worker-not-running"}


def test_dockerd_down_and_socket_gone_are_reported() -> None:
    f = facts("groupadd")
    f = dataclasses.replace(f, dockerd_running=False, socket=SocketFacts(f.socket.path, False),
                            worker=dataclasses.replace(f.worker, found=False, state=None))
    assert ids(audit(f, SETTINGS)) == {"dockerd-not-running", "socket-missing", "worker-not-running"}


def test_missing_bind_dir_is_not_writable() -> None:
    f = facts("groupadd")
    f = dataclasses.replace(f, bind_dirs=(DirFacts("logs", False),) + f.bind_dirs[1:])
    [finding] = audit(f, SETTINGS)
    assert (finding.key, "missing" in finding.detail) == ("bind-dir-not-writable:logs", True)


def test_group_rwx_for_gid_0_counts_as_writable_like_the_plan() -> None:
    f = facts("groupadd")
    f = dataclasses.replace(f, bind_dirs=(DirFacts("dags", True, 0, 0, 0o775),))
    assert audit(f, SETTINGS) == []


# ------------------------------------------------------------------ can_connect: the cheap verdict


SOCK = SocketFacts("/var/run/docker.sock", True, 0o660, 0, 998)


@pytest.mark.parametrize("sock, uid, gid, groups, expected", [
    (SOCK, 50000, 0, [0], False),
    (SOCK, 50000, 0, [0, 998], True),
    (SOCK, 50000, 998, [998], True),
    (SOCK, 0, 0, [0], True),
    (dataclasses.replace(SOCK, mode=0o666), 50000, 0, [0], True),
    (dataclasses.replace(SOCK, uid=50000, mode=0o060), 50000, 0, [998], False),  # owner class wins, no fall-through
    (dataclasses.replace(SOCK, has_acl=True), 50000, 0, [0], None),  # an ACL may grant it: can't tell
    (SocketFacts("/s", False), 50000, 0, [0], None),
])
def test_can_connect_follows_linux_permission_classes(sock: SocketFacts, uid: int, gid: int, groups: list[int],
                                                      expected: bool | None) -> None:
    assert can_connect(sock, uid, gid, groups) is expected


def test_cheap_audit_with_an_acl_leaves_access_to_deep_mode() -> None:
    f = facts("pristine", deep=False)
    f = dataclasses.replace(f, socket=dataclasses.replace(f.socket, has_acl=True))
    assert ids(audit(f, SETTINGS)) == {"never-applied"}


# ------------------------------------------------------------------ verdicts and exit codes


def test_rules_have_unique_ids_and_known_severities() -> None:
    assert len(RULE) == len(RULES)
    assert {r.severity for r in RULES} == {"critical", "warning"}


def test_fix_is_attempted_only_for_findings_a_provision_can_repair() -> None:
    assert fixable(audit(facts("groupadd_gid_changed"), SETTINGS))
    assert not fixable(audit(facts("groupadd_chmod_by_hand"), SETTINGS))


def test_judged_host_status_follows_its_findings() -> None:
    assert judged(facts("groupadd"), SETTINGS).status == CLEAN
    a = judged(facts("chmod_dockerd_restarted"), SETTINGS)
    assert (a.status, a.strategy, a.docker_gid, a.socket) == (DRIFT, "chmod", 121, "660 root:docker")


def test_exit_code_is_0_clean_2_drift_3_when_any_host_was_not_audited() -> None:
    clean, drift = HostAudit("a", CLEAN), HostAudit("b", DRIFT)
    down = HostAudit("c", UNREACHABLE, error="refused")
    assert exit_code([clean]) == EXIT_CLEAN == 0
    assert exit_code([clean, drift]) == EXIT_DRIFT == 2
    assert exit_code([clean, drift, down]) == EXIT_INCOMPLETE == 3
    assert exit_code([HostAudit("d", FAILED, error="probe failed")]) == 3


def test_unreachable_host_keeps_its_error_and_does_not_hide_the_others() -> None:
    ok = HostReport("a", OK)
    ok.data["audit"] = judged(facts("chmod_dockerd_restarted"), SETTINGS)
    audits = from_fleet(FleetReport([HostReport("b").fail("b: cannot connect", UNREACHABLE), ok]))
    assert [(a.host, a.status) for a in audits] == [("b", UNREACHABLE), ("lab2", DRIFT)]
    assert audits[0].error == "b: cannot connect" and len(audits[1].findings) == 3


def test_override_with_an_empty_service_entry_is_override_missing_not_a_crash() -> None:
    f = facts("groupadd")
    head = (f.files[OVERRIDE_FILE].content or "").split("services:")[0]
    assert ids(audit(with_file(f, OVERRIDE_FILE, head + "services:\n  airflow-worker:\n"), SETTINGS)) == \
        {"override-missing"}
