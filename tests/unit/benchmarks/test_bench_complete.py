"""The benchmark counts a sample only if each tool's per-host results show the whole audit done.

Fixtures: each tool's real output on a 2-host bench fleet (tests/unit/fixtures/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.complete import missing

FIXTURES = Path(__file__).parents[1] / "fixtures"
HOSTS = ["lab1", "lab2"]


def _out(tool: str) -> str:
    return (FIXTURES / f"bench_{tool}_2_hosts.txt").read_text()


@pytest.mark.parametrize("tool", ["hostprep", "hostprep-deep", "ansible-raw", "ansible-tasks", "pyinfra"])
def test_a_real_complete_run_counts_whatever_the_exit_code(tool: str) -> None:
    assert missing(tool, _out(tool), HOSTS) == []
    assert missing(tool, _out(tool), HOSTS + ["lab3"]) == ["lab3"]   # a host the tool never reported


def test_the_like_for_like_row_counts_only_hosts_whose_worker_was_checked_from_inside() -> None:
    assert missing("hostprep-deep", _out("hostprep"), HOSTS) == HOSTS   # the default audit: no exec in the worker
    data = json.loads(_out("hostprep-deep"))
    data["hosts"]["lab1"]["deep"] = False
    assert missing("hostprep-deep", json.dumps(data), HOSTS) == ["lab1"]


def test_a_hostprep_host_that_was_not_audited_does_not_count() -> None:
    data = json.loads(_out("hostprep"))
    data["hosts"]["lab2"]["status"] = "unreachable"
    assert missing("hostprep", json.dumps(data), HOSTS) == ["lab2"]


@pytest.mark.parametrize("tool", ["ansible-raw", "ansible-tasks"])
def test_ansible_failing_on_a_host_or_losing_a_check_does_not_count(tool: str) -> None:
    text = _out(tool)
    failed = text.replace("lab2 | SUCCESS | rc=0 >>", "lab2 | FAILED | rc=127 >>", 1)
    assert missing(tool, failed, HOSTS) == ["lab2"]
    unreachable = text + 'lab1 | UNREACHABLE! => {\n    "changed": false\n}\n'
    assert missing(tool, unreachable, HOSTS) == ["lab1"]
    assert missing(tool, text.replace("uid=", "uid:", 1), HOSTS) == ["lab1"]   # lab1 answers id first


def test_ansible_output_is_read_per_host_block_warnings_between_them_and_all() -> None:
    text = _out("ansible-tasks")
    assert "[WARNING]" in text and text.count("lab1 | SUCCESS") == 5   # one block per task, a warning between
    assert missing("ansible-tasks", text.replace("lab1 | SUCCESS", "lab9 | SUCCESS"), HOSTS) == ["lab1"]
    assert missing("ansible-raw", "Could not load 'json' callback plugin", HOSTS) == HOSTS


def test_pyinfra_counts_only_hosts_whose_lines_hold_every_check() -> None:
    text = "\n".join(ln for ln in _out("pyinfra").splitlines() if not ln.startswith("[lab2] uid="))
    assert missing("pyinfra", text, HOSTS) == ["lab2"]
    assert missing("pyinfra", "garbage", HOSTS) == HOSTS


def test_pyinfra_pads_host_names_to_the_longest_and_echoes_the_command() -> None:
    """Seen at N=10: ``[lab1]  660 root docker`` beside ``[lab10] ...``; the padding hid the stat line."""
    one = [ln for ln in _out("pyinfra").splitlines() if ln.startswith("[lab1] ")]
    padded = "\n".join(["[lab1]  >>> sudo -H -n sh -c 'getent group docker; ...'"]
                       + [ln.replace("[lab1] ", "[lab1]  ", 1) for ln in one])
    assert missing("pyinfra", padded, ["lab1"]) == []
    assert missing("pyinfra", "[lab1]  >>> docker:x:998: 660 root docker uid=0 CONTAINER ID", ["lab1"]) == ["lab1"]
