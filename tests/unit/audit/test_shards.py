"""Audit shards: stable, disjoint, complete; merged reports equal one run's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hostprep.audit.run import DRIFT, RULE, UNREACHABLE, Finding, HostAudit
from hostprep.audit.report_json import ReportError
from hostprep.audit.report import as_dict
from hostprep.audit.shards import Run, ShardError, ShardReport, merge, new_run, parse_shard, pick, read_report, shard_of

NAMES = [f"i-{n:017x}" for n in range(1000)]
AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
RUN = Run("scheduled__2026-12-01T11:45:00+00:00", AT - timedelta(minutes=1))


def test_every_host_lands_in_exactly_one_shard_and_the_shards_are_even() -> None:
    for count in (1, 2, 3, 7):
        parts = [pick(NAMES, NAMES, (i, count)) for i in range(1, count + 1)]
        assert sorted(n for p in parts for n in p) == sorted(NAMES)
        assert all(abs(len(p) - len(NAMES) / count) < 0.2 * len(NAMES) / count for p in parts)


def test_a_hosts_shard_does_not_depend_on_the_rest_of_the_inventory() -> None:
    assert [shard_of(n, 4) for n in NAMES[:50]] == [shard_of(n, 4) for n in reversed(NAMES[:50])][::-1]
    assert pick(NAMES[:10], NAMES[:10], (1, 2)) == [n for n in NAMES[:10] if n in pick(NAMES, NAMES, (1, 2))]


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "1/0", "a/b", "1/2/3", " 1/2x", "1/1001"])
def test_bad_shard_values_are_refused(bad: str) -> None:
    with pytest.raises(ShardError):
        parse_shard(bad)


def _audits() -> list[HostAudit]:
    return [HostAudit(n, DRIFT, [Finding(RULE["never-applied"], "no record", "invoke provision", None)],
                      labels={"instance_id": n, "name": f"w{i}"}) if i % 3 == 0 else
            HostAudit(n, UNREACHABLE, error="timed out") if i % 5 == 0 else HostAudit(n, "ok")
            for i, n in enumerate(NAMES[:20])]


def shard_report(audits: list[HostAudit], i: int, n: int, run: Run | None = RUN, at: datetime = AT,
                 name: str = "") -> ShardReport:
    """A shard's report as `audit --shard I/N` writes it, read back as the merge reads it."""
    data = as_dict(pick(audits, [a.host for a in audits], (i, n)), at, (i, n), run.to_dict() if run else None)
    return read_report(json.dumps(data), name or f"s{i}/audit.json")


def test_merged_shard_reports_equal_the_unsharded_report() -> None:
    audits = _audits()
    merged = merge([shard_report(audits, i, 3) for i in (1, 2, 3)], RUN)
    assert merged.refused == ()
    assert as_dict(merged.audits, AT) == as_dict(audits, AT)
    assert as_dict(merged.audits, AT)["exit_code"] == 3 and merged.at == RUN.started


def test_a_missing_or_repeated_shard_or_a_host_in_two_shards_is_refused() -> None:
    audits = _audits()
    one, two = (shard_report(audits, i, 2) for i in (1, 2))
    with pytest.raises(ShardError, match="missing 2/2"):
        merge([one], RUN)
    with pytest.raises(ShardError, match="repeated 1/2"):
        merge([one, one, two], RUN)
    with pytest.raises(ShardError, match="not shards of one run"):
        merge([one, shard_report(audits, 1, 3)], RUN)
    clash = ShardReport(two.name, two.index, two.count, two.run, two.at, two.audits + one.audits[:1])
    with pytest.raises(ShardError, match=r"in two shard reports: shard 1/2 \(s1/audit.json\) and shard 2/2"):
        merge([one, clash], RUN)


def statuses(reports: list[ShardReport], run: Run = RUN) -> dict[str, str]:
    return {a.host: a.status for a in merge(reports, run).audits}


def test_a_report_left_by_the_previous_run_is_refused_by_name_and_its_hosts_are_not_audited() -> None:
    clean = [HostAudit(n, "ok") for n in NAMES[:20]]
    earlier = Run("scheduled__2026-12-01T11:30:00+00:00", AT - timedelta(minutes=16))
    left = shard_report(clean, 2, 2, earlier, AT - timedelta(minutes=15), name="shard-2-of-2/audit.json")
    merged = merge([shard_report(clean, 1, 2), left], RUN)
    [why] = merged.refused
    assert why.startswith("shard 2/2 (shard-2-of-2/audit.json): refused: it is from run "
                          "scheduled__2026-12-01T11:30:00+00:00 (2026-12-01T11:44:00+00:00), not scheduled__")
    stale_hosts = {a.host for a in left.audits}
    assert stale_hosts and all(a.status == "failed" and "is stale" in (a.error or "")
                               for a in merged.audits if a.host in stale_hosts)
    assert {a.host for a in merged.audits if a.status == "ok"} == {a.host for a in clean} - stale_hosts
    assert as_dict(merged.audits, merged.at)["exit_code"] == 3


def test_a_report_of_an_earlier_start_of_the_same_run_or_older_than_its_start_is_refused() -> None:
    clean = [HostAudit(n, "ok") for n in NAMES[:20]]
    first_try = Run(RUN.id, RUN.started - timedelta(minutes=5))   # the DAG run was cleared and ran again
    [why] = merge([shard_report(clean, 1, 2), shard_report(clean, 2, 2, first_try)], RUN).refused
    assert "an earlier start of run" in why and why.startswith("shard 2/2")
    [why] = merge([shard_report(clean, 1, 2, at=RUN.started - timedelta(seconds=1)), shard_report(clean, 2, 2)],
                  RUN).refused
    assert why.startswith("shard 1/2") and "before run" in why


def test_a_report_without_a_run_id_is_refused_with_what_to_do() -> None:
    clean = [HostAudit(n, "ok") for n in NAMES[:20]]
    merged = merge([shard_report(clean, 1, 2, run=None), shard_report(clean, 2, 2)], RUN)
    [why] = merged.refused
    assert "it has no run id" in why and "--run-file" in why
    assert "ok" in statuses([shard_report(clean, 1, 2), shard_report(clean, 2, 2)]).values()


def test_a_stale_report_of_another_shard_count_is_named_in_the_refusal() -> None:
    clean = [HostAudit(n, "ok") for n in NAMES[:20]]
    old = Run("manual__x", AT - timedelta(days=1))
    with pytest.raises(ShardError,
                       match=r"not shards of one run.*shard 2/3 \(s2/audit.json\): refused: it is from run manual__x"):
        merge([shard_report(clean, 1, 2), shard_report(clean, 2, 3, old)], RUN)


def test_run_ids_are_airflow_run_ids_or_fresh_ones_and_nothing_a_shell_would_read() -> None:
    assert new_run(AT, "manual__2026-12-01T12:00:00.123456+00:00").id.startswith("manual__")
    fresh = new_run(AT)
    assert fresh.id.startswith("20261201T120000Z-") and fresh.started == AT and new_run(AT).id != fresh.id
    for bad in ("", "a b", "$(id)", "x" * 129, "-rf", "a\n"):
        with pytest.raises(ShardError, match="--run-id"):
            new_run(AT, bad)


def test_an_unsharded_report_given_to_the_merge_says_so() -> None:
    with pytest.raises(ReportError, match=r"^whole.json: shard: missing: not a shard's report"):
        read_report(json.dumps(as_dict([HostAudit("lab1", "ok")], AT, None, RUN.to_dict())), "whole.json")
