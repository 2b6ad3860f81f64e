"""The benchmark's protocol: samples taken on a busy machine are marked (or refused), and a row that
counted no sample stops the benchmark with the reason instead of printing nan."""

from __future__ import annotations

import pytest

from tests.benchmarks import protocol
from tests.benchmarks.bench import Result, table
from tests.benchmarks.measure import Sample
from tests.benchmarks.protocol import Load, NoSample
from tests.benchmarks.startup import Startup

QUIET, BUSY = Load(0.4, 1.2), Load(2.0, 3.5)   # on 2 cores the limit is 3.0
NO_CALLBACK = "ERROR! Could not load 'json' callback plugin\n"


def sample(tool: str = "hostprep", load: Load = QUIET, output: str = "ok", wall: float = 1.0) -> Sample:
    return Sample(tool, 2, wall, 0.5, 50.0, 0, output, load)


def test_a_sample_is_loaded_when_either_reading_is_above_one_and_a_half_times_the_cores() -> None:
    assert not Load(3.0, 3.0).above(2) and Load(3.01, 0.1).above(2) and Load(0.1, 3.01).above(2)
    assert not BUSY.above(4)


def test_the_verdict_calls_a_run_quiet_only_without_any_loaded_sample() -> None:
    assert protocol.verdict([QUIET, QUIET], 2).startswith("load: QUIET run")
    said = protocol.verdict([QUIET, BUSY], 2)
    assert said.startswith("load: LOADED run, 1 of 2 samples") and "not for RESULTS.md" in said


def test_a_loaded_sample_is_counted_and_marked_by_default() -> None:
    r = Result(2, cores=2)
    assert r.add(sample(load=BUSY), gaps=[]).startswith("  LOADED")
    assert r.add(sample(), gaps=[]) == ""
    assert len(r.samples["hostprep"]) == 2 and r.loaded("hostprep") == 1
    assert table([r]).split("\n")[-1].endswith("| 2/2 | 1 |")


def test_with_refuse_loaded_a_loaded_sample_is_not_counted_and_says_why() -> None:
    r = Result(2, cores=2, refuse_loaded=True)
    assert "NOT COUNTED: taken on a busy machine (load 2.0->3.5)" in r.add(sample(load=BUSY), gaps=[])
    assert r.samples["hostprep"] == [] and r.invalid["hostprep"] == 1


def test_a_row_that_counted_no_sample_stops_the_benchmark_with_the_reason() -> None:
    r = Result(2, cores=2)
    r.add(sample(), gaps=[])
    note = r.add(sample("ansible-raw", output=NO_CALLBACK), gaps=["lab1", "lab2"])
    assert "NOT COUNTED: audit incomplete on 2 hosts (lab1, lab2)" in note and "json' callback" in note
    with pytest.raises(NoSample) as stop:
        r.check()
    assert str(stop.value).startswith("ansible-raw at N=2 counted no sample (audit incomplete on 2 hosts")
    assert "Could not load 'json' callback plugin" in str(stop.value) and "nan" not in str(stop.value)


def test_rows_with_a_counted_sample_pass_the_check() -> None:
    r = Result(2, cores=2)
    r.add(sample("pyinfra"), gaps=[])
    r.add(sample("pyinfra", output="x"), gaps=["lab1"])
    r.check()


def test_a_start_up_sample_counts_only_if_the_tool_really_started() -> None:
    s = Startup(cores=2)
    assert s.add("pyinfra", "version", sample("pyinfra", output="pyinfra: v3.10.0")) == ""
    assert "NOT COUNTED" in s.add("pyinfra", "empty inventory", sample("pyinfra", output="Traceback (most recent call last):"))
    assert s.add("hostprep", "empty inventory", sample(output="hostprep: error: no host", load=BUSY)).startswith("  LOADED")
    with pytest.raises(NoSample, match=r"pyinfra \(empty inventory\) at N=0 counted no sample"):
        s.check()


def test_the_start_up_table_has_a_row_per_tool_with_both_kinds() -> None:
    s = Startup(cores=2)
    for kind, wall in (("version", 0.05), ("empty inventory", 0.25)):
        s.add("hostprep", kind, sample(output="hostprep 0.1.0", wall=wall))
    row = s.table().split("\n")[-1]
    assert row.startswith("| hostprep | 0.05 s | 0.50 s | 0.25 s | 0.50 s | 2/2 | 0 |")


def test_where_the_busy_share_was_read_it_alone_decides_and_the_bench_s_own_load_average_does_not() -> None:
    own_hosts = Load(9.5, 11.0, busy=0.04)   # the previous sample's hosts left the load average high
    other_work = Load(0.2, 0.3, busy=0.6)    # something else had a core as the sample started
    assert not own_hosts.above(2) and other_work.above(2)
    assert protocol.verdict([own_hosts], 2).startswith("load: QUIET run (highest 4% busy")
    assert "60% busy" in protocol.verdict([own_hosts, other_work], 2)


def test_the_busy_share_counts_iowait_and_idle_as_not_busy() -> None:
    first = protocol.cpu_times("cpu  100 0 50 800 50 0 0 0 0 0")
    second = protocol.cpu_times("cpu  130 0 70 850 50 0 0 0 0 0")
    assert first == (150, 1000) and protocol.busy_share(first, second) == 0.5
    assert protocol.busy_share(first, first) == 0.0


def test_only_the_typical_playbook_may_be_left_out_never_hostprep_or_a_peers_strongest() -> None:
    from tests.benchmarks.bench import skippable

    assert skippable("ansible-tasks") == ("ansible-tasks",) and skippable("") == ()
    for name in ("hostprep", "pyinfra", "ansible-raw", "ansible-raw-warm", "ansible-tsks"):
        with pytest.raises(SystemExit, match=name):
            skippable(name)
