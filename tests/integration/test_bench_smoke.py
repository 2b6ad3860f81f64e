"""The benchmark runs end to end on 2 hosts (a smoke test: no timing is asserted)."""

from __future__ import annotations

import re

from tests.benchmarks import bench
from tests.lab import lab

# its own fleet, beside this lab's (HOSTPREP_LAB_PREFIX / _PORT_BASE): a kept bench fleet is left alone
SMOKE_PREFIX, SMOKE_PORTS = ("hostprep-benchsmoke", 2600) if lab.PREFIX == "hostprep-lab" else \
    (f"{lab.PREFIX}bs", lab.PORT_BASE + 400)


def test_benchmark_counts_only_complete_audits_and_hostprep_opens_one_exec_per_host() -> None:
    lines: list[str] = []
    report = bench.main([2], repeats=1, keep=False, log=lines.append, prefix=SMOKE_PREFIX, port_base=SMOKE_PORTS)
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| 2 \| ([\w-]+) \|.*$", report, re.M)}
    assert set(rows) == {"hostprep", "hostprep-deep", "ansible-raw", "ansible-raw-warm", "ansible-tasks", "pyinfra"}
    for tool, row in rows.items():   # every tool really did the whole audit on both hosts (lab hosts have python3)
        assert [c.strip() for c in row.split("|")][-3] == "1/1", row
    for ours in ("hostprep", "hostprep-deep"):   # one connection, one exec per host, in-worker checks included
        assert [c.strip() for c in rows[ours].split("|")][-5:-3] == ["1.0", "1.0"], rows[ours]
    assert [c.strip() for c in rows["ansible-raw"].split("|")][-4] == "1.0"   # one raw task: one exec per host
    assert re.search(r"^N=2: hostprep-deep [\d.]+ s; ansible", report, re.M), report
    assert re.search(r"^N=2: hostprep [\d.]+ s; ansible at its strongest \(ansible-(raw|tasks)\) [\d.]+ s = [\d.]+×; "
                     r"pyinfra at its strongest \(pyinfra\)", report, re.M), report
    assert "provision on 2 hosts: 2 changed" in report
    assert re.match(r"load: (QUIET|LOADED) run", report), report[:200]   # the protocol's verdict opens the report
    for tool in ("hostprep", "ansible-playbook", "pyinfra"):   # the start-up row: --version and an empty inventory
        assert re.search(rf"^\| {tool} \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| 2/2 \|", report, re.M), report
    assert re.search(r"per host phases \(median\): connect [\d.]+ s, facts [\d.]+ s, compose [\d.]+ s, proof [\d.]+ s", report)
    assert not [ln for ln in lines if "NOT COUNTED" in ln], lines
