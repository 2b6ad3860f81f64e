"""Audit shards: stable, disjoint, complete; merged reports equal one run's."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hostprep.audit import DRIFT, RULE, UNREACHABLE, Finding, HostAudit
from hostprep.audit_report import as_dict
from hostprep.shards import ShardError, merge, parse_shard, pick, shard_of

NAMES = [f"i-{n:017x}" for n in range(1000)]
AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


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


def test_merged_shard_reports_equal_the_unsharded_report() -> None:
    audits = _audits()
    shards = [as_dict(pick(audits, NAMES[:20], (i, 3)), AT, (i, 3)) for i in (1, 2, 3)]
    merged, at = merge(shards)
    assert as_dict(merged, at) == as_dict(audits, AT)
    assert as_dict(merged, at)["exit_code"] == 3


def test_a_missing_or_repeated_shard_or_a_host_in_two_shards_is_refused() -> None:
    audits = _audits()
    one, two = (as_dict(pick(audits, NAMES[:20], (i, 2)), AT, (i, 2)) for i in (1, 2))
    with pytest.raises(ShardError, match="missing 2/2"):
        merge([one])
    with pytest.raises(ShardError, match="repeated 1/2"):
        merge([one, one, two])
    with pytest.raises(ShardError, match="not shards of one run"):
        merge([one, as_dict(audits, AT)])
    clash = dict(two, hosts={**two["hosts"], next(iter(one["hosts"])): next(iter(one["hosts"].values()))})
    with pytest.raises(ShardError, match="in two shard reports"):
        merge([one, clash])
