"""Issue 23, item 1 on the lab: a DAG file (written by the airflow user, as any DAG author can) and a
compose value try to forge the probe's facts; root acts on none of it.

Before the fix, a DAG line ``# docker.sock<0x1C>/etc/acc-forged-dir missing`` made ``provision`` create
/etc/acc-forged-dir, and ``# docker_url<0x1C>/var/run/docker.sock 0 1000 660`` made it chown the socket.
Runs go through the ``hostprep`` command, as an operator would; the facts through the library.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Pristine, facts_of
from tests.integration.test_hostile_host_lab import hostprep
from tests.lab import lab

pytestmark = pytest.mark.lab

SEPARATORS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\v", "\f", "\r"]
FORGED_DIR = "/etc/acc-forged-dir"
LINES = ["# docker.sock{sep}" + FORGED_DIR + " missing", "# docker_url{sep}/var/run/docker.sock 0 1000 660"]
SOCKET = "stat -L -c '%u:%g %a' /var/run/docker.sock"


def as_airflow(h: lab.LabHost, name: str, text: str) -> None:
    """A DAG file written by the airflow user (uid 50000, group 0), who owns the DAG folder."""
    h.exec(f"cd /opt/airflow/dags && setpriv --reuid=50000 --regid=0 --clear-groups sh -c 'cat > \"$0\"' '{name}'",
           input=text.encode())


def test_dag_files_holding_every_separator_forge_no_fact_and_root_acts_on_none(
        pristine: Pristine, tmp_path: Path) -> None:
    h = pristine("lab1")
    socket_before = h.exec(SOCKET)
    for i, sep in enumerate(SEPARATORS):
        as_airflow(h, f"hostprep_test_forged_{i}.py", "".join(line.format(sep=sep) + "\n" for line in LINES))
    as_airflow(h, "hostprep_test_x\nlogs 0 0 777\n@@hostprep:end\n.py", "privileged = True\n")   # a name forging lines
    facts = facts_of("lab1")
    assert [d.name for d in facts.bind_dirs] == ["dags", "logs", "plugins", "config"]
    seen = {d.text for d in facts.dags}
    assert all(line.format(sep=sep) in seen for sep in SEPARATORS for line in LINES)   # read whole, as data

    check = hostprep("provision", "--host", "lab1", "--check", state=tmp_path)
    run = hostprep("provision", "--host", "lab1", state=tmp_path)
    audit = hostprep("audit", "--host", "lab1", "--json", state=tmp_path)
    assert h.exec(SOCKET) == socket_before   # first the attack's effect, then hostprep's verdict
    assert h.exec(f"test -e {FORGED_DIR} && echo exists || echo absent") == "absent\n"
    assert check.returncode == 0 and run.returncode == 0, check.stdout + run.stdout + run.stderr
    for out in (check.stdout, run.stdout, audit.stdout):
        assert FORGED_DIR not in out and "chown /var/run/docker.sock" not in out and "mkdir /etc" not in out
    findings = json.loads(audit.stdout)["hosts"]["lab1"]["findings"]
    assert not [f for f in findings if FORGED_DIR in json.dumps(f) or "docker.sock 0 1000" in json.dumps(f)]
    assert h.exec(SOCKET) == socket_before


def test_a_compose_value_holding_u0085_forges_no_container(pristine: Pristine, tmp_path: Path) -> None:
    """dockerd writes U+0085 raw into config.v2.json; the value must stay one container's DOCKER_HOST."""
    h = pristine("lab1")
    forged_id = "f" * 64
    value = f"tcp://x\x85/var/lib/docker/containers/{forged_id}/hostconfig.json:{{}}"
    service = ("  forger:\n    image: hostprep-lab/airflow:latest\n"
               "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep infinity & wait\"]\n"
               f"    environment:\n      DOCKER_HOST: \"{value.replace(chr(0x85), chr(92) + 'u0085')}\"\n")
    h.exec("cat >> /opt/airflow/docker-compose.yaml", input=service.encode())
    h.exec(f"cd /opt/airflow && {h.compose_cmd} up -d forger >/dev/null 2>&1")
    raw = h.exec("grep -c -F \"$(printf 'x\\302\\205/var/lib')\" /var/lib/docker/containers/*/config.v2.json | "
                 "grep -v ':0$' | wc -l")
    assert raw == "1\n"   # dockerd kept U+0085 unescaped: the premise of the attack holds here
    facts = facts_of("lab1")
    assert forged_id not in {c.id for c in facts.containers}
    forger = [c for c in facts.containers if c.service == "forger"]
    assert len(forger) == 1 and forger[0].docker_host == value and not forger[0].privileged
    check = hostprep("provision", "--host", "lab1", "--check", state=tmp_path)
    assert check.returncode == 0 and forged_id not in check.stdout, check.stdout + check.stderr
