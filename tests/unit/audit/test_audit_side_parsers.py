"""The audit side's parsers keep their promise: whatever a report, a run file, a history file, an SSH
config or an `--every` holds, the answer is the value or hostprep's own error naming the file and
the field, never a Python exception (issue 23, item 7). Each input the fuzzers found comes first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostprep.cli import audit_cmd
from hostprep.audit import history, schedule
from hostprep.change import local_state
from hostprep.audit.run import HostAudit
from hostprep.audit.report_json import ReportError
from hostprep.audit.report import as_dict, history_table
from hostprep.ssh.endpoint import Endpoint
from hostprep.errors import SettingsError, TransportError
from hostprep.audit.schedule import ScheduleError
from hostprep.audit.shards import Run, ShardError, read_report, read_run_file, run_file_text
from hostprep.ssh.config import parse_hop, port_of
from tests.unit.fuzz import FUZZ

AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
RUN = Run("run-1", AT - timedelta(minutes=1))
SEPARATORS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
DEEP = "[" * 1000
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))   # this checkout's hostprep


def shard_text(**changes: Any) -> str:
    data = as_dict([HostAudit("lab1", "ok"), HostAudit("lab2", "drift")], AT, (1, 1), RUN.to_dict())
    return json.dumps({**data, **changes})


# ------------------------------------------------------------------ the inputs the fuzzers found


def test_a_history_finding_with_severity_null_is_skipped_by_name_and_the_rest_is_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    path = history.path_for("lab2")
    local_state.private_dir(path.parent)
    bad = {"at": "2026-12-01T10:00:00+00:00", "host": "lab2", "status": "drift",
           "findings": [{"key": "k", "id": "k", "severity": None, "detail": "d"}]}
    good = dict(bad, at="2026-12-01T10:15:00+00:00", findings=[{"key": "j", "severity": "warning", "detail": "d"}])
    path.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    reply = audit_cmd.audit_history("lab2", as_json=False)
    assert reply.code == 0 and "j" in reply.text and "warning" in reply.text
    assert reply.warnings == ("skipped 1 torn or unreadable history line(s)",
                              f"{path}:1: findings[0].severity: expected a string, got null")


def test_a_proxyjump_port_of_unicode_digits_or_out_of_range_is_a_transport_error() -> None:
    for hop in ("bastion:²", "bastion:0", "bastion:65536", "[::1]:٣", "bastion:99999999999999999999"):
        with pytest.raises(TransportError, match="the port is not a number from 1 to 65535"):
            parse_hop(hop)
    assert parse_hop("bastion:65535") == (None, "bastion", 65535)


def test_an_ssh_config_port_that_is_not_a_number_is_a_settings_error_naming_the_host_and_field() -> None:
    for port in ("abc", "²", "0", "70000", "", "22 "):
        with pytest.raises(SettingsError, match=r"^web1: Port .* in the SSH config \(.*\) is not a number"):
            port_of(Endpoint("web1", "web1"), {"port": port})
    assert port_of(Endpoint("web1", "web1"), {"port": "2222"}) == 2222
    assert port_of(Endpoint("web1", "web1", 2200), {"port": "abc"}) == 2200   # the inventory's port wins


def test_every_with_4301_digits_is_hostpreps_own_message() -> None:
    with pytest.raises(ScheduleError, match=r"^--every '1111111111.*\.\.\.': use minutes dividing 60"):
        schedule.cron_spec("1" * 4301 + "m")
    for every in ("١٥m", "15\nm", "²m", "015m"):
        with pytest.raises(ScheduleError, match="--every"):
            schedule.cron_spec(every)


def test_merging_a_report_that_holds_a_list_is_an_error_naming_the_file(tmp_path: Path) -> None:
    run_file = tmp_path / "run.json"
    run_file.write_text(run_file_text(RUN))
    report = tmp_path / "x.json"
    report.write_text("[]")
    with pytest.raises(ReportError, match=rf"^{report}: not an audit report: expected a JSON object, got \[\]$"):
        audit_cmd.audit_merge([str(report)], run_file=str(run_file))


def test_the_merge_command_says_so_in_one_line_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    begun = subprocess.run([sys.executable, "-m", "hostprep", "audit.begin", "--run-file", "run.json"],
                           cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert begun.returncode == 0 and begun.stdout.count("-") == 1, begun.stderr
    for args, said in (([], "hostprep: error: x.json: not an audit report: expected a JSON object, got []"),
                       (["--run-id", "other"], f"hostprep: error: run.json: holds run {begun.stdout.strip()}, not other")):
        run = subprocess.run([sys.executable, "-m", "hostprep", "audit.merge", "--report", "x.json", "--run-file",
                              "run.json", *args], cwd=tmp_path, capture_output=True, text=True, env=ENV,
                             timeout=120)
        assert (run.returncode, run.stdout) == (1, "") and run.stderr.startswith(said), run.stderr


def test_deep_nesting_in_a_report_a_run_file_or_a_history_file_is_hostpreps_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ReportError, match="^s1.json: not JSON: .*nested deeper"):
        read_report(DEEP, "s1.json")
    with pytest.raises(ReportError, match=r"^s1.json: hosts.lab1: expected an object, got \[\[\["):
        read_report(shard_text(hosts={"lab1": json.loads("[" * 60 + "]" * 60)}), "s1.json")
    with pytest.raises(ReportError, match="^run.json: not JSON: .*nested deeper"):
        read_run_file('{"run": ' + DEEP, "run.json")
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    path = history.path_for("h")
    local_state.private_dir(path.parent)
    path.write_text(DEEP + "\n")
    lines, skipped = history.load_counted(["h"])
    assert lines == [] and skipped == [f"{path}:1: not JSON (history line: nested deeper than 64 levels)"]


@pytest.mark.parametrize("change, field", [
    ({"shard": {"index": True, "count": 2}}, "shard.index: expected an integer, got True"),
    ({"shard": {"index": 3, "count": 2}}, "shard: 3/2 is not a shard"),
    ({"at": "2026-12-01T12:00:00"}, "at: expected an ISO 8601 time with its UTC offset"),
    ({"run": {"id": "$(id)", "started": "2026-12-01T11:59:00+00:00"}}, "run.id: '$(id)' is not a run id"),
    ({"run": {"id": "r", "started": 5}}, "run.started: expected a string, got 5"),
    ({"hosts": {"lab1": {"status": "clean"}}}, "hosts.lab1.status: expected one of ok, drift, unreachable, failed"),
    ({"hosts": {"a b": {"status": "ok"}}}, "hosts: 'a b' is not a host name"),
    ({"hosts": {"lab1": {"status": "ok", "findings": [{"id": "x", "severity": None}]}}},
     "hosts.lab1.findings[0].severity: expected a string, got null"),
    ({"hosts": {"lab1": {"status": "ok", "docker_gid": "121"}}}, "hosts.lab1.docker_gid: expected an integer"),
    ({"hosts": {"lab1": {"status": "ok", "seconds": 10 ** 400}}}, "hosts.lab1.seconds: expected a number"),
    ({"hosts": {"lab1": {"status": "ok", "fix": {"status": None}}}}, "hosts.lab1.fix.status: expected a string"),
    ({"hosts": {"lab1": {"status": "ok", "labels": {"name": 5}}}}, "hosts.lab1.labels.name: expected a string"),
])
def test_a_shard_report_field_of_the_wrong_type_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ReportError) as err:
        read_report(shard_text(**change), "s1/audit.json")
    assert str(err.value).startswith(f"s1/audit.json: {field}")


# ------------------------------------------------------------------ hypothesis: any input, hostprep's errors only


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
FIELDS = ["at", "run", "shard", "hosts", "status", "findings", "severity", "id", "detail", "hint", "subject",
          "seconds", "labels", "fix", "error", "docker_gid", "deep", "started", "index", "count", "key", "repeat"]
FIELDY = st.recursive(JSON, lambda inner: st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5), max_leaves=20)


def mutated(data: Any, path: list[str], value: Any) -> Any:
    """``data`` with the value at ``path`` (as far as it goes) replaced by ``value``."""
    if not path or not isinstance(data, dict):
        return value
    key = path[0] if path[0] in data else next(iter(data), path[0])
    return {**data, key: mutated(data.get(key), path[1:], value)}


@FUZZ
@given(st.lists(st.sampled_from(FIELDS + ["lab1", "lab2"]), max_size=4), FIELDY)
def test_a_shard_report_with_any_field_replaced_is_read_or_a_report_error(path: list[str], value: Any) -> None:
    text = json.dumps(mutated(json.loads(shard_text()), path, value))
    try:
        read_report(text, "s.json")
    except ReportError as exc:
        assert str(exc).startswith("s.json: ")


@FUZZ
@given(st.text(max_size=60) | st.builds(json.dumps, FIELDY), st.sampled_from(SEPARATORS))
def test_any_text_as_a_shard_report_or_run_file_is_read_or_a_report_error(text: str, sep: str) -> None:
    for t in (text, text.replace(" ", sep), DEEP[: len(text)] + text):
        for parse in (read_report, read_run_file):
            try:
                parse(t, "f.json")
            except ReportError as exc:
                assert str(exc).startswith("f.json: ")


@FUZZ
@given(st.lists(st.text(max_size=30) | st.builds(json.dumps, FIELDY) | st.builds(
    lambda f, v: json.dumps(mutated({"at": "2026-12-01T10:00:00+00:00", "host": "h", "status": "drift",
                                     "findings": [{"key": "k", "severity": "warning"}]}, f, v)),
    st.lists(st.sampled_from(FIELDS), max_size=3), FIELDY), max_size=6), st.sampled_from(SEPARATORS))
def test_any_history_file_gives_intervals_and_a_table_never_an_exception(
        tmp_path_factory: pytest.TempPathFactory, lines: list[str], sep: str) -> None:
    path = tmp_path_factory.mktemp("hist") / "h" / "audit.jsonl"
    path.parent.mkdir()
    path.write_text(sep.join(lines) + "\n" + "\n".join(lines) + "\n", errors="surrogateescape")
    good, skipped = history.read_lines(path)
    assert all(s.startswith(f"{path}:") for s in skipped)
    history_table(history.intervals(good))
    history.compact(good)


@FUZZ
@given(st.text(max_size=40), st.sampled_from(SEPARATORS))
def test_any_proxyjump_hop_or_ssh_port_is_read_or_hostpreps_error(text: str, sep: str) -> None:
    for t in (text, text + sep, "bastion:" + text, "[::1]:" + text):
        try:
            user, host, port = parse_hop(t)
            assert port is None or 1 <= port <= 65535
        except TransportError:
            pass
        try:
            assert 1 <= port_of(Endpoint("h", "h"), {"port": t}) <= 65535
        except SettingsError:
            pass


@FUZZ
@given(st.text(max_size=12) | st.integers().map(str) | st.none() | st.integers(), st.sampled_from(["m", "h", "d", ""]))
def test_any_every_is_a_schedule_or_a_schedule_error(n: Any, unit: str) -> None:
    every = f"{n}{unit}" if isinstance(n, str) else n
    try:
        assert schedule.cron_spec(every) and schedule.on_calendar(every)
    except ScheduleError as exc:
        assert str(exc).startswith("--every ")


@FUZZ
@given(st.lists(st.text(max_size=20) | st.sampled_from([schedule.BEGIN, schedule.END]), max_size=6),
       st.sampled_from(SEPARATORS))
def test_any_crontab_keeps_every_user_byte_and_splits_at_newlines_only(parts: list[str], sep: str) -> None:
    user = "\n".join(p.replace("\n", sep) for p in parts if not p.startswith("# "))
    job = schedule.AuditJob(repo="/r", python="/p", report_dir="/d", inventory="/i.yml")
    new = schedule.with_block(user, schedule.block("15m", job))
    assert schedule.find_block(new) == schedule.block("15m", job)
    assert schedule.without_block(new) == (user if not user or user.endswith("\n") else user + "\n")
    try:
        schedule.without_block(sep.join(parts))
    except ScheduleError as exc:
        assert str(exc).startswith("crontab line ")


def test_a_marker_after_a_separator_in_a_users_line_is_not_a_marker() -> None:
    user = f"0 * * * * echo hi\x85{schedule.BEGIN}\n"
    assert schedule.find_block(user) is None and schedule.without_block(user) == user


def test_a_merged_run_says_its_schedule_in_the_textfile_and_a_bad_every_changes_nothing(tmp_path: Path) -> None:
    """`audit.merge --every 15m`: the merged textfile carries the interval an alert compares the run's age to."""
    run_file = tmp_path / "run.json"
    run_file.write_text(run_file_text(RUN))
    report = tmp_path / "s1.json"
    report.write_text(json.dumps(as_dict([HostAudit("web1", "ok")], RUN.started, (1, 1), RUN.to_dict())))
    prom = tmp_path / "audit.prom"
    with pytest.raises(ScheduleError, match="--every"):
        audit_cmd.audit_merge([str(report)], audit_cmd.AuditOutputs(prom=str(prom), every="7m"), run_file=str(run_file))
    assert not prom.exists()
    reply = audit_cmd.audit_merge([str(report)], audit_cmd.AuditOutputs(prom=str(prom), every="15m"),
                                  run_file=str(run_file))
    assert reply.code == 0 and "hostprep_audit_interval_seconds 900" in prom.read_text()
