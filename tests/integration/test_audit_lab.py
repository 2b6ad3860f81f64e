"""`invoke audit` on a real lab host: each drift induced by hand is found, with its exit code and JSON.

Every test runs on lab2 (Compose v1, docker GID 121), reset to pristine at its start.
Each scenario is audited twice, cheap (host-side only, the default) and deep
(``id`` / ``docker ps`` inside the worker): both must name the same findings.
HOSTPREP_AUDIT_LAB_INVENTORY points these tests at another lab inventory with
a ``lab2`` (with HOSTPREP_LAB_PREFIX / HOSTPREP_LAB_PORT_BASE naming its
container), so they can run without touching the shared lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.cli import audit_cmd, commands
from hostprep.audit import history
from hostprep.change import provision as prov
from hostprep.host.facts import Facts
from hostprep.host.probe import gather, probe_env, probe_script
from hostprep.fleet.fanout import ConnectOptions
from hostprep.inventory.hosts import load_inventory
from hostprep.change.results import CHANGED
from hostprep.fleet.validate import validate_host
from hostprep.change.snapshots import controller_dir, fingerprint
from hostprep.ssh.transport import Transport
from tests.lab import lab, real_airflow
from tests.unit.audit.test_audit import EXPECTED

pytestmark = pytest.mark.lab
INVENTORY = Path(os.environ.get("HOSTPREP_AUDIT_LAB_INVENTORY") or lab.INVENTORY)
NAME = "lab2"
NEW_GID = 1999
FIXTURES = lab.REPO / "tests" / "unit" / "fixtures"


@dataclass(frozen=True)
class Scenario:
    """A host state: provisioned with ``strategy`` (None: never), then ``induce`` run as root on the host.

    In ``induce``, ``{compose}`` is the host's Compose command and ``{recreate_socket}`` what a reboot does
    to the socket on that kind of host (systemd: docker.socket and docker.service restarted; a dockerd
    that makes its own socket: dockerd restarted).
    """

    strategy: str | None
    induce: str = ""


SCENARIOS = {  # the findings each must produce are tests/unit/test_audit.py's EXPECTED
    "pristine": Scenario(None),
    "groupadd": Scenario("group-add"),
    "groupadd_override_deleted": Scenario("group-add", "rm /opt/airflow/docker-compose.hostprep.yml"),
    "groupadd_chmod_by_hand": Scenario("group-add", "chmod 666 /var/run/docker.sock"),
    "groupadd_gid_changed": Scenario("group-add", f"groupmod -g {NEW_GID} docker && {{recreate_socket}}"),
    "groupadd_worker_stopped": Scenario("group-add", "docker stop -t 1 $(docker ps -q --filter "
                                                     "label=com.docker.compose.service=airflow-worker)"),
    "chmod": Scenario("chmod"),
    "chmod_dockerd_restarted": Scenario("chmod", "{recreate_socket}"),   # dockerd restarts with a new socket
    "dockerfile": Scenario("dockerfile"),
    "dockerfile_block_removed": Scenario("dockerfile", "sed -i '/^# >>> hostprep/,/^# <<< hostprep/d' "
                                                       "/opt/airflow/Dockerfile"),
    "primary_gid_bind_dirs": Scenario(None, "cd /opt/airflow && sed -i 's/-50000}:0/-50000}:50000/' docker-compose.yaml"
                                            " && chmod 777 logs && chown 0:0 dags && {compose} up -d >/dev/null 2>&1"),
}


def induce(h: lab.LabHost, name: str) -> None:
    """Put the (pristine) host in the scenario's state."""
    sc = SCENARIOS[name]
    if sc.strategy:
        provision(sc.strategy, h.name)
    if sc.induce:
        h.exec(sc.induce.replace("{compose}", h.compose_cmd).replace("{recreate_socket}", h.socket_recreate))


def _running(h: lab.LabHost) -> bool:
    return lab.docker("inspect", "-f", "{{.State.Running}}", h.container, check=False).stdout.strip() == b"true"


