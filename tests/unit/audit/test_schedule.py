"""Crontab text handling for `invoke audit.schedule`: hostprep's block in, out, and nothing else touched."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hostprep.cli import audit_cmd, commands
from hostprep.audit import schedule
from hostprep.fleet.fanout import ConnectOptions
from hostprep.audit.schedule import BEGIN, END, AuditJob, ScheduleError

JOB = AuditJob(repo="/srv/hostprep", python="/srv/venv/bin/python", report_dir="/var/lib/hostprep-reports",
               inventory="/srv/hostprep/inventories/prod.yml", limit="airflow:!canary", state_dir="/srv/state",
               flock="/usr/bin/flock")
USER_CRONTAB = ("MAILTO=ops@example.com\n# nightly backup\n30 2 * * * /usr/local/bin/backup --all\n"
                "*/5 * * * * date +\\%s >> /tmp/ticks\n")


@pytest.mark.parametrize("every, cron, calendar", [
    ("1m", "* * * * *", "*-*-* *:*:00"),
    ("15m", "*/15 * * * *", "*-*-* *:00/15:00"),
    ("30m", "*/30 * * * *", "*-*-* *:00/30:00"),
    ("1h", "0 * * * *", "hourly"),
    ("6h", "0 */6 * * *", "*-*-* 00/6:00:00"),
    ("1d", "0 0 * * *", "daily"),
])
def test_every_maps_to_cron_fields_and_a_systemd_calendar(every: str, cron: str, calendar: str) -> None:
    assert schedule.cron_spec(every) == cron
    assert schedule.on_calendar(every) == calendar


@pytest.mark.parametrize("every", ["7m", "60m", "0m", "5h", "2d", "15", "1w", "", "15 m"])
def test_every_that_cron_cannot_keep_evenly_is_refused(every: str) -> None:
    with pytest.raises(ScheduleError, match="--every"):
        schedule.cron_spec(every)


def test_cron_command_runs_the_audit_from_the_repo_with_absolute_paths_under_flock() -> None:
    words = shlex.split(JOB.command())
    assert words[:5] == ["mkdir", "-p", "/var/lib/hostprep-reports", "&&", "/usr/bin/flock"]
    assert words[5:9] == ["-n", "/var/lib/hostprep-reports/.hostprep-audit.lock", "sh", "-c"]
    inner = shlex.split(words[9])
    assert inner[:5] == ["cd", "/srv/hostprep", "&&", "exec", "env"]
    assert inner[5:-2] == [
        "HOSTPREP_STATE_DIR=/srv/state", "/srv/venv/bin/python", "-m", "hostprep", "audit",
        "--inventory", "/srv/hostprep/inventories/prod.yml", "--report-dir", "/var/lib/hostprep-reports",
        "--limit", "airflow:!canary"]
    assert inner[-2:] == [">/var/lib/hostprep-reports/audit.log", "2>&1"]


def test_without_flock_or_state_dir_the_audit_runs_directly() -> None:
    job = AuditJob(repo="/r", python="/p", report_dir="/d", inventory="/i.yml")
    assert job.command() == "mkdir -p /d && cd /r && exec /p -m hostprep audit --inventory /i.yml --report-dir /d " \
        ">/d/audit.log 2>&1"


def test_values_with_spaces_or_shell_characters_are_quoted() -> None:
    job = AuditJob(repo="/srv/my repo", python="/usr/bin/python3", report_dir="/tmp/r;x", inventory="/i.yml",
                   host="a$(id)")
    cmd = job.command()
    assert "cd '/srv/my repo'" in cmd and "'a$(id)'" in cmd and "mkdir -p '/tmp/r;x'" in cmd


def test_block_is_marked_and_escapes_percent_for_cron() -> None:
    job = AuditJob(repo="/r", python="/p", report_dir="/reports/%Y", inventory="/i.yml")
    text = schedule.block("15m", job)
    lines = text.splitlines()
    assert lines[0].startswith(BEGIN) and lines[-1] == END
    assert lines[2].startswith("*/15 * * * * mkdir -p /reports/\\%Y")
    assert "%" not in lines[2].replace("\\%", "")


def test_schedule_appends_after_the_users_lines_and_keeps_them_byte_for_byte() -> None:
    new = schedule.with_block(USER_CRONTAB, schedule.block("15m", JOB))
    assert new.startswith(USER_CRONTAB)
    assert schedule.find_block(new) == schedule.block("15m", JOB)
    assert schedule.without_block(new) == USER_CRONTAB


def test_scheduling_again_replaces_the_block_in_place() -> None:
    once = schedule.with_block(USER_CRONTAB, schedule.block("15m", JOB)) + "0 4 * * * /bin/later\n"
    twice = schedule.with_block(once, schedule.block("1h", JOB))
    assert twice.count(BEGIN) == 1 and "0 * * * * mkdir" in twice and "*/15" not in twice
    assert twice.endswith(END + "\n0 4 * * * /bin/later\n")


def test_schedule_on_an_empty_crontab_or_one_without_final_newline() -> None:
    b = schedule.block("1d", JOB)
    assert schedule.with_block("", b) == b
    assert schedule.with_block("0 1 * * * /x", b) == "0 1 * * * /x\n" + b


def test_unschedule_removes_only_the_block_and_nothing_when_there_is_none() -> None:
    middle = "0 1 * * * /a\n" + schedule.block("15m", JOB) + "0 2 * * * /b\n"
    assert schedule.without_block(middle) == "0 1 * * * /a\n0 2 * * * /b\n"
    assert schedule.without_block(USER_CRONTAB) == USER_CRONTAB
    assert schedule.find_block(USER_CRONTAB) is None


@pytest.mark.parametrize("broken", [
    f"{BEGIN}\n* * * * * x\n",
    f"* * * * * x\n{END}\n",
    f"{BEGIN}\n{BEGIN}\n{END}\n",
])
def test_unbalanced_markers_are_refused_rather_than_guessing_what_to_delete(broken: str) -> None:
    with pytest.raises(ScheduleError, match="crontab -e"):
        schedule.without_block(USER_CRONTAB + broken)
    with pytest.raises(ScheduleError):
        schedule.with_block(broken, schedule.block("1h", JOB))


def test_systemd_units_run_the_same_audit_on_the_timer() -> None:
    units = schedule.units("15m", JOB)
    service, timer = units["hostprep-audit.service"], units["hostprep-audit.timer"]
    assert "WorkingDirectory=/srv/hostprep\n" in service
    assert 'Environment="HOSTPREP_STATE_DIR=/srv/state"\n' in service
    assert "ExecStart=/srv/venv/bin/python -m hostprep audit --inventory /srv/hostprep/inventories/prod.yml" in service
    assert "OnCalendar=*-*-* *:00/15:00\n" in timer and "Persistent=true" in timer


def test_systemd_units_are_written_and_removed_without_enabling_when_systemd_is_not_pid1(tmp_path: Path) -> None:
    if schedule.systemd_is_pid1():
        pytest.skip("would enable a real timer on this machine")
    paths, enabled = schedule.install_units("1h", JOB, tmp_path / "units")
    assert not enabled and sorted(p.name for p in paths) == ["hostprep-audit.service", "hostprep-audit.timer"]
    assert sorted(p.name for p in schedule.remove_units(tmp_path / "units")) == sorted(p.name for p in paths)
    assert list((tmp_path / "units").iterdir()) == []


def test_the_cron_command_really_runs_under_sh_with_awkward_paths(tmp_path: Path) -> None:
    import shutil
    import subprocess

    repo, reports = tmp_path / "my repo", tmp_path / "re'ports;x"
    repo.mkdir()
    job = AuditJob(repo=str(repo), python="/bin/echo", report_dir=str(reports), inventory="/i 1.yml",
                   host="a$(id)", state_dir=str(tmp_path / "st ate"), flock=shutil.which("flock"))
    subprocess.run(["sh", "-c", job.command()], check=True, timeout=30)
    assert (reports / "audit.log").read_text() == (
        f"-m hostprep audit --inventory /i 1.yml --report-dir {reports} --host a$(id)\n")


@pytest.mark.parametrize("every, seconds", [("1m", 60), ("15m", 900), ("30m", 1800), ("1h", 3600), ("12h", 43200),
                                            ("1d", 86400)])
def test_every_in_seconds_is_what_the_textfile_says_the_interval_is(every: str, seconds: int) -> None:
    assert schedule.seconds(every) == seconds


def test_the_scheduled_audit_passes_its_period_on_so_the_textfile_can_say_it() -> None:
    job = AuditJob(repo="/r", python="/p", report_dir="/d", inventory="/i.yml", every="15m")
    assert job.argv()[-2:] == ["--every", "15m"]
    assert "ExecStart=/p -m hostprep audit --inventory /i.yml --report-dir /d --every 15m\n" in \
        schedule.units("15m", job)["hostprep-audit.service"]
    assert job.command().endswith(" --every 15m >/d/audit.log 2>&1")


def test_an_audit_with_a_bad_every_is_refused_before_any_host_is_read() -> None:
    with pytest.raises(ScheduleError, match="--every '7m'"):
        audit_cmd.audit(commands.Selection(inventory="/nonexistent/inventory.yml"), ConnectOptions(),
                       audit_cmd.AuditOutputs(every="7m"))
