"""Fixtures for tests against the real lab: containers with their own sshd and dockerd.

The session brings the lab up itself (cached images make that take seconds
once built), so `python -m pytest` needs nothing started by hand.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Protocol

import pytest

from hostprep.ssh.endpoint import endpoint_for
from hostprep.host.facts import Facts
from hostprep.host.probe import gather
from hostprep.inventory.hosts import HostEntry, load_inventory
from hostprep.inventory.settings import HostSettings
from hostprep.fleet.validate import validate_host
from hostprep.change.snapshots import fingerprint
from hostprep.ssh.transport import Transport
from tests.lab import lab


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


REAL_HOSTS = int(os.environ.get("HOSTPREP_LAB_REAL", "1"))


@pytest.fixture(scope="session")
def lab_log(request: pytest.FixtureRequest) -> lab.Log:
    """Print lab progress past pytest's capture, so a CI log shows what a long wait is doing."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def log(msg: str) -> None:
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            print(f"\n[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)
    return log


@pytest.fixture(scope="session")
def lab_hosts(lab_log: lab.Log) -> dict[str, lab.LabHost]:
    """lab1 (Compose v2), lab2 (v1) and, unless HOSTPREP_LAB_REAL=0, real1 running real Airflow."""
    with lab.progress(lab_log, "bringing the lab up"):
        hosts = lab.up(2, real=REAL_HOSTS, log=lab_log)
    return {h.name: h for h in hosts}


@pytest.fixture(scope="session")
def lab_inventory(lab_hosts: dict[str, lab.LabHost]) -> Path:
    return lab.INVENTORY


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own controller state directory."""
    path = tmp_path / "hostprep-state"
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(path))
    return path


def entry(name: str) -> HostEntry:
    return load_inventory(lab.INVENTORY).hosts[name]


def connect(name: str) -> Transport:
    e = entry(name)
    return Transport(endpoint_for(e, known_hosts=e.vars["hostprep_known_hosts_file"]))


def settings(name: str) -> HostSettings:
    return validate_host(entry(name))


def facts_of(name: str, *, deep: bool = True) -> Facts:
    with connect(name) as t:
        return gather(t, settings(name), deep=deep)


def state_of(name: str) -> dict[str, Any]:
    """What a rollback or a --check must leave exactly as it was."""
    return fingerprint(facts_of(name).to_dict())


class Pristine(Protocol):
    """``pristine("lab1", ...)``: reset those lab hosts now and return the first."""

    def __call__(self, name: str, *more: str) -> lab.LabHost: ...


@pytest.fixture
def pristine(lab_hosts: dict[str, lab.LabHost]) -> Pristine:
    """Reset lab hosts to the lab's initial state at the test's START, whatever ran before.

    Tests own their preconditions: the demo, another test file, a kept lab or an interrupted
    run may have left a host provisioned, drifted or locked. Nothing is reset afterwards.
    """
    def reset(name: str, *more: str) -> lab.LabHost:
        for n in (name, *more):
            lab.provision_pristine(lab_hosts[n])
        return lab_hosts[name]
    return reset
