"""Drift intervals from the audit history: when each drift began and ended."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from hostprep.audit import history
from hostprep.audit.run import HostAudit, judged
from tests.unit.audit.test_audit import SETTINGS, facts


def line(at: str, status: str = "drift", *keys: str, host: str = "lab2") -> dict[str, Any]:
    return {"at": f"2026-11-25T{at}:00+00:00", "host": host, "status": status,
            "findings": [{"key": k, "id": k.split(":")[0], "severity": "warning", "detail": f"{k} seen"} for k in keys]}


def spans(lines: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None, int]]:
    return [(i.host, i.key, i.began[11:16], i.ended[11:16] if i.ended else None, i.runs)
            for i in history.intervals(lines)]


def test_a_drift_begins_at_the_first_run_that_sees_it_and_ends_at_the_first_that_does_not() -> None:
    h = [line("10:00", "ok"), line("10:15", "drift", "chmod-lost"), line("10:30", "drift", "chmod-lost"),
         line("10:45", "ok")]
    assert spans(h) == [("lab2", "chmod-lost", "10:15", "10:45", 2)]


def test_a_drift_still_present_is_ongoing() -> None:
    [i] = history.intervals([line("10:00", "drift", "never-applied")])
    assert i.ongoing and i.ended is None and i.detail == "never-applied seen"


def test_a_drift_that_comes_back_is_a_second_interval() -> None:
    h = [line("10:00", "drift", "k"), line("10:15", "ok"), line("10:30", "drift", "k")]
    assert spans(h) == [("lab2", "k", "10:00", "10:15", 1), ("lab2", "k", "10:30", None, 1)]


def test_unreachable_runs_neither_end_nor_extend_a_drift_and_are_an_interval_themselves() -> None:
    h = [line("10:00", "drift", "k"), line("10:15", "unreachable"), line("10:30", "drift", "k"), line("10:45", "ok")]
    assert spans(h) == [("lab2", "k", "10:00", "10:45", 2),
                        ("lab2", history.UNREACHABLE_KEY, "10:15", "10:30", 1)]


def test_hosts_and_subjects_are_tracked_separately_in_any_input_order() -> None:
    h = [line("10:15", "ok", host="b"), line("10:00", "drift", "bind-dir-not-writable:logs", host="b"),
         line("10:00", "drift", "bind-dir-not-writable:dags", host="a")]
    assert spans(h) == [("a", "bind-dir-not-writable:dags", "10:00", None, 1),
                        ("b", "bind-dir-not-writable:logs", "10:00", "10:15", 1)]


def test_fix_run_records_the_drift_found_then_the_state_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    found = judged(facts("groupadd_gid_changed"), SETTINGS)
    after = judged(facts("groupadd"), SETTINGS)
    after.found_before_fix, after.fix = found.findings, {"status": "changed"}
    t0, t1 = datetime(2026, 11, 25, 10, tzinfo=timezone.utc), datetime(2026, 11, 25, 10, 1, tzinfo=timezone.utc)
    history.append(history.entries_for(after, t0, t1))
    history.append(history.entries_for(HostAudit("other", "unreachable", error="refused"), t1, t1))
    lines = history.load(["lab2"])
    assert [(e["phase"], e["status"], len(e["findings"])) for e in lines] == [("audit", "drift", 2), ("fix", "ok", 0)]
    assert {i.key: (i.began, i.ended) for i in history.intervals(lines)} == {
        "worker-cannot-reach-docker": ("2026-11-25T10:00:00+00:00", "2026-11-25T10:01:00+00:00"),
        "gid-mapping-stale": ("2026-11-25T10:00:00+00:00", "2026-11-25T10:01:00+00:00")}
    assert {e["host"] for e in history.load()} == {"lab2", "other"}
    assert (tmp_path / "hosts" / "lab2" / "audit.jsonl").exists()


def flapping_history() -> list[dict[str, Any]]:
    """Two hosts over 40 runs: long same-state stretches, a drift that comes back, an unreachable spell."""
    h = []
    for i in range(40):
        at = f"{10 + i // 4:02d}:{(i % 4) * 15:02d}"
        state = ("drift", "k") if 5 <= i < 20 or 30 <= i < 33 else ("unreachable",) if 25 <= i < 28 else ("ok",)
        h.append(line(at, *state))
        h.append(line(at, "drift", "j", "k", host="b") if i < 35 else line(at, "ok", host="b"))
    return h


def test_compaction_keeps_every_interval_exactly() -> None:
    h = flapping_history()
    small = history.compact(h)
    assert len(small) < len(h) / 3
    assert history.intervals(small) == history.intervals(h)
    assert history.intervals(history.compact(small + [line("20:00", "ok")])) == \
        history.intervals(h + [line("20:00", "ok")])   # compacting again, after more runs


def test_compaction_never_merges_lines_whose_findings_differ() -> None:
    h = [line("10:00", "drift", "k"), line("10:15", "drift", "j"), line("10:30", "drift", "k")]
    assert history.compact(h) == h


def test_a_file_past_the_limit_is_compacted_on_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTPREP_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(history, "COMPACT_AT", 2000)
    h = flapping_history()
    for ln in h:
        history.append([ln])
    path = tmp_path / "hosts" / "lab2" / "audit.jsonl"
    assert path.stat().st_size <= 2000 + 400
    assert history.intervals(history.load()) == history.intervals(h)
