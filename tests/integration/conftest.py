"""Fixtures for tests against the real lab: containers with their own sshd and dockerd.

The session brings the lab up itself (cached images make that take seconds
once built), so `python -m pytest` needs nothing started by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from hostprep.endpoint import endpoint_for
from hostprep.facts import Facts, gather
from hostprep.inventory import HostEntry, load_inventory
from hostprep.settings import HostSettings
from hostprep.validate import validate_host
from hostprep.snapshots import fingerprint
from hostprep.transport import Transport
from tests.lab import lab


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


REAL_HOSTS = int(os.environ.get("HOSTPREP_LAB_REAL", "1"))


@pytest.fixture(scope="session")
def lab_hosts() -> dict[str, lab.LabHost]:
    """lab1 (Compose v2), lab2 (v1) and, unless HOSTPREP_LAB_REAL=0, real1 running real Airflow."""
    hosts = lab.up(2, real=REAL_HOSTS, log=lambda msg: print(f"[lab] {msg}"))
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


@pytest.fixture
def pristine(lab_hosts: dict[str, lab.LabHost]) -> Iterator[list[str]]:
    """Names of lab hosts a test touched; each is reset to the lab's initial state afterwards."""
    touched: list[str] = []
    yield touched
    for name in touched:
        lab.provision_pristine(lab_hosts[name])
