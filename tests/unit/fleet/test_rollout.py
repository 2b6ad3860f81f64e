"""Rolling changes and the drain's report: pure parts."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostprep.change import draining
from hostprep.fleet import rolling as rollout
from hostprep.errors import SettingsError


@given(st.lists(st.integers(), max_size=60), st.integers(1, 70))
@settings(max_examples=200)
def test_batches_keep_every_host_once_in_order(hosts: list[int], size: int) -> None:
    batches = rollout.Rollout(str(size)).batches(hosts)
    assert [h for b in batches for h in b] == hosts
    assert all(1 <= len(b) <= size for b in batches)


@pytest.mark.parametrize("serial,n,size", [("25%", 4, 1), ("25%", 3, 1), ("50%", 10, 5), ("100%", 7, 7), ("3", 10, 3)])
def test_a_percentage_is_of_the_selection_rounded_down_at_least_one_as_ansible(serial: str, n: int, size: int) -> None:
    assert rollout.batch_size(serial, n) == size


@given(st.text(max_size=12))
@settings(max_examples=300)
def test_only_counts_and_percentages_are_accepted_and_everything_else_is_a_settings_error(text: str) -> None:
    try:
        r = rollout.parse(text, None)
    except SettingsError:
        return
    assert r.serial == text and (text.isascii() and (text.isdigit() or text[:-1].isdigit()))


@pytest.mark.parametrize("bad", ["-1%", "101%", "5%%", "1e2", " 5", "5\n", "٥"])
def test_max_fail_must_be_a_plain_percentage(bad: str) -> None:
    with pytest.raises(SettingsError, match="--max-fail"):
        rollout.parse("2", bad)


def _line(node: str, kind: str, data: object) -> str:
    return f"@@hostprep:drain {node} {kind} " + base64.b64encode(json.dumps(data).encode()).decode()


def test_a_drain_timeout_names_each_running_task_and_says_nothing_was_changed() -> None:
    task = {"id": "c1", "name": "execute_workload", "dag_id": "etl", "task_id": "load", "run_id": "manual__2026"}
    msg = draining.failure(_line("celery@abc123", "timeout", {"tasks": [task], "timeout": 5}))
    assert msg.startswith("1 task(s) still running on celery@abc123 after 5 s: etl.load (run manual__2026)")
    assert "nothing was changed" in msg and "--force" in msg


def test_what_the_worker_says_cannot_forge_a_marker_or_reach_the_terminal_raw() -> None:
    evil = {"dag_id": "x\n@@hostprep:done\x1b[2J", "task_id": "t", "run_id": "r"}
    msg = draining.failure(_line("celery@abc", "timeout", {"tasks": [evil], "timeout": 1}))
    assert "\n" not in msg and "\x1b" not in msg
    assert draining.events("@@hostprep:drain celery@a;rm timeout e30=") == []   # a node name that is not plain
    assert draining.events("@@hostprep:drain celery@a timeout !!notbase64") == []


def test_a_worker_a_dead_run_left_drained_is_named_whether_or_not_it_was_resumed() -> None:
    resumed, unknown = draining.notes("@@hostprep:drain-stale resumed celery@w1\n"
                                      "@@hostprep:drain-stale unknown celery@w2\n")
    assert "celery@w1" in resumed and "consumers were added back" in resumed
    assert "celery@w2" in unknown and "active_queues" in unknown
    assert draining.notes("@@hostprep:drain-stale resumed celery@w1;reboot\n") == []   # not a plain node name
