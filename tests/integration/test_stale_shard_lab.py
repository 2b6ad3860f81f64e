"""A sharded audit on the lab, run as an operator runs it: `audit.begin`, one `audit --shard I/N` per
shard (each its own process, as each is its own scheduled task), then `audit.merge`.

The case that matters: a shard's task dies in this run, and its folder still holds the report of the
previous run, which found the host clean. The merge must refuse that report by name and report its
host as not audited, never as clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostprep.audit.shards import shard_of
from tests.integration.conftest import Pristine
from tests.lab import lab

pytestmark = pytest.mark.lab
HOSTS = ("lab1", "lab2")
COUNT = next(n for n in range(2, 10) if shard_of(HOSTS[0], n) != shard_of(HOSTS[1], n))


def hostprep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostprep", *args], cwd=lab.REPO, capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


def shard_args(index: int, run_file: Path, reports: Path) -> list[str]:
    return ["audit", "--inventory", str(lab.INVENTORY), "--limit", ":".join(HOSTS), "--shard", f"{index}/{COUNT}",
            "--run-file", str(run_file), "--report-dir", str(reports / f"shard-{index}")]


def begin(run_file: Path, run_id: str) -> None:
    run = hostprep("audit.begin", "--run-file", str(run_file), "--run-id", run_id)
    assert run.returncode == 0 and run.stdout.strip() == run_id, run.stderr


def audit_shards(run_file: Path, reports: Path, *, died: int | None = None) -> None:
    """Every shard's audit; shard ``died``'s process is killed before it could write anything."""
    for i in range(1, COUNT + 1):
        if i == died:
            task = subprocess.Popen([sys.executable, "-m", "hostprep", *shard_args(i, run_file, reports)],
                                    cwd=lab.REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            task.kill()
            assert task.wait(timeout=60) == -9
            continue
        run = hostprep(*shard_args(i, run_file, reports))
        assert run.returncode in (0, 2), run.stdout + run.stderr   # drift is the merge's to judge


def merge(run_file: Path, reports: Path, out: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    folders = [a for i in range(1, COUNT + 1) for a in ("--report", str(reports / f"shard-{i}"))]
    return hostprep("audit.merge", *folders, "--run-file", str(run_file), "--run-id", run_id,
                    "--report-dir", str(out))


def test_a_report_left_by_the_previous_run_in_a_dead_shards_folder_fails_the_merge_naming_the_shard(
        pristine: Pristine, lab_hosts: dict[str, lab.LabHost], tmp_path: Path) -> None:
    pristine(*HOSTS)
    for name in HOSTS:
        done = hostprep("provision", "--inventory", str(lab.INVENTORY), "--host", name, "--no-smoke")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    run_file, reports, merged = tmp_path / "run.json", tmp_path / "reports", tmp_path / "merged"

    begin(run_file, "run-1")                                  # the previous run: every host clean
    audit_shards(run_file, reports)
    first = merge(run_file, reports, merged, "run-1")
    assert first.returncode == 0, first.stdout + first.stderr

    drifted = HOSTS[1]
    dead = shard_of(drifted, COUNT)
    lab_hosts[drifted].exec("rm /opt/airflow/docker-compose.hostprep.yml")   # drift after the previous run
    begin(run_file, "run-2")
    audit_shards(run_file, reports, died=dead)
    left = json.loads((reports / f"shard-{dead}" / "audit.json").read_text())
    assert left["run"]["id"] == "run-1" and left["hosts"][drifted]["status"] == "ok"   # the stale report is there

    second = merge(run_file, reports, merged, "run-2")
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"shard {dead}/{COUNT} ({reports / f'shard-{dead}' / 'audit.json'}): refused: it is from run run-1" \
        in second.stderr
    report = json.loads((merged / "audit.json").read_text())
    assert report["run"]["id"] == "run-2" and report["exit_code"] == 3
    assert report["hosts"][drifted]["status"] == "failed"
    assert "not audited in run run-2" in report["hosts"][drifted]["error"]
    assert report["hosts"][HOSTS[0]]["status"] == "ok"
    prom = (merged / "hostprep_audit.prom").read_text()
    assert f'hostprep_host_reachable{{host="{drifted}"}} 0' in prom and "hostprep_audit_exit_code 3" in prom

    audit_shards(run_file, reports)                           # the shard runs again in this run: drift is seen
    third = merge(run_file, reports, merged, "run-2")
    assert third.returncode == 2, third.stdout + third.stderr
    report = json.loads((merged / "audit.json").read_text())
    assert report["hosts"][drifted]["status"] == "drift"
    assert "override-missing" in [f["id"] for f in report["hosts"][drifted]["findings"]]


def test_a_merge_against_a_run_file_that_audit_begin_did_not_write_for_this_run_changes_nothing(
        pristine: Pristine, tmp_path: Path) -> None:
    pristine(*HOSTS)
    run_file, reports, merged = tmp_path / "run.json", tmp_path / "reports", tmp_path / "merged"
    begin(run_file, "run-1")
    audit_shards(run_file, reports)
    refused = merge(run_file, reports, merged, "run-2")                 # run-2's begin failed
    assert refused.returncode == 1 and not merged.exists()
    assert f"hostprep: error: {run_file}: holds run run-1, not run-2" in refused.stderr
    bare = hostprep("audit", "--inventory", str(lab.INVENTORY), "--limit", ":".join(HOSTS), "--shard", f"1/{COUNT}")
    assert bare.returncode == 1 and "needs --run-file" in bare.stderr and "Traceback" not in bare.stderr