@pytest.fixture
def host(request: pytest.FixtureRequest) -> lab.LabHost:
    """lab2, brought up with the lab if needed, reset to pristine at the test's start, whatever ran before."""
    h = lab.LabHost(2)
    if not (INVENTORY.exists() and _running(h)):
        request.getfixturevalue("lab_hosts")
    if not INVENTORY.exists():
        pytest.skip(f"{INVENTORY} is missing: no lab")
    lab.provision_pristine(h)
    return h


def connect(name: str = NAME) -> Transport:
    e = load_inventory(INVENTORY).hosts[name]
    return Transport(endpoint_for(e, known_hosts=e.vars["hostprep_known_hosts_file"]))


def facts(deep: bool = True) -> Facts:
    e = load_inventory(INVENTORY).hosts[NAME]
    with connect() as t:
        return gather(t, validate_host(e), deep=deep)


def provision(strategy: str | None = None, name: str = NAME) -> None:
    e = load_inventory(INVENTORY).hosts[name]
    with connect(name) as t:
        report = prov.provision(t, validate_host(e), prov.Options(strategy=strategy))
    assert report.status == CHANGED, report.error


def run_audit(tmp_path: Path, *, deep: bool = False, fix: bool = False,
              inventory: Path = INVENTORY, limit: str | None = None) -> tuple[int, dict[str, Any]]:
    """The command behind `invoke audit --json --report-dir`, as the library runs it."""
    outputs = audit_cmd.AuditOutputs(as_json=True, report_dir=str(tmp_path / "reports"))
    sel = commands.Selection(inventory=str(inventory), host=None if limit else NAME, limit=limit)
    reply = audit_cmd.audit(sel, ConnectOptions(), outputs, deep=deep, fix=fix)
    return reply.code, json.loads(reply.lines[-1])


def finding_ids(data: dict[str, Any], host: str = NAME) -> set[str]:
    return {f["id"] for f in data["hosts"][host]["findings"]}


