"""The benchmark runs end to end on 2 hosts (a smoke test: no timing is asserted)."""

from __future__ import annotations

import re

from tests.benchmarks import bench


def test_benchmark_runs_all_three_tools_and_hostprep_opens_one_exec_per_host() -> None:
    lines: list[str] = []
    # its own fleet: a bench fleet kept for measuring (hostprep-bench-*) is left alone
    report = bench.main([2], repeats=1, keep=False, log=lines.append, prefix="hostprep-benchsmoke", port_base=2600)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| 2 \| (\w+) \|.*$", report, re.M)}
    assert set(rows) == {"hostprep", "ansible", "pyinfra"}
    cells = [c.strip() for c in rows["hostprep"].split("|")]
    assert cells[-3:-1] == ["1.0", "1.0"], rows["hostprep"]   # one connection, one exec per host
    assert "provision on 2 hosts: 2 changed" in report
    assert re.search(r"per host phases \(median\): connect [\d.]+ s, facts [\d.]+ s, compose [\d.]+ s, proof [\d.]+ s", report)
    assert all(" exit 2" in ln or " exit 0" in ln for ln in lines if "hostprep  round" in ln)
