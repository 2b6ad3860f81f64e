"""An upgrade of hostprep that changes only the override's comments: the file is rewritten, no container
is recreated, and a rollback brings the old bytes back (issue 26, 4)."""

from __future__ import annotations

import base64
import json

from hostprep.change import provision as prov
from hostprep.layout import OVERRIDE_FILE, STATE_FILE
from hostprep.change.results import CHANGED, OK
from hostprep.strategies.steps import COMMENTS_ONLY
from tests.integration.conftest import Pristine, connect, facts_of, settings
from tests.lab import lab

OLD, NEW = "`invoke rollback` removes this file", "`hostprep rollback` removes this file"
PATH = f"/opt/airflow/{OVERRIDE_FILE}"


def provision(name: str) -> prov.HostReport:
    with connect(name) as t:
        return prov.provision(t, settings(name), prov.Options(strategy="group-add"))


def rollback(name: str) -> prov.HostReport:
    with connect(name) as t:
        return prov.rollback(t, settings(name), None)


def started(host: lab.LabHost) -> list[str]:
    """Every container on the host: id, start time and state (a recreate or restart changes them)."""
    out = host.exec("docker ps -aq | xargs -r docker inspect -f '{{.Id}} {{.State.StartedAt}} {{.State.Status}}'")
    return sorted(out.split("\n"))


def read_b64(host: lab.LabHost, path: str) -> bytes:
    return base64.b64decode(host.exec(f"base64 -w0 {path}"))


def plant(host: lab.LabHost, path: str, data: bytes) -> None:
    host.exec(f"cat > {path}.new && chmod --reference={path} {path}.new && chown --reference={path} {path}.new "
              f"&& mv {path}.new {path}", input=data)


def test_an_upgrade_that_changes_only_the_overrides_comments_recreates_no_container(pristine: Pristine) -> None:
    host = pristine("lab1")
    assert provision("lab1").status == CHANGED
    # The previous hostprep's host: its override's words, and its record naming its version.
    now = read_b64(host, PATH)
    assert NEW.encode() in now
    old = now.replace(NEW.encode(), OLD.encode())
    plant(host, PATH, old)
    record = json.loads(host.exec(f"cat {STATE_FILE}"))
    plant(host, STATE_FILE, json.dumps({**record, "hostprep_version": "0.0.9"}, sort_keys=True).encode())
    containers = started(host)

    checked = facts_of("lab1")
    assert checked.files[OVERRIDE_FILE].content == old.decode()

    report = provision("lab1")
    assert report.status == CHANGED, report.error
    assert report.plan is not None
    assert [(s.name, s.why) for s in report.plan.steps] == [(f"rewrite {OVERRIDE_FILE}", COMMENTS_ONLY)]
    assert [a.op for a in report.plan.actions] == ["write"]
    assert read_b64(host, PATH) == now
    assert started(host) == containers, "a comment recreated or restarted a container"
    after = facts_of("lab1")
    assert after.worker.docker_ps_rc == 0 and after.docker_gid in after.worker.proc_groups

    again = provision("lab1")
    assert (again.status, again.changed) == (OK, 0)

    undone = rollback("lab1")
    assert undone.status == CHANGED, undone.error
    assert undone.data["differences"] == []
    assert read_b64(host, PATH) == old, "rollback did not restore the previous version's bytes"