def audit_both_ways(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """Cheap and deep audits agree on the findings; returns the cheap one."""
    code, cheap = run_audit(tmp_path)
    deep_code, deep = run_audit(tmp_path, deep=True)
    assert (cheap["hosts"][NAME]["deep"], deep["hosts"][NAME]["deep"]) == (False, True)
    assert {f["id"]: f["subject"] for f in cheap["hosts"][NAME]["findings"]} == \
        {f["id"]: f["subject"] for f in deep["hosts"][NAME]["findings"]}
    assert code == deep_code
    return code, cheap


HOST_STATE = r"""
cd /opt/airflow
find . /var/lib/hostprep -xdev -printf '%p %m %U:%G %s %T@\n' 2>/dev/null | sort
find . /var/lib/hostprep -xdev -type f -exec sha256sum {} + 2>/dev/null | sort
stat -c 'socket %a %u:%g' /var/run/docker.sock
getent group docker
docker ps -aq --no-trunc | sort | xargs docker inspect -f '{{.Id}} {{.State.StartedAt}} {{.RestartCount}} {{.Image}}'
"""


def host_state(h: lab.LabHost) -> str:
    """File hashes and modes, socket, record, snapshots, lock and containers, read out of band."""
    return h.exec(HOST_STATE)


def test_never_provisioned_host_is_drift_and_the_audit_changes_nothing(host: lab.LabHost, tmp_path: Path) -> None:
    induce(host, "pristine")
    files_before, facts_before = host_state(host), fingerprint(facts().to_dict())
    code, data = audit_both_ways(tmp_path)
    assert (code, data["exit_code"]) == (2, 2)
    assert finding_ids(data) == {"worker-cannot-reach-docker", "never-applied"}
    assert host_state(host) == files_before
    assert fingerprint(facts().to_dict()) == facts_before
    assert host.exec("ls -A /var/lib/hostprep 2>/dev/null || true").strip() == ""  # no record, lock or snapshot
    assert not (controller_dir() / "hosts" / NAME / "snapshots").exists()
    assert (controller_dir() / "hosts" / NAME / "audit.jsonl").exists()


def test_clean_provisioned_host_reports_no_drift_and_stays_untouched(host: lab.LabHost, tmp_path: Path) -> None:
    induce(host, "groupadd")
    before = host_state(host)
    code, data = audit_both_ways(tmp_path)
    assert code == 0 and data["hosts"][NAME]["status"] == "ok" and finding_ids(data) == set()
    assert host_state(host) == before
    assert host.exec("test -e /var/lib/hostprep/lock && echo locked || echo free").strip() == "free"
    reports = tmp_path / "reports"
    assert 'hostprep_drift_findings{host="lab2"} 0' in (reports / "hostprep_audit.prom").read_text()
    suite = ET.parse(reports / "audit-junit.xml").getroot()
    assert suite.get("failures") == "0" and suite.get("errors") == "0"


@pytest.mark.parametrize("scenario", ["chmod_dockerd_restarted", "groupadd_override_deleted", "groupadd_chmod_by_hand",
                                      "groupadd_worker_stopped", "primary_gid_bind_dirs"])
def test_each_induced_drift_is_found_cheap_and_deep_with_exit_code_2(
        scenario: str, host: lab.LabHost, tmp_path: Path) -> None:
    induce(host, scenario)
    code, data = audit_both_ways(tmp_path)
    assert (code, data["exit_code"], data["hosts"][NAME]["status"]) == (2, 2, "drift")
    assert finding_ids(data) == EXPECTED[scenario]
    assert all(f["hint"] and f["severity"] in ("critical", "warning") for f in data["hosts"][NAME]["findings"])


def test_docker_gid_change_is_a_stale_mapping_and_fix_remaps_it(host: lab.LabHost, tmp_path: Path) -> None:
    induce(host, "groupadd_gid_changed")
    code, data = audit_both_ways(tmp_path)
    assert code == 2
    assert finding_ids(data) == {"gid-mapping-stale", "worker-cannot-reach-docker"}
    stale = next(f for f in data["hosts"][NAME]["findings"] if f["id"] == "gid-mapping-stale")
    assert f"now {NEW_GID}" in stale["detail"] and f"recorded {host.docker_gid}" in stale["detail"]

    code, fixed = run_audit(tmp_path, fix=True)
    result = fixed["hosts"][NAME]
    assert code == 0, result
    assert result["fix"]["status"] == "changed" and result["fix"]["snapshot_id"]
    assert {f["id"] for f in result["found_before_fix"]} == {"gid-mapping-stale", "worker-cannot-reach-docker"}
    assert facts().worker.docker_ps_rc == 0
    spans = history.intervals(history.load([NAME]))
    assert {s.key for s in spans if s.ended} >= {"gid-mapping-stale", "worker-cannot-reach-docker"}
    assert not [s for s in spans if s.ongoing]


def test_unreachable_host_exits_3_and_never_hides_the_others(host: lab.LabHost, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inv = tmp_path / "inventory.yml"
    inv.write_text(INVENTORY.read_text() + f"    dead:\n      hosts:\n        lab-dead:\n          ansible_host: 127.0.0.1"
                   f"\n          ansible_port: {port}\n")
    code, data = run_audit(tmp_path, inventory=inv, limit=f"{NAME}:lab-dead")
    assert code == 3 and data["summary"]["unreachable"] == 1
    assert data["hosts"]["lab-dead"]["reachable"] is False and data["hosts"]["lab-dead"]["error"]
    assert finding_ids(data) == {"worker-cannot-reach-docker", "never-applied"}
    prom = (tmp_path / "reports" / "hostprep_audit.prom").read_text()
    assert 'hostprep_host_reachable{host="lab-dead"} 0' in prom and 'hostprep_drift_findings{host="lab2"} 2' in prom


def test_invoke_audit_cli_exits_with_the_verdict(host: lab.LabHost, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "audit", "--inventory", str(INVENTORY), "--host", NAME,
                           "--junit", str(tmp_path / "j.xml")], cwd=lab.REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:3] == [NAME, "DRIFT", "2"]
    assert (tmp_path / "j.xml").exists()
    bad = subprocess.run([sys.executable, "-m", "invoke", "audit", "--inventory", str(INVENTORY), "--host", "nope"],
                         cwd=lab.REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "unknown host" in bad.stderr


AIRFLOW_IMAGE = real_airflow.IMAGE  # built by tests/lab/real_airflow.py
EXAMPLES = lab.REPO / "examples"


def test_example_dag_runs_the_audit_in_real_airflow_and_fails_only_on_drift(host: lab.LabHost, tmp_path: Path,
                                                                             lab_log: lab.Log) -> None:
    """`airflow tasks test` of the example DAG, in the real-Airflow lab image, auditing lab2 over SSH.

    The worker container borrows this controller's interpreter (same Debian 12 and CPython 3.11) as
    HOSTPREP_PYTHON, like an Airflow worker with a hostprep virtualenv would have.
    """
    assert real_airflow.build_image(log=lab_log) == AIRFLOW_IMAGE  # built before it is needed
    if any(Path(p).resolve() in (Path("/usr"), Path("/usr/local"), Path("/")) for p in (sys.prefix, sys.base_prefix)):
        pytest.skip("the controller's Python lives in /usr: it cannot be lent to the Airflow container")
    e = load_inventory(INVENTORY).hosts[NAME]
    dirs = {lab.REPO, INVENTORY.parent, Path(e.vars["hostprep_known_hosts_file"]).parent,
            Path(e.vars["ansible_ssh_private_key_file"]).parent, Path(sys.base_prefix), Path(sys.prefix)}
    mounts = [a for d in sorted(dirs) for a in ("-v", f"{d}:{d}:ro")]
    env = {"AIRFLOW_HOME": "/tmp/airflow", "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
           "AIRFLOW__CORE__DAGS_FOLDER": "/opt/dags", "HOSTPREP_DIR": str(lab.REPO), "HOSTPREP_PYTHON": sys.executable,
           "HOSTPREP_INVENTORY": str(INVENTORY), "HOSTPREP_LIMIT": NAME, "HOSTPREP_REPORT_DIR": "/reports",
           "HOSTPREP_STATE_DIR": "/reports/state"}
    provision_cmd = f"{sys.executable} -m invoke provision --inventory {INVENTORY} --host {NAME} >/dev/null"
    script = (f"airflow db migrate >/dev/null 2>&1 && cd /tmp && airflow tasks test hostprep_drift_audit audit 2>&1"
              f" | grep -o 'new_state=[a-z]*'; (cd {lab.REPO} && {provision_cmd}) && cp /reports/audit.json /tmp/"
              f" && airflow tasks test hostprep_drift_audit audit 2>&1 | grep -o 'new_state=[a-z]*'; "
              f"cat /tmp/audit.json")
    proc = lab.docker("run", "--rm", "--network", "host", "-u", "0", *mounts, "-v", f"{EXAMPLES}:/opt/dags:ro",
                      "-v", f"{tmp_path}:/reports", *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
                      AIRFLOW_IMAGE, "bash", "-c", script, timeout=300)
    out = proc.stdout.decode()
    states = [ln for ln in out.splitlines() if ln.startswith("new_state=")]
    assert states == ["new_state=failed", "new_state=success"], out[-3000:]
    first = json.loads(out[out.index("{"):])
    assert (first["exit_code"], finding_ids(first)) == (2, {"worker-cannot-reach-docker", "never-applied"})
    assert json.loads((tmp_path / "audit.json").read_text())["exit_code"] == 0


def capture(hosts: list[lab.LabHost], out: Path = FIXTURES) -> None:
    """Write the probe fixtures of tests/unit/test_audit.py: every scenario, deep and cheap, on each host.

    Run from the repo root with the lab up: ``python -m tests.integration.test_audit_lab``.
    """
    for h in hosts:
        for name in SCENARIOS:
            lab.provision_pristine(h)
            induce(h, name)
            settings = validate_host(load_inventory(INVENTORY).hosts[h.name])
            with connect(h.name) as t:
                for deep, suffix in ((True, ""), (False, "_cheap")):
                    text = t.run_script(probe_script(), probe_env(settings, deep=deep), sudo=True, timeout=120).stdout
                    (out / f"probe_{h.name}_audit_{name}{suffix}.txt").write_text(text)
            print(f"{h.name}: {name}")
        lab.provision_pristine(h)


if __name__ == "__main__":
    capture([lab.LabHost(i) for i in (1, 2)])
