"""`invoke audit.schedule` with the real cron daemon: cron runs the audit and writes the reports.

The test uses the controller user's real crontab: it saves it, adds unrelated
lines of "the user's", installs a one-minute schedule through the CLI, waits
for cron to write a report (up to 90 s: cron starts jobs on the minute),
unschedules, checks the user's lines survived byte for byte, and restores the
crontab it found. It starts `cron` if it is not running, and stops it again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from hostprep.audit import schedule
from tests.integration.test_audit_lab import INVENTORY, NAME, _running
from tests.lab import lab

USER_LINES = "# the user's own entries\nMAILTO=\"\"\n17 3 * * * /bin/true --nightly # keep me\n"
pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("cron") is None or shutil.which("crontab") is None,
                                                 reason="cron is not installed (apt-get install cron)")]


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """A running cron; started here (and stopped by its pid) only if it was not running."""
    states = subprocess.run(["ps", "-C", "cron", "-o", "stat="], capture_output=True, text=True).stdout.split()
    if any(not s.startswith("Z") for s in states):  # a zombie cron runs nothing
        yield
        return
    subprocess.run(["cron"], check=True)
    pid = int(Path("/var/run/crond.pid").read_text().split()[0])
    try:
        yield
    finally:
        subprocess.run(["kill", str(pid)], check=False)


@pytest.fixture
def user_crontab() -> Iterator[str]:
    """The user's crontab with unrelated lines in it; whatever was there before is put back."""
    had_one = subprocess.run(["crontab", "-l"], capture_output=True).returncode == 0
    saved = schedule.read_crontab()
    schedule.write_crontab(schedule.without_block(saved) + USER_LINES)
    try:
        yield schedule.read_crontab()
    finally:
        if had_one:
            schedule.write_crontab(saved)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


@pytest.fixture
def lab_host(request: pytest.FixtureRequest) -> lab.LabHost:
    h = lab.LabHost(2)
    if not (INVENTORY.exists() and _running(h)):
        request.getfixturevalue("lab_hosts")
    if not INVENTORY.exists():
        pytest.skip(f"{INVENTORY} is missing: no lab")
    return h


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=lab.REPO, capture_output=True, text=True,
                          timeout=120)


def test_cron_runs_the_scheduled_audit_and_unschedule_leaves_the_users_entries(
        lab_host: lab.LabHost, cron_daemon: None, user_crontab: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    installed = invoke("audit.schedule", "--every", "1m", "--inventory", str(INVENTORY), "--host", NAME,
                       "--report-dir", str(reports))
    assert installed.returncode == 0, installed.stderr
    crontab = schedule.read_crontab()
    assert crontab.startswith(user_crontab) and crontab.count(schedule.BEGIN) == 1
    entry = schedule.find_block(crontab) or ""
    assert f"cd {lab.REPO} && " in entry and f"{sys.executable} -m hostprep audit" in entry
    shown = invoke("audit.schedule", "--show")
    assert shown.stdout.strip() == entry.strip()

    deadline = time.monotonic() + 90
    while not (reports / "audit.json").exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert (reports / "audit.json").exists(), f"cron wrote no report in 90 s; log: {_log(reports)}"
    data = json.loads((reports / "audit.json").read_text())
    assert data["hosts"][NAME]["status"] in ("ok", "drift"), data
    assert data["exit_code"] in (0, 2)
    textfile = (reports / "hostprep_audit.prom").read_text()
    assert 'hostprep_host_reachable{host="lab2"} 1' in textfile
    assert "\nhostprep_audit_interval_seconds 60\n" in textfile   # the schedule's period, for the not-run alert
    assert (reports / "audit-junit.xml").exists()

    removed = invoke("audit.unschedule")
    assert removed.returncode == 0 and "removed from crontab" in removed.stdout
    assert schedule.read_crontab() == user_crontab
    assert "no hostprep audit schedule" in invoke("audit.unschedule").stdout


def _log(reports: Path) -> str:
    log = reports / schedule.LOG_FILE
    return log.read_text()[-2000:] if log.exists() else "(no audit.log: the job did not start)"
